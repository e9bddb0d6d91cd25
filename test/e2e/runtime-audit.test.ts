// Audit service against real PostgreSQL, Redis and the development IdP:
// crash-safe exactly-once persistence, immutability, tamper evidence,
// retention by partition drop, and the admin query API.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { waitFor } from '../../hack/local/process.js';
import { startRedis, type LocalRedis } from '../../hack/local/redis.js';
import { createAuditPublisher } from '../../src/runtime-services/audit-publisher/publisher.js';
import { contentHash } from '../../src/runtime-services/audit/chain.js';
import type { AuditRecord } from '../../src/runtime-services/audit/event-codec.js';
import { listPartitions } from '../../src/runtime-services/audit/partitions.js';
import { migrateAuditSchema } from '../../src/runtime-services/audit/schema.js';
import { appendBatch } from '../../src/runtime-services/audit/store.js';
import { verifyChain } from '../../src/runtime-services/audit/verify.js';
import { createAuditDatabase, rolePassword, secretsInRuntimeLogs, spawnRuntime, spawnedRuntimes, superuserUrl, type AuditDatabase, type RuntimeProcess } from './runtime-harness.js';

const DOMAIN = 'family.test';
const AUDIENCE = 'audit';
const DAY = 86_400_000;

let pgInst: LocalPostgres;
let redis: LocalRedis;
let idp: DevIdp;
const running: RuntimeProcess[] = [];
/** Every access token the suite issued: none may appear in a runtime's log. */
const tokens: string[] = [];
const remember = (t: string) => (tokens.push(t), t);

beforeAll(async () => {
  [pgInst, redis, idp] = await Promise.all([startPostgres(), startRedis(), startDevIdp({ allowedDomain: DOMAIN })]);
});

afterAll(async () => {
  await Promise.all(running.map((r) => r.proc.stop()));
  await Promise.all([pgInst?.stop(), redis?.stop(), idp?.stop()]);
});

function runtimeEnv(db: AuditDatabase, stream: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    RUNTIME_SERVICES: 'audit',
    DATABASE_URL: db.appUrl,
    AUDIT_OWNER_DATABASE_URL: db.ownerUrl,
    REDIS_URL: redis.url,
    OIDC_ISSUER_URL: idp.issuer,
    OIDC_AUDIENCE: AUDIENCE,
    AUTH_ALLOWED_EMAIL_DOMAINS: DOMAIN,
    AUTH_ADMIN_ROLE: 'admins',
    AUDIT_STREAM: stream,
    AUDIT_CLAIM_MIN_IDLE_MS: '2000',
    AUDIT_CLAIM_INTERVAL_MS: '1000',
    AUDIT_TRIM_INTERVAL_MS: '1000',
    ...extra,
  };
}

async function start(name: string, env: Record<string, string>): Promise<RuntimeProcess> {
  const r = await spawnRuntime(name, env);
  running.push(r);
  return r;
}

describe('audit service: crash-safe ingestion', () => {
  const STREAM = 'e2e:audit:crash';
  const TOTAL = 100_000;
  const PRODUCERS = 4;
  let db: AuditDatabase;
  let su: pg.Pool;
  let app: pg.Pool;
  let owner: pg.Pool;

  beforeAll(async () => {
    db = await createAuditDatabase(pgInst, 'audit_crash');
    su = new pg.Pool({ connectionString: superuserUrl(pgInst, 'audit_crash') });
    app = new pg.Pool({ connectionString: db.appUrl });
    owner = new pg.Pool({ connectionString: db.ownerUrl });
  });
  afterAll(async () => {
    await su?.end();
    await app?.end();
    await owner?.end();
  });

  it(`persists ${TOTAL} events from ${PRODUCERS} producers exactly once while consumers are SIGKILLed twice`, async () => {
    let a = await start('audit-a1', runtimeEnv(db, STREAM));
    let b = await start('audit-b1', runtimeEnv(db, STREAM));
    const stored = async () => Number((await su.query('SELECT last_seq FROM audit.chain_head')).rows[0].last_seq);

    const published: string[] = [];
    const producers = Array.from({ length: PRODUCERS }, async (_, p) => {
      const conn = new Redis(redis.url);
      const publisher = createAuditPublisher(conn, { stream: STREAM, source: `producer-${p}` });
      try {
        for (let i = 0; i < TOTAL / PRODUCERS; i += 500) {
          const batch = Array.from({ length: 500 }, (_, k) => ({
            actor: `user${(i + k) % 7}@${DOMAIN}`,
            action: 'test.write',
            target: `thing/${p}-${i + k}`,
            outcome: 'success' as const,
            requestId: `req-${p}-${i + k}`,
            details: { producer: p, n: i + k, nested: { b: 2, a: [1, 'x'] } },
          }));
          published.push(...(await publisher.publishMany(batch)));
          // Spread publishing over the crash window instead of one burst.
          await new Promise((r) => setTimeout(r, 20));
        }
      } finally {
        conn.disconnect();
      }
    });
    const producing = Promise.all(producers);

    await waitFor('20k stored before first kill', async () => (await stored()) >= 20_000, { timeoutMs: 120_000, intervalMs: 50 });
    await a.proc.kill();
    a = await start('audit-a2', runtimeEnv(db, STREAM));
    await waitFor('50k stored before second kill', async () => (await stored()) >= 50_000, { timeoutMs: 120_000, intervalMs: 50 });
    await b.proc.kill();
    b = await start('audit-b2', runtimeEnv(db, STREAM));
    await producing;
    expect(published).toHaveLength(TOTAL);

    await waitFor('all events stored', async () => (await stored()) >= TOTAL, { timeoutMs: 150_000, intervalMs: 250 });
    const cmd = new Redis(redis.url);
    try {
      await waitFor('nothing pending', async () => Number(((await cmd.xpending(STREAM, 'audit-writers')) as [number])[0]) === 0, {
        timeoutMs: 30_000,
      });
      // Trimming keeps only what is not yet acknowledged (here: at most the last entry).
      await waitFor('stream trimmed', async () => (await cmd.xlen(STREAM)) <= 1, { timeoutMs: 10_000 });
    } finally {
      cmd.disconnect();
    }

    const { rows } = await su.query<{ n: string; distinct_ids: string }>(
      'SELECT count(*) AS n, count(DISTINCT event_id) AS distinct_ids FROM audit.events',
    );
    expect(Number(rows[0]!.n)).toBe(TOTAL);
    expect(Number(rows[0]!.distinct_ids)).toBe(TOTAL);
    const ids = new Set((await su.query<{ event_id: string }>('SELECT event_id FROM audit.events')).rows.map((r) => r.event_id));
    expect(published.every((id) => ids.has(id))).toBe(true);

    const result = await verifyChain(app);
    expect(result).toMatchObject({ ok: true, checkedRows: TOTAL, headSeq: String(TOTAL) });
  });

  it('the service role cannot change records: no UPDATE/DELETE/TRUNCATE privilege, and it cannot disable the triggers', async () => {
    await expect(app.query(`UPDATE audit.events SET actor = 'someone-else' WHERE seq = 10`)).rejects.toThrow(/permission denied for table events/);
    await expect(app.query('DELETE FROM audit.events WHERE seq = 10')).rejects.toThrow(/permission denied for table events/);
    await expect(app.query('TRUNCATE audit.events')).rejects.toThrow(/permission denied for table events/);
    const partition = (await listPartitions(app)).find(() => true)!.name;
    await expect(app.query(`TRUNCATE audit.${partition}`)).rejects.toThrow(/permission denied/);
    await expect(app.query(`DROP TABLE audit.${partition}`)).rejects.toThrow(/must be owner/);
    // The attack of issue 17: the writer turns the immutability off, then edits.
    const c = await app.connect();
    try {
      await expect(c.query('ALTER TABLE audit.events DISABLE TRIGGER events_immutable')).rejects.toThrow(/must be owner of table events/);
      await expect(c.query(`ALTER TABLE audit.${partition} DISABLE TRIGGER ALL`)).rejects.toThrow(/must be owner/);
      await expect(c.query(`UPDATE audit.events SET actor = 'mallory@outsider.example' WHERE seq = 10`)).rejects.toThrow(/permission denied/);
      // Nor can it shorten retention so that maintenance drops recent records.
      await expect(c.query('UPDATE audit.settings SET retention_days = 1')).rejects.toThrow(/permission denied/);
      // Partitions only inside the owner's window.
      await expect(c.query(`SELECT audit.ensure_partition(now() + interval '400 days')`)).rejects.toThrow(/outside the allowed window/);
    } finally {
      c.release();
    }
    // Even the owner, who may alter the table, is stopped by the triggers while they are on.
    await expect(owner.query(`UPDATE audit.events SET actor = 'someone-else' WHERE seq = 10`)).rejects.toThrow(/immutable/);
    await expect(owner.query('DELETE FROM audit.events WHERE seq = 10')).rejects.toThrow(/immutable/);
    await expect(owner.query('TRUNCATE audit.events')).rejects.toThrow(/immutable/);
    expect((await verifyChain(app)).ok).toBe(true);
  });

  it('refuses to start as a role that owns the audit tables', async () => {
    const { AUDIT_OWNER_DATABASE_URL: _unused, ...env } = runtimeEnv(db, STREAM);
    const r = await spawnRuntime('audit-as-owner', { ...env, DATABASE_URL: db.ownerUrl }, { waitReady: false });
    running.push(r);
    await waitFor('runtime exits', async () => r.proc.child.exitCode !== null, { timeoutMs: 30_000 });
    expect(r.proc.child.exitCode).toBe(1);
    expect(readFileSync(r.proc.logFile, 'utf8')).toMatch(/connects as audit_owner, which owns audit.events and could disable the immutability triggers/);

    // Membership in the owner role carries the owner's rights: refused too.
    await su.query('GRANT audit_owner TO audit_app');
    try {
      const m = await spawnRuntime('audit-as-member', env, { waitReady: false });
      running.push(m);
      await waitFor('runtime exits', async () => m.proc.child.exitCode !== null, { timeoutMs: 30_000 });
      expect(m.proc.child.exitCode).toBe(1);
      expect(readFileSync(m.proc.logFile, 'utf8')).toMatch(/connects as audit_app, which is a member of audit_owner, which owns audit.events/);
    } finally {
      await su.query('REVOKE audit_owner FROM audit_app');
    }
  });

  it('reports the first tampered row when a superuser edits one directly', async () => {
    const c = await su.connect();
    try {
      // A superuser can bypass triggers; the hash chain is what catches it.
      await c.query('SET session_replication_role = replica');
      await c.query(`UPDATE audit.events SET actor = 'mallory@outsider.example' WHERE seq = 4242`);
    } finally {
      await c.query('RESET session_replication_role');
      c.release();
    }
    const result = await verifyChain(app);
    expect(result.ok).toBe(false);
    expect(result.firstBroken).toMatchObject({ seq: '4242', reason: 'row content does not match row_hash' });

    // The CLI reports the same row and exits non-zero.
    const cli = await promisify(execFile)(process.execPath, ['--import', import.meta.resolve('tsx'), path.resolve('src/runtime-services/audit/verify-cli.ts')], {
      env: { ...process.env, DATABASE_URL: db.appUrl },
    }).then(
      () => ({ code: 0, stdout: '' }),
      (err: { code: number; stdout: string }) => ({ code: err.code, stdout: err.stdout }),
    );
    expect(cli.code).toBe(2);
    expect(JSON.parse(cli.stdout).firstBroken.seq).toBe('4242');
  });
});

describe('audit service: retention and query API', () => {
  const STREAM = 'e2e:audit:retention';
  let db: AuditDatabase;
  let app: pg.Pool;
  let runtime: RuntimeProcess;
  let adminToken: string;

  const record = (n: number, actor: string, occurredAt: Date): AuditRecord => {
    const fields = {
      eventId: `0-${n}`, occurredAt, actor, action: 'legacy.write', target: `legacy/${n}`, outcome: 'success',
      requestId: null, source: 'seed', details: { n },
    };
    return { ...fields, contentHash: contentHash(fields) };
  };

  beforeAll(async () => {
    db = await createAuditDatabase(pgInst, 'audit_retention');
    app = new pg.Pool({ connectionString: db.appUrl });
    const owner = new pg.Pool({ connectionString: db.ownerUrl });
    await migrateAuditSchema(owner, { appRole: db.appRole, retentionDays: 365 });
    // History written through the real store with an older clock: 400 days
    // ago (beyond retention) and 10 days ago (kept). The service role may
    // not create partitions that old, so the owner does, as a restore would.
    const now = Date.now();
    for (const daysAgo of [400, 10]) {
      const day = new Date(Math.floor((now - daysAgo * DAY) / DAY) * DAY);
      const name = `events_p${day.toISOString().slice(0, 10).replaceAll('-', '')}`;
      await owner.query(
        `CREATE TABLE audit.${name} PARTITION OF audit.events FOR VALUES FROM ('${day.toISOString()}') TO ('${new Date(day.getTime() + DAY).toISOString()}')`,
      );
    }
    await owner.end();
    await appendBatch(app, Array.from({ length: 50 }, (_, i) => record(i + 1, `old@${DOMAIN}`, new Date(now - 400 * DAY))), () => new Date(now - 400 * DAY));
    await appendBatch(app, Array.from({ length: 30 }, (_, i) => record(i + 51, `recent@${DOMAIN}`, new Date(now - 10 * DAY))), () => new Date(now - 10 * DAY));
    expect((await listPartitions(app)).length).toBe(2);
    runtime = await start('audit-retention', runtimeEnv(db, STREAM, { AUDIT_RETENTION_DAYS: '365', AUDIT_MAINTENANCE_INTERVAL_MS: '500' }));
    adminToken = remember(await idp.issueAccessToken({ email: `alice@${DOMAIN}`, groups: ['admins'], audience: AUDIENCE, expiresInSec: 300 }));
  });
  afterAll(async () => {
    await app?.end();
  });

  it('drops the partition older than the retention, keeps a checkpoint, and the chain still verifies', async () => {
    const oldName = `events_p${new Date(Date.now() - 400 * DAY).toISOString().slice(0, 10).replaceAll('-', '')}`;
    await waitFor('old partition dropped', async () => !(await listPartitions(app)).some((p) => p.name === oldName), { timeoutMs: 20_000 });
    const cp = await app.query('SELECT partition_name, first_seq, last_seq, row_count FROM audit.checkpoints');
    expect(cp.rows).toEqual([{ partition_name: oldName, first_seq: '1', last_seq: '50', row_count: '50' }]);
    // Partitions ahead of time exist.
    const tomorrow = `events_p${new Date(Date.now() + DAY).toISOString().slice(0, 10).replaceAll('-', '')}`;
    expect((await listPartitions(app)).map((p) => p.name)).toContain(tomorrow);

    const conn = new Redis(redis.url);
    try {
      const publisher = createAuditPublisher(conn, { stream: STREAM, source: 'e2e' });
      for (let i = 0; i < 20; i++) {
        await publisher.publish({ actor: i % 2 ? `bob@${DOMAIN}` : `charlie@${DOMAIN}`, action: i < 10 ? 'chat.message.send' : 'chat.member.add', target: `chat/channel/c${i % 3}`, outcome: 'success' });
      }
    } finally {
      conn.disconnect();
    }
    await waitFor('new events stored', async () => Number((await app.query('SELECT last_seq FROM audit.chain_head')).rows[0].last_seq) === 100, { timeoutMs: 20_000 });

    const res = await fetch(`${runtime.url}/api/audit/verify`, { headers: { authorization: `Bearer ${adminToken}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true, startsAfterSeq: '50', checkedRows: 50, headSeq: '100' });
  });

  it('skips a replayed batch: stream ids are stored once', async () => {
    const head = Number((await app.query('SELECT last_seq FROM audit.chain_head')).rows[0].last_seq);
    const batch = Array.from({ length: 5 }, (_, i) => record(900 + i, `replay@${DOMAIN}`, new Date()));
    expect(await appendBatch(app, batch)).toEqual({ inserted: 5, duplicates: 0 });
    expect(await appendBatch(app, [...batch, ...batch])).toEqual({ inserted: 0, duplicates: 10 });
    expect(Number((await app.query('SELECT last_seq FROM audit.chain_head')).rows[0].last_seq)).toBe(head + 5);
    expect((await verifyChain(app)).ok).toBe(true);
  });

  it('filters by actor, action, target and time range with cursor pagination', async () => {
    const get = (qs: string, token = adminToken) => fetch(`${runtime.url}/api/audit/events?${qs}`, { headers: { authorization: `Bearer ${token}` } });
    const page1 = (await (await get(`actor=bob@${DOMAIN}&limit=3`)).json()) as { events: { seq: string; actor: string }[]; nextCursor: string };
    expect(page1.events).toHaveLength(3);
    expect(page1.events.every((e) => e.actor === `bob@${DOMAIN}`)).toBe(true);
    const all: string[] = page1.events.map((e) => e.seq);
    let cursor: string | null = page1.nextCursor;
    while (cursor) {
      const page = (await (await get(`actor=bob@${DOMAIN}&limit=3&cursor=${cursor}`)).json()) as { events: { seq: string }[]; nextCursor: string | null };
      all.push(...page.events.map((e) => e.seq));
      cursor = page.nextCursor;
    }
    expect(all).toHaveLength(10);
    expect([...all].sort((x, y) => Number(y) - Number(x))).toEqual(all);
    expect(new Set(all).size).toBe(10);

    const byAction = (await (await get('action=chat.member.add&target=chat/channel/c0')).json()) as { events: { action: string; target: string }[] };
    expect(byAction.events.length).toBeGreaterThan(0);
    expect(byAction.events.every((e) => e.action === 'chat.member.add' && e.target === 'chat/channel/c0')).toBe(true);

    const from = new Date(Date.now() - 60_000).toISOString();
    const recentOnly = (await (await get(`from=${encodeURIComponent(from)}&limit=500`)).json()) as { events: unknown[] };
    expect(recentOnly.events).toHaveLength(25); // 20 published + 5 from the replay test
    const older = (await (await get(`to=${encodeURIComponent(from)}&limit=500`)).json()) as { events: unknown[] };
    expect(older.events).toHaveLength(30);
  });

  it('requires a valid token with the admin role', async () => {
    expect((await fetch(`${runtime.url}/api/audit/events`)).status).toBe(401);
    const kid = remember(await idp.issueAccessToken({ email: `charlie@${DOMAIN}`, groups: ['kids'], audience: AUDIENCE, expiresInSec: 300 }));
    expect((await fetch(`${runtime.url}/api/audit/events`, { headers: { authorization: `Bearer ${kid}` } })).status).toBe(403);
    const wrongAud = remember(await idp.issueAccessToken({ email: `alice@${DOMAIN}`, groups: ['admins'], audience: 'chat', expiresInSec: 300 }));
    expect((await fetch(`${runtime.url}/api/audit/events`, { headers: { authorization: `Bearer ${wrongAud}` } })).status).toBe(401);
    const outsider = remember(await idp.issueAccessToken({ email: 'mallory@outsider.example', groups: ['admins'], audience: AUDIENCE, expiresInSec: 300 }));
    expect((await fetch(`${runtime.url}/api/audit/events`, { headers: { authorization: `Bearer ${outsider}` } })).status).toBe(403);
  });
});

describe('audit service: migrations by a separate Job', () => {
  it('migrate-cli as the owner, then the service without owner credentials ingests', async () => {
    const db = await createAuditDatabase(pgInst, 'audit_job');
    const run = (env: Record<string, string>) =>
      promisify(execFile)(process.execPath, ['--import', import.meta.resolve('tsx'), path.resolve('src/runtime-services/audit/migrate-cli.ts')], {
        env: { ...process.env, ...env },
      }).then(
        (r) => ({ code: 0, stdout: r.stdout, stderr: '' }),
        (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
      );
    expect(await run({ DATABASE_URL: db.ownerUrl })).toMatchObject({ code: 1, stderr: expect.stringMatching(/^invalid configuration: AUDIT_APP_ROLE /) });
    const migrated = await run({ DATABASE_URL: db.ownerUrl, AUDIT_APP_ROLE: db.appRole });
    expect(migrated.code).toBe(0);
    expect(JSON.parse(migrated.stdout)).toEqual({ migrated: true, appRole: db.appRole });

    const { AUDIT_OWNER_DATABASE_URL: _unused, ...env } = runtimeEnv(db, 'e2e:audit:job');
    await start('audit-job', env);
    const conn = new Redis(redis.url);
    const app = new pg.Pool({ connectionString: db.appUrl });
    try {
      const id = await createAuditPublisher(conn, { stream: 'e2e:audit:job' }).publish({ actor: `a@${DOMAIN}`, action: 'job.test', target: 't', outcome: 'success' });
      await waitFor('event stored', async () => (await app.query('SELECT 1 FROM audit.events WHERE event_id = $1', [id])).rowCount === 1, { timeoutMs: 20_000 });
      const owner = (await app.query(`SELECT tableowner FROM pg_tables WHERE schemaname = 'audit' AND tablename = 'events'`)).rows[0].tableowner;
      expect(owner).toBe('audit_owner');
    } finally {
      conn.disconnect();
      await app.end();
    }
  });
});

describe('audit service: graceful shutdown', () => {
  const STREAM = 'e2e:audit:drain';
  const TOTAL = 20_000;

  it('on SIGTERM finishes and acknowledges its in-flight batch, exits 0, and another replica completes the stream', async () => {
    const db = await createAuditDatabase(pgInst, 'audit_drain');
    const app = new pg.Pool({ connectionString: db.appUrl });
    const cmd = new Redis(redis.url);
    try {
      const first = await start('audit-drain-1', runtimeEnv(db, STREAM));
      const publisher = createAuditPublisher(cmd, { stream: STREAM, source: 'e2e' });
      const publishing = (async () => {
        for (let i = 0; i < TOTAL; i += 1000) {
          await publisher.publishMany(Array.from({ length: 1000 }, (_, k) => ({ actor: `a@${DOMAIN}`, action: 'drain.test', target: `t/${i + k}`, outcome: 'success' as const })));
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      const stored = async () => Number((await app.query('SELECT last_seq FROM audit.chain_head')).rows[0].last_seq);
      await waitFor('some events stored', async () => (await stored()) >= 3000, { timeoutMs: 60_000, intervalMs: 50 });
      await first.proc.stop();
      expect(first.proc.child.exitCode).toBe(0);
      // Nothing left pending under the stopped consumer's name: its last batch was committed and acked.
      const consumers = (await cmd.call('XINFO', 'CONSUMERS', STREAM, 'audit-writers')) as unknown[][];
      const mine = consumers.find((c) => c[c.indexOf('name') + 1] === 'audit-drain-1')!;
      expect(mine[mine.indexOf('pending') + 1]).toBe(0);

      await publishing;
      await start('audit-drain-2', runtimeEnv(db, STREAM));
      await waitFor('all stored', async () => (await stored()) >= TOTAL, { timeoutMs: 60_000 });
      expect(Number((await app.query('SELECT count(*) AS n FROM audit.events')).rows[0].n)).toBe(TOTAL);
      expect((await verifyChain(app)).ok).toBe(true);
    } finally {
      cmd.disconnect();
      await app.end();
    }
  });
});

describe('audit service logs', () => {
  it('no access token or database password appears in the log of any runtime the suite ran', () => {
    expect(spawnedRuntimes.length).toBeGreaterThanOrEqual(4);
    expect(tokens.length).toBeGreaterThanOrEqual(4);
    const secrets: Record<string, string> = {
      ...Object.fromEntries(tokens.map((t, i) => [`access token #${i + 1}`, t])),
      'owner role password': rolePassword('audit_owner'),
      'app role password': rolePassword('audit_app'),
      'superuser password': pgInst.password,
    };
    expect(secretsInRuntimeLogs(secrets)).toEqual([]);
  });
});
