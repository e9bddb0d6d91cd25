// The fastify instance shared by all services of a process: request ids,
// request metrics, and the probes the kubelet and Prometheus use.
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { httpMetrics } from './metrics.js';
import { REQUEST_ID_HEADER, requestIdFrom } from './request-id.js';
import { safeUrl } from './logger.js';
import type { RuntimeService } from './service.js';

export interface HttpServerOptions {
  logger: Logger;
  registry: Registry;
  services: RuntimeService[];
  /** Readiness turns false as soon as shutdown begins so traffic moves away. */
  isShuttingDown: () => boolean;
  probeTimeoutMs?: number;
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export async function createHttpServer(opts: HttpServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    // pino's Logger is a FastifyBaseLogger; the cast keeps the default instance type for callers.
    loggerInstance: opts.logger,
    requestIdHeader: REQUEST_ID_HEADER,
    genReqId: (req) => requestIdFrom(req.headers[REQUEST_ID_HEADER]),
    // Request lines are logged by the onResponse hook below, without query strings.
    logController: new LogController({ requestIdLogLabel: 'requestId', disableRequestLogging: true }),
    bodyLimit: 256 * 1024,
  });
  const metrics = httpMetrics(opts.registry);

  app.addHook('onRequest', async (req, reply) => {
    reply.header(REQUEST_ID_HEADER, req.id);
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    metrics.duration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
    // Probes would drown everything else at info level.
    const level = route === '/health' || route === '/ready' || route === '/metrics' ? 'debug' : 'info';
    req.log[level]({ method: req.method, url: safeUrl(req.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });

  app.get('/health', async () => ({ status: 'ok' }));

  app.get('/ready', async (_req, reply) => {
    const checks: Record<string, { ok: boolean; error?: string }> = {};
    if (opts.isShuttingDown()) {
      return reply.code(503).send({ ready: false, shuttingDown: true, checks });
    }
    const probes = opts.services.flatMap((s) =>
      Object.entries(s.readiness).map(([dep, probe]) => ({ key: `${s.name}.${dep}`, probe })),
    );
    await Promise.all(
      probes.map(async ({ key, probe }) => {
        try {
          await withTimeout(probe(), opts.probeTimeoutMs ?? 2000, key);
          checks[key] = { ok: true };
        } catch (err) {
          checks[key] = { ok: false, error: (err as Error).message };
        }
      }),
    );
    const ready = Object.values(checks).every((c) => c.ok);
    return reply.code(ready ? 200 : 503).send({ ready, checks });
  });

  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', opts.registry.contentType);
    return opts.registry.metrics();
  });

  return app as unknown as FastifyInstance;
}
