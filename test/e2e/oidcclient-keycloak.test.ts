// OIDCClient end to end: real kube-apiserver, real Keycloak, the operator as
// its own process under config/rbac. A family member logs in to the client
// the operator provisioned, using only what the operator put in the Secret.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { waitFor } from '../../hack/local/process.js';
import { createRealm, startKeycloak, type KeycloakInstance } from '../../hack/local/keycloak.js';
import { clientCredentialsToken, keycloakLogin } from '../../hack/keycloak/login.js';
import pino from 'pino';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { liveChecks } from '../../src/controllers/familyhub/checks.js';
import { defaultConfig } from '../../src/config.js';
import { PlatformConnections } from '../../src/platform/connections.js';
import { typedHub } from '../../src/platform/hub.js';
import { condition, namespace, secret, testContext } from '../support/kube.js';
import { startOperator, type RunningOperator } from '../support/operator.js';
import { NS, applyAsUser, clientReady, deleteClient, events, familyHub, hash16, oidcClient, waitClient } from './oidcclient-fixtures.js';
import { jwtClaims } from '../support/jwt.js';
import { prebuilt } from '../support/prebuilt.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

const REALM = 'family';
let cp: ControlPlane;
let kc: KeycloakInstance;
let kube: KubeClient;
let op: RunningOperator;
let issuer: string;
const seenSecrets: string[] = [];

async function kcAdmin(method: string, path: string, body?: unknown) {
  const res = await fetch(`${kc.baseUrl}/admin/realms/${REALM}${path}`, {
    method,
    headers: { authorization: `Bearer ${await kc.adminToken()}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}`);
  const text = await res.text();
  return text ? JSON.parse(text) : undefined;
}
const kcClient = async (clientId: string) => ((await kcAdmin('GET', `/clients?clientId=${clientId}&search=false`)) as any[])[0];

async function readSecret(name: string) {
  const data = await kube.readSecret(NS, name);
  if (data?.['client-secret']) seenSecrets.push(data['client-secret']);
  return data;
}

beforeAll(async () => {
  [cp, kc] = await Promise.all([startControlPlane(), startKeycloak()]);
  issuer = `${kc.baseUrl}/realms/${REALM}`;
  await createRealm(kc, REALM, [
    { username: 'alice', email: 'alice@family.test', password: 'alice-pw', groups: ['parents'] },
    { username: 'mallory', email: 'mallory@outsider.example', password: 'mallory-pw' },
  ]);
  kube = new KubeClient(cp.kubeConfig);
  await installCrds(cp.kubeConfig);
  await installRbac(cp.kubeConfig);
  await namespace(kube, NS);
  await secret(kube, NS, 'keycloak-admin', { username: kc.adminUser, password: kc.adminPassword });
  await applyAsUser(kube, familyHub({ kind: 'keycloak', issuerUrl: issuer, realm: REALM, adminCredentialsSecretRef: { name: 'keycloak-admin' } }));
  op = await startOperator({
    kubeconfigPath: await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator'),
    env: {
      FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system',
      FAMILYHUB_CONTROLLERS: 'oidcclient',
      FAMILYHUB_RESYNC_MS: '2000',
      FAMILYHUB_IDP_RETRY_MS: '1000',
      FAMILYHUB_IDP_HEALTH_TTL_MS: '1000',
    },
  });
});

afterAll(async () => {
  await op?.stop();
  await Promise.all([cp?.stop(), kc?.stop()]);
});

describe('OIDCClient with Keycloak', () => {
  it('provisions the client with the declared settings; a family member logs in with the Secret', async () => {
    await applyAsUser(kube, oidcClient('photos', {
      clientId: 'photos',
      redirectUris: ['https://photos.family.test/callback'],
      postLogoutRedirectUris: ['https://photos.family.test/'],
      webOrigins: ['https://photos.family.test'],
      grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'],
    }));
    const o = await waitClient(kube, 'photos', 'Ready', clientReady, 90_000);
    expect(condition(o, 'IdPReachable')?.status).toBe('True');
    expect(o.status.clientId).toBe('photos');

    const s = (await readSecret('photos-oidc'))!;
    expect(s['client-id']).toBe('photos');
    expect(s.issuer).toBe(issuer);
    expect(s['discovery-url']).toBe(`${issuer}/.well-known/openid-configuration`);
    expect(o.status.secretHash).toBe(hash16(s['client-secret']!));
    expect(JSON.stringify(o.status)).not.toContain(s['client-secret']);

    const rep = await kcClient('photos');
    expect(rep.redirectUris).toEqual(['https://photos.family.test/callback']);
    expect(rep.webOrigins).toEqual(['https://photos.family.test']);
    expect(rep.publicClient).toBe(false);
    expect(rep.serviceAccountsEnabled).toBe(true);
    expect(rep.attributes['pkce.code.challenge.method']).toBe('S256');
    expect(rep.attributes['post.logout.redirect.uris']).toBe('https://photos.family.test/');
    expect(rep.defaultClientScopes).toEqual(expect.arrayContaining(['email', 'profile']));

    const tokens = await keycloakLogin({
      issuer: s.issuer!, clientId: s['client-id']!, clientSecret: s['client-secret'], redirectUri: 'https://photos.family.test/callback',
      username: 'alice', password: 'alice-pw',
    });
    const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(`${issuer}/protocol/openid-connect/certs`)), { issuer });
    expect(payload.email).toBe('alice@family.test');
    expect(payload.groups).toEqual(['parents']);

    // The hub allows family.test only: the operator set the realm to refuse others.
    await expect(keycloakLogin({
      issuer, clientId: s['client-id']!, clientSecret: s['client-secret'], redirectUri: 'https://photos.family.test/callback',
      username: 'mallory', password: 'mallory-pw',
    })).rejects.toThrow(/did not redirect to the client/);
  });

  it('reports FamilyHub IdentityReady from a live discovery and admin check', async () => {
    const ctx = testContext(kube);
    const platform = new PlatformConnections(defaultConfig().platform);
    const checkIdentity = (h: KubeObject) => liveChecks(platform).IdentityReady!(typedHub(h), ctx);
    const hubObj = (await kube.get('familyhub.dev/v1alpha1', 'FamilyHub', NS, 'home'))!;
    const ok = await checkIdentity(hubObj);
    expect(ok).toMatchObject({ type: 'IdentityReady', status: 'True', reason: 'Reachable' });
    expect(ok!.message).toContain('refuses e-mail domains other than family.test');

    await secret(kube, NS, 'keycloak-wrong', { username: kc.adminUser, password: 'not-the-password' });
    const wrongCreds = { ...hubObj, spec: { ...hubObj.spec, identity: { ...hubObj.spec.identity, adminCredentialsSecretRef: { name: 'keycloak-wrong' } } } };
    expect(await checkIdentity(wrongCreds)).toMatchObject({ status: 'False', reason: 'AdminAccessFailed' });

    const down = { ...hubObj, spec: { ...hubObj.spec, identity: { ...hubObj.spec.identity, issuerUrl: 'http://127.0.0.1:1/realms/family' } } };
    expect(await checkIdentity(down)).toMatchObject({ status: 'False', reason: 'IdPUnreachable' });
  });

  it('follows redirect URI changes in the CR and restores hand edits in Keycloak', async () => {
    await applyAsUser(kube, oidcClient('photos', {
      clientId: 'photos',
      redirectUris: ['https://photos.family.test/callback', 'https://photos.family.test/cb2'],
      postLogoutRedirectUris: ['https://photos.family.test/'],
      webOrigins: ['https://photos.family.test'],
      grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'],
    }));
    await waitFor('redirect URIs in Keycloak', async () => (await kcClient('photos')).redirectUris.length === 2, { timeoutMs: 30_000 });
    expect((await kcClient('photos')).redirectUris.sort()).toEqual(['https://photos.family.test/callback', 'https://photos.family.test/cb2']);
    await waitClient(kube, 'photos', 'Ready at generation 2', clientReady);

    const rep = await kcClient('photos');
    await kcAdmin('PUT', `/clients/${rep.id}`, { ...rep, redirectUris: ['https://attacker.example/cb'] });
    expect((await kcClient('photos')).redirectUris).toEqual(['https://attacker.example/cb']);
    await waitFor('hand edit restored', async () => (await kcClient('photos')).redirectUris.length === 2, { timeoutMs: 30_000 });
    await waitFor('Drifted event', async () => (await events(kube, 'photos')).some((e) => e.reason === 'Drifted' && e.type === 'Warning'), { timeoutMs: 15_000 });
  });

  it('rotates the secret on spec.rotation: old secret refused, new one works, Secret updated', async () => {
    const before = (await readSecret('photos-oidc'))!['client-secret']!;
    expect(jwtClaims((await clientCredentialsToken(issuer, 'photos', before)).access_token)).toMatchObject({ iss: issuer, azp: 'photos' });
    await applyAsUser(kube, oidcClient('photos', {
      clientId: 'photos',
      redirectUris: ['https://photos.family.test/callback', 'https://photos.family.test/cb2'],
      postLogoutRedirectUris: ['https://photos.family.test/'],
      webOrigins: ['https://photos.family.test'],
      grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'],
      rotation: { generation: 1 },
    }));
    const o = await waitClient(kube, 'photos', 'rotated', (x) => clientReady(x) && x.status.observedRotationGeneration === 1);
    const after = (await readSecret('photos-oidc'))!['client-secret']!;
    expect(after).not.toBe(before);
    expect(o.status.secretHash).toBe(hash16(after));
    expect(jwtClaims((await clientCredentialsToken(issuer, 'photos', after)).access_token)).toMatchObject({ iss: issuer, azp: 'photos' });
    await expect(clientCredentialsToken(issuer, 'photos', before)).rejects.toMatchObject({ error: expect.stringMatching(/unauthorized_client|invalid_client/) });
    expect((await events(kube, 'photos')).some((e) => e.reason === 'SecretRotated')).toBe(true);
  });

  it('rejects bad input through CRD validation or a clear condition', async () => {
    await expect(applyAsUser(kube, oidcClient('plain-http', { redirectUris: ['http://photos.family.test/cb'] }))).rejects.toThrow(/https/);
    await expect(applyAsUser(kube, oidcClient('wild-host', { redirectUris: ['https://*.attacker.example/cb'] }))).rejects.toThrow(/redirectUris/);

    // A wildcard path is an open redirect at the IdP: refused at admission, inside the family domain too.
    await expect(applyAsUser(kube, oidcClient('wild-path', { redirectUris: ['https://attacker.example/*'] }))).rejects.toThrow(/redirectUris must not contain "\*"/);
    await expect(applyAsUser(kube, oidcClient('wild-own', { redirectUris: ['https://photos.family.test/*'] }))).rejects.toThrow(/redirectUris must not contain "\*"/);
    expect(await kcClient('family-wild-path')).toBeUndefined();

    await applyAsUser(kube, oidcClient('odd-scope', { redirectUris: ['https://odd.family.test/cb'], optionalScopes: ['superpowers'] }));
    const o = await waitClient(kube, 'odd-scope', 'UnknownScope', (x) => condition(x, 'ClientReady')?.reason === 'UnknownScope');
    expect(condition(o, 'ClientReady')?.message).toContain('superpowers');
    expect(condition(o, 'Ready')?.status).toBe('False');
    // Only a change can help: Stalled (Argo CD Degraded, kstatus Failed), not Reconciling forever.
    expect(condition(o, 'Stalled')).toMatchObject({ status: 'True', reason: 'UnknownScope' });
    expect(condition(o, 'Reconciling')).toMatchObject({ status: 'False', reason: 'Stalled' });
    expect(condition(o, 'IdPReachable')).toMatchObject({ status: 'True' });
    expect(await kcClient('family-odd-scope')).toBeUndefined();
  });

  it('refuses to take over an existing client unless adoptExisting is set', async () => {
    await kcAdmin('POST', '/clients', { clientId: 'legacy', redirectUris: ['https://legacy.family.test/cb'], publicClient: false });
    await applyAsUser(kube, oidcClient('legacy', { clientId: 'legacy', redirectUris: ['https://legacy.family.test/new'] }));
    const o = await waitClient(kube, 'legacy', 'ClientExists', (x) => condition(x, 'ClientReady')?.reason === 'ClientExists');
    expect(condition(o, 'ClientReady')?.message).toMatch(/adoptExisting/);
    expect(condition(o, 'Stalled')).toMatchObject({ status: 'True', reason: 'ClientExists' });
    expect(condition(o, 'Reconciling')).toMatchObject({ status: 'False', reason: 'Stalled' });
    expect((await kcClient('legacy')).redirectUris).toEqual(['https://legacy.family.test/cb']);

    await applyAsUser(kube, oidcClient('legacy', { clientId: 'legacy', redirectUris: ['https://legacy.family.test/new'], adoptExisting: true }));
    const adopted = await waitClient(kube, 'legacy', 'Ready after adoption', clientReady);
    expect(condition(adopted, 'Stalled')).toBeUndefined();
    const rep = await kcClient('legacy');
    expect(rep.redirectUris).toEqual(['https://legacy.family.test/new']);
    expect(rep.attributes['familyhub.dev/owner']).toBe(`${NS}/legacy`);
  });

  it('deletes the IdP client with deletionPolicy Delete and keeps it with Retain', async () => {
    await applyAsUser(kube, oidcClient('keeper', { clientId: 'keeper', redirectUris: ['https://keeper.family.test/cb'], deletionPolicy: 'Retain' }));
    await waitClient(kube, 'keeper', 'Ready', clientReady);
    expect(await kcClient('keeper')).toBeDefined();

    await deleteClient(kube, 'photos');
    await deleteClient(kube, 'keeper');
    await waitFor('OIDCClients gone', async () =>
      !(await kube.get('familyhub.dev/v1alpha1', 'OIDCClient', NS, 'photos')) && !(await kube.get('familyhub.dev/v1alpha1', 'OIDCClient', NS, 'keeper')), { timeoutMs: 30_000 });
    expect(await kcClient('photos')).toBeUndefined();
    expect(await kcClient('keeper')).toBeDefined();
  });

  it('registers through Keycloak\'s DCR endpoint when the hub says oidc-dcr', async () => {
    const { token: iat } = await kcAdmin('POST', '/clients-initial-access', { count: 10, expiration: 3600 });
    await secret(kube, NS, 'keycloak-iat', { token: iat });
    seenSecrets.push(iat);
    const dcrHub = familyHub({ kind: 'oidc-dcr', issuerUrl: issuer, initialAccessTokenSecretRef: { name: 'keycloak-iat' } });
    dcrHub.metadata.name = 'home-dcr';
    await applyAsUser(kube, dcrHub);
    const spec = (redirectUris: string[]) => ({ familyHubRef: { name: 'home-dcr' }, redirectUris, defaultScopes: ['openid', 'email'] });
    await applyAsUser(kube, oidcClient('wiki', spec(['https://wiki.family.test/cb'])));
    const o = await waitClient(kube, 'wiki', 'Ready', clientReady, 90_000);
    const s = (await readSecret('wiki-oidc'))!;
    expect(o.status.clientId).toBe(s['client-id']);
    expect((await kcClient(s['client-id']!)).redirectUris).toEqual(['https://wiki.family.test/cb']);
    const reg = (await kube.readSecret(NS, 'wiki-oidc-registration'))!;
    expect(reg['registration-access-token']).toBeTruthy();
    seenSecrets.push(reg['registration-access-token']!);

    const tokens = await keycloakLogin({
      issuer, clientId: s['client-id']!, clientSecret: s['client-secret'], redirectUri: 'https://wiki.family.test/cb', username: 'alice', password: 'alice-pw',
    });
    const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(`${issuer}/protocol/openid-connect/certs`)), { issuer });
    expect(payload.email).toBe('alice@family.test');

    await applyAsUser(kube, oidcClient('wiki', spec(['https://wiki.family.test/cb', 'https://wiki.family.test/cb2'])));
    await waitFor('DCR update in Keycloak', async () => (await kcClient(s['client-id']!))?.redirectUris.length === 2, { timeoutMs: 30_000 });

    await deleteClient(kube, 'wiki');
    await waitFor('wiki gone', async () => !(await kube.get('familyhub.dev/v1alpha1', 'OIDCClient', NS, 'wiki')), { timeoutMs: 30_000 });
    expect(await kcClient(s['client-id']!)).toBeUndefined();
  });

  it('never writes client secrets or admin credentials to its logs', () => {
    const logs = op.logs();
    expect(logs.length).toBeGreaterThan(0);
    expect(seenSecrets.length).toBeGreaterThanOrEqual(2);
    for (const s of [...seenSecrets, kc.adminPassword]) expect(logs).not.toContain(s);
  });
});
