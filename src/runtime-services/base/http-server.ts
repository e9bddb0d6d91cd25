// The root fastify instance of a process: request ids, request metrics, the
// probes the kubelet and Prometheus use, and the error answer every service
// inherits. Services are registered below it as encapsulated plugins.
import websocket from '@fastify/websocket';
import Fastify, { LogController, type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { httpMetrics } from './metrics.js';
import { REQUEST_ID_HEADER, requestIdFrom } from './request-id.js';
import { safeUrl } from './logger.js';

export interface ReadinessProbe {
  /** `<service>.<dependency>` */
  key: string;
  probe: () => Promise<void>;
}

export interface HttpServerOptions {
  logger: Logger;
  registry: Registry;
  readiness: ReadinessProbe[];
  /** Readiness turns false as soon as shutdown begins so traffic moves away. */
  isShuttingDown: () => boolean;
  /** Registers @fastify/websocket once, here, when a selected service needs it. */
  websocket?: { maxPayloadBytes: number };
  /** false: /metrics is served elsewhere (its own port). */
  serveMetrics?: boolean;
  metricsToken?: string;
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

/** `/metrics` on `app`, optionally behind a static bearer token. */
export function addMetricsRoute(app: FastifyInstance, registry: Registry, token?: string): void {
  app.get('/metrics', async (req, reply) => {
    if (token && req.headers.authorization !== `Bearer ${token}`) {
      reply.header('www-authenticate', 'Bearer');
      return reply.code(401).send({ error: 'unauthenticated', message: 'metrics require the metrics token' });
    }
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
}

export function baseFastify(logger: Logger): FastifyInstance {
  const app = Fastify({
    // pino's Logger is a FastifyBaseLogger; the cast keeps the default instance type for callers.
    loggerInstance: logger,
    // Not `requestIdHeader`: with it, fastify takes the header as it is and
    // calls genReqId only when the header is absent, so an unsafe id would
    // reach the logs and the response.
    requestIdHeader: false,
    genReqId: (req) => requestIdFrom(req.headers[REQUEST_ID_HEADER]),
    // Request lines are logged by the onResponse hook below, without query strings.
    logController: new LogController({ requestIdLogLabel: 'requestId', disableRequestLogging: true }),
    bodyLimit: 256 * 1024,
  }) as unknown as FastifyInstance;
  app.addHook('onRequest', async (req, reply) => {
    reply.header(REQUEST_ID_HEADER, req.id);
    // JSON answers must never be sniffed into HTML by a browser.
    reply.header('x-content-type-options', 'nosniff');
  });
  // Set on the root, so every service's context inherits it. Only errors
  // fastify itself raised for the request (bad JSON, wrong content type,
  // body too large) keep their message; anything else — a driver's error
  // text, a stack — stays in the log.
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status < 500) {
      const own = typeof err.code === 'string' && err.code.startsWith('FST_');
      req.log.info({ err: err.message, code: err.code }, 'request rejected');
      return reply.code(status).send({ error: 'bad_request', message: own ? err.message : 'bad request' });
    }
    req.log.error({ err: err.message, code: err.code }, 'request failed');
    return reply.code(500).send({ error: 'internal', message: 'internal error', requestId: req.id });
  });
  return app;
}

export async function createHttpServer(opts: HttpServerOptions): Promise<FastifyInstance> {
  const app = baseFastify(opts.logger);
  const metrics = httpMetrics(opts.registry);
  if (opts.websocket) {
    // Once on the root: the plugin listens to the server's 'upgrade' event,
    // so a second registration would route every upgrade twice.
    await app.register(websocket, { options: { maxPayload: opts.websocket.maxPayloadBytes } });
  }

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
    const checks: Record<string, { ok: boolean }> = {};
    if (opts.isShuttingDown()) {
      return reply.code(503).send({ ready: false, shuttingDown: true, checks });
    }
    await Promise.all(
      opts.readiness.map(async ({ key, probe }) => {
        try {
          await withTimeout(probe(), opts.probeTimeoutMs ?? 2000, key);
          checks[key] = { ok: true };
        } catch (err) {
          // /ready is unauthenticated: the cause (a driver's error text) goes to the log only.
          opts.logger.warn({ check: key, err: (err as Error).message }, 'readiness check failed');
          checks[key] = { ok: false };
        }
      }),
    );
    const ready = Object.values(checks).every((c) => c.ok);
    return reply.code(ready ? 200 : 503).send({ ready, checks });
  });

  if (opts.serveMetrics ?? true) addMetricsRoute(app, opts.registry, opts.metricsToken);
  return app;
}
