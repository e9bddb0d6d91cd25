// npm run bench:gaming — events/s from the platform stream to committed XP
// and leaderboard updates, through the gaming service (consumer group, event
// ledger, rules engine, batch transaction, ZADD, XACK), against a bare script
// doing the same Redis and PostgreSQL writes per batch (XREADGROUP, insert
// event ids, upsert player XP / counters / weekly XP, insert awards and the
// same achievements, XADD their audit events to its own stream, ZADD, XACK)
// with the rules hard-coded and its state in memory, in the same run on the
// same servers. Then p50/p99 of
// the leaderboard `rank` and `around me` queries at 10k players, over HTTP
// (token check included) and straight on Redis. Prints JSON.
import { Redis } from 'ioredis';
import pg from 'pg';
import { startDevIdp } from '../hack/dev-idp/provider.js';
import { waitFor } from '../hack/local/process.js';
import { startPostgres } from '../hack/local/postgres.js';
import { startRedis } from '../hack/local/redis.js';
import { createAuditPublisher } from '../src/runtime-services/audit-publisher/publisher.js';
import { createAppDatabase, spawnRuntime, superuserUrl } from '../test/e2e/runtime-harness.js';

const EVENTS = Number(process.env.BENCH_GAMING_EVENTS ?? 30_000);
const USERS = Number(process.env.BENCH_GAMING_USERS ?? 10_000);
const BATCH = 500;
const QUERIES = Number(process.env.BENCH_GAMING_QUERIES ?? 2000);
const DOMAIN = 'family.test';
const ACTIONS = ['chat.message.send', 'media.upload', 'chat.channel.create'];
const XP: Record<string, number> = { 'chat.message.send': 2, 'media.upload': 10, 'chat.channel.create': 5 };
const user = (i: number) => `u${String(i).padStart(5, '0')}@${DOMAIN}`;

const events = (stream: string) => Array.from({ length: EVENTS }, (_, i) => ({
  actor: user((i * 7919) % USERS), action: ACTIONS[i % ACTIONS.length]!, target: stream, outcome: 'success' as const, timestamp: new Date(Date.UTC(2026, 11, 2, 12) + i),
}));

async function drained(cmd: Redis, stream: string, group: string): Promise<boolean> {
  const groups = (await cmd.call('XINFO', 'GROUPS', stream)) as unknown[][];
  const g = groups.find((x) => x[x.indexOf('name') + 1] === group);
  const info = (await cmd.call('XINFO', 'STREAM', stream)) as unknown[];
  return !!g && String(g[g.indexOf('last-delivered-id') + 1]) === String(info[info.indexOf('last-generated-id') + 1]) && Number(g[g.indexOf('pending') + 1]) === 0;
}

/** The bare consumer: same writes per batch as the service, no rules and no reads of state. */
async function bare(redisUrl: string, dbUrl: string, stream: string): Promise<void> {
  const r = new Redis(redisUrl);
  const db = new pg.Client({ connectionString: dbUrl });
  await db.connect();
  await db.query(`CREATE SCHEMA IF NOT EXISTS bare;
    CREATE TABLE IF NOT EXISTS bare.events (id text PRIMARY KEY);
    CREATE TABLE IF NOT EXISTS bare.players (email text PRIMARY KEY, xp bigint NOT NULL DEFAULT 0);
    CREATE TABLE IF NOT EXISTS bare.counters (email text, action text, count bigint NOT NULL, PRIMARY KEY (email, action));
    CREATE TABLE IF NOT EXISTS bare.weekly (email text, week text, xp bigint NOT NULL, PRIMARY KEY (email, week));
    CREATE TABLE IF NOT EXISTS bare.awards (event_id text, email text, reason text, amount int, PRIMARY KEY (event_id, email, reason));
    CREATE TABLE IF NOT EXISTS bare.achievements (email text, id text, event_id text NOT NULL, PRIMARY KEY (email, id))`);
  const audit = createAuditPublisher(r, { stream, source: 'bare' });
  const talked = new Set<string>();
  const uploads = new Map<string, number>();
  let applied = 0;
  for (;;) {
    const res = (await r.xreadgroup('GROUP', 'bare', 'c1', 'COUNT', BATCH, 'BLOCK', 50, 'STREAMS', stream, '>')) as [string, [string, string[]][]][] | null;
    const entries = res?.[0]?.[1] ?? [];
    // Done once every platform event is applied and its own events are read back.
    if (!entries.length) {
      if (applied >= EVENTS) break;
      continue;
    }
    // Its own achievement events come back on the stream, as the service's do.
    const evs = entries.map(([id, f]) => ({ id, ...(JSON.parse(f[1]!) as { actor: string; action: string }) })).filter((e) => XP[e.action] !== undefined);
    if (!evs.length) {
      await r.xack(stream, 'bare', ...entries.map((e) => e[0]));
      continue;
    }
    applied += evs.length;
    const xp = new Map<string, number>();
    const won: { email: string; id: string; eventId: string; xp: number }[] = [];
    for (const e of evs) {
      xp.set(e.actor, (xp.get(e.actor) ?? 0) + XP[e.action]!);
      if (e.action === 'chat.message.send' && !talked.has(e.actor)) {
        talked.add(e.actor);
        won.push({ email: e.actor, id: 'first-message', eventId: e.id, xp: 10 });
      }
      if (e.action === 'media.upload') {
        const n = (uploads.get(e.actor) ?? 0) + 1;
        uploads.set(e.actor, n);
        if (n === 3) won.push({ email: e.actor, id: 'three-uploads', eventId: e.id, xp: 20 });
      }
    }
    for (const w of won) xp.set(w.email, xp.get(w.email)! + w.xp);
    const emails = [...xp.keys()].sort();
    await db.query('BEGIN');
    await db.query('INSERT INTO bare.events SELECT unnest($1::text[]) ON CONFLICT DO NOTHING', [evs.map((e) => e.id)]);
    const totals = await db.query<{ email: string; xp: string }>(
      `INSERT INTO bare.players (email, xp) SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT (email) DO UPDATE SET xp = bare.players.xp + EXCLUDED.xp RETURNING email, xp`,
      [emails, emails.map((e) => xp.get(e))],
    );
    const pairs = [...new Set(evs.map((e) => `${e.actor}\0${e.action}`))].map((k) => k.split('\0'));
    await db.query(
      `INSERT INTO bare.counters SELECT a, b, 1 FROM unnest($1::text[], $2::text[]) AS t(a, b) ON CONFLICT (email, action) DO UPDATE SET count = bare.counters.count + 1`,
      [pairs.map((p) => p[0]), pairs.map((p) => p[1])],
    );
    await db.query(
      `INSERT INTO bare.weekly SELECT a, '2026-W49', b FROM unnest($1::text[], $2::bigint[]) AS t(a, b) ON CONFLICT (email, week) DO UPDATE SET xp = bare.weekly.xp + EXCLUDED.xp`,
      [emails, emails.map((e) => xp.get(e))],
    );
    await db.query(`INSERT INTO bare.awards SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[])`,
      [[...evs.map((e) => e.id), ...won.map((w) => w.eventId)], [...evs.map((e) => e.actor), ...won.map((w) => w.email)],
        [...evs.map((e) => e.action), ...won.map((w) => `achievement:${w.id}`)], [...evs.map((e) => XP[e.action]), ...won.map((w) => w.xp)]]);
    if (won.length) {
      await db.query('INSERT INTO bare.achievements SELECT * FROM unnest($1::text[], $2::text[], $3::text[])', [won.map((w) => w.email), won.map((w) => w.id), won.map((w) => w.eventId)]);
    }
    await db.query('COMMIT');
    const p = r.pipeline();
    for (const t of totals.rows) {
      p.zadd('bare:lb:all', 'LT', -Number(t.xp), t.email);
      p.zadd('bare:lb:2026-W49', 'LT', -Number(t.xp), t.email);
    }
    await p.exec();
    if (won.length) await audit.publishMany(won.map((w) => ({ actor: 'bare', action: 'gaming.achievement.award', target: `gaming/player/${w.email}`, outcome: 'success' as const, details: { achievement: w.id, eventId: w.eventId } })));
    await r.xack(stream, 'bare', ...entries.map((e) => e[0]));
  }
  r.disconnect();
  await db.end();
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return +s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!.toFixed(2);
}

const [pgInst, redis, idp] = await Promise.all([startPostgres(), startRedis(), startDevIdp({ allowedDomain: DOMAIN })]);
const dbUrl = await createAppDatabase(pgInst, 'gaming_app', 'gaming');
const SVC_STREAM = 'bench:gaming:svc';
const BARE_STREAM = 'bench:gaming:bare';
const rt = await spawnRuntime('bench-gaming', {
  RUNTIME_SERVICES: 'gaming',
  LOG_LEVEL: 'warn',
  DATABASE_URL: dbUrl,
  REDIS_URL: redis.url,
  OIDC_ISSUER_URL: idp.issuer,
  OIDC_AUDIENCE: 'gaming',
  AUTH_ALLOWED_EMAIL_DOMAINS: DOMAIN,
  AUDIT_STREAM: SVC_STREAM,
  GAMING_BATCH_SIZE: String(BATCH),
  GAMING_BLOCK_MS: '50',
  GAMING_RULES: JSON.stringify({ xp: XP, levels: { base: 100, exponent: 1.5, max: 100 }, achievements: [
    { id: 'first-message', name: 'First words', kind: 'first', action: 'chat.message.send', xp: 10 },
    { id: 'three-uploads', name: 'Uploader', kind: 'count', action: 'media.upload', threshold: 3, xp: 20 },
  ] }),
});
const cmd = new Redis(redis.url);
try {
  const publisher = createAuditPublisher(cmd, { stream: SVC_STREAM, source: 'bench' });
  const barePublisher = createAuditPublisher(cmd, { stream: BARE_STREAM, source: 'bench' });
  // Both clocks run from the first publish until everything is committed and
  // acknowledged; consumption overlaps publishing for both alike.
  await cmd.xgroup('CREATE', BARE_STREAM, 'bare', '0', 'MKSTREAM');
  const bareStart = performance.now();
  await Promise.all([barePublisher.publishMany(events(BARE_STREAM)), bare(redis.url, superuserUrl(pgInst, 'gaming'), BARE_STREAM)]);
  const bareSec = (performance.now() - bareStart) / 1000;

  const svcStart = performance.now();
  await publisher.publishMany(events(SVC_STREAM));
  await waitFor('service drained', () => drained(cmd, SVC_STREAM, 'gaming'), { timeoutMs: 600_000, intervalMs: 20, proc: rt.proc });
  const svcSec = (performance.now() - svcStart) / 1000;

  // Leaderboard queries at 10k players.
  const size = await cmd.zcard('gaming:lb:all');
  const tokens = await Promise.all(Array.from({ length: 50 }, (_, i) => idp.issueAccessToken({ email: user(i * 197), audience: 'gaming', expiresInSec: 3600 })));
  const timeHttp = async (path: string) => {
    const lat: number[] = [];
    for (let i = 0; i < QUERIES; i++) {
      const t = performance.now();
      const res = await fetch(`${rt.url}/api/gaming${path}`, { headers: { authorization: `Bearer ${tokens[i % tokens.length]}` } });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${path} answered ${res.status}`);
      lat.push(performance.now() - t);
    }
    return { p50: pct(lat, 50), p99: pct(lat, 99) };
  };
  const timeRedis = async (fn: (i: number) => Promise<unknown>) => {
    const lat: number[] = [];
    for (let i = 0; i < QUERIES; i++) {
      const t = performance.now();
      await fn(i);
      lat.push(performance.now() - t);
    }
    return { p50: pct(lat, 50), p99: pct(lat, 99) };
  };
  await timeHttp('/leaderboards/all/rank'); // warm-up
  const rankHttp = await timeHttp('/leaderboards/all/rank');
  const aroundHttp = await timeHttp('/leaderboards/all/around?radius=5');
  const rankRedis = await timeRedis((i) => cmd.zrank('gaming:lb:all', user((i * 31) % USERS)));
  const aroundRedis = await timeRedis(async (i) => {
    const r = (await cmd.zrank('gaming:lb:all', user((i * 31) % USERS))) ?? 0;
    return cmd.zrange('gaming:lb:all', Math.max(0, r - 5), String(r + 5), 'WITHSCORES');
  });

  console.log(JSON.stringify({
    stream: {
      events: EVENTS, players: USERS, batch: BATCH,
      serviceEventsPerSec: Math.round(EVENTS / svcSec), bareEventsPerSec: Math.round(EVENTS / bareSec), ratio: +(bareSec / svcSec).toFixed(2), goal: 0.6,
    },
    leaderboard: { players: size, queries: QUERIES, httpMs: { rank: rankHttp, aroundMe: aroundHttp }, redisMs: { rank: rankRedis, aroundMe: aroundRedis } },
  }, null, 2));
} finally {
  cmd.disconnect();
  await rt.proc.stop();
  await Promise.all([pgInst.stop(), redis.stop(), idp.stop()]);
}
