// The one place PostgreSQL pools and Redis clients are built, so every
// service gets the same error handling, connection naming and timeouts. A
// service that needs a database spreads `postgresSettings` / `redisSettings`
// into its own zod settings: only then does RUNTIME_SERVICES make
// DATABASE_URL / REDIS_URL required.
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { Logger } from 'pino';
import { z } from 'zod';
import { FileCredentialPool, isFileUrl } from './credential-file.js';

/**
 * DATABASE_URL is either the URL itself or `file:///path/to/uri`: a mounted
 * Secret's file holding it, read at start and again whenever the kubelet
 * swaps the Secret (credential-file.ts), so a rotated login takes effect
 * without a restart.
 */
export const postgresSettings = { DATABASE_URL: z.string().url() };
/**
 * REDIS_PASSWORD_FILE: the Redis password (AUTH) as a mounted Secret's file,
 * never as an env value (the operator mounts the hub's
 * spec.redis.passwordSecretRef there). A changed password rolls the pods, so
 * it is read once, when the clients are built.
 */
export const redisSettings = { REDIS_URL: z.string().url(), REDIS_PASSWORD_FILE: z.string().min(1).optional() };
export interface RedisSettings {
  REDIS_URL: string;
  REDIS_PASSWORD_FILE?: string;
}

export interface PgPoolOptions {
  url: string;
  /** Shows up in pg_stat_activity, so an operator can tell the pools apart. */
  name: string;
  max: number;
  log: Logger;
  /** Server-side limit per statement; unset means the role's default. */
  statementTimeoutMs?: number;
  connectionTimeoutMs?: number;
}

export function createPgPool(opts: PgPoolOptions): pg.Pool {
  if (isFileUrl(opts.url)) {
    const { url: fileUrl, ...rest } = opts;
    // Structurally the part of pg.Pool the services use (see FileCredentialPool).
    return new FileCredentialPool({ fileUrl, name: opts.name, log: opts.log, open: (url) => openPool({ ...rest, url }) }) as unknown as pg.Pool;
  }
  return openPool(opts);
}

function openPool(opts: PgPoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.max,
    application_name: opts.name,
    connectionTimeoutMillis: opts.connectionTimeoutMs ?? 10_000,
    ...(opts.statementTimeoutMs ? { statement_timeout: opts.statementTimeoutMs } : {}),
  });
  // Without a listener an idle connection dropped by the server crashes the process.
  pool.on('error', (err) => opts.log.warn({ err: err.message, pool: opts.name }, 'idle PostgreSQL connection failed'));
  return pool;
}

/**
 * Lazily connecting and retrying forever: callers connect in start(), and a
 * Redis restart is waited out instead of failing every command.
 */
export function createRedis(settings: RedisSettings, name: string, log: Logger): Redis {
  const password = settings.REDIS_PASSWORD_FILE ? readRedisPassword(settings.REDIS_PASSWORD_FILE) : undefined;
  const client = new Redis(settings.REDIS_URL, { maxRetriesPerRequest: null, lazyConnect: true, connectionName: name, ...(password !== undefined ? { password } : {}) });
  client.on('error', (err) => log.warn({ err: err.message, client: name }, 'Redis connection error'));
  return client;
}

/**
 * The file's content without the one line break `echo` or an editor leaves
 * at the end (`kubectl create secret --from-file` keeps it). The error names
 * the file, never what it holds.
 */
export function readRedisPassword(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`REDIS_PASSWORD_FILE ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const password = text.replace(/\r?\n$/, '');
  if (!password) throw new Error(`REDIS_PASSWORD_FILE ${file} is empty`);
  return password;
}

/**
 * A service's idempotent DDL in one transaction under an advisory lock, so
 * replicas that start together migrate once and never see half a schema.
 */
export async function runMigrations(pool: pg.Pool, service: string, lockId: number, statements: readonly string[]): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [lockId]);
    for (const sql of statements) {
      if (await schemaExists(client, sql)) continue;
      await client.query(sql);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw new Error(`${service} migration failed: ${(err as Error).message}`);
  } finally {
    client.release();
  }
}

/**
 * CREATE SCHEMA IF NOT EXISTS still needs CREATE on the database, which a
 * DatabaseClaim's roles do not have: their schema was made for them. So an
 * existing schema's statement is skipped instead of sent.
 */
async function schemaExists(client: pg.PoolClient, sql: string): Promise<boolean> {
  const m = /^\s*CREATE\s+SCHEMA\s+IF\s+NOT\s+EXISTS\s+([a-z_][a-z0-9_]*)\s*;?\s*$/i.exec(sql);
  if (!m) return false;
  const r = await client.query<{ e: boolean }>('SELECT to_regnamespace($1) IS NOT NULL AS e', [m[1]!.toLowerCase()]);
  return r.rows[0]!.e;
}
