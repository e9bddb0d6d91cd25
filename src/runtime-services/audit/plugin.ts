// The audit service: stream consumer, partition maintenance and the admin
// API, wired to PostgreSQL and Redis.
import { Counter, Gauge, Histogram } from 'prom-client';
import { createPgPool, createRedis } from '../base/connections.js';
import { useAuth } from '../base/jwt/fastify-auth.js';
import { defineService } from '../base/service.js';
import { AuditSettingsSchema } from './config.js';
import { maintainPartitions } from './partitions.js';
import { registerAuditRoutes } from './routes.js';
import { checkAuditSchema, migrateAuditSchema } from './schema.js';
import { appendBatch } from './store.js';
import { StreamConsumer } from './stream-consumer.js';
import { AuditVerifier } from './verify.js';

export const auditService = defineService({
  name: 'audit',
  prefix: '/api/audit',
  settings: AuditSettingsSchema,
  create({ settings, base, logger: log, registry, verifier, replicaId }) {
    const pool = createPgPool({ url: settings.DATABASE_URL, name: 'audit-ingest', max: settings.AUDIT_DB_POOL_MAX, log });
    // Verification has its own single connection with a statement timeout,
    // so it can neither take ingestion's connections nor run unbounded.
    const verifyPool = createPgPool({
      url: settings.DATABASE_URL, name: 'audit-verify', max: 1, log, statementTimeoutMs: settings.AUDIT_VERIFY_STATEMENT_TIMEOUT_MS,
    });
    const chainVerifier = new AuditVerifier(verifyPool, { timeoutMs: settings.AUDIT_VERIFY_TIMEOUT_MS });
    const reader = createRedis(settings, 'audit-reader', log);
    const commands = createRedis(settings, 'audit-commands', log);

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
        stream: settings.AUDIT_STREAM,
        group: settings.AUDIT_GROUP,
        consumer: replicaId,
        batchSize: settings.AUDIT_BATCH_SIZE,
        blockMs: settings.AUDIT_BLOCK_MS,
        claimMinIdleMs: settings.AUDIT_CLAIM_MIN_IDLE_MS,
        claimIntervalMs: settings.AUDIT_CLAIM_INTERVAL_MS,
        trimIntervalMs: settings.AUDIT_TRIM_INTERVAL_MS,
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
        const dropped = await maintainPartitions(pool);
        for (const d of dropped) log.info(d, 'dropped expired audit partition');
      } catch (err) {
        log.error({ err: (err as Error).message }, 'audit partition maintenance failed');
      }
    };

    return {
      readiness: {
        postgres: async () => {
          await pool.query('SELECT 1 FROM audit.chain_head LIMIT 1');
        },
        redis: async () => {
          if ((await commands.ping()) !== 'PONG') throw new Error('Redis did not answer PONG');
        },
      },
      async plugin(app) {
        registerAuditRoutes(app, { pool, verifier: chainVerifier, guards: useAuth(app, verifier), adminRole: base.AUTH_ADMIN_ROLE });
      },
      async start() {
        await Promise.all([reader.connect(), commands.connect()]);
        if (settings.AUDIT_OWNER_DATABASE_URL) {
          const owner = createPgPool({ url: settings.AUDIT_OWNER_DATABASE_URL, name: 'audit-migrate', max: 1, log });
          try {
            const appRole = (await pool.query<{ u: string }>('SELECT current_user AS u')).rows[0]!.u;
            await migrateAuditSchema(owner, {
              appRole, retentionDays: settings.AUDIT_RETENTION_DAYS, aheadDays: settings.AUDIT_PARTITIONS_AHEAD_DAYS,
            });
          } finally {
            await owner.end();
          }
        }
        await checkAuditSchema(pool);
        await maintain();
        await consumer.ensureGroup();
        consumer.start();
        maintenanceTimer = setInterval(() => {
          maintenance = maintain();
        }, settings.AUDIT_MAINTENANCE_INTERVAL_MS);
        log.info({ consumer: replicaId, stream: settings.AUDIT_STREAM }, 'audit consumer started');
      },
      async drain() {
        clearInterval(maintenanceTimer);
        await consumer.stop();
        await maintenance;
      },
      async close() {
        reader.disconnect();
        await commands.quit().catch(() => {});
        await Promise.all([pool.end(), verifyPool.end()]);
      },
    };
  },
});
