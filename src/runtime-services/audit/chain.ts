// The tamper-evidence chain: each row's hash covers its own fields and the
// previous row's hash, so changing, removing or reordering any row breaks
// every hash after it. The canonical form is computed from values as they
// read back from PostgreSQL, so writer and verifier agree byte for byte.
import { createHash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);

export interface ChainRow {
  seq: bigint | number | string;
  eventId: string;
  recordedAt: Date;
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

export function rowHash(prevHash: string, row: ChainRow): string {
  const material = canonicalJson([
    String(row.seq),
    row.eventId,
    row.recordedAt.toISOString(),
    row.occurredAt.toISOString(),
    row.actor,
    row.action,
    row.target,
    row.outcome,
    row.requestId,
    row.source,
    row.details,
    prevHash,
  ]);
  return createHash('sha256').update(material).digest('hex');
}
