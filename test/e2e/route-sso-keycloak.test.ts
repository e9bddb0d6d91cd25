// Browser SSO through a real Traefik against Keycloak (not only the dev IdP):
// the auth service's own confidential client in a realm, Keycloak's real
// login form, the session cookie opening a second subdomain without a new
// login, and logout ending the Keycloak session too (the next visit meets
// the login form again instead of silent SSO).
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installGatewayCrds } from '../../hack/local/gateway-crds.js';
import { createRealm, startKeycloak, type KeycloakInstance } from '../../hack/local/keycloak.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { publishBackend, startNetnsBackend, type NetnsBackend } from '../../hack/local/netns-backend.js';
import { startTraefik, type Traefik } from '../../hack/local/traefik.js';
import { KubeClient } from '../../src/core/kube-client.js';
import { startAuthService, type AuthService } from '../support/auth-service.js';
import { Browser } from '../support/browser.js';
import { applyObject, gatewayRequest } from '../support/gateway.js';
import { API, condition, namespace, waitForObject } from '../support/kube.js';
import { waitFor } from '../../hack/local/process.js';
import { startOperator, type RunningOperator } from '../support/operator.js';
import { applyTlsSecret, domainCertificate, type TestCertificate } from '../support/tls.js';
import { prebuilt } from '../support/prebuilt.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

const DOMAIN = 'family.test';
const REALM = 'family';
const NS = 'apps';
const GW_NS = 'gateway';
let cp: ControlPlane;
let kube: KubeClient;
let kc: KeycloakInstance;
let traefik: Traefik;
let backend: NetnsBackend;
let auth: AuthService;
let op: RunningOperator;
let cert: TestCertificate;
const secrets: string[] = [];
const PASSWORD = randomBytes(12).toString('base64url');

/** Keycloak's login page: the form's action URL (HTML-escaped in the page). */
function loginFormAction(html: string): string {
  const m = html.match(/<form[^>]*id="kc-form-login"[^>]*action="([^"]+)"/) ?? html.match(/action="([^"]*login-actions\/authenticate[^"]*)"/);
  if (!m) throw new Error(`no Keycloak login form in page: ${html.slice(0, 300)}`);
  return m[1]!.replace(/&amp;/g, '&');
}

beforeAll(async () => {
  cert = domainCertificate(DOMAIN);
  [cp, kc, backend] = await Promise.all([startControlPlane({ audit: false }), startKeycloak(), startNetnsBackend({ name: 'echo' })]);
  kube = new KubeClient(cp.kubeConfig);
  await installCrds(cp.kubeConfig);
  await installGatewayCrds(cp.kubeConfig, ['gateway-api', 'traefik']);
  await installRbac(cp.kubeConfig);
  await Promise.all([namespace(kube, NS), namespace(kube, GW_NS)]);
  traefik = await startTraefik(cp);
  const publicUrl = `https://auth.${DOMAIN}:${traefik.httpsPort}`;

  await createRealm(kc, REALM, [{ username: 'alice', email: `alice@${DOMAIN}`, password: PASSWORD, groups: ['parents'] }]);
  const clientSecret = randomBytes(24).toString('base64url');
  const cookieSecret = randomBytes(32).toString('base64url');
  secrets.push(clientSecret, cookieSecret, PASSWORD);
  const token = await kc.adminToken();
  const res = await fetch(`${kc.baseUrl}/admin/realms/${REALM}/clients`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      clientId: 'familyhub-auth', secret: clientSecret, publicClient: false, standardFlowEnabled: true, directAccessGrantsEnabled: false,
      redirectUris: [`${publicUrl}/auth/callback`],
      attributes: { 'post.logout.redirect.uris': `${publicUrl}/auth/logged-out`, 'pkce.code.challenge.method': 'S256' },
      protocolMappers: [{
        name: 'groups', protocol: 'openid-connect', protocolMapper: 'oidc-group-membership-mapper',
        config: { 'claim.name': 'groups', 'full.path': 'false', 'id.token.claim': 'true', 'access.token.claim': 'true', 'userinfo.token.claim': 'true' },
      }],
    }),
  });
  if (res.status !== 201) throw new Error(`creating the Keycloak client failed: ${res.status} ${await res.text()}`);
  const issuer = `${kc.baseUrl}/realms/${REALM}`;
  auth = await startAuthService({
    OIDC_ISSUER_URL: issuer, OIDC_AUDIENCE: 'familyhub', AUTH_ALLOWED_EMAIL_DOMAINS: DOMAIN, AUTH_SCOPES: 'openid email profile',
    AUTH_DOMAIN: DOMAIN, AUTH_PUBLIC_URL: publicUrl, AUTH_CLIENT_ID: 'familyhub-auth', AUTH_CLIENT_SECRET: clientSecret, AUTH_COOKIE_SECRET: cookieSecret,
  });

  await applyTlsSecret(kube, GW_NS, cert);
  await publishBackend(kube, backend, { namespace: NS, name: 'echo' });
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
      identity: { kind: 'keycloak', issuerUrl: issuer, realm: REALM, adminCredentialsSecretRef: { name: 'kc-admin' } },
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
  for (const name of ['photos', 'notes']) {
    await kube.apply({ apiVersion: API, kind: 'Route', metadata: { name, namespace: NS },
      spec: { familyHubRef: { name: 'home' }, hostname: `${name}.${DOMAIN}`, backendRef: { name: 'echo', port: 80 }, auth: { requiredGroups: name === 'photos' ? ['parents'] : [] } } }, { fieldManager: 'e2e-test' });
  }
  for (const name of ['photos', 'notes']) {
    await waitForObject(kube, { kind: 'Route', namespace: NS, name }, 'Ready', (o) => condition(o, 'Ready')?.status === 'True', 90_000);
    // Ready follows Traefik's Accepted at once; its router is live a moment
    // later (Traefik throttles configuration reloads), and an unknown host is 404.
    await waitFor(`${name} routed by Traefik`, async () =>
      (await gatewayRequest({ port: traefik.httpsPort, host: `${name}.${DOMAIN}:${traefik.httpsPort}`, tls: { ca: cert.caPem } })).status !== 404, { timeoutMs: 30_000 });
  }
}, 360_000);

afterAll(async () => {
  await op?.stop();
  await auth?.remove();
  await traefik?.stop();
  await backend?.stop();
  await kc?.stop();
  await cp?.stop();
});

describe('browser SSO with Keycloak', () => {
  it('login form, callback, cookie for the domain; a second subdomain without login; logout ends the Keycloak session too', async () => {
    const browser = new Browser({ domain: DOMAIN, gatewayPort: traefik.httpsPort, ca: cert.caPem });
    const photos = `https://photos.${DOMAIN}:${traefik.httpsPort}/album`;
    const toLogin = await browser.navigate(photos);
    expect(toLogin.res.status).toBe(200);
    expect(toLogin.hops.at(-1)!.url.startsWith(`${kc.baseUrl}/realms/${REALM}/protocol/openid-connect/auth`)).toBe(true);
    const submitted = await browser.post(loginFormAction(toLogin.res.body), { username: 'alice', password: PASSWORD, credentialId: '' });
    expect(submitted.status).toBe(302);
    const back = await browser.navigate(new URL(submitted.headers.location as string).href);
    expect(back.hops[0]!.url).toContain('/auth/callback?');
    expect(back.res.status).toBe(200);
    expect(back.res.json().headers['x-auth-request-email']).toBe(`alice@${DOMAIN}`);
    expect(back.res.json().headers['x-auth-request-groups']).toContain('parents');

    const notes = await browser.get(`https://notes.${DOMAIN}:${traefik.httpsPort}/`);
    expect(notes.status).toBe(200);

    const out = await browser.navigate(`https://auth.${DOMAIN}:${traefik.httpsPort}/auth/logout?rd=${encodeURIComponent(`https://notes.${DOMAIN}:${traefik.httpsPort}/`)}`);
    expect(out.hops.some((h) => h.url.startsWith(`${kc.baseUrl}/realms/${REALM}/protocol/openid-connect/logout`))).toBe(true);
    // Back on the return URL without a session: straight to the login form again, so Keycloak's session is gone as well.
    expect(out.res.status).toBe(200);
    expect(out.res.body).toContain('kc-form-login');
    for (const host of ['photos', 'notes']) {
      const again = await browser.get(`https://${host}.${DOMAIN}:${traefik.httpsPort}/`);
      expect(again.status).toBe(302);
    }
  });

  it('no client secret, cookie key or password in any log', () => {
    const logs = [op.logs(), auth.logs(), traefik.logs()].join('\n');
    for (const s of secrets) expect(logs.includes(s)).toBe(false);
  });
});
