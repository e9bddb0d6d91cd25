// Appends decoded events to the chain in one short transaction. The chain
// head row is locked FOR UPDATE so replicas append one batch at a time and
// the chain stays linear; everything else (decoding, hashing input) happens
// before or after the lock.
import type pg from 'pg';
import { linkHash } from './chain.js';
import type { AuditRecord } from './event-codec.js';
import { ensurePartition } from './partitions.js';

export interface AppendResult {
  inserted: number;
  duplicates: number;
}

const NO_PARTITION = '23514';
const STREAM_ID = /^\d{1,19}-\d{1,19}$/;

async function appendOnce(client: pg.PoolClient, records: AuditRecord[], now: Date): Promise<AppendResult> {
  const head = await client.query<{ last_seq: string; last_hash: string; last_recorded_at: Date | null }>(
    'SELECT last_seq, last_hash, last_recorded_at FROM audit.chain_head WHERE id = 1 FOR UPDATE',
  );
  const h = head.rows[0];
  if (!h) throw new Error('audit.chain_head is empty: migrations did not run');
  // recorded_at never goes backwards, so partition order equals chain order
  // and retention always drops a prefix of the chain.
  const recordedAt = h.last_recorded_at && h.last_recorded_at > now ? h.last_recorded_at : now;

  // The ledger is keyed by the two numeric parts of the stream id: cheaper
  // to index than the text form, and retention can delete by time range.
  const ms: string[] = [];
  const sq: string[] = [];
  for (const r of records) {
    const dash = r.eventId.indexOf('-');
    ms.push(r.eventId.slice(0, dash));
    sq.push(r.eventId.slice(dash + 1));
  }
  const fresh = await client.query<{ ms: string; sq: string }>(
    `INSERT INTO audit.event_ids (ms, sq) SELECT * FROM unnest($1::bigint[], $2::bigint[])
     ON CONFLICT (ms, sq) DO NOTHING RETURNING ms, sq`,
    [ms, sq],
  );
  const freshIds = new Set(fresh.rows.map((r) => `${r.ms}-${r.sq}`));
  const toInsert = records.filter((r) => freshIds.has(r.eventId));
  if (toInsert.length === 0) return { inserted: 0, duplicates: records.length };

  let seq = BigInt(h.last_seq);
  let prev = h.last_hash;
  const cols = {
    seq: [] as string[], eventId: [] as string[], occurredAt: [] as string[], actor: [] as string[], action: [] as string[],
    target: [] as string[], outcome: [] as string[], requestId: [] as (string | null)[], source: [] as (string | null)[],
    details: [] as string[], prevHash: [] as string[], rowHash: [] as string[],
  };
  for (const r of toInsert) {
    seq += 1n;
    const hash = linkHash(prev, seq, recordedAt, r.contentHash);
    cols.seq.push(seq.toString());
    cols.eventId.push(r.eventId);
    // ISO text: pg's per-element Date conversion is a measurable cost at batch sizes in the thousands.
    cols.occurredAt.push(r.occurredAt.toISOString());
    cols.actor.push(r.actor);
    cols.action.push(r.action);
    cols.target.push(r.target);
    cols.outcome.push(r.outcome);
    cols.requestId.push(r.requestId);
    cols.source.push(r.source);
    cols.details.push(JSON.stringify(r.details));
    cols.prevHash.push(prev);
    cols.rowHash.push(hash);
    prev = hash;
  }
  await client.query(
    `INSERT INTO audit.events (seq, event_id, recorded_at, occurred_at, actor, action, target, outcome,
                               request_id, source, details, prev_hash, row_hash)
     SELECT s, e, $13, o, a, ac, t, oc, rq, so, d::jsonb, ph, rh
       FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],
                   $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
         AS u(s, e, o, a, ac, t, oc, rq, so, d, ph, rh)`,
    [cols.seq, cols.eventId, cols.occurredAt, cols.actor, cols.action, cols.target, cols.outcome,
     cols.requestId, cols.source, cols.details, cols.prevHash, cols.rowHash, recordedAt],
  );
  await client.query('UPDATE audit.chain_head SET last_seq = $1, last_hash = $2, last_recorded_at = $3 WHERE id = 1', [
    seq.toString(), prev, recordedAt,
  ]);
  return { inserted: toInsert.length, duplicates: records.length - toInsert.length };
}

/**
 * Idempotent: events whose stream id is already stored are skipped, so a
 * batch replayed after a crash between COMMIT and XACK changes nothing.
 * `now` is injectable for retention tests that need rows in past partitions.
 */
export async function appendBatch(pool: pg.Pool, records: AuditRecord[], now: () => Date = () => new Date()): Promise<AppendResult> {
  if (records.length === 0) return { inserted: 0, duplicates: 0 };
  // The same entry can arrive twice in one batch (own read + autoclaim).
  const unique = [...new Map(records.map((r) => [r.eventId, r])).values()].filter((r) => STREAM_ID.test(r.eventId));
  if (unique.length !== new Set(records.map((r) => r.eventId)).size) throw new Error('audit event ids must be Redis stream ids (<ms>-<seq>)');
  for (let attempt = 0; ; attempt++) {
    const client = await pool.connect();
    const t = now();
    try {
      await client.query('BEGIN');
      const result = await appendOnce(client, unique, t);
      await client.query('COMMIT');
      return { inserted: result.inserted, duplicates: result.duplicates + (records.length - unique.length) };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      const code = (err as { code?: string }).code;
      if (code === NO_PARTITION && attempt === 0) {
        await ensurePartition(client, t);
        continue;
      }
      throw new Error(`appending ${unique.length} audit events failed: ${(err as Error).message}`);
    } finally {
      client.release();
    }
  }
}
