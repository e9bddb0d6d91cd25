// HTTP endpoints of the auth service (all under /auth):
//   GET /verify?groups=&aud=   Traefik ForwardAuth
//   ALL /envoy[/groups/<g,..>]/<original path>   Envoy ext_authz (path form: Envoy appends the request path)
//   GET /login?rd=  GET /callback  GET /logout?rd=  GET /logged-out
import { performance } from 'node:perf_hooks';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import * as client from 'openid-client';
import type { Logger } from 'pino';
import type { Counter, Histogram } from 'prom-client';
import { bearerToken } from '../base/jwt/verifier.js';
import { AuthError, type Principal } from '../base/jwt/principal.js';
import type { BaseConfig } from '../config.js';
import type { AuthSettings } from './config.js';
import { IdpUnavailable, loginFailure, type Oidc } from './oidc.js';
import { forwardedUrl, safeReturnUrl } from './return-url.js';
import {
  FLOW_COOKIE, SESSION_COOKIE, openFlow, openSession, parseCookies, sealFlow, sealSession, setCookie, type Session,
} from './session.js';

export const IDENTITY_HEADERS = { email: 'x-auth-request-email', user: 'x-auth-request-user', groups: 'x-auth-request-groups' } as const;
const FLOW_TTL_SEC = 600;

export interface AuthDeps {
  settings: AuthSettings;
  base: BaseConfig;
  oidc: Oidc;
  key: Uint8Array;
  log: Logger;
  decisions: Counter<'outcome' | 'credential'>;
  duration: Histogram;
}

interface Requirements {
  groups: string[];
  audiences: string[];
}

const list = (v: unknown) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : []);

function wantsHtml(req: FastifyRequest): boolean {
  return (req.headers.accept ?? '').includes('text/html');
}

/** `decisionsOnly`: the gateway listener, which answers the checks and serves no login pages. */
export function registerAuthRoutes(app: FastifyInstance, d: AuthDeps, opts: { decisionsOnly?: boolean } = {}): void {
  const { settings: s } = d;
  const publicUrl = (path: string) => new URL(path, s.AUTH_PUBLIC_URL).href;
  const callbackUrl = publicUrl('/auth/callback');
  const sessionCookie = (session: Session) =>
    sealSession(session, d.key).then((v) => setCookie(SESSION_COOKIE, v, { domain: s.AUTH_DOMAIN, path: '/', maxAgeSec: (session.sx - Date.now()) / 1000 }));
  const clearSession = setCookie(SESSION_COOKIE, '', { domain: s.AUTH_DOMAIN, path: '/', maxAgeSec: 0 });
  const badRequest = (reply: FastifyReply, message: string) => reply.code(400).header('cache-control', 'no-store').send({ error: 'bad_request', message });

  /** No usable credential: browsers go to the login page, API clients get 401. */
  function unauthenticated(req: FastifyRequest, reply: FastifyReply, message: string, hadBearer: boolean, originalUrl: string | undefined) {
    if (!hadBearer && wantsHtml(req)) {
      const login = new URL(publicUrl('/auth/login'));
      const rd = safeReturnUrl(originalUrl, s.AUTH_DOMAIN);
      if (rd) login.searchParams.set('rd', rd.href);
      return reply.code(302).header('location', login.href).header('cache-control', 'no-store').send();
    }
    return reply.code(401)
      .header('www-authenticate', `Bearer realm="${s.AUTH_DOMAIN}"${hadBearer ? ', error="invalid_token"' : ''}`)
      .send({ error: 'unauthenticated', message });
  }

  /** A session past its identity deadline is renewed at the IdP; a refused refresh ends it. */
  async function refresh(session: Session): Promise<Session | undefined> {
    if (!session.rt) return undefined;
    const cfg = await d.oidc.configuration();
    let tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;
    try {
      tokens = await client.refreshTokenGrant(cfg, session.rt);
    } catch (err) {
      if (err instanceof client.ResponseBodyError) return undefined; // invalid_grant: the IdP ended the session
      throw new IdpUnavailable(`refresh at the IdP failed: ${(err as Error).message}`);
    }
    const claims = tokens.claims();
    const p = claims ? d.oidc.identity(claims as Record<string, unknown>) : undefined;
    return {
      sub: p?.subject ?? session.sub,
      email: p?.email ?? session.email,
      roles: p?.roles ?? session.roles,
      exp: Date.now() + s.AUTH_SESSION_TTL_SEC * 1000,
      sx: session.sx,
      rt: tokens.refresh_token ?? session.rt,
      idt: tokens.id_token ?? session.idt,
    };
  }

  async function decide(req: FastifyRequest, reply: FastifyReply, need: Requirements, originalUrl: string | undefined) {
    const started = performance.now();
    const bearer = bearerToken(req.headers.authorization);
    let credential = bearer ? 'bearer' : 'session';
    const done = (outcome: string) => {
      d.decisions.inc({ outcome, credential });
      d.duration.observe((performance.now() - started) / 1000);
    };
    try {
      let principal: Pick<Principal, 'subject' | 'email' | 'roles'>;
      if (bearer) {
        principal = await d.oidc.verifyAccessToken(bearer, need.audiences);
      } else {
        let session = await openSession(parseCookies(req.headers.cookie).get(SESSION_COOKIE), d.key);
        if (!session) {
          credential = 'none';
          done('unauthenticated');
          return unauthenticated(req, reply, 'no credentials: send a bearer token or log in', false, originalUrl);
        }
        if (session.exp <= Date.now()) {
          session = await refresh(session);
          if (!session) {
            done('unauthenticated');
            return unauthenticated(req, reply, 'session expired', false, originalUrl).header('set-cookie', clearSession);
          }
          reply.header('set-cookie', await sessionCookie(session));
        }
        principal = { subject: session.sub, email: session.email, roles: session.roles };
      }
      if (need.groups.length && !need.groups.some((g) => principal.roles.includes(g))) {
        done('forbidden');
        return reply.code(403).send({ error: 'forbidden', message: `requires membership in one of: ${need.groups.join(', ')}` });
      }
      done('allowed');
      return reply.code(200)
        .header(IDENTITY_HEADERS.email, principal.email)
        .header(IDENTITY_HEADERS.user, principal.subject)
        .header(IDENTITY_HEADERS.groups, principal.roles.join(','))
        .send();
    } catch (err) {
      if (err instanceof AuthError) {
        done(err.kind);
        if (err.kind === 'forbidden') return reply.code(403).send({ error: 'forbidden', message: err.message });
        return unauthenticated(req, reply, err.message, !!bearer, originalUrl);
      }
      // Fail closed: when the answer cannot be known, the gateway must refuse.
      done('error');
      d.log.warn({ err: (err as Error).message }, 'forward-auth could not decide; refusing');
      return reply.code(503).header('retry-after', '5').send({ error: 'unavailable', message: 'cannot verify credentials right now' });
    }
  }

  app.get('/verify', async (req, reply) => {
    const q = req.query as Record<string, unknown>;
    return decide(req, reply, { groups: list(q.groups), audiences: list(q.aud) }, forwardedUrl(req.headers));
  });

  // Envoy ext_authz keeps the original method and appends the original path.
  app.all('/envoy/*', async (req, reply) => {
    const rest = (req.params as { '*': string })['*'];
    const m = rest.match(/^groups\/([^/]+)(\/.*)?$/);
    const groups = m ? m[1]!.split(',').map(decodeURIComponent) : [];
    const path = m ? m[2] ?? '/' : `/${rest}`;
    const proto = (req.headers['x-forwarded-proto'] as string | undefined) ?? 'https';
    return decide(req, reply, { groups, audiences: [] }, `${proto}://${req.headers.host ?? req.headers[':authority']}${path}`);
  });
  if (opts.decisionsOnly) return;

  app.get('/login', async (req, reply) => {
    const raw = (req.query as Record<string, unknown>).rd;
    const rd = safeReturnUrl(typeof raw === 'string' ? raw : undefined, s.AUTH_DOMAIN);
    if (raw !== undefined && !rd) return badRequest(reply, `rd: the return URL must be an https URL on ${s.AUTH_DOMAIN} or a subdomain`);
    let cfg: client.Configuration;
    try {
      cfg = await d.oidc.configuration();
    } catch (err) {
      d.log.warn({ err: (err as Error).message }, 'login: IdP unavailable');
      return reply.code(503).send({ error: 'unavailable', message: 'the identity provider is not reachable' });
    }
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(cfg, {
      redirect_uri: callbackUrl,
      scope: s.AUTH_SCOPES,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    const flow = await sealFlow({ verifier, state, nonce, rd: (rd ?? new URL(`https://${s.AUTH_DOMAIN}/`)).href }, d.key, FLOW_TTL_SEC);
    return reply.code(302)
      .header('set-cookie', setCookie(FLOW_COOKIE, flow, { path: '/auth/callback', maxAgeSec: FLOW_TTL_SEC }))
      .header('cache-control', 'no-store')
      .header('location', url.href)
      .send();
  });

  app.get('/callback', async (req, reply) => {
    const flow = await openFlow(parseCookies(req.headers.cookie).get(FLOW_COOKIE), d.key);
    if (!flow) return badRequest(reply, 'the login expired or was started in another browser; start again');
    const clearFlow = setCookie(FLOW_COOKIE, '', { path: '/auth/callback', maxAgeSec: 0 });
    let tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers;
    let cfg: client.Configuration | undefined;
    // openid-client sends this URL without its query as the redirect_uri: built from callbackUrl, it is
    // the one the authorization request named, whatever path or host the request arrived with.
    const current = new URL(callbackUrl);
    current.search = new URL(req.url, callbackUrl).search;
    try {
      cfg = await d.oidc.configuration();
      tokens = await client.authorizationCodeGrant(cfg, current, {
        pkceCodeVerifier: flow.verifier,
        expectedState: flow.state,
        expectedNonce: flow.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      const why = loginFailure(err);
      d.log.warn({
        ...why.log, issuer: d.base.OIDC_ISSUER_URL, tokenEndpoint: cfg?.serverMetadata().token_endpoint, redirectUri: callbackUrl,
        clientId: s.AUTH_CLIENT_ID, scopes: s.AUTH_SCOPES,
      }, 'login callback rejected');
      return reply.code(why.status).header('set-cookie', clearFlow).header('cache-control', 'no-store').send({ error: why.error, message: why.message });
    }
    let p: Principal;
    try {
      p = d.oidc.identity(tokens.claims() as Record<string, unknown> | undefined);
    } catch (err) {
      return reply.code(403).header('set-cookie', clearFlow).send({ error: 'forbidden', message: (err as Error).message });
    }
    const now = Date.now();
    const session: Session = {
      sub: p.subject, email: p.email, roles: p.roles,
      exp: now + s.AUTH_SESSION_TTL_SEC * 1000,
      sx: now + s.AUTH_SESSION_MAX_AGE_SEC * 1000,
      rt: tokens.refresh_token,
      idt: tokens.id_token,
    };
    d.log.info({ sub: p.subject }, 'login');
    return reply.code(302)
      .header('set-cookie', [clearFlow, await sessionCookie(session)])
      .header('cache-control', 'no-store')
      .header('location', flow.rd)
      .send();
  });

  app.get('/logout', async (req, reply) => {
    const raw = (req.query as Record<string, unknown>).rd;
    const rd = safeReturnUrl(typeof raw === 'string' ? raw : undefined, s.AUTH_DOMAIN);
    if (raw !== undefined && !rd) return badRequest(reply, `rd: the return URL must be an https URL on ${s.AUTH_DOMAIN} or a subdomain`);
    const session = await openSession(parseCookies(req.headers.cookie).get(SESSION_COOKIE), d.key);
    reply.header('set-cookie', clearSession).header('cache-control', 'no-store');
    const cfg = await d.oidc.configuration().catch(() => undefined);
    if (cfg?.serverMetadata().end_session_endpoint) {
      const end = client.buildEndSessionUrl(cfg, {
        post_logout_redirect_uri: publicUrl('/auth/logged-out'),
        ...(session?.idt ? { id_token_hint: session.idt } : {}),
        ...(rd ? { state: rd.href } : {}),
      });
      return reply.code(302).header('location', end.href).send();
    }
    return reply.code(302).header('location', rd?.href ?? publicUrl('/auth/logged-out')).send();
  });

  app.get('/logged-out', async (req, reply) => {
    const raw = (req.query as Record<string, unknown>).state;
    const rd = safeReturnUrl(typeof raw === 'string' ? raw : undefined, s.AUTH_DOMAIN);
    if (rd) return reply.code(302).header('location', rd.href).send();
    return reply.code(200).header('content-type', 'text/plain; charset=utf-8').send('You are logged out.\n');
  });
}
