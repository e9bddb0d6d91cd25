// Daily partitions of audit.events (UTC days). Retention drops whole
// partitions, never rows, and first records a checkpoint with the last hash
// of what it drops so the chain still verifies from that point on.
import type pg from 'pg';

const DAY_MS = 86_400_000;
const NAME = /^events_p(\d{4})(\d{2})(\d{2})$/;

export function dayStart(t: Date): Date {
  return new Date(Math.floor(t.getTime() / DAY_MS) * DAY_MS);
}

export function partitionName(day: Date): string {
  return `events_p${day.toISOString().slice(0, 10).replaceAll('-', '')}`;
}

export function partitionDay(name: string): Date | undefined {
  const m = NAME.exec(name);
  return m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]))) : undefined;
}

type Queryable = Pick<pg.PoolClient, 'query'>;

export async function ensurePartition(db: Queryable, t: Date): Promise<string> {
  const from = dayStart(t);
  const to = new Date(from.getTime() + DAY_MS);
  const name = partitionName(from);
  await db.query(
    `CREATE TABLE IF NOT EXISTS audit.${name} PARTITION OF audit.events
       FOR VALUES FROM ('${from.toISOString()}') TO ('${to.toISOString()}')`,
  );
  // Statement triggers are not inherited, so each partition refuses TRUNCATE itself.
  await db.query(
    `CREATE OR REPLACE TRIGGER ${name}_no_truncate BEFORE TRUNCATE ON audit.${name}
       FOR EACH STATEMENT EXECUTE FUNCTION audit.reject_change()`,
  );
  return name;
}

/** Yesterday (late writers near midnight) through `aheadDays` in the future. */
export async function ensurePartitions(db: Queryable, now: Date, aheadDays: number): Promise<string[]> {
  const names: string[] = [];
  for (let d = -1; d <= aheadDays; d++) names.push(await ensurePartition(db, new Date(now.getTime() + d * DAY_MS)));
  return names;
}

export async function listPartitions(db: Queryable): Promise<{ name: string; day: Date }[]> {
  const { rows } = await db.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i
       JOIN pg_class c ON c.oid = i.inhrelid
       JOIN pg_class p ON p.oid = i.inhparent
       JOIN pg_namespace n ON n.oid = p.relnamespace
      WHERE n.nspname = 'audit' AND p.relname = 'events'`,
  );
  return rows
    .map((r) => ({ name: r.name, day: partitionDay(r.name) }))
    .filter((p): p is { name: string; day: Date } => p.day !== undefined)
    .sort((a, b) => a.day.getTime() - b.day.getTime());
}

export interface DroppedPartition {
  name: string;
  rowCount: number;
  lastSeq: string | null;
}

/**
 * Drops partitions whose whole day lies before now − retentionDays, oldest
 * first, so what is dropped is always a prefix of the chain.
 */
export async function dropExpiredPartitions(pool: pg.Pool, now: Date, retentionDays: number): Promise<DroppedPartition[]> {
  const cutoff = dayStart(new Date(now.getTime() - retentionDays * DAY_MS));
  const dropped: DroppedPartition[] = [];
  for (const p of await listPartitions(pool)) {
    const end = new Date(p.day.getTime() + DAY_MS);
    if (end.getTime() > cutoff.getTime()) break;
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      // Holding the chain head keeps writers out while the checkpoint is taken.
      await client.query('SELECT 1 FROM audit.chain_head WHERE id = 1 FOR UPDATE');
      const { rows } = await client.query<{ n: string; first: string | null; last: string | null }>(
        `SELECT count(*) AS n, min(seq) AS first, max(seq) AS last FROM audit.${p.name}`,
      );
      const stats = rows[0]!;
      let lastHash: string | null = null;
      if (stats.last !== null) {
        const h = await client.query<{ row_hash: string }>(`SELECT row_hash FROM audit.${p.name} WHERE seq = $1`, [stats.last]);
        lastHash = h.rows[0]?.row_hash ?? null;
      }
      await client.query(
        `INSERT INTO audit.checkpoints (partition_name, range_start, range_end, first_seq, last_seq, last_hash, row_count)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [p.name, p.day, end, stats.first, stats.last, lastHash, stats.n],
      );
      await client.query(`ALTER TABLE audit.events DETACH PARTITION audit.${p.name}`);
      await client.query(`DROP TABLE audit.${p.name}`);
      // Stream time precedes recording time, so these ids can no longer be replayed.
      await client.query('DELETE FROM audit.event_ids WHERE ms < $1', [end.getTime()]);
      await client.query('COMMIT');
      dropped.push({ name: p.name, rowCount: Number(stats.n), lastSeq: stats.last });
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw new Error(`dropping expired audit partition ${p.name} failed: ${(err as Error).message}`);
    } finally {
      client.release();
    }
  }
  return dropped;
}
