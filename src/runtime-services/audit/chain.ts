// The tamper-evidence chain. Each row has a content hash over its own fields
// and a row hash linking that content to its position (seq, recorded_at) and
// to the previous row's hash, so changing, removing or reordering any row
// breaks the chain from there on. The content hash needs no chain state, so
// it is computed before the chain lock is taken; only the cheap link hash is
// computed under it. Canonical forms use values as they read back from
// PostgreSQL, so writer and verifier agree byte for byte.
import { hash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);

export interface ChainContent {
  eventId: string;
  occurredAt: Date;
  actor: string;
  action: string;
  target: string;
  outcome: string;
  requestId: string | null;
  source: string | null;
  details: unknown;
}

/** JSON with object keys sorted at every level (jsonb does not keep order). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

// The one-shot form: a Hash object per call is a visible share of the
// consumer's CPU at two hashes per event.
const sha256 = (text: string): string => hash('sha256', text, 'hex');

/**
 * `detailsJson` lets a caller that already holds canonicalJson(c.details)
 * (the writer, which also stores that text as the jsonb input) skip
 * serialising the details twice.
 */
export function contentHash(c: ChainContent, detailsJson: string = canonicalJson(c.details)): string {
  return sha256(`${JSON.stringify([
    c.eventId, c.occurredAt.toISOString(), c.actor, c.action, c.target, c.outcome, c.requestId, c.source,
  ])}${detailsJson}`);
}

/** `recordedAt` as a Date, or already as its toISOString() text (one per batch in the writer). */
export function linkHash(prevHash: string, seq: bigint | number | string, recordedAt: Date | string, content: string): string {
  const at = typeof recordedAt === 'string' ? recordedAt : recordedAt.toISOString();
  return sha256(`${prevHash}\n${seq}\n${at}\n${content}`);
}

export function rowHash(prevHash: string, row: ChainContent & { seq: bigint | number | string; recordedAt: Date }): string {
  return linkHash(prevHash, row.seq, row.recordedAt, contentHash(row));
}
