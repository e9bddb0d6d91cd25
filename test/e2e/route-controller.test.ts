// The Route controller against a real apiserver (with the Gateway API and
// Traefik CRDs installed from their modules) and the operator as a process
// under its RBAC: owned HTTPRoute + Middlewares, the Gateway created when
// missing, hostname rules, conflicts (older wins), drift restored with a
// Drifted Event, stale children removed, garbage collection on delete.
// No gateway runs here, so Ready must stay False: traffic and Ready are in
// route-traffic.test.ts with a real Traefik.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installGatewayCrds } from '../../hack/local/gateway-crds.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { waitFor } from '../../hack/local/process.js';
import { ensureTraefikGatewayClass } from '../../hack/local/traefik.js';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { API, condition, namespace, waitForObject } from '../support/kube.js';
import { getObject, objectPath } from '../support/gateway.js';
import { startOperator, type RunningOperator } from '../support/operator.js';

let cp: ControlPlane;
let kube: KubeClient;
let op: RunningOperator;
const NS = 'apps';
const HR = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', namespace: NS };
const MW = { apiVersion: 'traefik.io/v1alpha1', kind: 'Middleware', namespace: NS };

const hub: KubeObject = {
  apiVersion: API,
  kind: 'FamilyHub',
  metadata: { name: 'home', namespace: NS },
  spec: {
    domain: 'family.test',
    allowedEmailDomains: ['family.test'],
    postgres: { host: '127.0.0.1', port: 5432, database: 'familyhub', adminCredentialsSecretRef: { name: 'pg-admin' } },
    identity: { kind: 'oidc-dcr', issuerUrl: 'https://id.family.test' },
    gateway: {
      gatewayName: 'family', gatewayNamespace: 'gateway', gatewayClassName: 'traefik',
      listeners: { httpPort: 8000, httpsPort: 8443 },
      authService: { url: 'http://10.213.255.1:8080' },
    },
    runtime: { image: 'ghcr.io/familyhub/runtime:0.1.0' },
  },
};

const route = (name: string, spec: Record<string, unknown>): KubeObject => ({
  apiVersion: API, kind: 'Route', metadata: { name, namespace: NS },
  spec: { familyHubRef: { name: 'home' }, backendRef: { name: 'photos', port: 8080 }, ...spec },
});

const apply = (o: KubeObject) => kube.apply(o, { fieldManager: 'e2e-test' });
const waitRoute = (name: string, what: string, pred: (o: KubeObject) => boolean) => waitForObject(kube, { kind: 'Route', namespace: NS, name }, what, pred, 30_000);
const cond = (type: string, status: string, reason?: string) => (o: KubeObject) =>
  condition(o, type)?.status === status && (!reason || condition(o, type)?.reason === reason) && o.status?.observedGeneration === o.metadata.generation;
async function routeEvents(name: string) {
  const list = await kube.list('v1', 'Event', NS);
  return list.items.filter((e) => e.involvedObject?.kind === 'Route' && e.involvedObject?.name === name).map((e) => ({ reason: e.reason as string, message: e.message as string }));
}

beforeAll(async () => {
  cp = await startControlPlane({ audit: false });
  kube = new KubeClient(cp.kubeConfig);
  await installCrds(cp.kubeConfig);
  await installGatewayCrds(cp.kubeConfig, ['gateway-api', 'traefik']);
  await installRbac(cp.kubeConfig);
  await ensureTraefikGatewayClass(kube);
  await Promise.all([namespace(kube, NS), namespace(kube, 'gateway')]);
  await apply(hub);
  op = await startOperator({
    kubeconfigPath: await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator'),
    env: { FAMILYHUB_CONTROLLERS: 'route', FAMILYHUB_LEADER_ELECTION: 'false' },
  });
});

afterAll(async () => {
  await op?.stop();
  await cp?.stop();
});

describe('Route controller', () => {
  it('creates the owned HTTPRoute and Middleware chain, and the missing Gateway; not Ready without a gateway\'s word', async () => {
    await apply(route('photos', { hostname: 'photos.family.test', auth: { requiredGroups: ['parents'] }, rateLimit: { requests: 10, unit: 'Second' } }));
    const r = await waitRoute('photos', 'waiting for the gateway', cond('GatewayAccepted', 'False', 'NotYetAccepted'));
    expect(r.status!.url).toBe('https://photos.family.test:8443/');
    expect(condition(r, 'HostnameAccepted')?.status).toBe('True');
    expect(condition(r, 'Ready')?.status).not.toBe('True');

    const hr = (await getObject(kube, { ...HR, name: 'photos' }))!;
    expect(hr.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'Route', name: 'photos', uid: r.metadata.uid, controller: true })]);
    expect(hr.spec.parentRefs[0]).toMatchObject({ name: 'family', namespace: 'gateway', sectionName: 'https' });
    expect(hr.spec.hostnames).toEqual(['photos.family.test']);
    expect(hr.spec.rules[0].filters.map((f: { extensionRef: { name: string } }) => f.extensionRef.name)).toEqual(['photos-auth', 'photos-ratelimit']);
    const auth = (await getObject(kube, { ...MW, name: 'photos-auth' }))!;
    expect(auth.spec.forwardAuth.address).toBe('http://10.213.255.1:8080/auth/verify?groups=parents');
    expect(auth.metadata.ownerReferences?.[0]?.uid).toBe(r.metadata.uid);

    const gw = (await getObject(kube, { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', namespace: 'gateway', name: 'family' }))!;
    expect(gw.spec.listeners.map((l: { name: string; port: number }) => `${l.name}:${l.port}`)).toEqual(['http:8000', 'https:8443']);
    expect(gw.spec.listeners[1].tls.certificateRefs[0].name).toBe('family-tls');
    expect(await getObject(kube, { ...HR, namespace: 'gateway', name: 'family-https-redirect' })).toBeDefined();
    expect((await routeEvents('photos')).map((e) => e.reason)).toContain('GatewayCreated');
  });

  it('hostnames outside the domain and the platform\'s own are refused with a clear condition, nothing written', async () => {
    await apply(route('outside', { hostname: 'photos.example.org' }));
    await apply(route('chat', { hostname: 'chat.family.test' }));
    await apply(route('login', { hostname: 'auth.family.test' }));
    const outside = await waitRoute('outside', 'refused', cond('HostnameAccepted', 'False', 'HostnameOutsideDomain'));
    expect(condition(outside, 'HostnameAccepted')?.message).toContain('not family.test or a subdomain');
    await waitRoute('chat', 'reserved', cond('HostnameAccepted', 'False', 'HostnameReserved'));
    const login = await waitRoute('login', 'reserved', cond('HostnameAccepted', 'False', 'HostnameReserved'));
    expect(condition(login, 'HostnameAccepted')?.message).toContain('login service');
    for (const n of ['outside', 'chat', 'login']) expect(await getObject(kube, { ...HR, name: n })).toBeUndefined();
  });

  it('two Routes on the same hostname + path: the older keeps it, the newer gets Conflict; it takes over when the older goes', async () => {
    await apply(route('first', { hostname: 'notes.family.test', auth: { required: false } }));
    await waitFor('first HTTPRoute', async () => !!(await getObject(kube, { ...HR, name: 'first' })));
    await new Promise((r) => setTimeout(r, 1100)); // creationTimestamp has second resolution
    await apply(route('second', { hostname: 'notes.family.test', auth: { required: false } }));
    const second = await waitRoute('second', 'conflict', cond('HostnameAccepted', 'False', 'Conflict'));
    expect(condition(second, 'HostnameAccepted')?.message).toContain(`Route ${NS}/first`);
    expect(await getObject(kube, { ...HR, name: 'second' })).toBeUndefined();
    // Another path on the same host is no conflict.
    await apply(route('third', { hostname: 'notes.family.test', pathPrefix: '/api', auth: { required: false } }));
    await waitFor('third HTTPRoute', async () => !!(await getObject(kube, { ...HR, name: 'third' })));

    await kube.delete(API, 'Route', NS, 'first');
    await waitRoute('second', 'takes over', cond('HostnameAccepted', 'True'));
    await waitFor('second HTTPRoute', async () => !!(await getObject(kube, { ...HR, name: 'second' })));
  });

  it('a hand edit of the HTTPRoute or a Middleware is restored, with a Drifted Event', async () => {
    await kube.request('PATCH', objectPath({ ...HR, name: 'photos' }), {
      contentType: 'application/json-patch+json',
      query: { fieldManager: 'kubectl-edit' },
      body: [{ op: 'replace', path: '/spec/rules/0/backendRefs/0/port', value: 9999 }],
    });
    await waitFor('HTTPRoute restored', async () => (await getObject(kube, { ...HR, name: 'photos' }))?.spec.rules[0].backendRefs[0].port === 8080, { timeoutMs: 30_000 });
    await kube.request('PATCH', objectPath({ ...MW, name: 'photos-ratelimit' }), {
      contentType: 'application/merge-patch+json',
      query: { fieldManager: 'kubectl-edit' },
      body: { spec: { rateLimit: { average: 100000 } } },
    });
    await waitFor('Middleware restored', async () => (await getObject(kube, { ...MW, name: 'photos-ratelimit' }))?.spec.rateLimit.average === 10, { timeoutMs: 30_000 });
    await waitFor('Drifted events', async () => (await routeEvents('photos')).filter((e) => e.reason === 'Drifted').length >= 1, { timeoutMs: 10_000 });
    const drifted = (await routeEvents('photos')).filter((e) => e.reason === 'Drifted').map((e) => e.message).join('\n');
    expect(drifted).toMatch(/HTTPRoute apps\/photos was changed outside the operator; restored|Middleware apps\/photos-ratelimit was changed outside the operator; restored/);
  });

  it('a child the spec no longer needs is removed (rate limit dropped)', async () => {
    await apply(route('photos', { hostname: 'photos.family.test', auth: { requiredGroups: ['parents'] } }));
    await waitFor('ratelimit Middleware removed', async () => !(await getObject(kube, { ...MW, name: 'photos-ratelimit' })), { timeoutMs: 30_000 });
    const hr = (await getObject(kube, { ...HR, name: 'photos' }))!;
    expect(hr.spec.rules[0].filters.map((f: { extensionRef: { name: string } }) => f.extensionRef.name)).toEqual(['photos-auth']);
  });

  it('an HTTPRoute of the same name that the Route does not own is left alone (ChildConflict)', async () => {
    await kube.request('PATCH', objectPath({ ...HR, name: 'taken' }), {
      contentType: 'application/apply-patch+yaml', query: { fieldManager: 'someone-else', force: true },
      body: { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'taken', namespace: NS }, spec: { hostnames: ['taken.family.test'], rules: [{ backendRefs: [{ name: 'theirs', port: 80 }] }] } },
    });
    await apply(route('taken', { hostname: 'taken.family.test', auth: { required: false } }));
    await waitRoute('taken', 'child conflict', (o) => condition(o, 'GatewayAccepted')?.reason === 'ChildConflict');
    expect((await getObject(kube, { ...HR, name: 'taken' }))!.spec.rules[0].backendRefs[0].name).toBe('theirs');
  });

  it('deleting a Route garbage-collects its HTTPRoute and Middlewares', async () => {
    await kube.delete(API, 'Route', NS, 'photos');
    await waitFor('children collected', async () => !(await getObject(kube, { ...HR, name: 'photos' })) && !(await getObject(kube, { ...MW, name: 'photos-auth' })), { timeoutMs: 60_000 });
  });

  it('never logs the auth service or token material (nothing secret is involved, but the log is checked like every suite)', () => {
    expect(op.logs()).not.toMatch(/Bearer [A-Za-z0-9]/);
  });
});
