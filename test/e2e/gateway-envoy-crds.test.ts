// Every object the gateway providers generate is accepted by the real CRDs
// of its project (Gateway API v1.4 standard channel, Traefik, Envoy Gateway)
// in a real apiserver, with their OpenAPI schemas and CEL rules — and a
// deliberately wrong object is rejected, so these checks can fail.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../../hack/local/controlplane.js';
import { ENVOY_GATEWAY_VERSION, GATEWAY_API_VERSION, installGatewayCrds } from '../../hack/local/gateway-crds.js';
import { KubeClient } from '../../src/core/kube-client.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import { gateway, httpsRedirect, referenceGrant } from '../../src/gateway/gateway-api/objects.js';
import { envoyGatewayProvider } from '../../src/gateway/envoy-gateway/provider.js';
import { traefikProvider } from '../../src/gateway/traefik/provider.js';
import type { GatewayTarget, RouteIntent } from '../../src/gateway/types.js';
import { namespace } from '../support/kube.js';
import { applyObject, getObject } from '../support/gateway.js';

let cp: ControlPlane;
let kube: KubeClient;
const NS = 'apps';

const target: GatewayTarget = {
  gateway: { name: 'family', namespace: 'gateway', sectionName: 'https' },
  identity: { issuer: 'https://id.family.test/realms/family', jwksUri: 'https://id.family.test/realms/family/protocol/openid-connect/certs', audience: 'familyhub', groupsClaim: 'groups' },
  authService: { url: 'http://familyhub-auth.familyhub-system.svc:8080', service: { name: 'familyhub-auth', namespace: 'familyhub-system', port: 8080 } },
};

// The shapes a Route can take: public, logged-in, groups, audiences, limits, long names, sub-paths.
const routes: RouteIntent[] = [
  { name: 'public', namespace: NS, hostname: 'www.family.test', pathPrefix: '/', backend: { name: 'web', port: 80 }, auth: { required: false, audiences: [], requiredGroups: [] } },
  { name: 'public-limited', namespace: NS, hostname: 'www.family.test', pathPrefix: '/api', backend: { name: 'web', port: 80 }, auth: { required: false, audiences: [], requiredGroups: [] }, rateLimit: { requests: 100, unit: 'Minute' } },
  { name: 'photos', namespace: NS, hostname: 'photos.family.test', pathPrefix: '/', backend: { name: 'photos', port: 8080 }, auth: { required: true, audiences: [], requiredGroups: [] } },
  { name: 'parents', namespace: NS, hostname: 'family.test', pathPrefix: '/admin/', backend: { name: 'admin', port: 9000 }, auth: { required: true, audiences: ['notes', 'calendar'], requiredGroups: ['parents', 'admins'] }, rateLimit: { requests: 5, unit: 'Second' } },
  { name: `${'long-'.repeat(48)}route`, namespace: NS, hostname: 'long.family.test', pathPrefix: '/x', backend: { name: 'long', port: 1 }, auth: { required: true, audiences: [], requiredGroups: ['kids'] }, rateLimit: { requests: 1_000_000, unit: 'Hour' } },
];

async function accepted(obj: KubeObject): Promise<void> {
  await applyObject(kube, obj);
  const back = await getObject(kube, { apiVersion: obj.apiVersion!, kind: obj.kind!, namespace: obj.metadata.namespace, name: obj.metadata.name });
  expect(back?.spec, `${obj.kind} ${obj.metadata.name} read back`).toMatchObject(obj.spec);
}

async function rejected(obj: KubeObject): Promise<string> {
  const err = await applyObject(kube, obj).then(() => undefined, (e: Error) => e);
  expect(err, `${obj.kind} ${obj.metadata.name} should be rejected`).toBeInstanceOf(Error);
  return err!.message;
}

beforeAll(async () => {
  cp = await startControlPlane({ audit: false });
  kube = new KubeClient(cp.kubeConfig);
  await installGatewayCrds(cp.kubeConfig, ['gateway-api', 'traefik', 'envoy-gateway']);
  await namespace(kube, NS);
  await namespace(kube, 'gateway');
});

afterAll(async () => {
  await cp?.stop();
});

describe(`generated objects against the projects' CRDs (Gateway API ${GATEWAY_API_VERSION}, Envoy Gateway ${ENVOY_GATEWAY_VERSION})`, () => {
  it('Gateway and HTTPS redirect route', async () => {
    const g = { name: 'family', namespace: 'gateway', className: 'traefik', httpPort: 80, httpsPort: 443, certificateSecretName: 'family-tls' };
    await accepted(gateway(g));
    await accepted(httpsRedirect(g));
    await accepted(httpsRedirect({ ...g, name: 'family-alt', httpsPort: 8443 }));
  });

  it('Envoy Gateway (jwt): HTTPRoute, SecurityPolicy, BackendTrafficPolicy for every route shape', async () => {
    const objs = routes.flatMap((r) => envoyGatewayProvider('jwt').desired(r, target));
    expect(objs.filter((o) => o.kind === 'SecurityPolicy')).toHaveLength(3);
    expect(objs.filter((o) => o.kind === 'BackendTrafficPolicy')).toHaveLength(3);
    for (const o of objs) await accepted(o);
  });

  it('Envoy Gateway (extAuth): SecurityPolicy for every route shape', async () => {
    const objs = routes.flatMap((r) => envoyGatewayProvider('extAuth').desired({ ...r, name: `ext-${r.name}`.slice(0, 240) }, target));
    for (const o of objs) await accepted(o);
  });

  it('ReferenceGrant for extAuth to the auth Service in another namespace (Gateway API)', async () => {
    await namespace(kube, 'familyhub-system');
    const refs = routes.flatMap((r) => envoyGatewayProvider('extAuth').crossNamespaceRefs(r, target));
    // Every Route that requires login in "apps" refers to the one Service: one grant.
    expect(refs.length).toBe(3);
    const grants = new Map(refs.map((ref) => referenceGrant(ref)).map((g) => [g.metadata.name, g]));
    expect(grants.size).toBe(1);
    for (const g of grants.values()) await accepted(g);
  });

  it('Traefik: HTTPRoute with ExtensionRef filters and Middlewares for every route shape', async () => {
    const objs = routes.flatMap((r) => traefikProvider.desired({ ...r, name: `t-${r.name}`.slice(0, 240) }, target));
    expect(objs.filter((o) => o.kind === 'Middleware')).toHaveLength(6);
    for (const o of objs) await accepted(o);
  });

  it('a deliberately wrong object of each kind is rejected with the CRD\'s message', async () => {
    const [httpRouteObj, sp, btp] = envoyGatewayProvider('jwt').desired({ ...routes[3]!, name: 'wrong' }, target);
    // CEL rule of SecurityPolicy: authorization on JWT claims needs a jwt section.
    expect(await rejected({ ...sp!, spec: { ...sp!.spec, jwt: undefined } })).toMatch(/jwt must be defined/);
    // Enum of the rate limit unit.
    const badUnit = structuredClone(btp!);
    badUnit.spec.rateLimit.local.rules[0].limit.unit = 'Fortnight';
    expect(await rejected(badUnit)).toMatch(/unit/);
    // Envoy Gateway policies only target Gateway API kinds.
    expect(await rejected({ ...sp!, spec: { ...sp!.spec, targetRefs: [{ group: 'apps', kind: 'Deployment', name: 'x' }] } })).toMatch(/targetRefs/);
    // Gateway API: a path prefix must start with "/".
    const badPath = structuredClone(httpRouteObj!);
    badPath.spec.rules[0].matches[0].path.value = 'admin';
    expect(await rejected(badPath)).toMatch(/path/i);
    // Traefik: RateLimit average must be an integer (its CRD's schema).
    const [, , rl] = traefikProvider.desired({ ...routes[3]!, name: 'wrong-t' }, target);
    expect(await rejected({ ...rl!, spec: { rateLimit: { ...rl!.spec.rateLimit, burst: 'lots' } } })).toMatch(/burst/);
    // Gateway API: a ReferenceGrant's source namespace is a DNS label.
    const grant = referenceGrant(envoyGatewayProvider('extAuth').crossNamespaceRefs(routes[2]!, target)[0]!);
    expect(await rejected({ ...grant, metadata: { ...grant.metadata, name: 'wrong-grant' }, spec: { ...grant.spec, from: [{ group: 'gateway.envoyproxy.io', kind: 'SecurityPolicy', namespace: 'Not_A_Namespace' }] } })).toMatch(/namespace/);
  });
});
