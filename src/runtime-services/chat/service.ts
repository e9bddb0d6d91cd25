// The chat service: WebSocket messaging with PostgreSQL persistence, Redis
// pub/sub fan-out between replicas and Redis presence.
import websocket from '@fastify/websocket';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { createAuditPublisher } from '../audit-publisher/publisher.js';
import type { TokenVerifier } from '../auth/jwt-verifier.js';
import type { RuntimeService } from '../base/service.js';
import type { RuntimeConfig } from '../config.js';
import { CloseCode } from './close-codes.js';
import type { ChatConnection } from './connection.js';
import { ChatHub } from './hub.js';
import { PresenceStore } from './presence.js';
import { registerChatRoutes } from './routes.js';
import { ChatStore } from './store.js';
import { registerChatSocket } from './ws-handler.js';

export interface ChatServiceDeps {
  config: RuntimeConfig;
  logger: Logger;
  registry: Registry;
  verifier: TokenVerifier;
  replicaId: string;
}

export function createChatService(deps: ChatServiceDeps): RuntimeService {
  const { config, registry } = deps;
  const log = deps.logger.child({ service: 'chat' });
  const pool = new pg.Pool({ connectionString: config.DATABASE_URL, max: 10 });
  pool.on('error', (err) => log.warn({ err: err.message }, 'idle PostgreSQL connection failed'));
  const redisOpts = { maxRetriesPerRequest: null, lazyConnect: true } as const;
  const pub = new Redis(config.REDIS_URL, redisOpts);
  const sub = new Redis(config.REDIS_URL, redisOpts);
  for (const r of [pub, sub]) r.on('error', (err) => log.warn({ err: err.message }, 'Redis connection error'));

  const store = new ChatStore(pool);
  const presence = new PresenceStore(pub, deps.replicaId, config.CHAT_PRESENCE_TTL_MS);
  const audit = createAuditPublisher(pub, { stream: config.AUDIT_STREAM, source: 'chat' });
  const messages = new Counter({ name: 'chat_messages_total', help: 'Chat messages persisted by this replica', registers: [registry] });
  const deliveries = new Counter({ name: 'chat_deliveries_total', help: 'Messages written to local sockets', registers: [registry] });
  const closes = new Counter({ name: 'chat_closes_total', help: 'Connections closed by the server, by close code', labelNames: ['code'] as const, registers: [registry] });
  const connections = new Set<ChatConnection>();
  new Gauge({
    name: 'chat_connections', help: 'Open authenticated chat connections', registers: [registry],
    collect() {
      this.set(connections.size);
    },
  });
  const hub = new ChatHub(
    store, presence, pub, sub, audit,
    { gapFillMs: config.CHAT_GAP_FILL_MS, replayLimit: config.CHAT_REPLAY_LIMIT, presenceTtlMs: config.CHAT_PRESENCE_TTL_MS },
    { messages: () => messages.inc(), deliveries: (n) => deliveries.inc(n) },
    log,
  );
  let draining = false;

  return {
    name: 'chat',
    readiness: {
      postgres: () => store.ping(),
      redis: async () => {
        if ((await pub.ping()) !== 'PONG') throw new Error('Redis did not answer PONG');
      },
      'redis-subscriber': async () => {
        if (sub.status !== 'ready') throw new Error(`Redis subscriber connection is ${sub.status}`);
      },
    },
    async register(app) {
      await app.register(websocket, {
        // Hard transport limit; messages over CHAT_MAX_MESSAGE_BYTES but under
        // this get the clearer application close code 4009.
        options: { maxPayload: Math.max(64 * 1024, config.CHAT_MAX_MESSAGE_BYTES * 4) },
      });
      registerChatSocket(app, {
        hub,
        verifier: deps.verifier,
        limits: {
          ratePerSec: config.CHAT_RATE_PER_SEC,
          burst: config.CHAT_RATE_BURST,
          maxBufferedBytes: config.CHAT_MAX_BUFFERED_BYTES,
          maxMessageBytes: config.CHAT_MAX_MESSAGE_BYTES,
        },
        connections,
        isDraining: () => draining,
        onClose: (code) => closes.inc({ code: String(code) }),
      });
      registerChatRoutes(app, {
        store, hub, presence, audit, verifier: deps.verifier,
        adminRole: config.AUTH_ADMIN_ROLE, allowedDomains: config.AUTH_ALLOWED_EMAIL_DOMAINS,
      });
    },
    async start() {
      await Promise.all([pub.connect(), sub.connect()]);
      await store.migrate();
      hub.start();
    },
    async drain() {
      draining = true;
      // Let frames already being handled (a send between COMMIT and PUBLISH) finish.
      await Promise.all([...connections].map((c) => c.work));
      await hub.closeAll(CloseCode.ServiceRestart, 'service restarting', connections);
      connections.clear();
      hub.stop();
    },
    async close() {
      sub.disconnect();
      await pub.quit().catch(() => {});
      await pool.end();
    },
  };
}
