// The gaming service: XP, levels, achievements and weekly challenges from
// the platform event stream; Elo ratings from reported games; leaderboards
// in Redis rebuilt from PostgreSQL when Redis lost them.
import { Counter, Histogram } from 'prom-client';
import { createAuditPublisher } from '../audit-publisher/publisher.js';
import { createPgPool, createRedis } from '../base/connections.js';
import { useAuth } from '../base/jwt/fastify-auth.js';
import { defineService } from '../base/service.js';
import { GamingSettingsSchema } from './config.js';
import { GamingConsumer } from './consumer.js';
import { Leaderboards } from './leaderboard.js';
import { registerGamingRoutes } from './routes.js';
import { GamingStore } from './store.js';

export const gamingService = defineService({
  name: 'gaming',
  prefix: '/api/gaming',
  settings: GamingSettingsSchema,
  create({ settings, base, logger: log, registry, verifier, replicaId }) {
    const pool = createPgPool({ url: settings.DATABASE_URL, name: 'gaming', max: settings.GAMING_DB_POOL_MAX, log });
    const commands = createRedis(settings, 'gaming-commands', log);
    const reader = createRedis(settings, 'gaming-reader', log);
    const store = new GamingStore(pool);
    const audit = createAuditPublisher(commands, { stream: settings.AUDIT_STREAM, source: 'gaming' });
    const boards = new Leaderboards(commands, settings.GAMING_REDIS_PREFIX, () => store.allTotals(), log);
    const events = new Counter({ name: 'gaming_events_total', help: 'Stream entries handled, by result', labelNames: ['result'] as const, registers: [registry] });
    const awards = new Counter({ name: 'gaming_awards_total', help: 'Achievements and challenges awarded', labelNames: ['kind'] as const, registers: [registry] });
    const batchSeconds = new Histogram({ name: 'gaming_batch_duration_seconds', help: 'Stream batch from read to XACK', buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry] });
    const consumer = new GamingConsumer(reader, commands, store, boards, audit, {
      stream: settings.AUDIT_STREAM,
      group: settings.GAMING_GROUP,
      consumer: replicaId,
      batchSize: settings.GAMING_BATCH_SIZE,
      blockMs: settings.GAMING_BLOCK_MS,
      claimMinIdleMs: settings.GAMING_CLAIM_MIN_IDLE_MS,
      claimIntervalMs: settings.GAMING_CLAIM_INTERVAL_MS,
      rules: settings.GAMING_RULES,
      timeZone: settings.GAMING_TIME_ZONE,
    }, log, {
      onBatch(r, seconds) {
        events.inc({ result: 'fresh' }, r.fresh);
        if (r.duplicates) events.inc({ result: 'duplicate' }, r.duplicates);
        if (r.changes.achievements.length) awards.inc({ kind: 'achievement' }, r.changes.achievements.length);
        if (r.changes.completedChallenges.length) awards.inc({ kind: 'challenge' }, r.changes.completedChallenges.length);
        batchSeconds.observe(seconds);
      },
    });

    return {
      readiness: {
        postgres: () => store.ping(),
        redis: async () => {
          if ((await commands.ping()) !== 'PONG') throw new Error('Redis did not answer PONG');
        },
      },
      async plugin(app) {
        registerGamingRoutes(app, {
          store, boards, audit, guards: useAuth(app, verifier),
          adminRole: base.AUTH_ADMIN_ROLE, allowedDomains: base.AUTH_ALLOWED_EMAIL_DOMAINS,
          timeZone: settings.GAMING_TIME_ZONE, aroundMax: settings.GAMING_AROUND_RADIUS_MAX,
        });
      },
      async start() {
        await Promise.all([commands.connect(), reader.connect()]);
        await store.migrate();
        await consumer.ensureGroup();
        await boards.ensureComplete();
        consumer.start();
      },
      async drain() {
        // The batch in flight commits and is acknowledged before we return.
        await consumer.stop();
      },
      async close() {
        reader.disconnect();
        await commands.quit().catch(() => {});
        await pool.end();
      },
    };
  },
});
