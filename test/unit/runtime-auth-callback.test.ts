// The auth service's login callback against the real dev IdP (in this
// process), with its client registered through DCR the way the operator
// registers the hub's auth client: a login the IdP refuses, a code the IdP
// will not redeem and a login that works, each answered and logged so that
// the reason is plain, and the log holds no code, token or client secret.
import { Writable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import pino from 'pino';
import { Counter, Histogram, Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { DcrAdapter } from '../../src/idp/dcr/adapter.js';
import { AuthSettingsSchema, resolveAuthSettings } from '../../src/runtime-services/auth/config.js';
import { Oidc } from '../../src/runtime-services/auth/oidc.js';
import { registerAuthRoutes } from '../../src/runtime-services/auth/routes.js';
import { FLOW_COOKIE, SESSION_COOKIE, cookieKey } from '../../src/runtime-services/auth/session.js';
import { BaseConfigSchema } from '../../src/runtime-services/config.js';

const DOMAIN = 'family.test';
const PUBLIC_URL = `https://auth.${DOMAIN}:8443`;
const CALLBACK = `${PUBLIC_URL}/auth/callback`;

let idp: DevIdp;
let client: { id: string; secret: string };

beforeAll(async () => {
  idp = await startDevIdp({ allowedDomain: DOMAIN });
  // As the operator's OIDCClient controller does for the hub's auth Service: the hub's default scopes.
  const created = await new DcrAdapter({ issuerUrl: idp.issuer, initialAccessToken: idp.initialAccessToken }).createClient({
    clientId: '', name: 'hub/home-auth', confidential: true, redirectUris: [CALLBACK], postLogoutRedirectUris: [], webOrigins: [],
    grantTypes: ['authorization_code', 'refresh_token'], pkce: true, defaultScopes: ['openid', 'email', 'profile'], optionalScopes: [],
  });
  client = { id: created.ref.clientId, secret: created.clientSecret! };
});

afterAll(async () => {
  await idp?.stop();
});

async function authApp(env: Record<string, string>): Promise<{ app: FastifyInstance; logs: string[] }> {
  const logs: string[] = [];
  const log = pino({ level: 'info' }, new Writable({ write(chunk, _enc, done) { logs.push(String(chunk)); done(); } }));
  const base = BaseConfigSchema.parse({ OIDC_ISSUER_URL: idp.issuer, OIDC_AUDIENCE: 'familyhub', AUTH_ALLOWED_EMAIL_DOMAINS: DOMAIN });
  const settings = resolveAuthSettings(AuthSettingsSchema.parse({
    AUTH_DOMAIN: DOMAIN, AUTH_PUBLIC_URL: PUBLIC_URL, AUTH_CLIENT_ID: client.id, AUTH_CLIENT_SECRET: client.secret,
    AUTH_COOKIE_SECRET: 'c'.repeat(32), ...env,
  }));
  const registry = new Registry();
  const deps = {
    settings, base, oidc: new Oidc(base, settings), key: cookieKey(settings.AUTH_COOKIE_SECRET), log,
    decisions: new Counter({ name: 'd', help: 'd', labelNames: ['outcome', 'credential'] as const, registers: [registry] }),
    duration: new Histogram({ name: 'h', help: 'h', registers: [registry] }),
  };
  const app = Fastify();
  await app.register(async (scoped) => registerAuthRoutes(scoped, deps), { prefix: '/auth' });
  return { app, logs };
}

/** /auth/login, then the IdP (alice by login_hint) until it sends the browser to the callback. */
async function loginUntilCallback(app: FastifyInstance): Promise<{ callback: URL; flowCookie: string }> {
  const login = await app.inject({ method: 'GET', url: `/auth/login?rd=${encodeURIComponent(`https://chat.${DOMAIN}:8443/`)}` });
  expect(login.statusCode).toBe(302);
  const flowCookie = String(login.headers['set-cookie']).split(';')[0]!;
  expect(flowCookie.startsWith(`${FLOW_COOKIE}=`)).toBe(true);
  let url = new URL(login.headers.location as string);
  url.searchParams.set('login_hint', 'alice');
  const jar = new Map<string, string>();
  for (let hop = 0; hop < 10; hop++) {
    const res = await fetch(url, { redirect: 'manual', headers: jar.size ? { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') } : {} });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      jar.set(pair!.slice(0, pair!.indexOf('=')), pair!.slice(pair!.indexOf('=') + 1));
    }
    await res.body?.cancel();
    const location = res.headers.get('location');
    if (!location) throw new Error(`the IdP stopped at ${url.pathname} with ${res.status}`);
    url = new URL(location, url);
    if (url.href.startsWith(CALLBACK)) return { callback: url, flowCookie };
  }
  throw new Error('the IdP never sent the browser back');
}

const callback = (app: FastifyInstance, to: URL, cookie: string) =>
  app.inject({ method: 'GET', url: to.pathname + to.search, headers: { cookie, host: to.host } });

const rejection = (logs: string[]) => logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'login callback rejected');

function expectNoSecrets(logs: string[], code: string | null) {
  const all = logs.join('\n');
  expect(all).not.toContain(client.secret);
  if (code) expect(all).not.toContain(code);
}

describe('auth service login callback', () => {
  it('asking for a scope the client is not registered with: the IdP refuses the login, and answer and log say so', async () => {
    // The built-in AUTH_SCOPES asks for groups, which this registration does not hold.
    const { app, logs } = await authApp({});
    const { callback: to, flowCookie } = await loginUntilCallback(app);
    expect(to.searchParams.get('error')).toBe('invalid_scope');
    const res = await callback(app, to, flowCookie);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'login_refused', message: expect.stringMatching(/refused the login: invalid_scope \(requested scope is not allowed\)/) });
    expect(rejection(logs)).toMatchObject({
      stage: 'authorization', errName: 'AuthorizationResponseError', idpError: 'invalid_scope', redirectUri: CALLBACK,
      tokenEndpoint: `${idp.issuer}/token`, issuer: idp.issuer, scopes: 'openid email profile groups',
    });
    expectNoSecrets(logs, null);
  });

  it('a code the IdP will not redeem (wrong client secret): the token endpoint\'s error and URL in the log, no code or secret', async () => {
    const { app, logs } = await authApp({ AUTH_SCOPES: 'openid email profile', AUTH_CLIENT_SECRET: `${client.secret}-not` });
    const { callback: to, flowCookie } = await loginUntilCallback(app);
    const code = to.searchParams.get('code');
    expect(code).toBeTruthy();
    const res = await callback(app, to, flowCookie);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'code_exchange_failed', message: expect.stringContaining('invalid_client') });
    expect(rejection(logs)).toMatchObject({ stage: 'token', httpStatus: 401, idpError: 'invalid_client', tokenEndpoint: `${idp.issuer}/token`, redirectUri: CALLBACK });
    expectNoSecrets(logs, code);
    expect(logs.join('\n')).not.toContain(`${client.secret}-not`);
  });

  it('asking for the registered scopes: the code is redeemed and the session cookie set for the domain', async () => {
    const { app, logs } = await authApp({ AUTH_SCOPES: 'openid email profile' });
    const { callback: to, flowCookie } = await loginUntilCallback(app);
    const res = await callback(app, to, flowCookie);
    expect(res.statusCode, res.body).toBe(302);
    expect(res.headers.location).toBe(`https://chat.${DOMAIN}:8443/`);
    const cookies = ([] as string[]).concat(res.headers['set-cookie'] as string | string[]);
    expect(cookies.some((c) => c.startsWith(`${SESSION_COOKIE}=`) && c.includes(`Domain=.${DOMAIN}`))).toBe(true);
    expect(rejection(logs)).toBeUndefined();
    expectNoSecrets(logs, to.searchParams.get('code'));
  });
});
