// The Route controller against a real apiserver (with the Gateway API and
// Traefik CRDs installed from their modules) and the operator as a process
// under its RBAC: owned HTTPRoute + Middlewares, the Gateway created when
// missing, hostname rules, conflicts (older wins), drift restored with a
// Drifted Event within seconds (children are watched, not polled), stale
// children removed, garbage collection on delete; Envoy Gateway extAuth to
// an auth Service in another namespace gets a ReferenceGrant there (removed,
// through a finalizer, with the last Route that needs it), or
// RefNotPermitted when RBAC forbids writing one.
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
import { applyObject, getObject, objectPath } from '../support/gateway.js';
import { startOperator, type RunningOperator } from '../support/operator.js';

let cp: ControlPlane;
let kube: KubeClient;
let op: RunningOperator;
const NS = 'apps';
const HR = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', namespace: NS };
const MW = { apiVersion: 'traefik.io/v1alpha1', kind: 'Middleware', namespace: NS };
const EG_NS = 'eg-apps';
const AUTH_NS = 'familyhub-system';
const GRANT = { apiVersion: 'gateway.networking.k8s.io/v1beta1', kind: 'ReferenceGrant', namespace: AUTH_NS };
const SP = { apiVersion: 'gateway.envoyproxy.io/v1alpha1', kind: 'SecurityPolicy' };

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

// Envoy Gateway with extAuth: the auth service is a Service in another namespace than the Routes.
const egHub: KubeObject = {
  ...hub,
  metadata: { name: 'eg', namespace: EG_NS },
  spec: {
    ...hub.spec,
    domain: 'eg.test', allowedEmailDomains: ['eg.test'],
    gateway: {
      gatewayName: 'eg', gatewayNamespace: 'gateway', provider: 'envoy-gateway', envoyGateway: { authMode: 'extAuth' },
      authService: { serviceRef: { name: 'familyhub-auth', namespace: AUTH_NS, port: 8080 } },
    },
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
  await installGatewayCrds(cp.kubeConfig, ['gateway-api', 'traefik', 'envoy-gateway']);
  await installRbac(cp.kubeConfig);
  await ensureTraefikGatewayClass(kube);
  await Promise.all([namespace(kube, NS), namespace(kube, 'gateway'), namespace(kube, EG_NS), namespace(kube, 'eg-other')]);
  await apply(hub);
  await apply(egHub);
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

  it('a hand edit of the HTTPRoute or a Middleware is restored within seconds (watched, not polled), with a Drifted Event', async () => {
    let t0 = Date.now();
    await kube.request('PATCH', objectPath({ ...HR, name: 'photos' }), {
      contentType: 'application/json-patch+json',
      query: { fieldManager: 'kubectl-edit' },
      body: [{ op: 'replace', path: '/spec/rules/0/backendRefs/0/port', value: 9999 }],
    });
    await waitFor('HTTPRoute restored', async () => (await getObject(kube, { ...HR, name: 'photos' }))?.spec.rules[0].backendRefs[0].port === 8080, { timeoutMs: 30_000, intervalMs: 50 });
    const httpRouteMs = Date.now() - t0;
    t0 = Date.now();
    await kube.request('PATCH', objectPath({ ...MW, name: 'photos-ratelimit' }), {
      contentType: 'application/merge-patch+json',
      query: { fieldManager: 'kubectl-edit' },
      body: { spec: { rateLimit: { average: 100000 } } },
    });
    await waitFor('Middleware restored', async () => (await getObject(kube, { ...MW, name: 'photos-ratelimit' }))?.spec.rateLimit.average === 10, { timeoutMs: 30_000, intervalMs: 50 });
    const middlewareMs = Date.now() - t0;
    // The old 15 s drift poll would have needed up to 15 s.
    expect(httpRouteMs, `HTTPRoute restored after ${httpRouteMs} ms`).toBeLessThan(2000);
    expect(middlewareMs, `Middleware restored after ${middlewareMs} ms`).toBeLessThan(2000);
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

  it('Envoy Gateway extAuth to the auth Service in another namespace: a ReferenceGrant there, restored when removed, removed with the last Route that needs it', async () => {
    await apply({ ...route('eg-photos', { hostname: 'photos.eg.test', familyHubRef: { name: 'eg' } }), metadata: { name: 'eg-photos', namespace: EG_NS } });
    await apply({ ...route('eg-public', { hostname: 'www.eg.test', familyHubRef: { name: 'eg' }, auth: { required: false } }), metadata: { name: 'eg-public', namespace: EG_NS } });
    const name = 'familyhub-eg-apps-securitypolicy-familyhub-auth';
    await waitFor('ReferenceGrant written', async () => !!(await getObject(kube, { ...GRANT, name })), { timeoutMs: 30_000 });
    const grant = (await getObject(kube, { ...GRANT, name }))!;
    expect(grant.spec).toEqual({ from: [{ group: 'gateway.envoyproxy.io', kind: 'SecurityPolicy', namespace: EG_NS }], to: [{ group: '', kind: 'Service', name: 'familyhub-auth' }] });
    expect(grant.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('familyhub-operator');
    // The grant is written before the children, so the SecurityPolicy never refers to a Service it may not use.
    await waitFor('SecurityPolicy written', async () => !!(await getObject(kube, { ...SP, namespace: EG_NS, name: 'eg-photos-security' })), { timeoutMs: 10_000 });
    const sp = (await getObject(kube, { ...SP, namespace: EG_NS, name: 'eg-photos-security' }))!;
    expect(sp.spec.extAuth.http.backendRefs).toEqual([expect.objectContaining({ name: 'familyhub-auth', namespace: AUTH_NS, port: 8080 })]);
    expect(await getObject(kube, { ...SP, namespace: EG_NS, name: 'eg-public-security' })).toBeUndefined();
    await waitFor('ReferenceGrantCreated event', async () => {
      const events = (await kube.list('v1', 'Event', EG_NS)).items;
      return events.some((e) => e.involvedObject?.name === 'eg-photos' && e.reason === 'ReferenceGrantCreated');
    }, { timeoutMs: 10_000 });

    // Removed by hand: back within seconds (the grant is watched).
    const t0 = Date.now();
    await kube.request('DELETE', objectPath({ ...GRANT, name }));
    await waitFor('ReferenceGrant recreated', async () => !!(await getObject(kube, { ...GRANT, name })), { timeoutMs: 30_000, intervalMs: 50 });
    expect(Date.now() - t0).toBeLessThan(3000);

    // Only the Route that relies on the grant carries the finalizer that removes it.
    expect((await kube.get(API, 'Route', EG_NS, 'eg-photos'))!.metadata.finalizers).toContain('familyhub.dev/route-reference-grants');
    expect((await kube.get(API, 'Route', EG_NS, 'eg-public'))!.metadata.finalizers ?? []).toEqual([]);

    // The last Route that needs it goes: the grant goes before the Route does
    // (its finalizer), not whenever some other Route happens to be reconciled next.
    await kube.delete(API, 'Route', EG_NS, 'eg-photos');
    await waitFor('eg-photos gone', async () => !(await kube.get(API, 'Route', EG_NS, 'eg-photos')), { timeoutMs: 30_000, intervalMs: 20 });
    expect(await getObject(kube, { ...GRANT, name }), 'ReferenceGrant still there when its last Route is gone').toBeUndefined();
  });

  it('without RBAC to write the ReferenceGrant: RefNotPermitted; a grant written by an admin is enough', async () => {
    const role = (await kube.get<KubeObject>('rbac.authorization.k8s.io/v1', 'ClusterRole', undefined, 'familyhub-operator'))!;
    const fullRules = role.rules;
    const rules = (role.rules as Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>).map((r) =>
      r.resources.includes('referencegrants') ? { ...r, verbs: ['get', 'list', 'watch'] } : r);
    await kube.apply({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'familyhub-operator' }, rules }, { fieldManager: 'e2e-test' });
    await apply({ ...route('eg-notes', { hostname: 'notes.eg.test', familyHubRef: { name: 'eg', namespace: EG_NS } }), metadata: { name: 'eg-notes', namespace: 'eg-other' } });
    const r = await waitForObject(kube, { kind: 'Route', namespace: 'eg-other', name: 'eg-notes' }, 'RefNotPermitted', (o) => condition(o, 'GatewayAccepted')?.reason === 'RefNotPermitted', 30_000);
    expect(condition(r, 'GatewayAccepted')?.message).toMatch(/SecurityPolicy in eg-other referring to Service familyhub-system\/familyhub-auth needs a Gateway API ReferenceGrant.*not allowed/);
    expect(condition(r, 'Ready')?.status).toBe('False');
    // Nothing is served without the grant: no SecurityPolicy, no HTTPRoute.
    expect(await getObject(kube, { ...HR, namespace: 'eg-other', name: 'eg-notes' })).toBeUndefined();

    // An admin grants every Service of the namespace to SecurityPolicies of eg-other: the Route goes on at once (the grant is watched).
    // It even carries the operator's source label (copied from one of the operator's), but not its managed-by label.
    await applyObject(kube, {
      apiVersion: GRANT.apiVersion, kind: GRANT.kind, metadata: { name: 'admin-grant', namespace: AUTH_NS, labels: { 'familyhub.dev/grant-from-namespace': 'eg-other' } },
      spec: { from: [{ group: 'gateway.envoyproxy.io', kind: 'SecurityPolicy', namespace: 'eg-other' }], to: [{ group: '', kind: 'Service' }] },
    });
    await waitForObject(kube, { kind: 'Route', namespace: 'eg-other', name: 'eg-notes' }, 'past RefNotPermitted', (o) => condition(o, 'GatewayAccepted')?.reason === 'NotYetAccepted', 10_000);
    expect(await getObject(kube, { ...HR, namespace: 'eg-other', name: 'eg-notes' })).toBeDefined();
    expect(await getObject(kube, { ...GRANT, name: 'familyhub-eg-other-securitypolicy-familyhub-auth' })).toBeUndefined();

    // With the right to delete grants back, the Route that used the admin's grant goes: its cleanup leaves that grant alone.
    await kube.apply({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'familyhub-operator' }, rules: fullRules }, { fieldManager: 'e2e-test' });
    expect((await kube.get(API, 'Route', 'eg-other', 'eg-notes'))!.metadata.finalizers).toContain('familyhub.dev/route-reference-grants');
    await kube.delete(API, 'Route', 'eg-other', 'eg-notes');
    await waitFor('eg-notes gone (finalized)', async () => !(await kube.get(API, 'Route', 'eg-other', 'eg-notes')), { timeoutMs: 30_000 });
    expect(await getObject(kube, { ...GRANT, name: 'admin-grant' })).toBeDefined();
  });

  it('deleting a Route garbage-collects its HTTPRoute and Middlewares', async () => {
    await kube.delete(API, 'Route', NS, 'photos');
    await waitFor('children collected', async () => !(await getObject(kube, { ...HR, name: 'photos' })) && !(await getObject(kube, { ...MW, name: 'photos-auth' })), { timeoutMs: 60_000 });
  });

  it('never logs the auth service or token material (nothing secret is involved, but the log is checked like every suite)', () => {
    expect(op.logs()).not.toMatch(/Bearer [A-Za-z0-9]/);
  });
});
