// Idempotent migrations for the audit schema, applied by every replica at
// start-up under an advisory lock so two replicas never race on DDL.
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
];

export async function migrateAuditSchema(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    for (const sql of STATEMENTS) {
      try {
        await client.query(sql);
      } catch (err) {
        throw new Error(`audit migration failed at "${sql.split('\n')[0]}": ${(err as Error).message}`);
      }
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
