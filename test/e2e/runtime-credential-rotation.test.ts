// The runtime's database pool follows its mounted credential file: a real
// PostgreSQL, two login roles, and a Secret volume laid out and swapped the
// way the kubelet does it (timestamped directory, `..data` symlink renamed
// over atomically, files as symlinks through `..data`). Queries keep
// succeeding through the swap, a transaction open across it finishes on the
// old login, and afterwards every connection of the pool is the new role.
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { waitFor } from '../../hack/local/process.js';
import { createPgPool } from '../../src/runtime-services/base/connections.js';
import type { FileCredentialPool } from '../../src/runtime-services/base/credential-file.js';

const APP = 'rotation-test';

/** A Secret volume as the kubelet writes it (pkg/volume/util AtomicWriter): data dir, `..data` link, per-key links. */
class SecretVolume {
  private n = 0;
  private current?: string;
  constructor(readonly dir: string) {}

  write(files: Record<string, string>): void {
    const ts = `..2026_12_01_00_00_0${this.n++}.${process.pid}`;
    mkdirSync(path.join(this.dir, ts));
    for (const [k, v] of Object.entries(files)) writeFileSync(path.join(this.dir, ts, k), v, { mode: 0o644 });
    symlinkSync(ts, path.join(this.dir, '..data_tmp'));
    // The one atomic step: readers see either the old or the new set, never a mix.
    renameSync(path.join(this.dir, '..data_tmp'), path.join(this.dir, '..data'));
    for (const k of Object.keys(files)) {
      try {
        symlinkSync(path.join('..data', k), path.join(this.dir, k));
      } catch {
        // exists from the first write: it already points through ..data
      }
    }
    if (this.current) rmSync(path.join(this.dir, this.current), { recursive: true });
    this.current = ts;
  }
}

describe('runtime database pool on a rotating credential file', () => {
  let pgServer: LocalPostgres;
  let admin: pg.Client;
  let vol: SecretVolume;
  const urlFor = (user: string) => {
    const u = new URL(pgServer.url);
    u.username = user;
    u.password = `${user}-password`;
    return u.toString();
  };
  const sessions = async () =>
    (await admin.query<{ usename: string }>('SELECT usename FROM pg_stat_activity WHERE application_name = $1 ORDER BY usename', [APP])).rows.map((r) => r.usename);

  beforeAll(async () => {
    pgServer = await startPostgres();
    admin = new pg.Client({ connectionString: pgServer.url });
    await admin.connect();
    // Like a DatabaseClaim: a NOLOGIN owner, logins that become it.
    await admin.query(`CREATE ROLE app_owner NOLOGIN;
      CREATE ROLE app_v1 LOGIN PASSWORD 'app_v1-password' IN ROLE app_owner;
      CREATE ROLE app_v2 LOGIN PASSWORD 'app_v2-password' IN ROLE app_owner`);
    vol = new SecretVolume(mkdtempSync(path.join(tmpdir(), 'fh-secret-vol-')));
    vol.write({ uri: urlFor('app_v1'), username: 'app_v1' });
  });

  afterAll(async () => {
    await admin?.end();
    await pgServer?.stop();
    rmSync(vol.dir, { recursive: true, force: true });
  });

  it('moves to the new login without a failed query; the old pool drains, an open transaction finishes', async () => {
    const log = pino({ level: 'silent' });
    // A long poll: the directory watch alone must notice the swap.
    const pool = createPgPool({ url: `file://${path.join(vol.dir, 'uri')}`, name: APP, max: 4, log });
    const rotating = pool as unknown as FileCredentialPool;
    expect((await pool.query<{ u: string }>('SELECT session_user AS u')).rows[0]!.u).toBe('app_v1');

    // A transaction that spans the swap holds a connection of the old generation.
    const tx = await pool.connect();
    await tx.query('BEGIN');
    await tx.query('SELECT 1');

    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const seen = new Set<string>();
    const load = Array.from({ length: 3 }, async () => {
      while (!stop) {
        try {
          seen.add((await pool.query<{ u: string }>('SELECT session_user AS u')).rows[0]!.u);
          ok += 1;
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    });
    await waitFor('load running', async () => ok > 50, { timeoutMs: 10_000, intervalMs: 20 });
    expect(seen).toEqual(new Set(['app_v1']));

    vol.write({ uri: urlFor('app_v2'), username: 'app_v2' });
    const swappedAt = Date.now();
    await waitFor('queries on the new login', async () => seen.has('app_v2'), { timeoutMs: 5_000, intervalMs: 10 });
    const reactionMs = Date.now() - swappedAt;
    const okAtSwap = ok;
    await waitFor('more queries after the swap', async () => ok > okAtSwap + 100, { timeoutMs: 10_000, intervalMs: 20 });

    // The old pool keeps the transaction's connection until it is released.
    expect(await sessions()).toContain('app_v1');
    expect((await tx.query<{ u: string }>('SELECT session_user AS u')).rows[0]!.u).toBe('app_v1');
    await tx.query('COMMIT');
    tx.release();
    await waitFor('old login gone from pg_stat_activity', async () => !(await sessions()).includes('app_v1'), { timeoutMs: 10_000, intervalMs: 50 });

    stop = true;
    await Promise.all(load);
    expect(failures).toEqual([]);
    expect(rotating.generation).toBe(2);
    const after = await sessions();
    expect(after.length).toBeGreaterThan(0);
    expect(new Set(after)).toEqual(new Set(['app_v2']));
    process.stderr.write(`[credential-rotation] ${ok} queries, 0 failed; new login in use ${reactionMs} ms after the swap\n`);

    // An unchanged file (a kubelet resync writes the same content again) opens no new pool.
    vol.write({ uri: urlFor('app_v2'), username: 'app_v2' });
    await rotating.check();
    expect(rotating.generation).toBe(2);

    await pool.end();
    await waitFor('pool closed', async () => (await sessions()).length === 0, { timeoutMs: 10_000, intervalMs: 50 });
  });

  it('a file that is missing or holds no URL stops the pool from being created, without echoing the content', () => {
    const log = pino({ level: 'silent' });
    expect(() => createPgPool({ url: `file://${path.join(vol.dir, 'absent')}`, name: APP, max: 1, log })).toThrow(/ENOENT/);
    writeFileSync(path.join(vol.dir, 'garbage'), 'hunter2-not-a-url');
    let message = '';
    try {
      createPgPool({ url: `file://${path.join(vol.dir, 'garbage')}`, name: APP, max: 1, log });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/does not hold a postgres:\/\/ URL/);
    expect(message).not.toContain('hunter2');
  });
});
