// Appends decoded events to the chain in one short transaction. The chain
// head row is locked FOR UPDATE so replicas append one batch at a time and
// the chain stays linear; everything that does not depend on the chain
// position (decoding, content hashes, the COPY text of those columns)
// happens before the lock, so under it the writer only computes link hashes
// and streams two COPYs.
import type pg from 'pg';
import { linkHash } from './chain.js';
import { copyFrom } from './copy-in.js';
import { COPY_TAIL_COLUMNS, copyTail, type AuditRecord, type EncodedRecord } from './event-codec.js';
import { ensurePartition } from './partitions.js';

export interface AppendResult {
  inserted: number;
  duplicates: number;
}

const NO_PARTITION = '23514';
const UNIQUE_VIOLATION = '23505';
const STREAM_ID = /^\d{1,19}-\d{1,19}$/;

const COPY_EVENTS = `COPY audit.events (seq, recorded_at, prev_hash, row_hash, ${COPY_TAIL_COLUMNS}) FROM STDIN`;
const COPY_LEDGER = 'COPY audit.event_ids (ms, sq) FROM STDIN';

/**
 * The ledger is keyed by the two numeric parts of the stream id: cheaper to
 * index than the text form, and retention can delete by time range.
 */
function ledgerKey(eventId: string): [ms: string, sq: string] {
  const dash = eventId.indexOf('-');
  return [eventId.slice(0, dash), eventId.slice(dash + 1)];
}

type AppendRecord = AuditRecord | EncodedRecord;

/**
 * Claims the stream ids in the ledger. `expectRepeats` false is the fast
 * path (one COPY, a unique violation aborts the transaction and the caller
 * retries with true); true is the replay path, which learns which ids are
 * new. Returns the records to append.
 */
async function claimIds(client: pg.PoolClient, records: AppendRecord[], expectRepeats: boolean): Promise<AppendRecord[]> {
  if (!expectRepeats) {
    let text = '';
    for (const r of records) {
      const [ms, sq] = ledgerKey(r.eventId);
      text += `${ms}\t${sq}\n`;
    }
    await copyFrom(client, COPY_LEDGER, text);
    return records;
  }
  const ms: string[] = [];
  const sq: string[] = [];
  for (const r of records) {
    const k = ledgerKey(r.eventId);
    ms.push(k[0]);
    sq.push(k[1]);
  }
  const fresh = await client.query<{ ms: string; sq: string }>(
    `INSERT INTO audit.event_ids (ms, sq) SELECT * FROM unnest($1::bigint[], $2::bigint[])
     ON CONFLICT (ms, sq) DO NOTHING RETURNING ms, sq`,
    [ms, sq],
  );
  const freshIds = new Set(fresh.rows.map((r) => `${r.ms}-${r.sq}`));
  return records.filter((r) => freshIds.has(r.eventId));
}

async function appendOnce(client: pg.PoolClient, records: AppendRecord[], now: Date, expectRepeats: boolean): Promise<AppendResult> {
  const head = await client.query<{ last_seq: string; last_hash: string; last_recorded_at: Date | null }>(
    'SELECT last_seq, last_hash, last_recorded_at FROM audit.chain_head WHERE id = 1 FOR UPDATE',
  );
  const h = head.rows[0];
  if (!h) throw new Error('audit.chain_head is empty: migrations did not run');
  // recorded_at never goes backwards, so partition order equals chain order
  // and retention always drops a prefix of the chain.
  const recordedAt = h.last_recorded_at && h.last_recorded_at > now ? h.last_recorded_at : now;
  const recordedIso = recordedAt.toISOString();

  const toInsert = await claimIds(client, records, expectRepeats);
  if (toInsert.length === 0) return { inserted: 0, duplicates: records.length };

  // Each row is its chain columns followed by the precomputed tail; the
  // rows are written straight into one buffer, sized up front.
  const tails = toInsert.map((r) => r.copyTail ?? Buffer.from(copyTail(r as AuditRecord), 'utf8'));
  let seq = BigInt(h.last_seq);
  const heads: string[] = new Array(toInsert.length);
  let size = 0;
  let prev = h.last_hash;
  for (let i = 0; i < toInsert.length; i++) {
    seq += 1n;
    const hash = linkHash(prev, seq, recordedIso, toInsert[i]!.contentHash);
    // ASCII only (digits, ISO time, hex), so one char is one byte.
    heads[i] = `${seq}\t${recordedIso}\t${prev}\t${hash}\t`;
    size += heads[i]!.length + tails[i]!.length;
    prev = hash;
  }
  const data = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = 0; i < toInsert.length; i++) {
    at += data.write(heads[i]!, at, 'latin1');
    at += tails[i]!.copy(data, at);
  }
  const copied = await copyFrom(client, COPY_EVENTS, data);
  if (copied !== toInsert.length) throw new Error(`COPY stored ${copied} of ${toInsert.length} audit rows`);
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
export async function appendBatch(pool: pg.Pool, records: AppendRecord[], now: () => Date = () => new Date()): Promise<AppendResult> {
  if (records.length === 0) return { inserted: 0, duplicates: 0 };
  // The same entry can arrive twice in one batch (own read + autoclaim).
  const unique = [...new Map(records.map((r) => [r.eventId, r])).values()].filter((r) => STREAM_ID.test(r.eventId));
  if (unique.length !== new Set(records.map((r) => r.eventId)).size) throw new Error('audit event ids must be Redis stream ids (<ms>-<seq>)');
  // Replays are rare (a batch committed but not acked, then claimed), so the
  // first attempt assumes every id is new and only a ledger conflict pays
  // for the slower statement that sorts new from stored ids.
  let expectRepeats = false;
  let partitionCreated = false;
  for (;;) {
    const client = await pool.connect();
    const t = now();
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await appendOnce(client, unique, t, expectRepeats);
      await client.query('COMMIT');
      return { inserted: result.inserted, duplicates: result.duplicates + (records.length - unique.length) };
    } catch (err) {
      // A connection that cannot even roll back (e.g. left mid-COPY) must not go back to the pool.
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      const e = err as { code?: string; table?: string };
      if (e.code === UNIQUE_VIOLATION && e.table === 'event_ids' && !expectRepeats) {
        expectRepeats = true;
        continue;
      }
      if (e.code === NO_PARTITION && !partitionCreated && !broken) {
        partitionCreated = true;
        await ensurePartition(client, t);
        continue;
      }
      throw new Error(`appending ${unique.length} audit events failed: ${(err as Error).message}`);
    } finally {
      client.release(broken);
    }
  }
}
