// The tamper-evidence chain. Each row has a content hash over its own fields
// and a row hash linking that content to its position (seq, recorded_at) and
// to the previous row's hash, so changing, removing or reordering any row
// breaks the chain from there on. The content hash needs no chain state, so
// it is computed before the chain lock is taken; only the cheap link hash is
// computed under it. Canonical forms use values as they read back from
// PostgreSQL, so writer and verifier agree byte for byte.
import { createHash } from 'node:crypto';

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

export function contentHash(c: ChainContent): string {
  const material = `${JSON.stringify([
    c.eventId, c.occurredAt.toISOString(), c.actor, c.action, c.target, c.outcome, c.requestId, c.source,
  ])}${canonicalJson(c.details)}`;
  return createHash('sha256').update(material).digest('hex');
}

export function linkHash(prevHash: string, seq: bigint | number | string, recordedAt: Date, content: string): string {
  return createHash('sha256').update(`${prevHash}\n${seq}\n${recordedAt.toISOString()}\n${content}`).digest('hex');
}

export function rowHash(prevHash: string, row: ChainContent & { seq: bigint | number | string; recordedAt: Date }): string {
  return linkHash(prevHash, row.seq, row.recordedAt, contentHash(row));
}
