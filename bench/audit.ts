// npm run bench:audit — sustained audit throughput from XADD to committed,
// chained row, against the raw ceiling of multi-row INSERTs of the same rows
// into the same partitioned table, both measured in this run on this machine.
//
// System under test: the real runtime (RUNTIME_SERVICES=audit) in a child
// process consuming the stream; the bench process publishes with pipelined
// XADDs. Ceiling: the same rows (hashes precomputed) inserted with unnest()
// batches of the same size (BENCH_AUDIT_BATCH, default 5000; the runtime gets
// the same AUDIT_BATCH_SIZE) by one connection, with no stream, no ledger and
// no chain lock.
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { startPostgres } from '../hack/local/postgres.js';
import { freePort, startProcess, waitFor, workDir } from '../hack/local/process.js';
import { startRedis } from '../hack/local/redis.js';
import { createAuditPublisher } from '../src/runtime-services/audit-publisher/publisher.js';
import { cpuBetween, formatCpu, sampleCpu } from './cpu.js';
import { GENESIS_HASH, rowHash } from '../src/runtime-services/audit/chain.js';
import { maintainPartitions } from '../src/runtime-services/audit/partitions.js';
import { migrateAuditSchema } from '../src/runtime-services/audit/schema.js';

const N = Number(process.env.BENCH_AUDIT_EVENTS ?? 200_000);
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
const cpuReport: Record<string, string> = {};

async function ceiling(pool: pg.Pool): Promise<number> {
  const recordedAt = new Date();
  let prev = GENESIS_HASH;
  const rows = Array.from({ length: N }, (_, i) => {
    const e = event(i);
    const r = { seq: i + 1, eventId: `${Date.now()}-${i}`, recordedAt, occurredAt: recordedAt, ...e, requestId: e.requestId, source: e.source };
    const hash = rowHash(prev, r);
    const out = { ...r, prev, hash };
    prev = hash;
    return out;
  });
  const cpu = sampleCpu();
  const started = performance.now();
  for (let i = 0; i < N; i += BATCH) {
    const b = rows.slice(i, i + BATCH);
    await pool.query(
      `INSERT INTO audit.events (seq, event_id, recorded_at, occurred_at, actor, action, target, outcome, request_id, source, details, prev_hash, row_hash)
       SELECT s, e, $13, $13, a, ac, t, oc, rq, so, d::jsonb, ph, rh
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                     $9::text[], $10::text[], $11::text[], $12::text[]) AS u(s, e, a, ac, t, oc, rq, so, d, ph, rh, x)`,
      [b.map((r) => r.seq), b.map((r) => r.eventId), b.map((r) => r.actor), b.map((r) => r.action), b.map((r) => r.target),
       b.map((r) => r.outcome), b.map((r) => r.requestId), b.map((r) => r.source), b.map((r) => JSON.stringify(r.details)),
       b.map((r) => r.prev), b.map((r) => r.hash), b.map(() => ''), recordedAt],
    );
  }
  const rate = N / ((performance.now() - started) / 1000);
  cpuReport.ceiling = formatCpu(cpuBetween(cpu, sampleCpu()), N / 1000, '1000 events');
  return rate;
}

function spawnRuntime(pgPort: number, password: string, redisUrl: string, port: number) {
  return startProcess('bench-audit-runtime', process.execPath, ['--import', import.meta.resolve('tsx'), path.resolve('src/runtime-services/main.ts')], {
    cwd: workDir('bench-audit'),
    env: {
      RUNTIME_SERVICES: 'audit', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn', REPLICA_ID: 'bench',
      DATABASE_URL: `postgres://${APP_ROLE}:${APP_ROLE}@127.0.0.1:${pgPort}/bench_system`, REDIS_URL: redisUrl,
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

async function system(pgPort: number, password: string, redisUrl: string, pool: pg.Pool): Promise<SystemResult> {
  const port = await freePort();
  let proc = spawnRuntime(pgPort, password, redisUrl, port);
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
    proc = spawnRuntime(pgPort, password, redisUrl, port);
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

const pgInst = await startPostgres();
const redis = await startRedis();
try {
  const admin = new pg.Client({ connectionString: pgInst.url });
  await admin.connect();
  const ceilingPool = await createDb(admin, 'bench_ceiling', pgInst.port, pgInst.password);
  const systemPool = await createDb(admin, 'bench_system', pgInst.port, pgInst.password);
  await admin.end();

  const ceil = await ceiling(ceilingPool);
  // Closed before the system run: CPU is summed per process name, and
  // ceiling backends exiting mid-run would subtract their time from "postgres".
  await ceilingPool.end();
  const sys = await system(pgInst.port, pgInst.password, redis.url, systemPool);
  const ratio = sys.rate / ceil;
  const lost = 2 * N - sys.distinct;
  console.log(JSON.stringify({
    events: N,
    batch: BATCH,
    ceilingInsertEventsPerSec: Math.round(ceil),
    xaddToCommitEventsPerSec: Math.round(sys.rate),
    publishEventsPerSec: Math.round(sys.publishRate),
    backlogDrainEventsPerSec: Math.round(sys.drainRate),
    backlogDrainRatio: Number((sys.drainRate / ceil).toFixed(3)),
    ratio: Number(ratio.toFixed(3)),
    goal: '>= 0.6 with zero loss',
    stored: sys.stored,
    lost,
    duplicates: sys.stored - sys.distinct,
    met: ratio >= 0.6 && lost === 0 && sys.stored === 2 * N,
    cpu: cpuReport,
  }, null, 2));
  await systemPool.end();
} finally {
  await Promise.all([pgInst.stop(), redis.stop()]);
}
