import { describe, expect, it } from 'vitest';
import { childName, gateway, grantPermits, httpRoute, httpsRedirect, referenceGrant, routeAcceptance } from '../../src/gateway/gateway-api/objects.js';
import { envoyGatewayProvider, extAuthPath } from '../../src/gateway/envoy-gateway/provider.js';
import { providerByName, providerNameForController, type GatewayTarget, type RouteIntent } from '../../src/gateway/index.js';
import { traefikProvider } from '../../src/gateway/traefik/provider.js';

const route = (extra: Partial<RouteIntent> = {}): RouteIntent => ({
  name: 'photos',
  namespace: 'apps',
  hostname: 'photos.family.test',
  pathPrefix: '/',
  backend: { name: 'photos', port: 8080 },
  auth: { required: true, audiences: [], requiredGroups: [] },
  ...extra,
});
const target: GatewayTarget = {
  gateway: { name: 'family', namespace: 'gateway', sectionName: 'https' },
  identity: { issuer: 'https://id.family.test', jwksUri: 'https://id.family.test/jwks', audience: 'familyhub', groupsClaim: 'groups' },
  authService: { url: 'http://auth.familyhub-system.svc:8080', service: { name: 'auth', namespace: 'familyhub-system', port: 8080 } },
};

describe('HTTPRoute', () => {
  it('has the parent, hostname, path prefix and backend of the Route', () => {
    const r = httpRoute(route({ pathPrefix: '/api' }), target);
    expect(r.metadata).toEqual({ name: 'photos', namespace: 'apps' });
    expect(r.spec.parentRefs).toEqual([{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'family', namespace: 'gateway', sectionName: 'https' }]);
    expect(r.spec.hostnames).toEqual(['photos.family.test']);
    expect(r.spec.rules[0].matches).toEqual([{ path: { type: 'PathPrefix', value: '/api' } }]);
    expect(r.spec.rules[0].backendRefs).toEqual([{ group: '', kind: 'Service', name: 'photos', port: 8080, weight: 1 }]);
    expect(r.spec.rules[0].filters).toBeUndefined();
  });

  it('child names stay within 253 characters and stay distinct for long Route names', () => {
    const a = childName(`${'a'.repeat(250)}x`, 'ratelimit');
    const b = childName(`${'a'.repeat(250)}y`, 'ratelimit');
    expect(a.length).toBeLessThanOrEqual(253);
    expect(a).not.toBe(b);
    expect(a.endsWith('-ratelimit')).toBe(true);
    expect(childName('photos', 'auth')).toBe('photos-auth');
  });
});

describe('Traefik provider', () => {
  it('chains ForwardAuth then RateLimit through ExtensionRef filters', () => {
    const objs = traefikProvider.desired(route({ auth: { required: true, audiences: ['notes'], requiredGroups: ['parents', 'admins'] }, rateLimit: { requests: 5, unit: 'Minute' } }), target);
    expect(objs.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['HTTPRoute/photos', 'Middleware/photos-auth', 'Middleware/photos-ratelimit']);
    expect(objs[0]!.spec.rules[0].filters).toEqual([
      { type: 'ExtensionRef', extensionRef: { group: 'traefik.io', kind: 'Middleware', name: 'photos-auth' } },
      { type: 'ExtensionRef', extensionRef: { group: 'traefik.io', kind: 'Middleware', name: 'photos-ratelimit' } },
    ]);
    const fa = objs[1]!.spec.forwardAuth;
    expect(fa.address).toBe('http://auth.familyhub-system.svc:8080/auth/verify?groups=admins%2Cparents&aud=notes');
    expect(fa.trustForwardHeader).toBe(false);
    expect(fa.authResponseHeaders).toEqual(['X-Auth-Request-Email', 'X-Auth-Request-User', 'X-Auth-Request-Groups']);
    expect(fa.authRequestHeaders).toEqual(['Authorization', 'Cookie', 'Accept']);
    expect(fa.maxResponseBodySize).toBe(16384);
    expect(objs[2]!.spec.rateLimit).toEqual({ average: 5, period: '1m', burst: 5, sourceCriterion: { requestHeaderName: 'X-Auth-Request-Email' } });
  });

  it('an auth service over TLS: the CA Secret is passed to ForwardAuth (HTTP/2 to the gateway listener); without one, no tls block', () => {
    const tlsTarget = { ...target, authService: { url: 'https://10.0.0.9:8443', caSecretName: 'auth-gateway-ca' } };
    const fa = traefikProvider.desired(route(), tlsTarget)[1]!.spec.forwardAuth;
    expect(fa.address).toBe('https://10.0.0.9:8443/auth/verify');
    expect(fa.tls).toEqual({ caSecret: 'auth-gateway-ca' });
    expect(traefikProvider.desired(route(), target)[1]!.spec.forwardAuth.tls).toBeUndefined();
  });

  it('a public route without a limit has no middleware at all', () => {
    const objs = traefikProvider.desired(route({ auth: { required: false, audiences: [], requiredGroups: [] } }), target);
    expect(objs).toHaveLength(1);
    expect(objs[0]!.spec.rules[0].filters).toBeUndefined();
  });

  it('a public route is limited per client address', () => {
    const objs = traefikProvider.desired(route({ auth: { required: false, audiences: [], requiredGroups: [] }, rateLimit: { requests: 2, unit: 'Second' } }), target);
    expect(objs[1]!.spec.rateLimit).toEqual({ average: 2, period: '1s', burst: 2 });
  });
});

describe('Envoy Gateway provider', () => {
  it('jwt: issuer, audiences, JWKS and claim headers from the hub; groups as an authorization rule', () => {
    const objs = envoyGatewayProvider('jwt').desired(route({ auth: { required: true, audiences: ['notes'], requiredGroups: ['parents'] }, rateLimit: { requests: 10, unit: 'Second' } }), target);
    expect(objs.map((o) => o.kind)).toEqual(['HTTPRoute', 'SecurityPolicy', 'BackendTrafficPolicy']);
    const sp = objs[1]!.spec;
    expect(sp.targetRefs).toEqual([{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', name: 'photos' }]);
    expect(sp.jwt.providers[0]).toMatchObject({ issuer: 'https://id.family.test', audiences: ['familyhub', 'notes'], remoteJWKS: { uri: 'https://id.family.test/jwks' } });
    expect(sp.authorization).toEqual({
      defaultAction: 'Deny',
      rules: [{ name: 'required-groups', action: 'Allow', principal: { jwt: { provider: 'familyhub', claims: [{ name: 'groups', valueType: 'StringArray', values: ['parents'] }] } } }],
    });
    expect(objs[2]!.spec.rateLimit.local.rules[0]).toEqual({ clientSelectors: [{ headers: [{ name: 'X-Auth-Request-Email', type: 'Distinct' }] }], limit: { requests: 10, unit: 'Second' } });
  });

  it('jwt without required groups has no authorization block (any family member)', () => {
    const sp = envoyGatewayProvider('jwt').desired(route(), target)[1]!;
    expect(sp.spec.authorization).toBeUndefined();
  });

  it('extAuth: the auth service Service as backend, groups in the path', () => {
    const r = route({ auth: { required: true, audiences: [], requiredGroups: ['kids', 'a/b'] } });
    expect(extAuthPath(r)).toBe('/auth/envoy/groups/a%2Fb,kids');
    const sp = envoyGatewayProvider('extAuth').desired(r, target)[1]!;
    expect(sp.spec.extAuth.http.backendRefs).toEqual([{ group: '', kind: 'Service', name: 'auth', namespace: 'familyhub-system', port: 8080 }]);
    expect(sp.spec.extAuth.failOpen).toBe(false);
  });

  it('extAuth without a Service for the auth service is refused, not silently open', () => {
    expect(() => envoyGatewayProvider('extAuth').desired(route(), { ...target, authService: { url: 'http://127.0.0.1:1' } })).toThrow(/serviceRef/);
  });

  it('extAuth to a Service in another namespace names the reference that needs a ReferenceGrant; same namespace, jwt or public: none', () => {
    const refs = envoyGatewayProvider('extAuth').crossNamespaceRefs(route(), target);
    expect(refs).toEqual([{ from: { group: 'gateway.envoyproxy.io', kind: 'SecurityPolicy', namespace: 'apps' }, to: { group: '', kind: 'Service', name: 'auth', namespace: 'familyhub-system' } }]);
    expect(envoyGatewayProvider('extAuth').crossNamespaceRefs(route({ namespace: 'familyhub-system' }), target)).toEqual([]);
    expect(envoyGatewayProvider('jwt').crossNamespaceRefs(route(), target)).toEqual([]);
    expect(envoyGatewayProvider('extAuth').crossNamespaceRefs(route({ auth: { required: false, audiences: [], requiredGroups: [] } }), target)).toEqual([]);
    expect(traefikProvider.crossNamespaceRefs(route(), target)).toEqual([]);
  });

  it('more audiences than Envoy Gateway accepts is an error', () => {
    const many = Array.from({ length: 8 }, (_, i) => `aud${i}`);
    expect(() => envoyGatewayProvider('jwt').desired(route({ auth: { required: true, audiences: many, requiredGroups: [] } }), target)).toThrow(/at most 8/);
  });
});

describe('provider choice', () => {
  it('by GatewayClass controllerName', () => {
    expect(providerNameForController('traefik.io/gateway-controller')).toBe('traefik');
    expect(providerNameForController('gateway.envoyproxy.io/gatewayclass-controller')).toBe('envoy-gateway');
    expect(providerNameForController('example.com/other')).toBeUndefined();
    expect(providerByName('traefik').name).toBe('traefik');
  });
});

describe('Gateway', () => {
  const g = { name: 'family', namespace: 'gateway', className: 'traefik', httpPort: 8000, httpsPort: 8443, certificateSecretName: 'family-tls' };
  it('HTTPS listener with the certificate; HTTP only redirects to HTTPS on the HTTPS port', () => {
    const gw = gateway(g);
    expect(gw.spec.listeners.map((l: { name: string; protocol: string; port: number }) => `${l.name}:${l.protocol}:${l.port}`)).toEqual(['http:HTTP:8000', 'https:HTTPS:8443']);
    expect(gw.spec.listeners[1].tls.certificateRefs).toEqual([{ group: '', kind: 'Secret', name: 'family-tls' }]);
    const redirect = httpsRedirect(g);
    expect(redirect.spec.parentRefs[0].sectionName).toBe('http');
    expect(redirect.spec.rules[0].filters[0].requestRedirect).toEqual({ scheme: 'https', statusCode: 301, port: 8443 });
    expect(httpsRedirect({ ...g, httpsPort: 443 }).spec.rules[0].filters[0].requestRedirect.port).toBeUndefined();
  });
});

describe('routeAcceptance', () => {
  const observed = (parents: unknown[], generation = 2) => ({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'photos', namespace: 'apps', generation }, status: { parents } });
  const parent = (conditions: unknown[], ref: Record<string, unknown> = { name: 'family', namespace: 'gateway', sectionName: 'https' }) => ({ parentRef: ref, controllerName: 'traefik.io/gateway-controller', conditions });
  const ok = (type: string, generation = 2) => ({ type, status: 'True', reason: type, message: '', observedGeneration: generation });

  it('Accepted and ResolvedRefs for our Gateway at the current generation', () => {
    expect(routeAcceptance(observed([parent([ok('Accepted'), ok('ResolvedRefs')])]), target).state).toBe('Accepted');
  });
  it('no status yet, or only another Gateway\'s, is pending', () => {
    expect(routeAcceptance(observed([]), target)).toMatchObject({ state: 'Pending', reason: 'NotYetAccepted' });
    expect(routeAcceptance(observed([parent([ok('Accepted'), ok('ResolvedRefs')], { name: 'other', namespace: 'gateway' })]), target).state).toBe('Pending');
    expect(routeAcceptance(undefined, target).state).toBe('Pending');
  });
  it('conditions of an older generation do not count', () => {
    expect(routeAcceptance(observed([parent([ok('Accepted', 1), ok('ResolvedRefs', 1)])]), target).state).toBe('Pending');
  });
  it('ResolvedRefs False carries the gateway\'s reason', () => {
    const a = routeAcceptance(observed([parent([ok('Accepted'), { type: 'ResolvedRefs', status: 'False', reason: 'BackendNotFound', message: 'service apps/photos not found', observedGeneration: 2 }])]), target);
    expect(a).toMatchObject({ state: 'Rejected', reason: 'BackendNotFound' });
    expect(a.state === 'Rejected' && a.message).toContain('service apps/photos not found');
  });
});

describe('ReferenceGrant', () => {
  const ref = envoyGatewayProvider('extAuth').crossNamespaceRefs(route(), target)[0]!;

  it('lives in the target namespace and admits the one Service from the SecurityPolicies of the Route namespace', () => {
    const g = referenceGrant(ref);
    expect(g.apiVersion).toBe('gateway.networking.k8s.io/v1beta1');
    expect(g.metadata).toMatchObject({ name: 'familyhub-apps-securitypolicy-auth', namespace: 'familyhub-system', labels: { 'familyhub.dev/grant-from-namespace': 'apps' } });
    expect(g.spec).toEqual({ from: [{ group: 'gateway.envoyproxy.io', kind: 'SecurityPolicy', namespace: 'apps' }], to: [{ group: '', kind: 'Service', name: 'auth' }] });
    expect(grantPermits(g, ref)).toBe(true);
  });

  it('permits by Gateway API rules: namespace, source kind and namespace, target kind and name (no name: every one)', () => {
    const g = referenceGrant(ref);
    expect(grantPermits({ ...g, metadata: { ...g.metadata, namespace: 'other' } }, ref)).toBe(false);
    expect(grantPermits(g, { ...ref, from: { ...ref.from, namespace: 'elsewhere' } })).toBe(false);
    expect(grantPermits(g, { ...ref, from: { ...ref.from, kind: 'HTTPRoute', group: 'gateway.networking.k8s.io' } })).toBe(false);
    expect(grantPermits(g, { ...ref, to: { ...ref.to, name: 'keycloak' } })).toBe(false);
    const anyService = { ...g, spec: { ...g.spec, to: [{ group: '', kind: 'Service' }] } };
    expect(grantPermits(anyService, { ...ref, to: { ...ref.to, name: 'keycloak' } })).toBe(true);
  });
});
