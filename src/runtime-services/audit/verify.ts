// Recomputes the hash chain from the stored rows and reports the first row
// that does not fit. Runs in one REPEATABLE READ snapshot so appends made
// while it runs neither break nor extend what it checks. Verification is
// CPU work on the event loop ingestion also runs on, so it yields between
// pages, and the service runs at most one at a time (AuditVerifier).
import type pg from 'pg';
import { GENESIS_HASH, rowHash } from './chain.js';

export interface VerifyResult {
  ok: boolean;
  checkedRows: number;
  /** The chain starts after this seq when old partitions were dropped. */
  startsAfterSeq: string;
  headSeq: string;
  firstBroken?: { seq: string; eventId?: string; reason: string };
}

interface EventRow {
  seq: string;
  event_id: string;
  recorded_at: Date;
  occurred_at: Date;
  actor: string;
  action: string;
  target: string;
  outcome: string;
  request_id: string | null;
  source: string | null;
  details: unknown;
  prev_hash: string;
  row_hash: string;
}

export class VerifyTimeout extends Error {}

const yieldToIo = () => new Promise<void>((r) => setImmediate(r));

export interface VerifyOptions {
  pageSize?: number;
  /** Whole-run limit; the run stops with VerifyTimeout between pages. */
  timeoutMs?: number;
}

export async function verifyChain(pool: pg.Pool, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const pageSize = opts.pageSize ?? 2000;
  const deadline = opts.timeoutMs ? Date.now() + opts.timeoutMs : Infinity;
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const head = (await client.query<{ last_seq: string; last_hash: string }>('SELECT last_seq, last_hash FROM audit.chain_head WHERE id = 1')).rows[0];
    if (!head) throw new Error('audit.chain_head is empty');
    const cp = (
      await client.query<{ last_seq: string; last_hash: string }>(
        'SELECT last_seq, last_hash FROM audit.checkpoints WHERE last_seq IS NOT NULL ORDER BY last_seq DESC LIMIT 1',
      )
    ).rows[0];
    let expectedSeq = cp ? BigInt(cp.last_seq) + 1n : 1n;
    let expectedPrev = cp ? cp.last_hash : GENESIS_HASH;
    const startsAfterSeq = (expectedSeq - 1n).toString();
    const headSeq = BigInt(head.last_seq);
    const result = (firstBroken?: VerifyResult['firstBroken'], checkedRows = 0): VerifyResult => ({
      ok: !firstBroken,
      checkedRows,
      startsAfterSeq,
      headSeq: head.last_seq,
      ...(firstBroken ? { firstBroken } : {}),
    });

    // Rows at or below a checkpoint should have gone with their partition.
    const stale = (await client.query<{ seq: string; event_id: string }>(
      'SELECT seq, event_id FROM audit.events WHERE seq < $1 ORDER BY seq LIMIT 1', [expectedSeq.toString()],
    )).rows[0];
    if (stale) return result({ seq: stale.seq, eventId: stale.event_id, reason: 'row lies inside a dropped (checkpointed) range' });

    let checked = 0;
    let after = expectedSeq - 1n;
    while (after < headSeq) {
      const { rows } = await client.query<EventRow>(
        `SELECT seq, event_id, recorded_at, occurred_at, actor, action, target, outcome, request_id, source, details,
                prev_hash, row_hash
           FROM audit.events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3`,
        [after.toString(), head.last_seq, pageSize],
      );
      if (rows.length === 0) break;
      if (Date.now() > deadline) throw new VerifyTimeout(`verification did not finish within ${opts.timeoutMs} ms (checked ${checked} rows)`);
      for (const r of rows) {
        const seq = BigInt(r.seq);
        if (seq !== expectedSeq) {
          return result({ seq: expectedSeq.toString(), reason: `row missing: next stored row is seq ${r.seq}` }, checked);
        }
        if (r.prev_hash !== expectedPrev) {
          return result({ seq: r.seq, eventId: r.event_id, reason: 'prev_hash does not match the previous row' }, checked);
        }
        const computed = rowHash(r.prev_hash, {
          seq: r.seq, eventId: r.event_id, recordedAt: r.recorded_at, occurredAt: r.occurred_at, actor: r.actor,
          action: r.action, target: r.target, outcome: r.outcome, requestId: r.request_id, source: r.source, details: r.details,
        });
        if (computed !== r.row_hash) {
          return result({ seq: r.seq, eventId: r.event_id, reason: 'row content does not match row_hash' }, checked);
        }
        expectedPrev = r.row_hash;
        expectedSeq = seq + 1n;
        after = seq;
        checked++;
      }
      await yieldToIo();
    }
    if (expectedSeq - 1n !== headSeq) {
      return result({ seq: expectedSeq.toString(), reason: `rows missing up to the chain head (seq ${head.last_seq})` }, checked);
    }
    if (expectedPrev !== head.last_hash) {
      return result({ seq: head.last_seq, reason: 'chain head hash does not match the last row' }, checked);
    }
    return result(undefined, checked);
  } finally {
    await client.query('ROLLBACK').catch(() => {});
    client.release();
  }
}

/**
 * At most one verification at a time per process, on its own pool: callers
 * arriving while one runs share its result instead of starting another.
 */
export class AuditVerifier {
  private running: Promise<VerifyResult> | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly opts: VerifyOptions,
  ) {}

  get busy(): boolean {
    return this.running !== undefined;
  }

  verify(): Promise<VerifyResult> {
    this.running ??= verifyChain(this.pool, this.opts).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }
}
