// Daily partitions of audit.events (UTC days). The DDL itself lives in the
// owner's SECURITY DEFINER functions (schema.ts): the service role may only
// ask for a partition inside the owner's window and run the owner's
// retention, which drops whole partitions after recording a checkpoint with
// the last hash of each, so the chain still verifies from that point on.
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

/** The partition holding `t` (yesterday .. the owner's ahead window only). */
export async function ensurePartition(db: Queryable, t: Date): Promise<string> {
  const { rows } = await db.query<{ name: string }>('SELECT audit.ensure_partition($1) AS name', [t]);
  return rows[0]!.name;
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

/** Creates the partitions ahead of time and drops the expired ones (owner's settings). */
export async function maintainPartitions(db: Queryable): Promise<DroppedPartition[]> {
  const { rows } = await db.query<{ dropped_partition: string; dropped_rows: string; dropped_last_seq: string | null }>(
    'SELECT * FROM audit.maintain_partitions()',
  );
  return rows.map((r) => ({ name: r.dropped_partition, rowCount: Number(r.dropped_rows), lastSeq: r.dropped_last_seq }));
}
