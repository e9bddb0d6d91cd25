// Turns a stream entry into the row the store writes. A malformed entry is
// still recorded (as action `audit.malformed`, raw text in details): the
// audit log must not silently lose anything a service sent.
import { STREAM_FIELD, invalidAuditField } from '../audit-publisher/event.js';
import { contentHash, type ChainContent } from './chain.js';

export interface AuditRecord extends ChainContent {
  details: Record<string, unknown>;
  /** Hash of the chained fields, computed off the chain lock (see chain.ts). */
  contentHash: string;
}

type Fields = Omit<AuditRecord, 'contentHash'>;

function withHash(f: Fields): AuditRecord {
  return { ...f, contentHash: contentHash(f) };
}


/** jsonb rejects NUL characters; a poisoned entry would block the batch forever. */
function withoutNul(text: string): string {
  return text.includes('\\u0000') ? text.replaceAll('\\u0000', '') : text;
}

/** Stream ids are `<ms>-<seq>`: the ms part is when Redis accepted the entry. */
export function streamIdTime(id: string): Date {
  return new Date(Number(id.slice(0, id.indexOf('-'))));
}

export function decodeEntry(id: string, fields: string[]): AuditRecord {
  let raw: string | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === STREAM_FIELD) raw = fields[i + 1];
  const malformed = (reason: string): AuditRecord => withHash({
    eventId: id,
    occurredAt: streamIdTime(id),
    actor: 'unknown',
    action: 'audit.malformed',
    target: 'unknown',
    outcome: 'failure',
    requestId: null,
    source: null,
    details: { reason, raw: withoutNul(raw ?? JSON.stringify(fields)).slice(0, 8192) },
  });
  if (raw === undefined) return malformed(`entry has no "${STREAM_FIELD}" field`);
  let json: unknown;
  try {
    json = JSON.parse(withoutNul(raw));
  } catch {
    return malformed('entry is not JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return malformed('entry is not a JSON object');
  const e = json as Record<string, unknown>;
  const bad = invalidAuditField(e);
  if (bad) return malformed(`entry field ${bad} is missing or invalid`);
  return withHash({
    eventId: id,
    // Millisecond precision: the chain hash is computed over what reads back.
    occurredAt: new Date(Date.parse(e.timestamp as string)),
    actor: e.actor as string,
    action: e.action as string,
    target: e.target as string,
    outcome: e.outcome as string,
    requestId: (e.requestId as string | undefined) ?? null,
    source: (e.source as string | undefined) ?? null,
    details: (e.details as Record<string, unknown> | undefined) ?? {},
  });
}
