// Gaming service against real PostgreSQL, Redis and the development IdP:
// XP from the platform event stream (replayed, and with a replica killed
// mid-way), leaderboards rebuilt after a Redis flush, concurrent Elo results
// and the ISO-week boundary in the hub's time zone.
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { waitFor } from '../../hack/local/process.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { startRedis, type LocalRedis } from '../../hack/local/redis.js';
import { createAuditPublisher } from '../../src/runtime-services/audit-publisher/publisher.js';
import { rate, type EloPlayer, type Score } from '../../src/runtime-services/gaming/elo.js';
import { createAppDatabase, spawnRuntime, superuserUrl, type RuntimeProcess } from './runtime-harness.js';

const DOMAIN = 'family.test';
const AUDIENCE = 'gaming';
const STREAM = 'e2e:gaming:events';
const TZ = 'Europe/Berlin';
const RULES = {
  xp: { 'chat.message.send': 1, 'media.upload': 3 },
  levels: { base: 50, exponent: 1.5, max: 100 },
  achievements: [
    { id: 'first-message', name: 'First words', kind: 'first', action: 'chat.message.send', xp: 10 },
    { id: 'ten-uploads', name: 'Ten uploads', kind: 'count', action: 'media.upload', threshold: 10, xp: 5 },
  ],
};
const USERS = 60;
const EVENTS = 10_000;
const email = (u: string) => `${u}@${DOMAIN}`;

let pgInst: LocalPostgres;
let redis: LocalRedis;
let idp: DevIdp;
let rt: RuntimeProcess;
let env: Record<string, string>;
let cmd: Redis;
let db: pg.Client;
const tokens = new Map<string, string>();

async function token(user: string): Promise<string> {
  let t = tokens.get(user);
  if (!t) {
    t = await idp.issueAccessToken({ email: email(user), groups: user === 'alice' ? ['admins'] : [], audience: AUDIENCE, expiresInSec: 900 });
    tokens.set(user, t);
  }
  return t;
}

async function api(user: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${rt.url}/api/gaming${path}`, {
    method,
    headers: { authorization: `Bearer ${await token(user)}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, any>) : undefined };
}

/** Waits until gaming's group has read and acknowledged everything in the stream. */
async function drained(timeoutMs = 120_000) {
  await waitFor('gaming consumer caught up', async () => {
    const groups = (await cmd.call('XINFO', 'GROUPS', STREAM)) as unknown[][];
    const g = groups.find((x) => x[x.indexOf('name') + 1] === 'gaming');
    if (!g) return false;
    const info = (await cmd.call('XINFO', 'STREAM', STREAM)) as unknown[];
    const last = String(info[info.indexOf('last-generated-id') + 1]);
    const delivered = String(g[g.indexOf('last-delivered-id') + 1]);
    const pending = Number(g[g.indexOf('pending') + 1]);
    return delivered === last && pending === 0;
  }, { timeoutMs, intervalMs: 200, proc: rt.proc });
}

async function xpTable(): Promise<Map<string, number>> {
  const { rows } = await db.query<{ email: string; xp: string }>('SELECT email, xp FROM gaming.players ORDER BY email');
  return new Map(rows.map((r) => [r.email, Number(r.xp)]));
}

beforeAll(async () => {
  [pgInst, redis, idp] = await Promise.all([startPostgres(), startRedis(), startDevIdp({ allowedDomain: DOMAIN })]);
  const databaseUrl = await createAppDatabase(pgInst, 'gaming_app', 'gaming');
  env = {
    RUNTIME_SERVICES: 'gaming',
    DATABASE_URL: databaseUrl,
    REDIS_URL: redis.url,
    OIDC_ISSUER_URL: idp.issuer,
    OIDC_AUDIENCE: AUDIENCE,
    AUTH_ALLOWED_EMAIL_DOMAINS: DOMAIN,
    AUDIT_STREAM: STREAM,
    GAMING_TIME_ZONE: TZ,
    GAMING_RULES: JSON.stringify(RULES),
    GAMING_BATCH_SIZE: '250',
    GAMING_CLAIM_MIN_IDLE_MS: '1000',
    GAMING_CLAIM_INTERVAL_MS: '500',
  };
  rt = await spawnRuntime('gaming-1', env);
  cmd = new Redis(redis.url);
  db = new pg.Client({ connectionString: superuserUrl(pgInst, 'gaming') });
  await db.connect();
});

afterAll(async () => {
  cmd?.disconnect();
  await db?.end();
  await rt?.proc.stop();
  await Promise.all([pgInst?.stop(), redis?.stop(), idp?.stop()]);
});

describe('gaming', () => {
  it('reports its dependencies on /ready', async () => {
    const ready = (await (await fetch(`${rt.url}/ready`)).json()) as { checks: Record<string, unknown> };
    expect(Object.keys(ready.checks).sort()).toEqual(['gaming.postgres', 'gaming.redis']);
  });

  it('awards XP from 10k stream events exactly once: a replica SIGKILLed mid-way, then the whole stream replayed', async () => {
    const publisher = createAuditPublisher(cmd, { stream: STREAM, source: 'e2e' });
    const msgs = new Map<string, number>();
    const uploads = new Map<string, number>();
    const events = Array.from({ length: EVENTS }, (_, i) => {
      const user = email(`u${String(i % USERS).padStart(3, '0')}`);
      const upload = i % 7 === 0;
      const m = upload ? uploads : msgs;
      m.set(user, (m.get(user) ?? 0) + 1);
      // Spread over W49 of 2026 (Berlin), so the weekly board is known.
      return { actor: user, action: upload ? 'media.upload' : 'chat.message.send', target: 'x', outcome: 'success' as const, timestamp: new Date(Date.UTC(2026, 11, 1, 8) + (i % 100) * 60_000) };
    });
    // Events gaming must ignore: failures, non-users, unknown actions, its own.
    events.push({ actor: email('u000'), action: 'chat.message.send', target: 'x', outcome: 'failure' as never, timestamp: new Date(Date.UTC(2026, 11, 1, 8)) });
    events.push({ actor: 'system', action: 'media.upload', target: 'x', outcome: 'success', timestamp: new Date(Date.UTC(2026, 11, 1, 8)) });
    events.push({ actor: email('u000'), action: 'gaming.level.up', target: 'x', outcome: 'success', timestamp: new Date(Date.UTC(2026, 11, 1, 8)) });
    const expected = new Map<string, number>();
    for (let u = 0; u < USERS; u++) {
      const e = email(`u${String(u).padStart(3, '0')}`);
      const m = msgs.get(e) ?? 0;
      const up = uploads.get(e) ?? 0;
      expected.set(e, m + 3 * up + (m > 0 ? 10 : 0) + (up >= 10 ? 5 : 0));
    }

    await publisher.publishMany(events);
    // Kill the replica while it is part-way through, like a crashed pod; a new one takes over its pending entries.
    await waitFor('some events processed', async () => Number((await db.query('SELECT count(*) FROM gaming.processed_events')).rows[0].count) >= 1000, { timeoutMs: 60_000, intervalMs: 20 });
    await rt.proc.kill();
    const processedAtKill = Number((await db.query('SELECT count(*) FROM gaming.processed_events')).rows[0].count);
    expect(processedAtKill).toBeLessThan(events.length);
    rt = await spawnRuntime('gaming-2', env);
    await drained();
    const first = await xpTable();
    expect(first).toEqual(new Map([...expected].sort(([a], [b]) => a.localeCompare(b))));
    const achievements = Number((await db.query('SELECT count(*) FROM gaming.achievements')).rows[0].count);
    expect(achievements).toBe(USERS + [...uploads.values()].filter((n) => n >= 10).length);

    // Replay: every entry is delivered again.
    await cmd.xgroup('SETID', STREAM, 'gaming', '0');
    await drained();
    expect(await xpTable()).toEqual(first);
    expect(Number((await db.query('SELECT count(*) FROM gaming.achievements')).rows[0].count)).toBe(achievements);
    const ledger = await db.query<{ n: string; sum: string }>('SELECT count(*) AS n, sum(amount) AS sum FROM gaming.xp_awards');
    expect(Number(ledger.rows[0]!.sum)).toBe([...expected.values()].reduce((a, b) => a + b, 0));
    // Achievement audit events: one per award, not re-emitted by the replay.
    const awardEvents = (await cmd.xrange(STREAM, '-', '+')).filter(([, f]) => f[1]!.includes('"gaming.achievement.award"'));
    expect(awardEvents.length).toBe(achievements);

    const me = await api('u001', 'GET', '/me');
    expect(me.status).toBe(200);
    expect(me.body!.xp).toBe(expected.get(email('u001')));
    expect(me.body!.achievements.map((a: { id: string }) => a.id)).toContain('first-message');
  });

  it('serves leaderboards ordered by XP with ties by e-mail, rank and around-me, and rebuilds them equal after FLUSHALL', async () => {
    const xp = await xpTable();
    const order = [...xp].sort(([a, x], [b, y]) => y - x || a.localeCompare(b));
    const top = await api('u000', 'GET', '/leaderboards/all?limit=100');
    expect(top.body!.entries).toEqual(order.map(([e, x], i) => ({ email: e, xp: x, rank: i + 1 })));
    const week = await api('u000', 'GET', '/leaderboards/2026-W49?limit=100');
    expect(week.body!.entries).toEqual(top.body!.entries);
    const who = order[20]![0].split('@')[0]!;
    const rank = await api(who, 'GET', '/leaderboards/all/rank');
    expect(rank.body!.entry).toEqual({ email: email(who), xp: order[20]![1], rank: 21 });
    const around = await api(who, 'GET', '/leaderboards/all/around?radius=2');
    expect(around.body!.entries.map((e: { rank: number }) => e.rank)).toEqual([19, 20, 21, 22, 23]);

    await cmd.flushall();
    expect(await cmd.exists('gaming:lb:all')).toBe(0);
    const rebuilt = await api('u000', 'GET', '/leaderboards/all?limit=100');
    expect(rebuilt.body!.entries).toEqual(top.body!.entries);
    expect((await api('u000', 'GET', '/leaderboards/2026-W49?limit=100')).body!.entries).toEqual(week.body!.entries);
    expect((await api(who, 'GET', '/leaderboards/all/around?radius=2')).body!.entries).toEqual(around.body!.entries);
  });

  it('applies concurrent Elo results for the same player without losing an update', async () => {
    const opponents = Array.from({ length: 16 }, (_, i) => `p${i}`);
    const results = ['win', 'loss', 'draw'] as const;
    // Half recorded by the admin, half reported by alice and confirmed by the opponent, all at once.
    const reported = await Promise.all(opponents.slice(8).map((o, i) => api('alice', 'POST', '/games', { opponent: email(o), result: results[i % 3] })));
    expect(reported.map((r) => r.status)).toEqual(Array(8).fill(201));
    const outcomes = await Promise.all([
      ...opponents.slice(0, 8).map((o, i) => api('alice', 'POST', '/games', { playerA: email('alice'), playerB: email(o), result: results[i % 3] })),
      ...reported.map((r, i) => {
        const mine = results[i % 3];
        const theirs = mine === 'win' ? 'loss' : mine === 'loss' ? 'win' : 'draw';
        return api(opponents[8 + i]!, 'POST', `/games/${r.body!.id}/confirm`, { result: theirs });
      }),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual([...Array(8).fill(201), ...Array(8).fill(200)]);

    const hist = (await api('alice', 'GET', `/ratings/${email('alice')}/history`)).body!.games as { id: string; before: number; after: number }[];
    expect(hist).toHaveLength(16);
    // A chain: every game starts from the rating the previous one left.
    expect(hist[0]!.before).toBe(1500);
    for (let i = 1; i < hist.length; i++) expect(hist[i]!.before).toBe(hist[i - 1]!.after);
    // Recomputing the games in commit order with the FIDE rules gives the stored ratings.
    let a: EloPlayer = { rating: 1500, games: 0, reached2400: false };
    for (const h of hist) {
      const g = (await api('alice', 'GET', `/games/${h.id}`)).body!;
      const aliceIsA = g.playerA === email('alice');
      const opp: EloPlayer = { rating: 1500, games: 0, reached2400: false };
      const r = aliceIsA ? rate(a, opp, g.scoreA as Score) : rate(opp, a, g.scoreA as Score);
      a = aliceIsA ? r.a : r.b;
      expect(a.rating).toBeCloseTo(h.after, 6);
    }
    const alice = (await api('bob', 'GET', `/players/${email('alice')}`)).body!;
    expect(alice.games).toBe(16);
    expect(alice.rating).toBeCloseTo(a.rating, 6);
  });

  it('marks mismatching reports disputed, refuses self-confirmation and outsiders', async () => {
    const g = await api('bob', 'POST', '/games', { opponent: email('carol'), result: 'win' });
    expect((await api('bob', 'POST', `/games/${g.body!.id}/confirm`, { result: 'win' })).status).toBe(409);
    expect((await api('dave', 'POST', `/games/${g.body!.id}/confirm`, { result: 'loss' })).status).toBe(404);
    const dispute = await api('carol', 'POST', `/games/${g.body!.id}/confirm`, { result: 'win' });
    expect(dispute).toMatchObject({ status: 409, body: { error: 'disputed' } });
    expect((await api('bob', 'GET', `/games/${g.body!.id}`)).body!.state).toBe('disputed');
    expect((await api('bob', 'POST', '/games', { playerA: email('carol'), playerB: email('dave'), result: 'win' })).status).toBe(403);
    expect((await api('bob', 'POST', '/games', { opponent: 'eve@elsewhere.test', result: 'win' })).status).toBe(400);
  });

  it('counts weekly challenges in the hub time zone: Sunday 23:59:59 and Monday 00:00:00 are different weeks', async () => {
    const w49 = await api('alice', 'POST', '/challenges', { week: '2026-W49', title: 'Say something', action: 'chat.message.send', target: 1, xp: 100 });
    const w50 = await api('alice', 'POST', '/challenges', { week: '2026-W50', title: 'Say more', action: 'chat.message.send', target: 2, xp: 200 });
    expect([w49.status, w50.status]).toEqual([201, 201]);
    expect((await api('bob', 'POST', '/challenges', { week: '2026-W50', title: 'x', action: 'a', target: 1, xp: 1 })).status).toBe(403);
    const publisher = createAuditPublisher(cmd, { stream: STREAM, source: 'e2e' });
    const who = email('weekender');
    // 2026-12-06 is a Sunday; Berlin is UTC+1 in December.
    await publisher.publish({ actor: who, action: 'chat.message.send', target: 'x', outcome: 'success', timestamp: new Date('2026-12-06T22:59:59Z') });
    await publisher.publish({ actor: who, action: 'chat.message.send', target: 'x', outcome: 'success', timestamp: new Date('2026-12-06T23:00:00Z') });
    await drained();
    const c49 = (await api('weekender', 'GET', '/challenges?week=2026-W49')).body!.challenges;
    const c50 = (await api('weekender', 'GET', '/challenges?week=2026-W50')).body!.challenges;
    expect(c49.find((c: { id: string }) => c.id === w49.body!.id)).toMatchObject({ progress: 1, completed: true });
    expect(c50.find((c: { id: string }) => c.id === w50.body!.id)).toMatchObject({ progress: 1, completed: false });
    // XP: 1 + 10 (first message) + 100 (W49 challenge) in W49, 1 in W50.
    expect((await api('weekender', 'GET', '/leaderboards/2026-W49/rank')).body!.entry).toMatchObject({ xp: 111 });
    expect((await api('weekender', 'GET', '/leaderboards/2026-W50/rank')).body!.entry).toMatchObject({ xp: 1 });
    await publisher.publish({ actor: who, action: 'chat.message.send', target: 'x', outcome: 'success', timestamp: new Date('2026-12-13T22:59:59Z') });
    await publisher.publish({ actor: who, action: 'chat.message.send', target: 'x', outcome: 'success', timestamp: new Date('2026-12-13T22:59:59Z') });
    await drained();
    expect((await api('weekender', 'GET', '/challenges?week=2026-W50')).body!.challenges[0]).toMatchObject({ progress: 2, completed: true });
    const entries = (await cmd.xrange(STREAM, '-', '+')).map(([, f]) => JSON.parse(f[1]!) as { action: string; target: string; actor: string });
    expect(entries.filter((e) => e.action === 'gaming.challenge.complete' && e.target === `gaming/player/${who}`)).toHaveLength(2);
    expect(entries.filter((e) => e.action === 'gaming.challenge.create')).toHaveLength(2);
    expect(entries.filter((e) => e.action === 'gaming.game.confirm')).toHaveLength(8);
    expect(entries.filter((e) => e.action === 'gaming.game.dispute')).toHaveLength(1);
  });

  it('rejects anonymous and foreign-domain callers', async () => {
    expect((await fetch(`${rt.url}/api/gaming/me`)).status).toBe(401);
    const foreign = await idp.issueAccessToken({ email: 'mallory@evil.test', audience: AUDIENCE, expiresInSec: 60 });
    expect((await fetch(`${rt.url}/api/gaming/me`, { headers: { authorization: `Bearer ${foreign}` } })).status).toBe(403);
  });
});
