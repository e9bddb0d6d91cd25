// The platform's auth service: the gateway's forward-auth / ext_authz
// endpoint (bearer JWT or SSO session cookie, per-route groups and audiences,
// identity headers on success) and the browser login that creates the SSO
// session for every subdomain of the hub's domain.
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance } from 'fastify';
import { Counter, Histogram } from 'prom-client';
import { defineService } from '../base/service.js';
import { AuthSettingsSchema, resolveAuthSettings } from './config.js';
import { Oidc } from './oidc.js';
import { registerAuthRoutes } from './routes.js';
import { cookieKey } from './session.js';

export const authService = defineService({
  name: 'auth',
  prefix: '/auth',
  settings: AuthSettingsSchema,
  create({ settings: parsed, base, logger: log, registry }) {
    const settings = resolveAuthSettings(parsed);
    const oidc = new Oidc(base, settings);
    const decisions = new Counter({
      name: 'auth_decisions_total', help: 'Forward-auth answers by outcome', labelNames: ['outcome', 'credential'] as const, registers: [registry],
    });
    const duration = new Histogram({
      name: 'auth_verify_duration_seconds', help: 'Time to answer a forward-auth request', buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1], registers: [registry],
    });
    const deps = () => ({ settings, base, oidc, key: cookieKey(settings.AUTH_COOKIE_SECRET), log, decisions, duration });
    if (!settings.AUTH_GATEWAY_TLS_CERT_FILE !== !settings.AUTH_GATEWAY_TLS_KEY_FILE) {
      throw new Error('AUTH_GATEWAY_TLS_CERT_FILE and AUTH_GATEWAY_TLS_KEY_FILE go together');
    }
    let gatewayListener: FastifyInstance | undefined;
    return {
      readiness: {
        idp: async () => {
          await oidc.configuration();
        },
      },
      async plugin(app) {
        registerAuthRoutes(app, deps());
      },
      async start() {
        // Discovery is retried per request; a failure here only logs.
        await oidc.configuration().catch((err: Error) => log.warn({ err: err.message }, 'IdP discovery failed at start; will retry'));
        if (settings.AUTH_GATEWAY_TLS_CERT_FILE) {
          // HTTP/1.1 stays allowed for gateways that do not negotiate h2.
          const app = Fastify({
            http2: true,
            https: { allowHTTP1: true, cert: readFileSync(settings.AUTH_GATEWAY_TLS_CERT_FILE), key: readFileSync(settings.AUTH_GATEWAY_TLS_KEY_FILE!) },
            // One long-lived connection carries every check: idle ones are not worth closing early.
            http2SessionTimeout: 600_000,
          }) as unknown as FastifyInstance;
          await app.register(async (scoped) => registerAuthRoutes(scoped, deps(), { decisionsOnly: true }), { prefix: '/auth' });
          await app.listen({ host: base.HOST, port: settings.AUTH_GATEWAY_TLS_PORT });
          gatewayListener = app;
          log.info({ port: settings.AUTH_GATEWAY_TLS_PORT }, 'gateway listener (TLS, HTTP/2) started');
        }
      },
      async drain() {},
      async close() {
        await gatewayListener?.close();
      },
    };
  },
});
