// npm run bench:gaming — events/s from the platform stream to committed XP
// and leaderboard updates, through the gaming service (consumer group, event
// ledger, rules engine, batch transaction, ZADD, XACK), against a bare
// consumer doing the same Redis and PostgreSQL writes per batch (XREADGROUP,
// insert event ids, upsert player XP / counters / weekly XP, insert awards
// and the same achievements, XADD their audit events to its own stream, ZADD,
// XACK) with the rules hard-coded and its state in memory, on the same
// servers. Each consumer is a process of its own, the publisher and the
// clock are in this one; a side's clock runs from its first publish until
// its group has read and acknowledged everything on its stream (its own
// achievement events included), polled the same way for both, so
// consumption overlaps publishing alike. Every run has players of its own
// (an achievement is won once), and its XP is checked against what its
// events add up to, in PostgreSQL and on the leaderboard.
// Then p50/p99 of the leaderboard `rank` and `around me` queries, over HTTP
// (token check included) and straight on Redis.
// On the shared harness (bench/harness.ts): bare → service → … → bare in
// BENCH_ROUNDS rounds (default 2), bench/results/gaming.json. There is no
// reference side between the two (the bare consumer is the service's work
// without the service).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { startDevIdp } from '../hack/dev-idp/provider.js';
import { startProcess, waitFor, workDir, type Managed } from '../hack/local/process.js';
import { startPostgres } from '../hack/local/postgres.js';
import { startRedis } from '../hack/local/redis.js';
import { createAuditPublisher } from '../src/runtime-services/audit-publisher/publisher.js';
import { createAppDatabase, spawnRuntime, superuserUrl, type RuntimeProcess } from '../test/e2e/runtime-harness.js';
import { Bench, percentile, roundsFromEnv } from './harness.js';

const EVENTS = Number(process.env.BENCH_GAMING_EVENTS ?? 30_000);
const USERS = Number(process.env.BENCH_GAMING_USERS ?? 10_000);
const BATCH = 500;
const BLOCK_MS = 50;
const QUERIES = Number(process.env.BENCH_GAMING_QUERIES ?? 2000);
const ROUNDS = roundsFromEnv(2);
const DOMAIN = 'family.test';
const ACTIONS = ['chat.message.send', 'media.upload', 'chat.channel.create'];
const XP: Record<string, number> = { 'chat.message.send': 2, 'media.upload': 10, 'chat.channel.create': 5 };
const ACHIEVEMENTS = [
  { id: 'first-message', name: 'First words', kind: 'first', action: 'chat.message.send', xp: 10 },
  { id: 'three-uploads', name: 'Uploader', kind: 'count', action: 'media.upload', threshold: 3, xp: 20 },
] as const;
const SVC_STREAM = 'bench:gaming:svc';
const BARE_STREAM = 'bench:gaming:bare';

/** Players of one run: `r<run>u<i>`, so every run starts with players that have won nothing. */
const user = (run: string, i: number) => `${run}u${String(i).padStart(5, '0')}@${DOMAIN}`;

const events = (run: string, stream: string) => Array.from({ length: EVENTS }, (_, i) => ({
  actor: user(run, (i * 7919) % USERS), action: ACTIONS[i % ACTIONS.length]!, target: stream, outcome: 'success' as const, timestamp: new Date(Date.UTC(2026, 11, 2, 12) + i),
}));

/** What one run's events must add up to under the rules both sides apply. */
function expected(evs: { actor: string; action: string }[]) {
  const xp = new Map<string, number>();
  const counts = new Map<string, number>();
  let achievements = 0;
  for (const e of evs) {
    xp.set(e.actor, (xp.get(e.actor) ?? 0) + XP[e.action]!);
    const k = `${e.actor}\0${e.action}`;
    const n = (counts.get(k) ?? 0) + 1;
    counts.set(k, n);
    for (const a of ACHIEVEMENTS) {
      if (a.action !== e.action) continue;
      if ((a.kind === 'first' && n === 1) || (a.kind === 'count' && n === a.threshold)) {
        achievements++;
        xp.set(e.actor, xp.get(e.actor)! + a.xp);
      }
    }
  }
  return { players: xp.size, xp: [...xp.values()].reduce((a, b) => a + b, 0), achievements, emails: [...xp.keys()] };
}

async function drained(cmd: Redis, stream: string, group: string): Promise<boolean> {
  const groups = (await cmd.call('XINFO', 'GROUPS', stream)) as unknown[][];
  const g = groups.find((x) => x[x.indexOf('name') + 1] === group);
  const info = (await cmd.call('XINFO', 'STREAM', stream)) as unknown[];
  return !!g && String(g[g.indexOf('last-delivered-id') + 1]) === String(info[info.indexOf('last-generated-id') + 1]) && Number(g[g.indexOf('pending') + 1]) === 0;
}

/** The bare consumer (its own process, like the service): same writes per batch, rules hard-coded, state in memory. */
async function bare(redisUrl: string, dbUrl: string, stream: string): Promise<never> {
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
  console.log('ready');
  for (;;) {
    const res = (await r.xreadgroup('GROUP', 'bare', 'c1', 'COUNT', BATCH, 'BLOCK', BLOCK_MS, 'STREAMS', stream, '>')) as [string, [string, string[]][]][] | null;
    const entries = res?.[0]?.[1] ?? [];
    if (!entries.length) continue;
    // Its own achievement events come back on the stream, as the service's do.
    const evs = entries.map(([id, f]) => ({ id, ...(JSON.parse(f[1]!) as { actor: string; action: string }) })).filter((e) => XP[e.action] !== undefined);
    if (!evs.length) {
      await r.xack(stream, 'bare', ...entries.map((e) => e[0]));
      continue;
    }
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
}

if (process.argv[2] === '--bare') await bare(process.env.BENCH_REDIS_URL!, process.env.BENCH_DATABASE_URL!, BARE_STREAM);
else await main();

async function main() {
  const bench = new Bench('gaming', 'events/s', {
    events: EVENTS, players: USERS, batch: BATCH, blockMs: BLOCK_MS, rounds: ROUNDS,
    where: 'publisher, the service, the bare consumer, PostgreSQL and Redis on the same cores; each consumer a process of its own',
  });
  const [pgInst, redis, idp] = await Promise.all([startPostgres(), startRedis(), startDevIdp({ allowedDomain: DOMAIN })]);
  const cmd = new Redis(redis.url);
  const db = new pg.Client({ connectionString: superuserUrl(pgInst, 'gaming') });
  let rt: RuntimeProcess | undefined;
  let bareProc: Managed | undefined;
  try {
    const dbUrl = await createAppDatabase(pgInst, 'gaming_app', 'gaming');
    await db.connect();
    rt = await spawnRuntime('bench-gaming', {
      RUNTIME_SERVICES: 'gaming',
      LOG_LEVEL: 'warn',
      DATABASE_URL: dbUrl,
      REDIS_URL: redis.url,
      OIDC_ISSUER_URL: idp.issuer,
      OIDC_AUDIENCE: 'gaming',
      AUTH_ALLOWED_EMAIL_DOMAINS: DOMAIN,
      AUDIT_STREAM: SVC_STREAM,
      GAMING_BATCH_SIZE: String(BATCH),
      GAMING_BLOCK_MS: String(BLOCK_MS),
      GAMING_RULES: JSON.stringify({ xp: XP, levels: { base: 100, exponent: 1.5, max: 100 }, achievements: ACHIEVEMENTS }),
    });
    await cmd.xgroup('CREATE', BARE_STREAM, 'bare', '0', 'MKSTREAM');
    const name = 'bench-gaming-bare';
    bareProc = startProcess(name, process.execPath, ['--import', import.meta.resolve('tsx'), fileURLToPath(import.meta.url), '--bare'], {
      cwd: workDir(name), env: { BENCH_REDIS_URL: redis.url, BENCH_DATABASE_URL: superuserUrl(pgInst, 'gaming') },
    });
    const bp = bareProc;
    await waitFor('bare consumer ready', async () => readFileSync(bp.logFile, 'utf8').includes('ready'), { proc: bp, timeoutMs: 60_000, intervalMs: 100 });

    const sides = {
      service: { stream: SVC_STREAM, group: 'gaming', proc: rt.proc, players: 'gaming.players', achievements: 'gaming.achievements', achievementId: 'achievement_id', board: 'gaming:lb:all' },
      bare: { stream: BARE_STREAM, group: 'bare', proc: bp, players: 'bare.players', achievements: 'bare.achievements', achievementId: 'id', board: 'bare:lb:all' },
    };
    const publisher = createAuditPublisher(cmd, { source: 'bench', stream: SVC_STREAM });
    const barePublisher = createAuditPublisher(cmd, { source: 'bench', stream: BARE_STREAM });
    const lost: string[] = [];
    const warm = async (side: keyof typeof sides) => {
      const s = sides[side];
      await (side === 'service' ? publisher : barePublisher).publishMany(events(`w${side}`, s.stream).slice(0, 3 * BATCH));
      await waitFor(`${side} warm-up drained`, () => drained(cmd, s.stream, s.group), { timeoutMs: 120_000, intervalMs: 20, proc: s.proc });
    };
    await warm('bare');
    await warm('service');

    const run = (side: keyof typeof sides) => async (round: number) => {
      const s = sides[side];
      const tag = `${side[0]}${round}`;
      const evs = events(tag, s.stream);
      const want = expected(evs);
      const t = performance.now();
      await (side === 'service' ? publisher : barePublisher).publishMany(evs);
      await waitFor(`${side} drained`, () => drained(cmd, s.stream, s.group), { timeoutMs: 600_000, intervalMs: 20, proc: s.proc });
      const seconds = (performance.now() - t) / 1000;
      // No lost events: this run's players, their XP and achievements in PostgreSQL and on the leaderboard.
      const like = `${tag}u%`;
      const got = (await db.query<{ n: number; xp: string }>(`SELECT count(*)::int AS n, coalesce(sum(xp), 0)::text AS xp FROM ${s.players} WHERE email LIKE $1`, [like])).rows[0]!;
      const ach = (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${s.achievements} WHERE email LIKE $1`, [like])).rows[0]!.n;
      const scores = (await cmd.zmscore(s.board, ...want.emails)) as (string | null)[];
      const boardXp = scores.reduce((a, x) => a + (x === null ? NaN : -Number(x)), 0);
      const found = { players: got.n, xp: Number(got.xp), achievements: ach, leaderboardXp: boardXp };
      if (found.players !== want.players || found.xp !== want.xp || found.achievements !== want.achievements || found.leaderboardXp !== want.xp) {
        lost.push(`${side} round ${round}: expected ${want.players} players / ${want.xp} XP / ${want.achievements} achievements, found ${JSON.stringify(found)}`);
      }
      return { value: EVENTS / seconds, extra: { measuredSeconds: Number(seconds.toFixed(3)), ...found } };
    };
    const g = `${EVENTS} events over ${USERS} players, batches of ${BATCH}`;
    await bench.rounds(ROUNDS, g, [['bare', run('bare')], ['service', run('service')]]);
    bench.ratio('stream', 'service', 'bare', g, 'events/s from publish to committed XP, achievements and leaderboards: service / bare consumer making the same writes (goal ≥ 0.6)');
    const w = expected(events('x', ''));
    bench.check('no lost events', lost.length === 0,
      lost.length ? lost.slice(0, 3).join('; ') : `every run: ${w.players} players, ${w.xp} XP and ${w.achievements} achievements in PostgreSQL, the same XP on the leaderboard, nothing pending`);

    // Leaderboard queries (over every player the service's runs created).
    const size = await cmd.zcard('gaming:lb:all');
    const tokens = await Promise.all(Array.from({ length: 50 }, (_, i) => idp.issueAccessToken({ email: user('s0', i * 197), audience: 'gaming', expiresInSec: 3600 })));
    const ms = (lat: number[]) => ({ p50: Number(percentile(lat, 50).toFixed(2)), p99: Number(percentile(lat, 99).toFixed(2)) });
    const timeHttp = async (p: string) => {
      const lat: number[] = [];
      for (let i = 0; i < QUERIES; i++) {
        const t = performance.now();
        const res = await fetch(`${rt!.url}/api/gaming${p}`, { headers: { authorization: `Bearer ${tokens[i % tokens.length]}` } });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`${p} answered ${res.status}`);
        lat.push(performance.now() - t);
      }
      return ms(lat);
    };
    const timeRedis = async (fn: (i: number) => Promise<unknown>) => {
      const lat: number[] = [];
      for (let i = 0; i < QUERIES; i++) {
        const t = performance.now();
        await fn(i);
        lat.push(performance.now() - t);
      }
      return ms(lat);
    };
    await timeHttp('/leaderboards/all/rank'); // warm-up
    const rankHttp = await timeHttp('/leaderboards/all/rank');
    const aroundHttp = await timeHttp('/leaderboards/all/around?radius=5');
    const rankRedis = await timeRedis((i) => cmd.zrank('gaming:lb:all', user('s0', (i * 31) % USERS)));
    const aroundRedis = await timeRedis(async (i) => {
      const r = (await cmd.zrank('gaming:lb:all', user('s0', (i * 31) % USERS))) ?? 0;
      return cmd.zrange('gaming:lb:all', Math.max(0, r - 5), String(r + 5), 'WITHSCORES');
    });
    bench.figures.leaderboard = { players: size, queries: QUERIES, httpMs: { rank: rankHttp, aroundMe: aroundHttp }, redisMs: { rank: rankRedis, aroundMe: aroundRedis } };
    bench.notes.push(`leaderboard at ${size} players, ${QUERIES} queries each, p50 / p99 ms: over HTTP with the token check rank ${rankHttp.p50} / ${rankHttp.p99}, around me (±5) ${aroundHttp.p50} / ${aroundHttp.p99}; straight on Redis rank ${rankRedis.p50} / ${rankRedis.p99}, around me ${aroundRedis.p50} / ${aroundRedis.p99}`);
  } finally {
    bench.finish();
    cmd.disconnect();
    await db.end().catch(() => {});
    await bareProc?.stop();
    await rt?.proc.stop();
    await Promise.all([pgInst.stop(), redis.stop(), idp.stop()]);
  }
}
