// Routes through a real Traefik with login at the edge: the operator writes
// the HTTPRoutes and Middlewares, Traefik serves them over HTTPS (and writes
// the status that makes a Route Ready), the platform's auth service answers
// Traefik's ForwardAuth, the development IdP issues real tokens and runs the
// browser login. Backends are processes in a network namespace.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installGatewayCrds } from '../../hack/local/gateway-crds.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { publishBackend, startNetnsBackend, type NetnsBackend } from '../../hack/local/netns-backend.js';
import { freePort, waitFor } from '../../hack/local/process.js';
import { startTraefik, type Traefik } from '../../hack/local/traefik.js';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { routeAcceptance } from '../../src/gateway/gateway-api/objects.js';
import { traefikProvider } from '../../src/gateway/traefik/provider.js';
import type { GatewayTarget } from '../../src/gateway/types.js';
import { startAuthService, type AuthService } from '../support/auth-service.js';
import { Browser } from '../support/browser.js';
import { applyObject, gatewayRequest, getObject, objectPath } from '../support/gateway.js';
import { API, condition, namespace, waitForObject } from '../support/kube.js';
import { startOperator, type RunningOperator } from '../support/operator.js';
import { addressCertificate, applyTlsSecret, domainCertificate, type TestCertificate } from '../support/tls.js';
import { prebuilt } from '../support/prebuilt.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

const DOMAIN = 'family.test';
const NS = 'apps';
const GW_NS = 'gateway';
let cp: ControlPlane;
let kube: KubeClient;
let traefik: Traefik;
let backend: NetnsBackend;
let idp: DevIdp;
let auth: AuthService;
let op: RunningOperator;
let cert: TestCertificate;
let authEnv: Record<string, string>;
let authCaPem: string;
let authTlsPort: number;
const tokens: Record<string, string> = {};
const secrets: string[] = [];

const route = (name: string, spec: Record<string, unknown>): KubeObject => ({
  apiVersion: API, kind: 'Route', metadata: { name, namespace: NS },
  spec: { familyHubRef: { name: 'home' }, hostname: `${name}.${DOMAIN}`, backendRef: { name: 'echo', port: 80 }, ...spec },
});

const https = (host: string, opts: { path?: string; headers?: Record<string, string> } = {}) =>
  gatewayRequest({ port: traefik.httpsPort, host: `${host}:${traefik.httpsPort}`, path: opts.path, headers: opts.headers, tls: { ca: cert.caPem } });
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

async function registerAuthClient(callback: string, loggedOut: string): Promise<{ id: string; secret: string }> {
  const disco = await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json() as { registration_endpoint: string };
  const res = await fetch(disco.registration_endpoint, {
    method: 'POST',
    headers: { authorization: `Bearer ${idp.initialAccessToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: 'familyhub-auth', redirect_uris: [callback], post_logout_redirect_uris: [loggedOut],
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic',
    }),
  });
  if (res.status !== 201) throw new Error(`registering the auth client failed: ${res.status} ${await res.text()}`);
  const c = await res.json() as { client_id: string; client_secret: string };
  return { id: c.client_id, secret: c.client_secret };
}

beforeAll(async () => {
  cert = domainCertificate(DOMAIN);
  [cp, idp, backend] = await Promise.all([startControlPlane({ audit: false }), startDevIdp({ allowedDomain: DOMAIN }), startNetnsBackend({ name: 'echo' })]);
  kube = new KubeClient(cp.kubeConfig);
  await installCrds(cp.kubeConfig);
  await installGatewayCrds(cp.kubeConfig, ['gateway-api', 'traefik']);
  await installRbac(cp.kubeConfig);
  await Promise.all([namespace(kube, NS), namespace(kube, GW_NS)]);
  traefik = await startTraefik(cp);
  const publicUrl = `https://auth.${DOMAIN}:${traefik.httpsPort}`;
  const client = await registerAuthClient(`${publicUrl}/auth/callback`, `${publicUrl}/auth/logged-out`);
  const cookieSecret = randomBytes(32).toString('base64url');
  secrets.push(client.secret, cookieSecret);
  authEnv = {
    OIDC_ISSUER_URL: idp.issuer, OIDC_AUDIENCE: 'familyhub', AUTH_ALLOWED_EMAIL_DOMAINS: DOMAIN,
    AUTH_DOMAIN: DOMAIN, AUTH_PUBLIC_URL: publicUrl, AUTH_CLIENT_ID: client.id, AUTH_CLIENT_SECRET: client.secret, AUTH_COOKIE_SECRET: cookieSecret,
  };
  authTlsPort = await freePort();
  auth = await startAuthService(authEnv, (address) => {
    const c = addressCertificate(address);
    authCaPem = c.caPem;
    return { AUTH_GATEWAY_TLS_CERT_FILE: c.certFile, AUTH_GATEWAY_TLS_KEY_FILE: c.keyFile, AUTH_GATEWAY_TLS_PORT: String(authTlsPort) };
  });

  await applyTlsSecret(kube, GW_NS, cert);
  await publishBackend(kube, backend, { namespace: NS, name: 'echo' });
  // The login host: the platform's own route to the auth service (a later issue deploys it; here the test writes it).
  await publishBackend(kube, { address: auth.address, port: auth.port }, { namespace: GW_NS, name: 'familyhub-auth' });
  await applyObject(kube, {
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'familyhub-auth', namespace: GW_NS },
    spec: { parentRefs: [{ name: 'family', namespace: GW_NS, sectionName: 'https' }], hostnames: [`auth.${DOMAIN}`], rules: [{ backendRefs: [{ name: 'familyhub-auth', port: 80 }] }] },
  });
  await kube.apply({
    apiVersion: API, kind: 'FamilyHub', metadata: { name: 'home', namespace: NS },
    spec: {
      domain: DOMAIN, allowedEmailDomains: [DOMAIN],
      postgres: { host: '127.0.0.1', port: 5432, database: 'familyhub', adminCredentialsSecretRef: { name: 'pg-admin' } },
      identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer },
      gateway: {
        gatewayName: 'family', gatewayNamespace: GW_NS, gatewayClassName: 'traefik',
        listeners: { httpPort: traefik.httpPort, httpsPort: traefik.httpsPort },
        authService: { url: auth.url },
      },
      runtime: { image: 'ghcr.io/familyhub/runtime:0.1.0' },
    },
  }, { fieldManager: 'e2e-test' });
  op = await startOperator({
    kubeconfigPath: await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator'),
    env: { FAMILYHUB_CONTROLLERS: 'route', FAMILYHUB_LEADER_ELECTION: 'false' },
  });
  for (const r of [
    route('photos', { auth: { requiredGroups: ['parents'] } }),
    route('notes', {}),
    route('limited', { rateLimit: { requests: 3, unit: 'Minute' } }),
  ]) await kube.apply(r, { fieldManager: 'e2e-test' });

  const issue = (email: string, groups: string[]) => idp.issueAccessToken({ email, groups, audience: 'familyhub', expiresInSec: 600 });
  [tokens.alice, tokens.charlie, tokens.mallory, tokens.other] = await Promise.all([
    issue(`alice@${DOMAIN}`, ['parents', 'admins']),
    issue(`charlie@${DOMAIN}`, ['kids']),
    issue('mallory@outsider.example', ['parents']),
    idp.issueAccessToken({ email: `bob@${DOMAIN}`, groups: ['parents'], audience: 'audit', expiresInSec: 600 }),
  ]);
  secrets.push(...Object.values(tokens));
});

afterAll(async () => {
  await op?.stop();
  await auth?.remove();
  await traefik?.stop();
  await backend?.stop();
  await idp?.stop();
  await cp?.stop();
});

describe('Routes through Traefik with the auth service', () => {
  it('Ready comes from Traefik\'s status on the HTTPRoute; status.url', async () => {
    for (const name of ['photos', 'notes', 'limited']) {
      const r = await waitForObject(kube, { kind: 'Route', namespace: NS, name }, 'Ready', (o) => condition(o, 'Ready')?.status === 'True', 90_000);
      expect(r.status!.url).toBe(`https://${name}.${DOMAIN}:${traefik.httpsPort}/`);
      expect(condition(r, 'GatewayAccepted')?.message).toContain(`Gateway ${GW_NS}/family`);
    }
  });

  it('Ready follows Traefik\'s Accepted at once, and a hand edit of the HTTPRoute is undone within 2 s (children are watched, not polled)', async () => {
    const HR = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', namespace: NS, name: 'late' };
    const ours = { gateway: { name: 'family', namespace: GW_NS, sectionName: 'https' } } as GatewayTarget;
    await kube.apply(route('late', { auth: { required: false } }), { fieldManager: 'e2e-test' });
    let acceptedAt = 0;
    let readyAt = 0;
    await waitFor('Traefik accepts the HTTPRoute and the Route is Ready', async () => {
      const [hr, r] = await Promise.all([getObject(kube, HR), kube.get(API, 'Route', NS, 'late')]);
      const now = Date.now();
      if (!acceptedAt && hr && routeAcceptance(hr, ours).state === 'Accepted') acceptedAt = now;
      if (!readyAt && r && condition(r, 'Ready')?.status === 'True' && r.status?.observedGeneration === r.metadata.generation) readyAt = now;
      return !!acceptedAt && !!readyAt;
    }, { timeoutMs: 90_000, intervalMs: 50 });
    // Nothing re-reads a pending Route on a timer any more: only Traefik's status write can have woken it.
    expect(readyAt - acceptedAt, `Ready ${readyAt - acceptedAt} ms after Traefik's Accepted`).toBeLessThan(1500);

    const t0 = Date.now();
    await kube.request('PATCH', objectPath(HR), {
      contentType: 'application/json-patch+json', query: { fieldManager: 'kubectl-edit' },
      body: [{ op: 'replace', path: '/spec/rules/0/backendRefs/0/name', value: 'someone-elses' }],
    });
    await waitFor('HTTPRoute restored', async () => (await getObject(kube, HR))?.spec.rules[0].backendRefs[0].name === 'echo', { timeoutMs: 30_000, intervalMs: 50 });
    const restoredMs = Date.now() - t0;
    expect(restoredMs, `restored after ${restoredMs} ms`).toBeLessThan(2000);
    // Traefik accepts the restored generation and the Route is Ready again; it still serves the echo backend.
    await waitForObject(kube, { kind: 'Route', namespace: NS, name: 'late' }, 'Ready again', (o) => condition(o, 'Ready')?.status === 'True' && o.status?.observedGeneration === o.metadata.generation, 30_000);
    await waitFor('late served by echo', async () => (await https('late.family.test')).json()?.backend === 'echo', { timeoutMs: 30_000 });
  });

  it('API clients: no credentials 401, outside the domain 403, missing group 403, wrong audience 401, good token 200 with identity headers', async () => {
    await waitFor('photos served', async () => (await https('photos.family.test', { headers: bearer(tokens.alice!) })).status === 200, { timeoutMs: 60_000 });
    const none = await https('photos.family.test');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect((await https('photos.family.test', { headers: bearer(tokens.mallory!) })).status).toBe(403);
    const kid = await https('photos.family.test', { headers: bearer(tokens.charlie!) });
    expect(kid.status).toBe(403);
    expect(kid.json().message).toContain('parents');
    expect((await https('photos.family.test', { headers: bearer(tokens.other!) })).status).toBe(401);
    expect((await https('photos.family.test', { headers: bearer(`${tokens.alice!.slice(0, -4)}AAAA`) })).status).toBe(401);

    const ok = await https('photos.family.test', { path: '/album/1', headers: { ...bearer(tokens.alice!), 'x-auth-request-email': 'spoofed@family.test' } });
    expect(ok.status).toBe(200);
    const seen = ok.json();
    expect(seen).toMatchObject({ backend: 'echo', path: '/album/1' });
    expect(seen.headers['x-auth-request-email']).toBe(`alice@${DOMAIN}`);
    expect(seen.headers['x-auth-request-groups']).toBe('parents,admins');
    expect(seen.headers['x-auth-request-user']).toBeTruthy();
    // A route without required groups lets any family member in.
    expect((await https('notes.family.test', { headers: bearer(tokens.charlie!) })).status).toBe(200);
  });

  it('forward-auth over TLS to the auth service\'s gateway listener: same answers, and Traefik multiplexes every check over HTTP/2 on one connection', async () => {
    await kube.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'auth-gateway-ca', namespace: NS }, stringData: { 'ca.crt': authCaPem } }, { fieldManager: 'e2e-test' });
    const target: GatewayTarget = {
      gateway: { name: 'family', namespace: GW_NS, sectionName: 'https' },
      identity: { issuer: idp.issuer, jwksUri: '', audience: 'familyhub', groupsClaim: 'groups' },
      authService: { url: `https://${auth.address}:${authTlsPort}`, caSecretName: 'auth-gateway-ca' },
    };
    const intent = { name: 'tls-auth', namespace: NS, hostname: `tls-auth.${DOMAIN}`, pathPrefix: '/', backend: { name: 'echo', port: 80 }, auth: { required: true, audiences: [], requiredGroups: ['parents'] } };
    for (const o of traefikProvider.desired(intent, target)) await applyObject(kube, o);
    await waitFor('tls-auth served', async () => (await https(`tls-auth.${DOMAIN}`, { headers: bearer(tokens.alice!) })).status === 200, { timeoutMs: 60_000 });
    expect((await https(`tls-auth.${DOMAIN}`)).status).toBe(401);
    expect((await https(`tls-auth.${DOMAIN}`, { headers: bearer(tokens.charlie!) })).status).toBe(403);
    const ok = await https(`tls-auth.${DOMAIN}`, { headers: bearer(tokens.alice!) });
    expect(ok.json().headers['x-auth-request-email']).toBe(`alice@${DOMAIN}`);

    // 200 checks, 50 at a time: over HTTP/1.1 Traefik would open a connection for most of them.
    const sockets = (state: string) => Number(execFileSync('sh', ['-c', `ss -Htn state ${state} dst ${auth.address}:${authTlsPort} | wc -l`], { encoding: 'utf8' }).trim());
    const timeWaitBefore = sockets('time-wait');
    for (let round = 0; round < 4; round++) {
      const statuses = await Promise.all(Array.from({ length: 50 }, () => https(`tls-auth.${DOMAIN}`, { headers: bearer(tokens.alice!) }).then((r) => r.status)));
      expect(statuses.every((st) => st === 200)).toBe(true);
    }
    expect(sockets('established')).toBeLessThanOrEqual(2);
    expect(sockets('time-wait') - timeWaitBefore).toBeLessThanOrEqual(2);
    for (const o of traefikProvider.desired(intent, target)) await kube.request('DELETE', objectPath({ apiVersion: o.apiVersion!, kind: o.kind!, namespace: NS, name: o.metadata.name }));
  });

  it('plain HTTP is redirected to HTTPS', async () => {
    const res = await gatewayRequest({ port: traefik.httpPort, host: `notes.${DOMAIN}:${traefik.httpPort}`, path: '/x?y=1' });
    expect(res.status).toBe(301);
    expect(res.headers.location).toBe(`https://notes.${DOMAIN}:${traefik.httpsPort}/x?y=1`);
  });

  it('over the rate limit: 429, counted per person', async () => {
    await waitFor('limited served', async () => (await https('limited.family.test', { headers: bearer(tokens.charlie!) })).status === 200, { timeoutMs: 60_000 });
    const statuses: number[] = [];
    // 3 a minute: of 8 more, at most 2 pass — or 5 if a Traefik reload (another
    // suite step's objects) restarted the limiter once mid-burst.
    for (let i = 0; i < 8; i++) statuses.push((await https('limited.family.test', { headers: bearer(tokens.charlie!) })).status);
    expect(statuses.filter((s) => s === 429).length, statuses.join(' ')).toBeGreaterThanOrEqual(3);
    expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
    // Another member has her own budget.
    expect((await https('limited.family.test', { headers: bearer(tokens.alice!) })).status).toBe(200);
  });

  it('browser SSO: redirect to the IdP, login, callback, cookie for the domain; a second subdomain opens without login; logout closes both', async () => {
    const browser = new Browser({
      domain: DOMAIN, gatewayPort: traefik.httpsPort, ca: cert.caPem,
      rewrite: (u) => {
        // At the IdP's authorization endpoint the person picks Alice.
        if (u.origin === idp.issuer && u.pathname === '/auth') u.searchParams.set('login_hint', 'alice');
        return u;
      },
    });
    const photos = `https://photos.${DOMAIN}:${traefik.httpsPort}/album?id=7`;
    const first = await browser.get(photos);
    expect(first.status).toBe(302);
    const login = new URL(first.headers.location as string);
    expect(login.origin).toBe(`https://auth.${DOMAIN}:${traefik.httpsPort}`);
    expect(login.searchParams.get('rd')).toBe(photos);

    const { res, hops } = await browser.navigate(photos);
    expect(hops.some((h) => h.url.startsWith(`${idp.issuer}/auth`))).toBe(true);
    expect(hops.some((h) => h.url.includes('/auth/callback?'))).toBe(true);
    expect(res.status).toBe(200);
    expect(res.json().headers['x-auth-request-email']).toBe(`alice@${DOMAIN}`);
    expect(res.json().path).toBe('/album?id=7');
    expect(browser.cookieNames(`notes.${DOMAIN}`)).toContain('familyhub_session');

    const notes = await browser.get(`https://notes.${DOMAIN}:${traefik.httpsPort}/`);
    expect(notes.status).toBe(200);
    expect(notes.json().headers['x-auth-request-email']).toBe(`alice@${DOMAIN}`);

    const out = await browser.get(`https://auth.${DOMAIN}:${traefik.httpsPort}/auth/logout`);
    expect(out.status).toBe(302);
    const end = new URL(out.headers.location as string);
    expect(end.origin).toBe(idp.issuer);
    expect(end.searchParams.get('id_token_hint')).toBeTruthy();
    expect(browser.cookieNames(`notes.${DOMAIN}`)).not.toContain('familyhub_session');
    for (const host of ['photos', 'notes']) {
      const again = await browser.get(`https://${host}.${DOMAIN}:${traefik.httpsPort}/`);
      expect(again.status).toBe(302);
      expect(again.headers.location).toContain('/auth/login');
    }
  });

  it('an external return URL is refused (no open redirect)', async () => {
    const browser = new Browser({ domain: DOMAIN, gatewayPort: traefik.httpsPort, ca: cert.caPem });
    for (const rd of ['https://evil.example/', `https://evil${DOMAIN}/`, `http://photos.${DOMAIN}/`]) {
      const res = await browser.get(`https://auth.${DOMAIN}:${traefik.httpsPort}/auth/login?rd=${encodeURIComponent(rd)}`);
      expect(res.status, rd).toBe(400);
      expect(res.headers.location).toBeUndefined();
    }
  });

  it('the Envoy ext_authz form of the endpoint: groups in the path, original path after it', async () => {
    const call = (path: string, headers: Record<string, string>) => fetch(`${auth.url}${path}`, { method: 'POST', headers: { host: `photos.${DOMAIN}`, ...headers } });
    const ok = await call('/auth/envoy/groups/parents/album/1', bearer(tokens.alice!));
    expect(ok.status).toBe(200);
    expect(ok.headers.get('x-auth-request-email')).toBe(`alice@${DOMAIN}`);
    expect((await call('/auth/envoy/groups/parents/album/1', bearer(tokens.charlie!))).status).toBe(403);
    expect((await call('/auth/envoy/any/path', bearer(tokens.charlie!))).status).toBe(200);
    expect((await call('/auth/envoy/any/path', {})).status).toBe(401);
  });

  it('JWKS rotation at the IdP: new tokens accepted, tokens signed with the removed key refused', async () => {
    const before = tokens.alice!;
    expect((await https('notes.family.test', { headers: bearer(before) })).status).toBe(200);
    // Same issuer, new signing key, old key gone from the JWKS.
    const port = idp.port;
    await idp.stop();
    idp = await startDevIdp({ allowedDomain: DOMAIN, port });
    const after = await idp.issueAccessToken({ email: `alice@${DOMAIN}`, groups: ['parents'], audience: 'familyhub', expiresInSec: 600 });
    secrets.push(after);
    expect(JSON.parse(Buffer.from(after.split('.')[0]!, 'base64url').toString()).kid)
      .not.toBe(JSON.parse(Buffer.from(before.split('.')[0]!, 'base64url').toString()).kid);
    // The unknown kid makes the auth service refetch the JWKS (at most once per 5 s).
    await waitFor('new key accepted', async () => (await https('notes.family.test', { headers: bearer(after) })).status === 200, { timeoutMs: 20_000 });
    expect((await https('notes.family.test', { headers: bearer(before) })).status).toBe(401);
  });

  it('auth service stopped: the gateway refuses (never lets the request through)', async () => {
    // Issued after the rotation above, so only the missing auth service can refuse it.
    const fresh = await idp.issueAccessToken({ email: `charlie@${DOMAIN}`, groups: ['kids'], audience: 'familyhub', expiresInSec: 600 });
    secrets.push(fresh);
    await waitFor('fresh token accepted', async () => (await https('notes.family.test', { headers: bearer(fresh) })).status === 200, { timeoutMs: 20_000 });
    await auth.stop();
    const res = await https('notes.family.test', { headers: bearer(fresh) });
    expect(res.status).toBeGreaterThanOrEqual(500);
    expect(res.headers['x-backend']).toBeUndefined();
    expect((await https('photos.family.test')).status).toBeGreaterThanOrEqual(500);
    await auth.start();
    await waitFor('served again', async () => (await https('notes.family.test', { headers: bearer(fresh) })).status === 200, { timeoutMs: 30_000 });
  });

  it('deleting a Route: Traefik stops serving it', async () => {
    await kube.delete(API, 'Route', NS, 'limited');
    await waitFor('limited gone', async () => (await https('limited.family.test', { headers: bearer(tokens.alice!) })).status === 404, { timeoutMs: 90_000 });
  });

  it('no token, client secret or cookie key in any log', () => {
    const logs = [op.logs(), auth.logs(), traefik.logs()].join('\n');
    for (const s of secrets) expect(logs.includes(s)).toBe(false);
  });
});
