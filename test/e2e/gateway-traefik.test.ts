// A real Traefik (built from its pinned module) serving hand-written Gateway
// API objects from the test apiserver: traffic reaches a backend process in
// a network namespace through an EndpointSlice; Traefik itself writes the
// HTTPRoute's parent status; an ExtensionRef Middleware (kubernetescrd
// provider) acts on requests, a dangling one is not served; a deleted HTTPRoute
// stops being served.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { installGatewayCrds } from '../../hack/local/gateway-crds.js';
import { publishBackend, startNetnsBackend, type NetnsBackend } from '../../hack/local/netns-backend.js';
import { waitFor } from '../../hack/local/process.js';
import { startTraefik, type Traefik } from '../../hack/local/traefik.js';
import { KubeClient } from '../../src/core/kube-client.js';
import { routeAcceptance } from '../../src/gateway/gateway-api/objects.js';
import { namespace } from '../support/kube.js';
import { applyObject, deleteObject, gatewayRequest, getObject } from '../support/gateway.js';
import { prebuilt } from '../support/prebuilt.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

let cp: ControlPlane;
let kube: KubeClient;
let traefik: Traefik;
let backend: NetnsBackend;
const NS = 'apps';
const GW = { name: 'family', namespace: 'gateway' };
const HR = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', namespace: NS };

const httpRoute = (name: string, host: string, filters?: unknown[]) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name, namespace: NS },
  spec: {
    parentRefs: [{ name: GW.name, namespace: GW.namespace }],
    hostnames: [host],
    rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], ...(filters ? { filters } : {}), backendRefs: [{ name: 'echo', port: 80 }] }],
  },
});

const get = (host: string, path = '/') => gatewayRequest({ port: traefik.httpPort, host, path });

beforeAll(async () => {
  cp = await startControlPlane({ audit: false });
  kube = new KubeClient(cp.kubeConfig);
  await installGatewayCrds(cp.kubeConfig, ['gateway-api', 'traefik']);
  await Promise.all([namespace(kube, NS), namespace(kube, GW.namespace)]);
  [traefik, backend] = await Promise.all([startTraefik(cp), startNetnsBackend({ name: 'echo' })]);
  await publishBackend(kube, backend, { namespace: NS, name: 'echo' });
  await applyObject(kube, {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: GW,
    spec: { gatewayClassName: 'traefik', listeners: [{ name: 'http', protocol: 'HTTP', port: traefik.httpPort, allowedRoutes: { namespaces: { from: 'All' } } }] },
  });
});

afterAll(async () => {
  await traefik?.stop();
  await backend?.stop();
  await cp?.stop();
});

describe('Traefik v3.6 serving Gateway API objects', () => {
  it('the Gateway is programmed by Traefik', async () => {
    await waitFor('Gateway Programmed', async () => {
      const g = await getObject(kube, { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', ...GW });
      return g?.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Programmed' && c.status === 'True') ?? false;
    }, { timeoutMs: 60_000 });
  });

  it('an HTTPRoute serves the netns backend; Traefik writes Accepted + ResolvedRefs', async () => {
    await applyObject(kube, httpRoute('echo', 'echo.family.test'));
    let res = await get('echo.family.test', '/hello?x=1');
    await waitFor('echo route served', async () => (res = await get('echo.family.test', '/hello?x=1')).status === 200, { timeoutMs: 60_000 });
    expect(res.json()).toMatchObject({ backend: 'echo', path: '/hello?x=1', host: 'echo.family.test' });
    // Another hostname is not routed.
    expect((await get('other.family.test')).status).toBe(404);
    const target = { gateway: GW, identity: { issuer: '', jwksUri: '', audience: '', groupsClaim: '' }, authService: { url: 'http://x' } };
    await waitFor('HTTPRoute accepted', async () => routeAcceptance(await getObject(kube, { ...HR, name: 'echo' }), target).state === 'Accepted', { timeoutMs: 30_000 });
    const hr = await getObject(kube, { ...HR, name: 'echo' });
    expect(hr!.status.parents[0].controllerName).toBe('traefik.io/gateway-controller');
  });

  it('a backend Service that does not exist: ResolvedRefs False from Traefik, and no traffic', async () => {
    const broken = httpRoute('missing', 'missing.family.test');
    broken.spec.rules[0]!.backendRefs = [{ name: 'nope', port: 80 }];
    await applyObject(kube, broken);
    const target = { gateway: GW, identity: { issuer: '', jwksUri: '', audience: '', groupsClaim: '' }, authService: { url: 'http://x' } };
    await waitFor('ResolvedRefs False', async () => routeAcceptance(await getObject(kube, { ...HR, name: 'missing' }), target).state === 'Rejected', { timeoutMs: 30_000 });
    expect((await get('missing.family.test')).status).not.toBe(200);
  });

  it('an ExtensionRef Middleware acts on requests; a reference to a missing one is never served without it (v3.6.12 answers 404)', async () => {
    await applyObject(kube, {
      apiVersion: 'traefik.io/v1alpha1', kind: 'Middleware', metadata: { name: 'tag', namespace: NS },
      spec: { headers: { customRequestHeaders: { 'X-Through-Middleware': 'yes' } } },
    });
    await applyObject(kube, httpRoute('tagged', 'tagged.family.test', [{ type: 'ExtensionRef', extensionRef: { group: 'traefik.io', kind: 'Middleware', name: 'tag' } }]));
    let res = await get('tagged.family.test');
    await waitFor('middleware route served', async () => (res = await get('tagged.family.test')).status === 200, { timeoutMs: 60_000 });
    expect(res.json().headers['x-through-middleware']).toBe('yes');

    // A filter Traefik cannot resolve must never mean "no filter": the route
    // answers an error and the backend is not reached.
    await applyObject(kube, httpRoute('dangling', 'dangling.family.test', [{ type: 'ExtensionRef', extensionRef: { group: 'traefik.io', kind: 'Middleware', name: 'does-not-exist' } }]));
    // Traefik has processed it once it reports on it.
    await waitFor('dangling HTTPRoute processed', async () => !!(await getObject(kube, { ...HR, name: 'dangling' }))?.status?.parents?.length, { timeoutMs: 30_000 });
    // Traefik applies a provider's configuration as a whole: once a route
    // written after it is served, the configuration holding it is live.
    await applyObject(kube, httpRoute('after-dangling', 'after-dangling.family.test', []));
    await waitFor('a route written later served', async () => (await get('after-dangling.family.test')).status === 200, { timeoutMs: 60_000 });
    const dangling = await get('dangling.family.test');
    expect(dangling.status).toBeGreaterThanOrEqual(400);
    expect(dangling.headers['x-backend']).toBeUndefined();
    // Traefik's own API says why (what a failing suite's diagnostics print): the router is disabled for the missing middleware.
    expect(await traefik.diagnostics('dangling')).toMatch(/routers .*dangling.*: disabled.*does-not-exist/);
  });

  it('a deleted HTTPRoute is no longer served', async () => {
    await deleteObject(kube, { ...HR, name: 'echo' });
    await waitFor('echo route gone', async () => (await get('echo.family.test')).status === 404, { timeoutMs: 30_000 });
  });
});
