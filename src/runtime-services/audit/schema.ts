// Idempotent migrations for the audit schema. They run as the owner role
// (never the role the service writes with): the service role gets INSERT and
// SELECT on the records, UPDATE on the chain head, and EXECUTE on the two
// partition functions, so it cannot ALTER the tables (disable the
// immutability triggers), UPDATE or DELETE records, or drop partitions other
// than by the owner's retention. Concurrent migrators serialise on an
// advisory lock.
import type pg from 'pg';
import { GENESIS_HASH } from './chain.js';

const MIGRATION_LOCK = 7_265_001;

const STATEMENTS = [
  `CREATE SCHEMA IF NOT EXISTS audit`,
  `CREATE TABLE IF NOT EXISTS audit.events (
     seq         bigint      NOT NULL,
     event_id    text        NOT NULL,
     recorded_at timestamptz NOT NULL,
     occurred_at timestamptz NOT NULL,
     actor       text        NOT NULL,
     action      text        NOT NULL,
     target      text        NOT NULL,
     outcome     text        NOT NULL,
     request_id  text,
     source      text,
     details     jsonb       NOT NULL,
     prev_hash   text        NOT NULL,
     row_hash    text        NOT NULL,
     PRIMARY KEY (seq, recorded_at)
   ) PARTITION BY RANGE (recorded_at)`,
  `CREATE INDEX IF NOT EXISTS events_actor_idx ON audit.events (actor, seq)`,
  `CREATE INDEX IF NOT EXISTS events_action_idx ON audit.events (action, seq)`,
  `CREATE INDEX IF NOT EXISTS events_target_idx ON audit.events (target, seq)`,
  `CREATE INDEX IF NOT EXISTS events_occurred_idx ON audit.events (occurred_at)`,
  // A partitioned table can only enforce uniqueness together with its
  // partition key, so stream ids (<ms>-<seq>) are made unique in this plain ledger.
  `CREATE TABLE IF NOT EXISTS audit.event_ids (
     ms bigint NOT NULL,
     sq bigint NOT NULL,
     PRIMARY KEY (ms, sq)
   )`,
  `CREATE TABLE IF NOT EXISTS audit.chain_head (
     id               int PRIMARY KEY CHECK (id = 1),
     last_seq         bigint NOT NULL,
     last_hash        text   NOT NULL,
     last_recorded_at timestamptz
   )`,
  `INSERT INTO audit.chain_head (id, last_seq, last_hash) VALUES (1, 0, '${GENESIS_HASH}') ON CONFLICT (id) DO NOTHING`,
  `CREATE TABLE IF NOT EXISTS audit.checkpoints (
     partition_name text PRIMARY KEY,
     range_start    timestamptz NOT NULL,
     range_end      timestamptz NOT NULL,
     first_seq      bigint,
     last_seq       bigint,
     last_hash      text,
     row_count      bigint NOT NULL,
     dropped_at     timestamptz NOT NULL DEFAULT now()
   )`,
  `CREATE OR REPLACE FUNCTION audit.reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN
     RAISE EXCEPTION 'audit records are immutable: % on %.% rejected', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
       USING ERRCODE = 'insufficient_privilege';
   END $$`,
  `CREATE OR REPLACE TRIGGER events_immutable BEFORE UPDATE OR DELETE ON audit.events
     FOR EACH ROW EXECUTE FUNCTION audit.reject_change()`,
  `CREATE OR REPLACE TRIGGER events_no_truncate BEFORE TRUNCATE ON audit.events
     FOR EACH STATEMENT EXECUTE FUNCTION audit.reject_change()`,
  `CREATE OR REPLACE TRIGGER checkpoints_immutable BEFORE UPDATE OR DELETE ON audit.checkpoints
     FOR EACH ROW EXECUTE FUNCTION audit.reject_change()`,
  // Written only by the migration (the owner): the service role cannot
  // shorten retention to make the maintenance function drop recent records.
  `CREATE TABLE IF NOT EXISTS audit.settings (
     id             int PRIMARY KEY CHECK (id = 1),
     retention_days int NOT NULL CHECK (retention_days >= 1),
     ahead_days     int NOT NULL CHECK (ahead_days BETWEEN 1 AND 62)
   )`,
  // The only DDL the service role may cause, through SECURITY DEFINER
  // functions owned by the owner role: a partition inside the owner's window
  // (yesterday .. ahead_days + 1) and the retention run the owner configured.
  `CREATE OR REPLACE FUNCTION audit.ensure_partition(at_time timestamptz) RETURNS text
     LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
   DECLARE
     d date := (at_time AT TIME ZONE 'UTC')::date;
     today date := (now() AT TIME ZONE 'UTC')::date;
     ahead int;
     name text;
   BEGIN
     SELECT ahead_days INTO ahead FROM audit.settings WHERE id = 1;
     IF ahead IS NULL THEN RAISE EXCEPTION 'audit.settings is empty: migrations did not run'; END IF;
     IF d < today - 1 OR d > today + ahead + 1 THEN
       RAISE EXCEPTION 'audit partition for % is outside the allowed window % .. %', d, today - 1, today + ahead + 1
         USING ERRCODE = 'insufficient_privilege';
     END IF;
     name := 'events_p' || to_char(d, 'YYYYMMDD');
     EXECUTE format('CREATE TABLE IF NOT EXISTS audit.%I PARTITION OF audit.events FOR VALUES FROM (%L) TO (%L)',
       name, (d::timestamp AT TIME ZONE 'UTC'), ((d + 1)::timestamp AT TIME ZONE 'UTC'));
     -- Statement triggers are not inherited, so each partition refuses TRUNCATE itself.
     EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE TRUNCATE ON audit.%I FOR EACH STATEMENT EXECUTE FUNCTION audit.reject_change()',
       name || '_no_truncate', name);
     RETURN name;
   END $$`,
  // Retention drops whole partitions, oldest first (always a prefix of the
  // chain), after recording a checkpoint with the last hash of each.
  `CREATE OR REPLACE FUNCTION audit.maintain_partitions()
     RETURNS TABLE (dropped_partition text, dropped_rows bigint, dropped_last_seq bigint)
     LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
   DECLARE
     cfg record;
     today date := (now() AT TIME ZONE 'UTC')::date;
     p record;
     d date;
     n bigint;
     first_s bigint;
     last_s bigint;
     h text;
   BEGIN
     SELECT retention_days, ahead_days INTO cfg FROM audit.settings WHERE id = 1;
     IF cfg IS NULL THEN RAISE EXCEPTION 'audit.settings is empty: migrations did not run'; END IF;
     FOR i IN -1 .. cfg.ahead_days LOOP
       PERFORM audit.ensure_partition((today + i)::timestamp AT TIME ZONE 'UTC');
     END LOOP;
     FOR p IN
       SELECT c.relname FROM pg_inherits inh
         JOIN pg_class c ON c.oid = inh.inhrelid
         JOIN pg_class par ON par.oid = inh.inhparent
         JOIN pg_namespace ns ON ns.oid = par.relnamespace
        WHERE ns.nspname = 'audit' AND par.relname = 'events' AND c.relname ~ '^events_p[0-9]{8}$'
        ORDER BY c.relname
     LOOP
       d := to_date(substr(p.relname, 9), 'YYYYMMDD');
       EXIT WHEN d + 1 > today - cfg.retention_days;
       -- Holding the chain head keeps writers out while the checkpoint is taken.
       PERFORM 1 FROM audit.chain_head WHERE id = 1 FOR UPDATE;
       EXECUTE format('SELECT count(*), min(seq), max(seq) FROM audit.%I', p.relname) INTO n, first_s, last_s;
       h := NULL;
       IF last_s IS NOT NULL THEN
         EXECUTE format('SELECT row_hash FROM audit.%I WHERE seq = $1', p.relname) INTO h USING last_s;
       END IF;
       INSERT INTO audit.checkpoints (partition_name, range_start, range_end, first_seq, last_seq, last_hash, row_count)
       VALUES (p.relname, d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC', first_s, last_s, h, n);
       EXECUTE format('ALTER TABLE audit.events DETACH PARTITION audit.%I', p.relname);
       EXECUTE format('DROP TABLE audit.%I', p.relname);
       -- Stream time precedes recording time, so these ids can no longer be replayed.
       DELETE FROM audit.event_ids WHERE ms < (extract(epoch FROM ((d + 1)::timestamp AT TIME ZONE 'UTC')) * 1000)::bigint;
       dropped_partition := p.relname;
       dropped_rows := n;
       dropped_last_seq := last_s;
       RETURN NEXT;
     END LOOP;
   END $$`,
  `REVOKE ALL ON FUNCTION audit.ensure_partition(timestamptz) FROM PUBLIC`,
  `REVOKE ALL ON FUNCTION audit.maintain_partitions() FROM PUBLIC`,
  `REVOKE ALL ON SCHEMA audit FROM PUBLIC`,
];

export interface AuditMigrationOptions {
  /** The role the service runs as; it gets exactly the grants above. */
  appRole?: string;
  retentionDays?: number;
  aheadDays?: number;
}

export async function migrateAuditSchema(ownerPool: pg.Pool, opts: AuditMigrationOptions = {}): Promise<void> {
  const client = await ownerPool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    const run = async (sql: string, params: unknown[] = []) => {
      try {
        await client.query(sql, params);
      } catch (err) {
        throw new Error(`audit migration failed at "${sql.split('\n')[0]}": ${(err as Error).message}`);
      }
    };
    for (const sql of STATEMENTS) await run(sql);
    await run(
      `INSERT INTO audit.settings (id, retention_days, ahead_days) VALUES (1, $1, $2)
       ON CONFLICT (id) DO UPDATE SET retention_days = EXCLUDED.retention_days, ahead_days = EXCLUDED.ahead_days`,
      [opts.retentionDays ?? 365, opts.aheadDays ?? 7],
    );
    if (opts.appRole) {
      const me = (await client.query<{ u: string }>('SELECT current_user AS u')).rows[0]!.u;
      if (opts.appRole === me) throw new Error(`audit migration: the service role ${me} must not be the owner role`);
      const role = client.escapeIdentifier(opts.appRole);
      await run(`GRANT USAGE ON SCHEMA audit TO ${role}`);
      await run(`GRANT SELECT, INSERT ON audit.events, audit.event_ids TO ${role}`);
      await run(`GRANT SELECT, UPDATE ON audit.chain_head TO ${role}`);
      await run(`GRANT SELECT ON audit.checkpoints, audit.settings TO ${role}`);
      await run(`GRANT EXECUTE ON FUNCTION audit.ensure_partition(timestamptz), audit.maintain_partitions() TO ${role}`);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/**
 * The service refuses to write with a role that could lift the records'
 * immutability: one that owns audit.events or is a superuser.
 */
export async function checkAuditSchema(pool: pg.Pool): Promise<void> {
  const { rows } = await pool.query<{ me: string; superuser: boolean; owner: string | null; has_settings: boolean; member_of_owner: boolean | null }>(
    `SELECT current_user AS me,
            (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
            t.tableowner AS owner,
            -- A member of the owner role has the owner's rights (ALTER TABLE included).
            CASE WHEN t.tableowner IS NULL THEN NULL ELSE pg_has_role(current_user, t.tableowner, 'MEMBER') END AS member_of_owner,
            to_regclass('audit.settings') IS NOT NULL AS has_settings
       FROM (SELECT 1) one
       LEFT JOIN pg_tables t ON t.schemaname = 'audit' AND t.tablename = 'events'`,
  );
  const r = rows[0]!;
  if (!r.owner || !r.has_settings) {
    throw new Error('the audit schema is missing or outdated: run the migrations as the owner role (AUDIT_OWNER_DATABASE_URL or audit/migrate-cli.ts)');
  }
  if (r.superuser || r.member_of_owner) {
    const why = r.superuser ? 'is a superuser' : r.owner === r.me ? 'owns audit.events' : `is a member of ${r.owner}, which owns audit.events`;
    throw new Error(
      `the audit service connects as ${r.me}, which ${why} and could disable the immutability triggers; ` +
        'connect as a role with only the grants the migration gives (AUDIT_OWNER_DATABASE_URL names the owner)',
    );
  }
}
