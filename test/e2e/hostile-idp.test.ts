// Clients at a real Keycloak that belong to someone else: an OIDCClient
// naming another OIDCClient's clientId, with and without adoptExisting, and
// a client made by hand. The operator runs as its ServiceAccount; each case
// asserts the attacker's condition, the victim's client at Keycloak
// (redirect URIs, owner, secret) unchanged, no Secret for the attacker, and
// the victim still getting tokens after the attacker is deleted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { waitFor } from '../../hack/local/process.js';
import { createRealm, startKeycloak, type KeycloakInstance } from '../../hack/local/keycloak.js';
import { clientCredentialsToken } from '../../hack/keycloak/login.js';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { API, condition, isReady, namespace, secret, waitForObject } from '../support/kube.js';
import { startOperator, type RunningOperator } from '../support/operator.js';
import { NS, familyHub } from './oidcclient-fixtures.js';
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

const apply = (o: KubeObject) => kube.apply(o, { fieldManager: 'hostile-user' });
const client = (name: string, spec: Record<string, unknown>): KubeObject => ({
  apiVersion: API, kind: 'OIDCClient', metadata: { name, namespace: NS },
  spec: { familyHubRef: { name: 'home' }, redirectUris: [`https://${name}.family.test/cb`], grantTypes: ['authorization_code', 'client_credentials'], ...spec },
});
const waitClient = (name: string, what: string, pred: (o: KubeObject) => boolean) => waitForObject(kube, { kind: 'OIDCClient', namespace: NS, name }, what, pred, 90_000);

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
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const kcClient = async (clientId: string): Promise<any> => ((await kcAdmin('GET', `/clients?clientId=${clientId}&search=false`)) as unknown[])[0];
/** What must not change about a client at Keycloak. */
async function clientState(clientId: string) {
  const c = await kcClient(clientId);
  expect(c, `Keycloak client ${clientId}`).toBeDefined();
  return { id: c.id, redirectUris: c.redirectUris, owner: c.attributes?.['familyhub.dev/owner'] ?? null, secret: c.secret, publicClient: c.publicClient };
}
async function tokenWorks(secretName: string) {
  const s = (await kube.readSecret(NS, secretName))!;
  const t = await clientCredentialsToken(issuer, s['client-id']!, s['client-secret']!);
  expect(jwtClaims(t.access_token)).toMatchObject({ iss: issuer, azp: s['client-id'] });
}

beforeAll(async () => {
  [cp, kc] = await Promise.all([startControlPlane(), startKeycloak()]);
  issuer = `${kc.baseUrl}/realms/${REALM}`;
  await createRealm(kc, REALM, [{ username: 'alice', email: 'alice@family.test', password: 'alice-pw' }]);
  kube = new KubeClient(cp.kubeConfig);
  await installCrds(cp.kubeConfig);
  await installRbac(cp.kubeConfig);
  await namespace(kube, NS);
  await secret(kube, NS, 'keycloak-admin', { username: kc.adminUser, password: kc.adminPassword });
  await apply(familyHub({ kind: 'keycloak', issuerUrl: issuer, realm: REALM, adminCredentialsSecretRef: { name: 'keycloak-admin' } }));
  op = await startOperator({
    kubeconfigPath: await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator'),
    name: 'operator-hostile-idp',
    env: {
      FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system',
      FAMILYHUB_CONTROLLERS: 'oidcclient',
      FAMILYHUB_RESYNC_MS: '2000',
      FAMILYHUB_IDP_RETRY_MS: '1000',
      FAMILYHUB_IDP_HEALTH_TTL_MS: '1000',
    },
  });
  await apply(client('photos', { clientId: 'photos' }));
  await waitClient('photos', 'Ready', isReady);
  // A client made by hand, managed by no OIDCClient.
  await kcAdmin('POST', '/clients', { clientId: 'legacy', redirectUris: ['https://legacy.family.test/cb'], publicClient: false, serviceAccountsEnabled: true, secret: 'legacy-secret-value' });
});

afterAll(async () => {
  await op?.stop();
  await Promise.all([cp?.stop(), kc?.stop()]);
});

describe('an OIDCClient naming a clientId that is already taken', () => {
  it('another OIDCClient\'s clientId, no adoptExisting: ClientExists naming the owner; deleting the attacker leaves the client working', async () => {
    const before = await clientState('photos');
    expect(before.owner).toBe(`${NS}/photos`);
    await apply(client('intruder', { clientId: 'photos', redirectUris: ['https://evil.family.test/cb'] }));
    const o = await waitClient('intruder', 'ClientExists', (x) => condition(x, 'ClientReady')?.reason === 'ClientExists' && x.status?.observedGeneration === 1);
    expect(condition(o, 'ClientReady')?.message).toContain(`client "photos" already exists in the IdP and is managed by OIDCClient ${NS}/photos`);
    expect(o.status.clientId).toBeUndefined();
    expect(await kube.get('v1', 'Secret', NS, 'intruder-oidc')).toBeUndefined();
    expect(await clientState('photos')).toEqual(before);
    await kube.delete(API, 'OIDCClient', NS, 'intruder');
    await waitFor('intruder gone', async () => !(await kube.get(API, 'OIDCClient', NS, 'intruder')), { timeoutMs: 15_000 });
    expect(await clientState('photos')).toEqual(before);
    await tokenWorks('photos-oidc');
  });

  it('another OIDCClient\'s clientId WITH adoptExisting: still ClientExists — redirect URIs, owner and secret stay the victim\'s, and survive the attacker\'s deletion', async () => {
    const before = await clientState('photos');
    await apply(client('adopter', { clientId: 'photos', adoptExisting: true, redirectUris: ['https://evil.family.test/cb'] }));
    const o = await waitClient('adopter', 'ClientExists', (x) => condition(x, 'ClientReady')?.reason === 'ClientExists' && x.status?.observedGeneration === 1);
    expect(condition(o, 'ClientReady')?.message).toContain(`is managed by OIDCClient ${NS}/photos; adoptExisting takes over only clients no OIDCClient manages`);
    expect(await kube.get('v1', 'Secret', NS, 'adopter-oidc')).toBeUndefined();
    expect(await clientState('photos')).toEqual(before);
    await kube.delete(API, 'OIDCClient', NS, 'adopter');
    await waitFor('adopter gone', async () => !(await kube.get(API, 'OIDCClient', NS, 'adopter')), { timeoutMs: 15_000 });
    expect(await clientState('photos')).toEqual(before);
    await tokenWorks('photos-oidc');
    // The victim itself is still in sync (not turned into ClientExists).
    const victim = await waitClient('photos', 'Ready', isReady);
    expect(condition(victim, 'ClientReady')?.status).toBe('True');
  });

  it('a hand-made client without adoptExisting: ClientExists, the client untouched', async () => {
    const before = await clientState('legacy');
    await apply(client('legacy-app', { clientId: 'legacy' }));
    const o = await waitClient('legacy-app', 'ClientExists', (x) => condition(x, 'ClientReady')?.reason === 'ClientExists');
    expect(condition(o, 'ClientReady')?.message).toContain('set spec.adoptExisting: true to take it over');
    expect(await clientState('legacy')).toEqual(before);
  });

  it('the same hand-made client with adoptExisting: adopted (the explicit field is the only way in)', async () => {
    await apply(client('legacy-app', { clientId: 'legacy', adoptExisting: true }));
    const o = await waitClient('legacy-app', 'Ready', isReady);
    expect(condition(o, 'ClientReady')?.reason).toMatch(/Adopted|InSync/);
    const after = await clientState('legacy');
    expect(after.owner).toBe(`${NS}/legacy-app`);
    expect(after.redirectUris).toEqual(['https://legacy-app.family.test/cb']);
    await tokenWorks('legacy-app-oidc');
  });

  it('no client secret in the operator\'s logs or in any status', async () => {
    const secrets = [(await clientState('photos')).secret, (await clientState('legacy')).secret, kc.adminPassword];
    const statuses = JSON.stringify((await kube.list(API, 'OIDCClient', NS)).items.map((o) => o.status));
    for (const s of secrets) {
      expect(s).toBeTruthy();
      expect(op.logs()).not.toContain(s);
      expect(statuses).not.toContain(s);
    }
  });
});
