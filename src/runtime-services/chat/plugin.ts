// The chat service: WebSocket messaging with PostgreSQL persistence, Redis
// pub/sub fan-out between replicas and Redis presence.
import { Counter, Gauge } from 'prom-client';
import { createAuditPublisher } from '../audit-publisher/publisher.js';
import { createPgPool, createRedis } from '../base/connections.js';
import { useAuth } from '../base/jwt/fastify-auth.js';
import { defineService } from '../base/service.js';
import { CloseCode } from './close-codes.js';
import { ConnectionQuota } from './connection-quota.js';
import { ChatSettingsSchema } from './config.js';
import type { ChatConnection } from './connection.js';
import { ChatHub } from './hub.js';
import { Membership } from './membership.js';
import { PresenceStore } from './presence.js';
import { registerChatRoutes } from './routes.js';
import { ChatStore } from './store.js';
import { ENVELOPE_BYTES, registerChatSocket } from './ws-handler.js';

export const chatService = defineService({
  name: 'chat',
  prefix: '/api/chat',
  settings: ChatSettingsSchema,
  websocket: true,
  create({ settings, base, logger: log, registry, verifier, replicaId }) {
    // A frame the transport refuses (1009) could never reach chat's own, clearer 4009.
    if (settings.CHAT_MAX_MESSAGE_BYTES + ENVELOPE_BYTES > base.WS_MAX_PAYLOAD_BYTES) {
      throw new Error(
        `CHAT_MAX_MESSAGE_BYTES (${settings.CHAT_MAX_MESSAGE_BYTES}) plus ${ENVELOPE_BYTES} bytes of envelope exceeds WS_MAX_PAYLOAD_BYTES (${base.WS_MAX_PAYLOAD_BYTES})`,
      );
    }
    const pool = createPgPool({ url: settings.DATABASE_URL, name: 'chat', max: settings.CHAT_DB_POOL_MAX, log });
    const pub = createRedis(settings, 'chat-commands', log);
    const sub = createRedis(settings, 'chat-subscriber', log);

    const store = new ChatStore(pool);
    const presence = new PresenceStore(pub, replicaId, settings.CHAT_PRESENCE_TTL_MS);
    const audit = createAuditPublisher(pub, { stream: settings.AUDIT_STREAM, source: 'chat' });
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
      { gapFillMs: settings.CHAT_GAP_FILL_MS, replayLimit: settings.CHAT_REPLAY_LIMIT, presenceTtlMs: settings.CHAT_PRESENCE_TTL_MS },
      { messages: () => messages.inc(), deliveries: (n) => deliveries.inc(n) },
      log,
    );
    const quota = new ConnectionQuota(pub, replicaId, settings.CHAT_MAX_CONNECTIONS_PER_USER, settings.CHAT_PRESENCE_TTL_MS);
    const membership = new Membership(store, hub, audit, { adminRole: base.AUTH_ADMIN_ROLE, allowedDomains: base.AUTH_ALLOWED_EMAIL_DOMAINS }, log);
    let draining = false;

    return {
      readiness: {
        postgres: () => store.ping(),
        redis: async () => {
          if ((await pub.ping()) !== 'PONG') throw new Error('Redis did not answer PONG');
        },
        'redis-subscriber': async () => {
          if (sub.status !== 'ready') throw new Error(`Redis subscriber connection is ${sub.status}`);
        },
      },
      async plugin(app) {
        const guards = useAuth(app, verifier);
        registerChatSocket(app, {
          hub,
          verifier,
          limits: {
            ratePerSec: settings.CHAT_RATE_PER_SEC,
            burst: settings.CHAT_RATE_BURST,
            maxBufferedBytes: settings.CHAT_MAX_BUFFERED_BYTES,
            maxMessageBytes: settings.CHAT_MAX_MESSAGE_BYTES,
            maxConnectionsPerUser: settings.CHAT_MAX_CONNECTIONS_PER_USER,
          },
          session: { leewayMs: base.OIDC_CLOCK_TOLERANCE_SEC * 1000, noticeMs: settings.CHAT_TOKEN_NOTICE_MS },
          connections,
          quota,
          isDraining: () => draining,
          onClose: (code) => closes.inc({ code: String(code) }),
        });
        registerChatRoutes(app, { store, membership, presence, guards });
      },
      async start() {
        await Promise.all([pub.connect(), sub.connect()]);
        await store.migrate();
        hub.start();
        quota.start();
      },
      async drain() {
        draining = true;
        // Let frames already being handled (a send between COMMIT and PUBLISH) finish.
        await Promise.all([...connections].map((c) => c.work));
        await hub.closeAll(CloseCode.ServiceRestart, 'service restarting', connections);
        connections.clear();
        hub.stop();
        quota.stop();
      },
      async close() {
        sub.disconnect();
        await pub.quit().catch(() => {});
        await pool.end();
      },
    };
  },
});
