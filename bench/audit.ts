// npm run bench:audit — sustained audit throughput from XADD to committed,
// chained row, against the ceiling: the fastest way to put the same rows
// into the same table — COPY ... FROM STDIN of the ledger ids and the rows
// (same partitioned table, same indexes, the same idempotency ledger), in
// batches of the same size, one transaction per batch, on as many
// connections as the service writes with at once (its consumer keeps one
// batch in flight: one connection), with the chain hashes precomputed and
// no stream, no chain lock. Both measured in this run on this machine, in
// the order ceiling → service → … → ceiling (BENCH_ROUNDS), each run on a
// fresh database; the ratio is reported per round against the ceilings
// around it, with its spread.
//
// System under test: the real runtime (RUNTIME_SERVICES=audit) in a child
// process consuming the stream; the bench process publishes with pipelined
// XADDs (BENCH_AUDIT_BATCH per call, default 5000; the runtime gets the same
// AUDIT_BATCH_SIZE).
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { startPostgres } from '../hack/local/postgres.js';
import { freePort, startProcess, waitFor, workDir } from '../hack/local/process.js';
import { startRedis } from '../hack/local/redis.js';
import { createAuditPublisher } from '../src/runtime-services/audit-publisher/publisher.js';
import { cpuBetween, formatCpu, sampleCpu } from './cpu.js';
import { Bench, roundsFromEnv } from './harness.js';
import { copyFrom } from '../src/runtime-services/audit/copy-in.js';
import { copyTail, COPY_TAIL_COLUMNS } from '../src/runtime-services/audit/event-codec.js';
import { GENESIS_HASH, rowHash } from '../src/runtime-services/audit/chain.js';
import { maintainPartitions } from '../src/runtime-services/audit/partitions.js';
import { migrateAuditSchema } from '../src/runtime-services/audit/schema.js';

const N = Number(process.env.BENCH_AUDIT_EVENTS ?? 100_000);
const ROUNDS = roundsFromEnv(2);
// The service's consumer commits one batch at a time (stream-consumer.ts).
const CEILING_CONNECTIONS = 1;
const BATCH = Number(process.env.BENCH_AUDIT_BATCH ?? 5000);
const STREAM = 'bench:audit';

const event = (i: number) => ({
  actor: `user${i % 50}@family.test`,
  action: i % 3 ? 'chat.message.send' : 'chat.member.add',
  target: `chat/channel/c${i % 20}`,
  outcome: 'success' as const,
  requestId: `req-${i}`,
  source: 'bench',
  details: { offset: i, bytes: 120 },
});

const APP_ROLE = 'bench_audit_app';

async function createDb(admin: pg.Client, name: string, port: number, password: string): Promise<pg.Pool> {
  await admin.query(`CREATE DATABASE ${name}`);
  const pool = new pg.Pool({ connectionString: `postgres://postgres:${password}@127.0.0.1:${port}/${name}`, max: 4 });
  // The runtime writes as a role without ownership (it refuses to run as the owner).
  await admin.query(`DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${APP_ROLE}') THEN CREATE ROLE ${APP_ROLE} LOGIN PASSWORD '${APP_ROLE}'; END IF; END $$`);
  await migrateAuditSchema(pool, { appRole: APP_ROLE, aheadDays: 2 });
  await maintainPartitions(pool);
  return pool;
}

// Where each phase spent the two cores, so a gap to the ceiling can be
// attributed (runtime process vs PostgreSQL vs Redis vs the publisher).
let cpuReport: Record<string, string> = {};

async function ceiling(pool: pg.Pool): Promise<number> {
  const recordedAt = new Date();
  const recordedIso = recordedAt.toISOString();
  const ms = Date.now();
  let prev = GENESIS_HASH;
  // Prepared before the clock starts: the ledger's and the rows' COPY text
  // per batch, exactly what the service streams (stream ids <ms>-<seq>).
  const batches: { ledger: Buffer; rows: Buffer }[] = [];
  for (let i = 0; i < N; i += BATCH) {
    let ledger = '';
    let rows = '';
    for (let k = i; k < Math.min(N, i + BATCH); k++) {
      const e = event(k);
      const r = { seq: k + 1, eventId: `${ms}-${k}`, recordedAt, occurredAt: recordedAt, ...e, requestId: e.requestId, source: e.source };
      const hash = rowHash(prev, r);
      ledger += `${ms}\t${k}\n`;
      rows += `${r.seq}\t${recordedIso}\t${prev}\t${hash}\t${copyTail(r)}`;
      prev = hash;
    }
    batches.push({ ledger: Buffer.from(ledger), rows: Buffer.from(rows) });
  }
  const cpu = sampleCpu();
  const started = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: CEILING_CONNECTIONS }, async () => {
    const client = await pool.connect();
    try {
      while (next < batches.length) {
        const b = batches[next++]!;
        await client.query('BEGIN');
        await copyFrom(client, 'COPY audit.event_ids (ms, sq) FROM STDIN', b.ledger);
        await copyFrom(client, `COPY audit.events (seq, recorded_at, prev_hash, row_hash, ${COPY_TAIL_COLUMNS}) FROM STDIN`, b.rows);
        await client.query('COMMIT');
      }
    } finally {
      client.release();
    }
  }));
  const rate = N / ((performance.now() - started) / 1000);
  const stored = Number((await pool.query('SELECT count(*) AS n FROM audit.events')).rows[0].n);
  if (stored !== N) throw new Error(`ceiling stored ${stored} of ${N} rows`);
  cpuReport.ceiling = formatCpu(cpuBetween(cpu, sampleCpu()), N / 1000, '1000 events');
  return rate;
}

function spawnRuntime(pgPort: number, database: string, redisUrl: string, port: number) {
  return startProcess('bench-audit-runtime', process.execPath, ['--import', import.meta.resolve('tsx'), path.resolve('src/runtime-services/main.ts')], {
    cwd: workDir('bench-audit'),
    env: {
      RUNTIME_SERVICES: 'audit', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn', REPLICA_ID: 'bench',
      DATABASE_URL: `postgres://${APP_ROLE}:${APP_ROLE}@127.0.0.1:${pgPort}/${database}`, REDIS_URL: redisUrl,
      OIDC_ISSUER_URL: 'http://127.0.0.1:9/unused', OIDC_AUDIENCE: 'audit', AUTH_ALLOWED_EMAIL_DOMAINS: 'family.test',
      AUDIT_STREAM: STREAM, AUDIT_BATCH_SIZE: String(BATCH),
    },
  });
}

interface SystemResult {
  rate: number;
  publishRate: number;
  drainRate: number;
  stored: number;
  distinct: number;
}

async function system(pgPort: number, database: string, redisUrl: string, pool: pg.Pool): Promise<SystemResult> {
  const port = await freePort();
  let proc = spawnRuntime(pgPort, database, redisUrl, port);
  const redis = new Redis(redisUrl);
  const publisher = createAuditPublisher(redis, { stream: STREAM });
  const publishAll = async (from: number) => {
    for (let i = 0; i < N; i += BATCH) await publisher.publishMany(Array.from({ length: BATCH }, (_, k) => event(from + i + k)));
  };
  const stored = async () => Number((await pool.query('SELECT last_seq FROM audit.chain_head')).rows[0].last_seq);
  const ready = () => waitFor('audit runtime ready', async () => (await fetch(`http://127.0.0.1:${port}/ready`)).ok, { proc, timeoutMs: 60_000 });
  try {
    // Phase 1 (the goal's figure): producing and consuming at the same time.
    await ready();
    const labels = () => ({ [proc.child.pid!]: 'runtime' });
    let cpu = sampleCpu(labels());
    const started = performance.now();
    await publishAll(0);
    const publishSeconds = (performance.now() - started) / 1000;
    await waitFor('all events committed', async () => (await stored()) >= N, { proc, timeoutMs: 600_000, intervalMs: 20 });
    const seconds = (performance.now() - started) / 1000;
    cpuReport.xaddToCommit = formatCpu(cpuBetween(cpu, sampleCpu(labels())), N / 1000, '1000 events');

    // Phase 2 (diagnostic): drain a backlog with no producer competing for
    // the CPU. Timed between the first and last commit, from recorded_at.
    await proc.stop();
    await publishAll(N);
    proc = spawnRuntime(pgPort, database, redisUrl, port);
    cpu = sampleCpu(labels());
    await waitFor('backlog committed', async () => (await stored()) >= 2 * N, { proc, timeoutMs: 600_000, intervalMs: 50 });
    cpuReport.backlogDrain = formatCpu(cpuBetween(cpu, sampleCpu(labels())), N / 1000, '1000 events');
    const span = await pool.query<{ first: Date; last: Date }>('SELECT min(recorded_at) AS first, max(recorded_at) AS last FROM audit.events WHERE seq > $1', [N]);
    const drainSeconds = (span.rows[0]!.last.getTime() - span.rows[0]!.first.getTime()) / 1000;

    const { rows } = await pool.query('SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM audit.events');
    return {
      rate: N / seconds, publishRate: N / publishSeconds, drainRate: (N - BATCH) / drainSeconds,
      stored: Number(rows[0].n), distinct: Number(rows[0].d),
    };
  } finally {
    redis.disconnect();
    await proc.stop();
  }
}

const bench = new Bench('audit', 'events/s', { events: N, batch: BATCH, rounds: ROUNDS, ceilingConnections: CEILING_CONNECTIONS });
const pgInst = await startPostgres();
const redis = await startRedis();
try {
  const admin = new pg.Client({ connectionString: pgInst.url });
  await admin.connect();
  let lost = 0;
  let duplicates = 0;
  let short = 0;
  await bench.rounds(ROUNDS, 'batch ' + BATCH, [
    ['ceiling', async (r) => {
      const ceilingPool = await createDb(admin, `bench_ceiling_${r}`, pgInst.port, pgInst.password);
      cpuReport = {};
      try {
        return { value: await ceiling(ceilingPool), extra: { cpu: cpuReport.ceiling } };
      } finally {
        // Closed before the next run: CPU is summed per process name, and
        // backends exiting mid-run would subtract their time from "postgres".
        await ceilingPool.end();
      }
    }],
    ['service', async (r) => {
      const systemPool = await createDb(admin, `bench_system_${r}`, pgInst.port, pgInst.password);
      cpuReport = {};
      try {
        // A fresh stream per round: the consumer group starts from its beginning.
        const rc = new Redis(redis.url);
        await rc.del(STREAM);
        rc.disconnect();
        const sys = await system(pgInst.port, `bench_system_${r}`, redis.url, systemPool);
        lost += 2 * N - sys.distinct;
        duplicates += sys.stored - sys.distinct;
        if (sys.stored < 2 * N) short++;
        return {
          value: sys.rate,
          extra: { publishEventsPerSec: Math.round(sys.publishRate), backlogDrainEventsPerSec: Math.round(sys.drainRate), stored: sys.stored, distinct: sys.distinct, cpu: { ...cpuReport } },
        };
      } finally {
        await systemPool.end();
      }
    }],
  ]);
  await admin.end();
  const g = 'batch ' + BATCH;
  bench.ratio('service/ceiling', 'service', 'ceiling', g, 'XADD → committed, chained row vs COPY of the same rows and ledger ids (goal ≥ 0.6)');
  const drains = bench.runs.filter((x) => x.side === 'service').map((x) => Number(x.extra.backlogDrainEventsPerSec));
  const ceilings = bench.sideSpread('ceiling', g);
  bench.figures.backlogDrainEventsPerSec = drains;
  bench.figures.backlogDrainRatioToMedianCeiling = drains.map((d) => Number((d / ceilings.median).toFixed(3)));
  bench.figures.ceiling = ceilings;
  bench.figures.service = bench.sideSpread('service', g);
  bench.check('zero loss', lost === 0 && short === 0, `${lost} events lost over ${ROUNDS} rounds of ${2 * N}`);
  bench.check('no duplicates', duplicates === 0, `${duplicates} duplicate rows`);
} finally {
  bench.finish();
  await Promise.all([pgInst.stop(), redis.stop()]);
}
