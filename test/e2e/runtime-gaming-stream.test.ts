// Gaming shares the platform event stream with the audit service, which
// trims it. While every gaming replica is down, audit keeps persisting and
// trimming; when gaming comes back it must still find every event it has not
// read, and award the XP they earn.
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { waitFor } from '../../hack/local/process.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { startRedis, type LocalRedis } from '../../hack/local/redis.js';
import { createAuditPublisher } from '../../src/runtime-services/audit-publisher/publisher.js';
import { createAppDatabase, createAuditDatabase, spawnRuntime, superuserUrl, type RuntimeProcess } from './runtime-harness.js';

const DOMAIN = 'family.test';
const STREAM = 'e2e:gaming:shared';
const EVENTS = 2000;
const USERS = 20;

let pgInst: LocalPostgres;
let redis: LocalRedis;
let idp: DevIdp;
const running: RuntimeProcess[] = [];

beforeAll(async () => {
  [pgInst, redis, idp] = await Promise.all([startPostgres(), startRedis(), startDevIdp({ allowedDomain: DOMAIN })]);
});

afterAll(async () => {
  await Promise.all(running.map((r) => r.proc.stop()));
  await Promise.all([pgInst?.stop(), redis?.stop(), idp?.stop()]);
});

describe('gaming beside the audit service', () => {
  it('loses no event to audit trimming while gaming is down', async () => {
    const base = { REDIS_URL: redis.url, OIDC_ISSUER_URL: idp.issuer, OIDC_AUDIENCE: 'x', AUTH_ALLOWED_EMAIL_DOMAINS: DOMAIN, AUDIT_STREAM: STREAM };
    const auditDb = await createAuditDatabase(pgInst, 'audit');
    const gamingUrl = await createAppDatabase(pgInst, 'gaming_app', 'gaming');
    const cmd = new Redis(redis.url);
    const auditRows = new pg.Client({ connectionString: superuserUrl(pgInst, 'audit') });
    const gamingRows = new pg.Client({ connectionString: superuserUrl(pgInst, 'gaming') });
    try {
      // Gaming ran once (its group exists at the stream's start), then all its replicas went away.
      const first = await spawnRuntime('gaming-first', { ...base, RUNTIME_SERVICES: 'gaming', DATABASE_URL: gamingUrl });
      await first.proc.stop();
      const audit = await spawnRuntime('audit-trimmer', {
        ...base, RUNTIME_SERVICES: 'audit', DATABASE_URL: auditDb.appUrl, AUDIT_OWNER_DATABASE_URL: auditDb.ownerUrl, AUDIT_TRIM_INTERVAL_MS: '300',
      });
      running.push(audit);
      await auditRows.connect();
      await gamingRows.connect();

      const publisher = createAuditPublisher(cmd, { stream: STREAM, source: 'e2e' });
      const email = (i: number) => `u${i % USERS}@${DOMAIN}`;
      await publisher.publishMany(Array.from({ length: EVENTS }, (_, i) => ({ actor: email(i), action: 'chat.message.send', target: 'x', outcome: 'success' as const })));
      await waitFor('audit persisted everything', async () => Number((await auditRows.query('SELECT count(*) FROM audit.events')).rows[0].count) >= EVENTS, { timeoutMs: 60_000, proc: audit.proc });
      // Several trim rounds, counted at Redis: each round starts with one
      // XINFO GROUPS, and only the audit service sends it.
      const trimRounds = async () => Number(/^cmdstat_xinfo\|groups:calls=(\d+)/m.exec(await cmd.info('commandstats'))?.[1] ?? 0);
      const roundsBefore = await trimRounds();
      await waitFor('three trim rounds after everything was persisted', async () => (await trimRounds()) >= roundsBefore + 3, { timeoutMs: 30_000, proc: audit.proc });
      expect(await cmd.xlen(STREAM)).toBe(EVENTS);

      const gaming = await spawnRuntime('gaming-back', { ...base, RUNTIME_SERVICES: 'gaming', DATABASE_URL: gamingUrl });
      running.push(gaming);
      await waitFor('gaming caught up', async () => Number((await gamingRows.query('SELECT count(*) FROM gaming.processed_events')).rows[0].count) >= EVENTS, { timeoutMs: 60_000, proc: gaming.proc });
      const xp = await gamingRows.query<{ email: string; xp: string }>('SELECT email, xp FROM gaming.players ORDER BY email');
      // Default rules, 100 messages each: 2 XP per message, 10 for the first, 50 for the hundredth.
      expect(xp.rows).toHaveLength(USERS);
      for (const r of xp.rows) expect(Number(r.xp)).toBe(100 * 2 + 10 + 50);
      // Once both groups have read everything, trimming goes on.
      await waitFor('stream trimmed', async () => (await cmd.xlen(STREAM)) < EVENTS, { timeoutMs: 30_000 });
    } finally {
      cmd.disconnect();
      await auditRows.end().catch(() => {});
      await gamingRows.end().catch(() => {});
    }
  });
});
