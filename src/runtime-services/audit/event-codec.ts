// Turns a stream entry into the row the store writes. A malformed entry is
// still recorded (as action `audit.malformed`, raw text in details): the
// audit log must not silently lose anything a service sent.
import { STREAM_FIELD, invalidAuditField } from '../audit-publisher/event.js';
import { canonicalJson, contentHash, type ChainContent } from './chain.js';
import { copyField } from './copy-in.js';

export interface AuditRecord extends ChainContent {
  details: Record<string, unknown>;
  /** Hash of the chained fields, computed off the chain lock (see chain.ts). */
  contentHash: string;
  /**
   * The row's columns that do not depend on the chain position, already in
   * COPY text format (see store.ts), so the work under the chain lock is
   * only the link hash. Set by decodeEntry; the store derives it when absent.
   */
  copyTail?: Buffer;
}

/**
 * All the store needs of a decoded entry. The consumer keeps this rather
 * than the whole record while a batch waits for the chain lock: a batch in
 * flight outlives several young-generation collections, and every object it
 * still references is copied by each of them.
 */
export interface EncodedRecord {
  eventId: string;
  contentHash: string;
  copyTail: Buffer;
}

/** The audit.events columns copyTail encodes, in its order. */
export const COPY_TAIL_COLUMNS = 'event_id, occurred_at, actor, action, target, outcome, request_id, source, details';

// Text fields almost never hold a tab, newline or backslash, so one test over
// them all usually replaces seven escapes.
const COPY_SPECIAL = /[\\\t\n\r]/;

/**
 * COPY columns event_id … details, tab-separated and newline-terminated.
 * The canonical details JSON is both the hashed text and the jsonb input,
 * so it is serialised once.
 */
export function copyTail(r: ChainContent, detailsJson: string = canonicalJson(r.details)): string {
  const plain = `${r.actor}\t${r.action}\t${r.target}\t${r.outcome}\t${r.requestId ?? '\\N'}\t${r.source ?? '\\N'}`;
  const text = COPY_SPECIAL.test(plain)
    ? `${copyField(r.actor)}\t${copyField(r.action)}\t${copyField(r.target)}\t${copyField(r.outcome)}\t${copyField(r.requestId)}\t${copyField(r.source)}`
    : plain;
  return `${r.eventId}\t${r.occurredAt.toISOString()}\t${text}\t${copyField(detailsJson)}\n`;
}

// One object literal per record, completed in place: spreading a fields
// object into a new one cost as much as hashing it.
function record(
  eventId: string, occurredAt: Date, actor: string, action: string, target: string, outcome: string,
  requestId: string | null, source: string | null, details: Record<string, unknown>,
): AuditRecord {
  const r: AuditRecord = { eventId, occurredAt, actor, action, target, outcome, requestId, source, details, contentHash: '', copyTail: undefined };
  const detailsJson = canonicalJson(details);
  r.contentHash = contentHash(r, detailsJson);
  // Bytes (off the JS heap) rather than a string of concatenated pieces.
  r.copyTail = Buffer.from(copyTail(r, detailsJson), 'utf8');
  return r;
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
  const malformed = (reason: string): AuditRecord => record(
    id, streamIdTime(id), 'unknown', 'audit.malformed', 'unknown', 'failure', null, null,
    { reason, raw: withoutNul(raw ?? JSON.stringify(fields)).slice(0, 8192) },
  );
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
  return record(
    id,
    // Millisecond precision: the chain hash is computed over what reads back.
    new Date(Date.parse(e.timestamp as string)),
    e.actor as string,
    e.action as string,
    e.target as string,
    e.outcome as string,
    (e.requestId as string | undefined) ?? null,
    (e.source as string | undefined) ?? null,
    (e.details as Record<string, unknown> | undefined) ?? {},
  );
}

export function encodeEntry(id: string, fields: string[]): EncodedRecord {
  const r = decodeEntry(id, fields);
  return { eventId: r.eventId, contentHash: r.contentHash, copyTail: r.copyTail! };
}
