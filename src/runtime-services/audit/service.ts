// The audit service: stream consumer, partition maintenance and the admin
// API, wired to PostgreSQL and Redis.
import { Redis } from 'ioredis';
import pg from 'pg';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { TokenVerifier } from '../auth/jwt-verifier.js';
import type { RuntimeService } from '../base/service.js';
import type { RuntimeConfig } from '../config.js';
import { dropExpiredPartitions, ensurePartitions } from './partitions.js';
import { registerAuditRoutes } from './routes.js';
import { migrateAuditSchema } from './schema.js';
import { appendBatch } from './store.js';
import { StreamConsumer } from './stream-consumer.js';

export interface AuditServiceDeps {
  config: RuntimeConfig;
  logger: Logger;
  registry: Registry;
  verifier: TokenVerifier;
  replicaId: string;
}

export function createAuditService(deps: AuditServiceDeps): RuntimeService {
  const { config, registry } = deps;
  const log = deps.logger.child({ service: 'audit' });
  const pool = new pg.Pool({ connectionString: config.DATABASE_URL, max: 5 });
  pool.on('error', (err) => log.warn({ err: err.message }, 'idle PostgreSQL connection failed'));
  const redisOpts = { maxRetriesPerRequest: null, lazyConnect: true } as const;
  const reader = new Redis(config.REDIS_URL, redisOpts);
  const commands = new Redis(config.REDIS_URL, redisOpts);
  for (const r of [reader, commands]) r.on('error', (err) => log.warn({ err: err.message }, 'Redis connection error'));

  const persisted = new Counter({ name: 'audit_events_persisted_total', help: 'Audit events committed to PostgreSQL', registers: [registry] });
  const duplicates = new Counter({ name: 'audit_events_duplicate_total', help: 'Replayed audit events skipped as already stored', registers: [registry] });
  const claimed = new Counter({ name: 'audit_events_claimed_total', help: 'Entries taken over from other consumers', registers: [registry] });
  const batchSeconds = new Histogram({
    name: 'audit_batch_duration_seconds', help: 'From read to XACK per batch',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry],
  });
  const pending = new Gauge({ name: 'audit_stream_pending_entries', help: 'Entries delivered but not yet acknowledged', registers: [registry] });

  const consumer = new StreamConsumer(
    reader,
    commands,
    {
      stream: config.AUDIT_STREAM,
      group: config.AUDIT_GROUP,
      consumer: deps.replicaId,
      batchSize: config.AUDIT_BATCH_SIZE,
      blockMs: config.AUDIT_BLOCK_MS,
      claimMinIdleMs: config.AUDIT_CLAIM_MIN_IDLE_MS,
      claimIntervalMs: config.AUDIT_CLAIM_INTERVAL_MS,
      trimIntervalMs: config.AUDIT_TRIM_INTERVAL_MS,
    },
    {
      persist: (records) => appendBatch(pool, records),
      onBatch: (b) => {
        persisted.inc(b.inserted);
        duplicates.inc(b.duplicates);
        if (b.claimed) claimed.inc(b.size);
        batchSeconds.observe(b.seconds);
        log.debug(b, 'audit batch committed');
      },
      onPending: (n) => pending.set(n),
    },
    log,
  );

  let maintenanceTimer: NodeJS.Timeout | undefined;
  let maintenance: Promise<void> = Promise.resolve();
  const maintain = async () => {
    try {
      await ensurePartitions(pool, new Date(), config.AUDIT_PARTITIONS_AHEAD_DAYS);
      const dropped = await dropExpiredPartitions(pool, new Date(), config.AUDIT_RETENTION_DAYS);
      for (const d of dropped) log.info(d, 'dropped expired audit partition');
    } catch (err) {
      log.error({ err: (err as Error).message }, 'audit partition maintenance failed');
    }
  };

  return {
    name: 'audit',
    readiness: {
      postgres: async () => {
        await pool.query('SELECT 1 FROM audit.chain_head LIMIT 1');
      },
      redis: async () => {
        if ((await commands.ping()) !== 'PONG') throw new Error('Redis did not answer PONG');
      },
    },
    async register(app) {
      registerAuditRoutes(app, { pool, verifier: deps.verifier, adminRole: config.AUTH_ADMIN_ROLE });
    },
    async start() {
      await Promise.all([reader.connect(), commands.connect()]);
      await migrateAuditSchema(pool);
      await maintain();
      await consumer.ensureGroup();
      consumer.start();
      maintenanceTimer = setInterval(() => {
        maintenance = maintain();
      }, config.AUDIT_MAINTENANCE_INTERVAL_MS);
      log.info({ consumer: deps.replicaId, stream: config.AUDIT_STREAM }, 'audit consumer started');
    },
    async drain() {
      clearInterval(maintenanceTimer);
      await consumer.stop();
      await maintenance;
    },
    async close() {
      reader.disconnect();
      await commands.quit().catch(() => {});
      await pool.end();
    },
  };
}
