// OIDCClient through Dynamic Client Registration against the development
// IdP (oidc-provider): register, update, rotate, delete — and the IdP going
// away and coming back, which the operator must notice and recover from.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { waitFor } from '../../hack/local/process.js';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { KubeClient } from '../../src/core/kube-client.js';
import { DcrAdapter } from '../../src/idp/dcr/adapter.js';
import { condition, namespace, secret } from '../support/kube.js';
import { startOperator, type RunningOperator } from '../support/operator.js';
import { NS, applyAsUser, clientReady, deleteClient, familyHub, hash16, oidcClient, waitClient } from './oidcclient-fixtures.js';

let cp: ControlPlane;
let idp: DevIdp;
let kube: KubeClient;
let op: RunningOperator;
const seenSecrets: string[] = [];

const registration = async () => {
  const r = (await kube.readSecret(NS, 'notes-oidc-registration'))!;
  return { clientId: r['client-id']!, registrationClientUri: r['registration-client-uri'], registrationAccessToken: r['registration-access-token'] };
};
const creds = async () => {
  const s = (await kube.readSecret(NS, 'notes-oidc'))!;
  seenSecrets.push(s['client-secret']!);
  return s;
};
const notes = (extra: Record<string, unknown> = {}) =>
  oidcClient('notes', { redirectUris: ['https://notes.family.test/cb'], defaultScopes: ['openid', 'email'], ...extra });

beforeAll(async () => {
  [cp, idp] = await Promise.all([startControlPlane(), startDevIdp({ allowedDomain: 'family.test' })]);
  kube = new KubeClient(cp.kubeConfig);
  await installCrds(cp.kubeConfig);
  await installRbac(cp.kubeConfig);
  await namespace(kube, NS);
  await secret(kube, NS, 'dcr-token', { token: idp.initialAccessToken });
  await applyAsUser(kube, familyHub({ kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'dcr-token' } }));
  op = await startOperator({
    kubeconfigPath: await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator'),
    env: {
      FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system',
      FAMILYHUB_CONTROLLERS: 'oidcclient',
      FAMILYHUB_RESYNC_MS: '1500',
      FAMILYHUB_IDP_RETRY_MS: '1000',
      FAMILYHUB_IDP_HEALTH_TTL_MS: '1000',
    },
  });
});

afterAll(async () => {
  await op?.stop();
  await Promise.all([cp?.stop(), idp?.stop()]);
});

describe('OIDCClient with a DCR identity provider', () => {
  it('registers the client; its Secret logs a family member in', async () => {
    await applyAsUser(kube, notes());
    const o = await waitClient(kube, 'notes', 'Ready', clientReady);
    const s = await creds();
    expect(o.status.clientId).toBe(s['client-id']);
    expect(o.status.secretHash).toBe(hash16(s['client-secret']!));
    expect(s.issuer).toBe(idp.issuer);
    const reg = await registration();
    expect(reg.clientId).toBe(s['client-id']);
    expect(JSON.stringify(o.status)).not.toContain(reg.registrationAccessToken!);

    const login = await idp.login({ clientId: s['client-id']!, clientSecret: s['client-secret'], redirectUri: 'https://notes.family.test/cb', accountId: 'alice', scope: 'openid email' });
    expect(login.claims?.email).toBe('alice@family.test');
  });

  it('updates the registration when the CR changes', async () => {
    await applyAsUser(kube, notes({ redirectUris: ['https://notes.family.test/cb', 'https://notes.family.test/cb2'] }));
    const dcr = new DcrAdapter({ issuerUrl: idp.issuer });
    await waitFor('registration updated', async () => {
      const seen = await dcr.getClient(await registration());
      return seen?.spec.redirectUris.length === 2;
    }, { timeoutMs: 30_000 });
    await waitClient(kube, 'notes', 'Ready at generation 2', clientReady);
  });

  it('rotates by re-registering: the old credentials stop working', async () => {
    const before = await creds();
    await applyAsUser(kube, notes({ redirectUris: ['https://notes.family.test/cb', 'https://notes.family.test/cb2'], rotation: { generation: 1 } }));
    await waitClient(kube, 'notes', 'rotated', (x) => clientReady(x) && x.status.observedRotationGeneration === 1);
    const after = await creds();
    expect(after['client-secret']).not.toBe(before['client-secret']);
    await expect(idp.login({ clientId: before['client-id']!, clientSecret: before['client-secret'], redirectUri: 'https://notes.family.test/cb', accountId: 'alice' })).rejects.toThrow(/scripted login stopped at \/auth with HTTP 400/);
    const ok = await idp.login({ clientId: after['client-id']!, clientSecret: after['client-secret'], redirectUri: 'https://notes.family.test/cb', accountId: 'bob', scope: 'openid email' });
    expect(ok.claims?.email).toBe('bob@family.test');
  });

  it('rotates on schedule once the secret is older than rotation.interval', async () => {
    const spec = { redirectUris: ['https://notes.family.test/cb', 'https://notes.family.test/cb2'] };
    await applyAsUser(kube, notes({ ...spec, rotation: { generation: 1, interval: '1h' } }));
    const fresh = await waitClient(kube, 'notes', 'Ready with an interval', (x) => clientReady(x) && x.metadata.generation === x.status.observedGeneration);
    const before = await creds();
    // Young secret: nothing rotates.
    expect(hash16(before['client-secret']!)).toBe(fresh.status.secretHash);
    const secret = (await kube.get('v1', 'Secret', NS, 'notes-oidc'))!;
    expect(Date.now() - Date.parse(secret.metadata.annotations!['familyhub.dev/rotated-at']!)).toBeLessThan(3_600_000);

    // The same Secret issued two hours ago (as after a long weekend with the operator running).
    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000).toISOString();
    await kube.mergePatch('v1', 'Secret', NS, 'notes-oidc', { metadata: { annotations: { 'familyhub.dev/rotated-at': twoHoursAgo } } });
    const rotated = await waitClient(kube, 'notes', 'rotated on schedule', (x) => clientReady(x) && x.status.secretHash !== fresh.status.secretHash);
    expect(Date.parse(rotated.status.lastRotatedAt)).toBeGreaterThan(Date.parse(twoHoursAgo) + 3_600_000);
    const after = await creds();
    expect(after['client-secret']).not.toBe(before['client-secret']);
    await expect(idp.login({ clientId: before['client-id']!, clientSecret: before['client-secret'], redirectUri: 'https://notes.family.test/cb', accountId: 'alice' })).rejects.toThrow(/scripted login stopped at \/auth with HTTP 400/);
    const ok = await idp.login({ clientId: after['client-id']!, clientSecret: after['client-secret'], redirectUri: 'https://notes.family.test/cb', accountId: 'alice', scope: 'openid email' });
    expect(ok.claims?.email).toBe('alice@family.test');
  });

  it('reports IdPReachable=False while the IdP is down and recovers by itself', async () => {
    const port = idp.port;
    const iat = idp.initialAccessToken;
    await idp.stop();
    const down = await waitClient(kube, 'notes', 'IdPReachable False', (x) => condition(x, 'IdPReachable')?.status === 'False');
    expect(condition(down, 'IdPReachable')?.reason).toBe('IdPUnreachable');
    expect(condition(down, 'Ready')?.status).toBe('False');

    // The dev IdP keeps state in memory: it comes back empty, so the
    // operator must also notice its client is gone and register it again.
    idp = await startDevIdp({ port, initialAccessToken: iat, allowedDomain: 'family.test' });
    const up = await waitClient(kube, 'notes', 'recovered', (x) => condition(x, 'IdPReachable')?.status === 'True' && clientReady(x), 60_000);
    const s = await creds();
    expect(up.status.secretHash).toBe(hash16(s['client-secret']!));
    const login = await idp.login({ clientId: s['client-id']!, clientSecret: s['client-secret'], redirectUri: 'https://notes.family.test/cb', accountId: 'alice', scope: 'openid email' });
    expect(login.claims?.email).toBe('alice@family.test');
  });

  it('deletes the registration with the CR', async () => {
    const reg = await registration();
    const dcr = new DcrAdapter({ issuerUrl: idp.issuer });
    expect(await dcr.getClient(reg)).toBeDefined();
    await deleteClient(kube, 'notes');
    await waitFor('OIDCClient gone', async () => !(await kube.get('familyhub.dev/v1alpha1', 'OIDCClient', NS, 'notes')), { timeoutMs: 30_000 });
    expect(await dcr.getClient(reg)).toBeUndefined();
  });

  it('keeps secrets and registration tokens out of the logs', () => {
    const logs = op.logs();
    expect(seenSecrets.length).toBeGreaterThanOrEqual(3);
    for (const s of [...seenSecrets, idp.initialAccessToken]) expect(logs).not.toContain(s);
  });
});
