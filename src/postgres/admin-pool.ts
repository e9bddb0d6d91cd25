// One small connection pool per PostgreSQL target (server + admin role),
// shared by every claim of a FamilyHub. Keyed by a hash that includes the
// password, so rotating the admin Secret transparently opens a new pool.
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

export function adminPool(t: PgTarget, opts: { max?: number; connectTimeoutMs?: number } = {}): pg.Pool {
  const key = targetKey(t);
  let pool = pools.get(key);
  if (!pool) {
    pool = new pg.Pool({
      host: t.host,
      port: t.port,
      database: t.database,
      user: t.user,
      password: t.password,
      ssl: sslOption(t.sslMode),
      max: opts.max ?? Number(process.env.FAMILYHUB_PG_POOL_MAX ?? 8),
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5_000,
      idleTimeoutMillis: 10_000,
      application_name: 'familyhub-operator',
    });
    // Idle clients die when the server restarts; the pool replaces them. Without
    // a listener the 'error' event would crash the process.
    pool.on('error', () => {});
    pools.set(key, pool);
  }
  return pool;
}

export async function closeAdminPools(): Promise<void> {
  const all = [...pools.values()];
  pools.clear();
  await Promise.allSettled(all.map((p) => p.end()));
}
