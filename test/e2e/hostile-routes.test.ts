// Routes that reach for what is not theirs, against the real apiserver with
// the Gateway API and Traefik CRDs from their modules, and the operator's
// Route controller as its ServiceAccount: another Route's hostname, the
// platform's own hostnames, names outside or merely resembling the hub's
// domain, an HTTPRoute someone else made, and group names shaped like query
// strings or headers. Each asserts the attacker's condition, that it got no
// HTTPRoute, and the victim's HTTPRoute unchanged (resourceVersion) and
// surviving the attacker's deletion. A platform hostname goes only to the
// Route of the hub's own runtime Service (ownerReferences checked by uid):
// a user's Service on chat.<domain>, one carrying a copy of the hub's
// ownerReference, and a Route that names the hub's Service as its owner
// under another name are all refused, and none of them, though older,
// keeps the hub's Route from the hostname.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditEvents, startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installGatewayCrds } from '../../hack/local/gateway-crds.js';
import { installCrds, installRbac } from '../../hack/local/manifests.js';
import { waitFor } from '../../hack/local/process.js';
import { ensureTraefikGatewayClass } from '../../hack/local/traefik.js';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { API, condition, namespace, waitForObject } from '../support/kube.js';
import { applyObject, getObject } from '../support/gateway.js';
import { startOperator, type RunningOperator } from '../support/operator.js';

const NS = 'apps';
const OPERATOR_USER = 'system:serviceaccount:familyhub-system:familyhub-operator';
const HR = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', namespace: NS };
const MW = { apiVersion: 'traefik.io/v1alpha1', kind: 'Middleware', namespace: NS };

let cp: ControlPlane;
let kube: KubeClient;
let op: RunningOperator;

const hub: KubeObject = {
  apiVersion: API, kind: 'FamilyHub', metadata: { name: 'home', namespace: NS },
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
    // chat runs as the hub's own Service (no FamilyHub controller here: the last suite writes what it would).
    runtime: { image: 'ghcr.io/familyhub/runtime:0.1.0', services: { chat: { enabled: true } } },
  },
};
const route = (name: string, spec: Record<string, unknown>): KubeObject => ({
  apiVersion: API, kind: 'Route', metadata: { name, namespace: NS },
  spec: { familyHubRef: { name: 'home' }, backendRef: { name: 'app', port: 8080 }, ...spec },
});
const apply = (o: KubeObject) => kube.apply(o, { fieldManager: 'hostile-user' });
const refused = (type: string, reason: string) => (o: KubeObject) =>
  condition(o, type)?.status === 'False' && condition(o, type)?.reason === reason && o.status?.observedGeneration === o.metadata.generation;
const waitRoute = (name: string, what: string, pred: (o: KubeObject) => boolean) => waitForObject(kube, { kind: 'Route', namespace: NS, name }, what, pred, 30_000);

const auditMark = () => readAuditEvents(cp.auditLogPath).length;
/** Operator writes (not reads, Events or leases) since `mark`, except to the attacker's own status. */
function foreignWrites(mark: number, attacker: string): string[] {
  return readAuditEvents(cp.auditLogPath).slice(mark)
    .filter((e) => e.user.username === OPERATOR_USER && !['get', 'list', 'watch'].includes(e.verb))
    .filter((e) => e.objectRef?.resource !== 'leases' && e.objectRef?.resource !== 'events')
    .filter((e) => !(e.objectRef?.resource === 'routes' && e.objectRef?.name === attacker))
    .map((e) => `${e.verb} ${e.objectRef?.resource} ${e.objectRef?.name}`);
}

/** Deletes a Route and returns once the garbage collector has processed it (a sentinel it owns is gone). */
async function deleteAndCollect(name: string): Promise<void> {
  const r = (await kube.get(API, 'Route', NS, name))!;
  await kube.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${name}-gc-sentinel`, namespace: NS, ownerReferences: [{ apiVersion: API, kind: 'Route', name, uid: r.metadata.uid! }] } });
  await kube.delete(API, 'Route', NS, name);
  await waitFor(`${name}'s dependents collected`, async () => !(await kube.get('v1', 'ConfigMap', NS, `${name}-gc-sentinel`)), { timeoutMs: 90_000 });
}

beforeAll(async () => {
  cp = await startControlPlane();
  kube = new KubeClient(cp.kubeConfig);
  await installCrds(cp.kubeConfig);
  await installGatewayCrds(cp.kubeConfig, ['gateway-api', 'traefik']);
  await installRbac(cp.kubeConfig);
  await ensureTraefikGatewayClass(kube);
  await Promise.all([namespace(kube, NS), namespace(kube, 'gateway')]);
  await apply(hub);
  op = await startOperator({
    kubeconfigPath: await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator'),
    name: 'operator-hostile-routes',
    env: { FAMILYHUB_CONTROLLERS: 'route', FAMILYHUB_LEADER_ELECTION: 'false' },
  });
  await apply(route('photos', { hostname: 'photos.family.test', auth: { requiredGroups: ['parents'] } }));
  await waitRoute('photos', 'served (waiting for a gateway)', (o) => condition(o, 'HostnameAccepted')?.status === 'True');
  await waitFor('victim HTTPRoute', async () => !!(await getObject(kube, { ...HR, name: 'photos' })));
  // creationTimestamp has second resolution: attackers are strictly newer.
  await new Promise((r) => setTimeout(r, 1100));
});

afterAll(async () => {
  await op?.stop();
  await cp?.stop();
});

describe('a Route reaching for a hostname that is not its own', () => {
  it('another Route\'s hostname and path: Conflict naming the older Route, no HTTPRoute; the victim\'s survives the attacker\'s deletion unchanged', async () => {
    const before = (await getObject(kube, { ...HR, name: 'photos' }))!;
    const mark = auditMark();
    await apply(route('photos-2', { hostname: 'photos.family.test', auth: { required: false } }));
    const o = await waitRoute('photos-2', 'Conflict', refused('HostnameAccepted', 'Conflict'));
    expect(condition(o, 'HostnameAccepted')?.message).toContain(`already claimed by the older Route ${NS}/photos`);
    expect(await getObject(kube, { ...HR, name: 'photos-2' })).toBeUndefined();
    expect(foreignWrites(mark, 'photos-2')).toEqual([]);
    await deleteAndCollect('photos-2');
    const after = (await getObject(kube, { ...HR, name: 'photos' }))!;
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    expect(after.spec).toEqual(before.spec);
  });

  it.each([
    ['the login service', 'auth.family.test', 'HostnameReserved', /login service/],
    ['the identity provider', 'id.family.test', 'HostnameReserved', /identity provider/],
    ['the chat service', 'chat.family.test', 'HostnameReserved', /chat service/],
    ['outside the domain', 'bank.example.org', 'HostnameOutsideDomain', /not family\.test or a subdomain/],
    ['a suffix look-alike of the domain', 'evilfamily.test', 'HostnameOutsideDomain', /not family\.test or a subdomain/],
    ['the domain as a prefix of another', 'photos.family.test.evil.example', 'HostnameOutsideDomain', /not family\.test or a subdomain/],
  ] as const)('%s (%s): %s, no HTTPRoute', async (_what, hostname, reason, message) => {
    const name = `h-${hostname.replace(/\./g, '-')}`.slice(0, 50);
    const mark = auditMark();
    await apply(route(name, { hostname, auth: { required: false } }));
    const o = await waitRoute(name, reason, refused('HostnameAccepted', reason));
    expect(condition(o, 'HostnameAccepted')?.message).toMatch(message);
    expect(await getObject(kube, { ...HR, name })).toBeUndefined();
    expect(foreignWrites(mark, name)).toEqual([]);
    await kube.delete(API, 'Route', NS, name);
  });
});

describe('children that are someone else\'s', () => {
  it('an HTTPRoute of the same name made by someone else: ChildConflict, theirs unchanged', async () => {
    const theirs = await applyObject(kube, {
      apiVersion: HR.apiVersion, kind: 'HTTPRoute', metadata: { name: 'gallery', namespace: NS },
      spec: { hostnames: ['gallery.family.test'], rules: [{ backendRefs: [{ name: 'theirs', port: 80 }] }] },
    }, 'someone-else');
    await apply(route('gallery', { hostname: 'gallery.family.test', auth: { required: false } }));
    const o = await waitRoute('gallery', 'ChildConflict', (x) => condition(x, 'GatewayAccepted')?.reason === 'ChildConflict');
    expect(condition(o, 'GatewayAccepted')?.message).toContain(`HTTPRoute ${NS}/gallery already exists and is not managed by this object`);
    await deleteAndCollect('gallery');
    const after = (await getObject(kube, { ...HR, name: 'gallery' }))!;
    expect(after.metadata.resourceVersion).toBe(theirs.metadata.resourceVersion);
    expect(after.metadata.ownerReferences).toBeUndefined();
  });
});

describe('a Middleware of the same name made by someone else', () => {
  it('ChildConflict before anything is written: no HTTPRoute that would send traffic through their filter', async () => {
    const theirs = await applyObject(kube, {
      apiVersion: MW.apiVersion, kind: 'Middleware', metadata: { name: 'vault-auth', namespace: NS },
      spec: { headers: { customRequestHeaders: { 'X-Forwarded-User': 'admin' } } },
    }, 'someone-else');
    await apply(route('vault', { hostname: 'vault-app.family.test' }));
    const o = await waitRoute('vault', 'ChildConflict', (x) => condition(x, 'GatewayAccepted')?.reason === 'ChildConflict');
    expect(condition(o, 'GatewayAccepted')?.message).toContain(`Middleware ${NS}/vault-auth already exists and is not managed by this object`);
    expect(await getObject(kube, { ...HR, name: 'vault' })).toBeUndefined();
    await deleteAndCollect('vault');
    expect((await getObject(kube, { ...MW, name: 'vault-auth' }))!.metadata.resourceVersion).toBe(theirs.metadata.resourceVersion);
  });
});

describe('group names shaped like query strings and headers', () => {
  it('reach the forward-auth address encoded, as one value each', async () => {
    await apply(route('tricky', { hostname: 'tricky.family.test', auth: { requiredGroups: ['kids&groups=admins', 'a\r\nX-Forwarded-User: admin'] } }));
    await waitFor('tricky Middleware', async () => !!(await getObject(kube, { ...MW, name: 'tricky-auth' })), { timeoutMs: 30_000 });
    const address: string = (await getObject(kube, { ...MW, name: 'tricky-auth' }))!.spec.forwardAuth.address;
    const url = new URL(address);
    expect(url.searchParams.getAll('groups')).toEqual(['a\r\nX-Forwarded-User: admin,kids&groups=admins']);
    expect(address).not.toMatch(/[\r\n]/);
    expect(address).not.toContain('&groups=admins');
  });
});

describe('a platform hostname and the hub\'s own runtime Service', () => {
  it('a user\'s Service on chat.<domain> is refused, also with the hub\'s ownerReference copied onto it; the hub\'s chat Service\'s Route gets the hostname though theirs are older', async () => {
    const h = (await kube.get(API, 'FamilyHub', NS, 'home'))!;
    const hubRef = { apiVersion: API, kind: 'FamilyHub', name: 'home', uid: h.metadata.uid!, controller: true };
    const service = (name: string, ownerReferences?: NonNullable<KubeObject['metadata']['ownerReferences']>): KubeObject => ({
      apiVersion: API, kind: 'Service', metadata: { name, namespace: NS, ...(ownerReferences ? { ownerReferences } : {}) },
      spec: { familyHubRef: { name: 'home' }, image: 'ghcr.io/someone/app:1', port: 8080, host: 'chat.family.test' },
    });
    // What the Service controller writes for a Service: a Route of the same name, controlled by it.
    const routeOf = (name: string, owner: KubeObject): KubeObject => {
      const r = route(name, { hostname: 'chat.family.test', auth: { required: false }, backendRef: { name: owner.metadata.name, port: 8080 } });
      return { ...r, metadata: { ...r.metadata, ownerReferences: [{ apiVersion: API, kind: 'Service', name: owner.metadata.name, uid: owner.metadata.uid!, controller: true }] } };
    };
    const mine = await apply(service('my-chat'));
    const forged = await apply(service('forged-chat', [hubRef]));
    await apply(routeOf('my-chat', mine));
    await apply(routeOf('forged-chat', forged));
    for (const name of ['my-chat', 'forged-chat']) {
      const o = await waitRoute(name, 'HostnameReserved', refused('HostnameAccepted', 'HostnameReserved'));
      expect(condition(o, 'HostnameAccepted')?.message).toMatch(/reserved for the chat service/);
      expect(await getObject(kube, { ...HR, name })).toBeUndefined();
    }
    await new Promise((r) => setTimeout(r, 1100));

    // The FamilyHub controller's Service for runtime.services.chat: controlled by the hub, by uid.
    const own = await kube.apply(service('home-chat', [hubRef]), { fieldManager: 'familyhub-operator' });
    // A Route naming the hub's Service as its controller, under a name that Service never writes.
    await apply(routeOf('chat-takeover', own));
    await waitRoute('chat-takeover', 'HostnameReserved', refused('HostnameAccepted', 'HostnameReserved'));
    expect(await getObject(kube, { ...HR, name: 'chat-takeover' })).toBeUndefined();

    await kube.apply(routeOf('home-chat', own), { fieldManager: 'familyhub-operator' });
    const ok = await waitRoute('home-chat', 'HostnameAccepted=True', (o) => condition(o, 'HostnameAccepted')?.status === 'True');
    expect(condition(ok, 'HostnameAccepted')?.reason).toBe('Accepted');
    await waitFor('the hub\'s HTTPRoute', async () => !!(await getObject(kube, { ...HR, name: 'home-chat' })));
    expect((await getObject(kube, { ...HR, name: 'home-chat' }))!.spec.hostnames).toEqual(['chat.family.test']);
    // The attackers stay refused with the platform's Route in place.
    for (const name of ['my-chat', 'forged-chat', 'chat-takeover']) {
      expect(condition((await kube.get(API, 'Route', NS, name))!, 'HostnameAccepted')?.reason).toBe('HostnameReserved');
    }
    for (const name of ['my-chat', 'forged-chat', 'home-chat']) await kube.delete(API, 'Service', NS, name);
  });
});
