// Composes the selected services into one process: shared logger, metrics,
// token verifier and root HTTP server; each service registered as its own
// encapsulated plugin under its prefix; ordered start and graceful shutdown.
import { hostname } from 'node:os';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { addMetricsRoute, baseFastify, createHttpServer, type ReadinessProbe } from './base/http-server.js';
import { createJwtVerifier } from './base/jwt/verifier.js';
import { createMetricsRegistry } from './base/metrics.js';
import type { ServiceInstance } from './base/service.js';
import type { RuntimeConfig } from './config.js';

export interface Runtime {
  app: FastifyInstance;
  port: number;
  /** Set when METRICS_PORT moved /metrics to its own listener. */
  metricsPort?: number;
  services: { name: string; instance: ServiceInstance }[];
  /** Drains every service, then closes the server and connections. */
  shutdown(): Promise<void>;
}

export async function startRuntime(config: RuntimeConfig, logger: Logger): Promise<Runtime> {
  const { base } = config;
  const registry = createMetricsRegistry();
  const replicaId = base.REPLICA_ID ?? `${hostname()}-${process.pid}`;
  const verifier = createJwtVerifier({
    issuer: base.OIDC_ISSUER_URL,
    audience: base.OIDC_AUDIENCE,
    algorithms: base.OIDC_ALLOWED_ALGS,
    clockToleranceSec: base.OIDC_CLOCK_TOLERANCE_SEC,
    allowedDomains: base.AUTH_ALLOWED_EMAIL_DOMAINS,
    jwksCacheMaxAgeMs: base.OIDC_JWKS_CACHE_MAX_AGE_MS,
  });
  const services = config.services.map(({ definition, settings }) => ({
    definition,
    name: definition.name,
    instance: definition.create({
      settings, base, registry, verifier, replicaId, logger: logger.child({ service: definition.name }),
    }),
  }));
  const readiness: ReadinessProbe[] = services.flatMap((s) =>
    Object.entries(s.instance.readiness).map(([dep, probe]) => ({ key: `${s.name}.${dep}`, probe })),
  );
  let shuttingDown = false;
  const app = await createHttpServer({
    logger, registry, readiness,
    isShuttingDown: () => shuttingDown,
    serveMetrics: base.METRICS_PORT === undefined,
    metricsToken: base.METRICS_TOKEN,
    websocket: services.some((s) => s.definition.websocket) ? { maxPayloadBytes: base.WS_MAX_PAYLOAD_BYTES } : undefined,
  });
  for (const s of services) {
    // Not wrapped in fastify-plugin on purpose: hooks, decorators and
    // settings a service adds stay in its own context.
    await app.register(async (scope) => s.instance.plugin(scope), { prefix: s.definition.prefix });
  }
  for (const s of services) {
    try {
      await s.instance.start();
    } catch (err) {
      throw new Error(`starting service ${s.name} failed: ${(err as Error).message}`);
    }
  }
  await app.listen({ host: base.HOST, port: base.PORT });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : base.PORT;
  let metricsApp: FastifyInstance | undefined;
  let metricsPort: number | undefined;
  if (base.METRICS_PORT !== undefined) {
    metricsApp = baseFastify(logger);
    addMetricsRoute(metricsApp, registry, base.METRICS_TOKEN);
    await metricsApp.listen({ host: base.METRICS_HOST ?? base.HOST, port: base.METRICS_PORT });
    const a = metricsApp.server.address();
    metricsPort = typeof a === 'object' && a ? a.port : base.METRICS_PORT;
  }
  logger.info({ services: services.map((s) => s.name), port, metricsPort, replicaId }, 'runtime started');

  let closing: Promise<void> | undefined;
  return {
    app,
    port,
    metricsPort,
    services: services.map((s) => ({ name: s.name, instance: s.instance })),
    shutdown() {
      closing ??= (async () => {
        shuttingDown = true;
        await Promise.all(services.map((s) => s.instance.drain()));
        await Promise.all([app.close(), metricsApp?.close()]);
        await Promise.all(services.map((s) => s.instance.close()));
        logger.info('runtime stopped');
      })();
      return closing;
    },
  };
}
