// Connection pools of the PostgreSQL admin role. The operator's pools live
// in src/platform (one per target, bounded, closed when the credentials
// rotate); adminPool/closeAdminPools are a process-wide shortcut for scripts.
import { createHash } from 'node:crypto';
import pg from 'pg';

export type SslMode = 'disable' | 'require' | 'verify-ca' | 'verify-full';

export interface PgTarget {
  host: string;
  port: number;
  database: string;
  sslMode: SslMode;
  user: string;
  password: string;
}

export function sslOption(mode: SslMode): pg.ClientConfig['ssl'] {
  if (mode === 'disable') return false;
  // "require" encrypts without verifying the certificate, as libpq does.
  if (mode === 'require') return { rejectUnauthorized: false };
  return { rejectUnauthorized: true, checkServerIdentity: mode === 'verify-ca' ? () => undefined : undefined };
}

export function targetKey(t: PgTarget): string {
  return createHash('sha256').update(JSON.stringify([t.host, t.port, t.database, t.sslMode, t.user, t.password])).digest('hex').slice(0, 24);
}

const pools = new Map<string, pg.Pool>();

/** A new pool (the operator keeps its pools in src/platform, bounded and closed on rotation). */
export function createAdminPool(t: PgTarget, opts: { max?: number; connectTimeoutMs?: number } = {}): pg.Pool {
  const pool = new pg.Pool({
    host: t.host,
    port: t.port,
    database: t.database,
    user: t.user,
    password: t.password,
    ssl: sslOption(t.sslMode),
    max: opts.max ?? 8,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5_000,
    idleTimeoutMillis: 10_000,
    application_name: 'familyhub-operator',
  });
  // Idle clients die when the server restarts; the pool replaces them. Without
  // a listener the 'error' event would crash the process.
  pool.on('error', () => {});
  return pool;
}

/** One shared pool per target, for scripts and tests. */
export function adminPool(t: PgTarget, opts: { max?: number; connectTimeoutMs?: number } = {}): pg.Pool {
  const key = targetKey(t);
  let pool = pools.get(key);
  if (!pool) {
    pool = createAdminPool(t, opts);
    pools.set(key, pool);
  }
  return pool;
}

export async function closeAdminPools(): Promise<void> {
  const all = [...pools.values()];
  pools.clear();
  await Promise.allSettled(all.map((p) => p.end()));
}
