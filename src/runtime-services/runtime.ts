// Composes the selected services into one process: shared logger, metrics,
// token verifier and HTTP server; ordered start and graceful shutdown.
import { hostname } from 'node:os';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { createAuditService } from './audit/service.js';
import { createJwtVerifier } from './auth/jwt-verifier.js';
import { createHttpServer } from './base/http-server.js';
import { createMetricsRegistry } from './base/metrics.js';
import type { RuntimeService } from './base/service.js';
import { createChatService } from './chat/service.js';
import type { RuntimeConfig, ServiceName } from './config.js';

export interface Runtime {
  app: FastifyInstance;
  port: number;
  services: RuntimeService[];
  /** Drains every service, then closes the server and connections. */
  shutdown(): Promise<void>;
}

export async function startRuntime(config: RuntimeConfig, logger: Logger): Promise<Runtime> {
  const registry = createMetricsRegistry();
  const replicaId = config.REPLICA_ID ?? `${hostname()}-${process.pid}`;
  const verifier = createJwtVerifier({
    issuer: config.OIDC_ISSUER_URL,
    audience: config.OIDC_AUDIENCE,
    algorithms: config.OIDC_ALLOWED_ALGS,
    clockToleranceSec: config.OIDC_CLOCK_TOLERANCE_SEC,
    allowedDomains: config.AUTH_ALLOWED_EMAIL_DOMAINS,
    jwksCacheMaxAgeMs: config.OIDC_JWKS_CACHE_MAX_AGE_MS,
  });
  const factories: Record<ServiceName, () => RuntimeService> = {
    audit: () => createAuditService({ config, logger, registry, verifier, replicaId }),
    chat: () => createChatService({ config, logger, registry, verifier, replicaId }),
  };
  const services = [...new Set(config.RUNTIME_SERVICES)].map((name) => factories[name]());
  let shuttingDown = false;
  const app = await createHttpServer({ logger, registry, services, isShuttingDown: () => shuttingDown });
  for (const s of services) await s.register(app);
  for (const s of services) {
    try {
      await s.start();
    } catch (err) {
      throw new Error(`starting service ${s.name} failed: ${(err as Error).message}`);
    }
  }
  await app.listen({ host: config.HOST, port: config.PORT });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  logger.info({ services: services.map((s) => s.name), port, replicaId }, 'runtime started');

  let closing: Promise<void> | undefined;
  return {
    app,
    port,
    services,
    shutdown() {
      closing ??= (async () => {
        shuttingDown = true;
        await Promise.all(services.map((s) => s.drain()));
        await app.close();
        await Promise.all(services.map((s) => s.close()));
        logger.info('runtime stopped');
      })();
      return closing;
    },
  };
}
