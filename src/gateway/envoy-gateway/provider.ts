// Envoy Gateway: a SecurityPolicy and a BackendTrafficPolicy targeting the
// Route's HTTPRoute. Two ways to check identity:
// - jwt: Envoy validates the bearer token itself (issuer, audiences, the
//   issuer's JWKS) and copies claims into the identity headers; required
//   groups become an authorization rule on the groups claim. E-mail domains
//   are left to the IdP (Keycloak's user profile already refuses others), and
//   browsers get a 401 rather than a login page.
// - extAuth: Envoy asks the platform's auth service, exactly like Traefik's
//   ForwardAuth (session cookie, domain check, login redirect).
// No Envoy proxy runs on these machines: the objects are proven against
// Envoy Gateway's own CRDs in the test apiserver, traffic with Traefik.
import type { KubeObject } from '../../core/reconciler.js';
import { childName, httpRoute } from '../gateway-api/objects.js';
import { GATEWAY_API_GROUP, GATEWAY_API_VERSION, IDENTITY_HEADERS, type GatewayProvider, type GatewayTarget, type RouteIntent } from '../types.js';

export const ENVOY_GATEWAY_GROUP = 'gateway.envoyproxy.io';
export const ENVOY_GATEWAY_API_VERSION = `${ENVOY_GATEWAY_GROUP}/v1alpha1`;
export const ENVOY_GATEWAY_CONTROLLER = 'gateway.envoyproxy.io/gatewayclass-controller';
const JWT_PROVIDER = 'familyhub';
/** Envoy Gateway accepts at most this many audiences per JWT provider. */
const MAX_AUDIENCES = 8;

export type EnvoyAuthMode = 'jwt' | 'extAuth';

const targetRefs = (route: RouteIntent) => [{ group: GATEWAY_API_GROUP, kind: 'HTTPRoute', name: route.name }];

/**
 * The ext_authz path: Envoy appends the original request path, so the
 * route's required groups travel as one path segment before it.
 */
export function extAuthPath(route: RouteIntent): string {
  const groups = [...route.auth.requiredGroups].sort().map(encodeURIComponent).join(',');
  return groups ? `/auth/envoy/groups/${groups}` : '/auth/envoy';
}

export function securityPolicy(route: RouteIntent, target: GatewayTarget, mode: EnvoyAuthMode): KubeObject {
  const metadata = { name: childName(route.name, 'security'), namespace: route.namespace };
  if (mode === 'extAuth') {
    const svc = target.authService.service;
    if (!svc) throw new Error('Envoy Gateway extAuth needs the auth service as a Kubernetes Service (gateway.authService.serviceRef)');
    return {
      apiVersion: ENVOY_GATEWAY_API_VERSION,
      kind: 'SecurityPolicy',
      metadata,
      spec: {
        targetRefs: targetRefs(route),
        extAuth: {
          http: {
            backendRefs: [{ group: '', kind: 'Service', name: svc.name, namespace: svc.namespace, port: svc.port }],
            path: extAuthPath(route),
            headersToBackend: [IDENTITY_HEADERS.email, IDENTITY_HEADERS.user, IDENTITY_HEADERS.groups],
          },
          failOpen: false,
        },
      },
    };
  }
  const audiences = [...new Set([target.identity.audience, ...route.auth.audiences])];
  if (audiences.length > MAX_AUDIENCES) throw new Error(`Envoy Gateway accepts at most ${MAX_AUDIENCES} audiences per route, got ${audiences.length}`);
  return {
    apiVersion: ENVOY_GATEWAY_API_VERSION,
    kind: 'SecurityPolicy',
    metadata,
    spec: {
      targetRefs: targetRefs(route),
      jwt: {
        providers: [{
          name: JWT_PROVIDER,
          issuer: target.identity.issuer,
          audiences,
          remoteJWKS: { uri: target.identity.jwksUri },
          // Array claims (groups) cannot be copied into headers by Envoy.
          claimToHeaders: [
            { claim: 'email', header: IDENTITY_HEADERS.email },
            { claim: 'sub', header: IDENTITY_HEADERS.user },
          ],
        }],
      },
      ...(route.auth.requiredGroups.length ? {
        authorization: {
          defaultAction: 'Deny',
          rules: [{
            name: 'required-groups',
            action: 'Allow',
            principal: { jwt: { provider: JWT_PROVIDER, claims: [{ name: target.identity.groupsClaim, valueType: 'StringArray', values: [...route.auth.requiredGroups].sort() }] } },
          }],
        },
      } : {}),
    },
  };
}

export function backendTrafficPolicy(route: RouteIntent): KubeObject | undefined {
  if (!route.rateLimit) return undefined;
  // Per person behind the auth check, per client address on public routes.
  const clientSelectors = route.auth.required
    ? [{ headers: [{ name: IDENTITY_HEADERS.email, type: 'Distinct' }] }]
    : [{ sourceCIDR: { type: 'Distinct', value: '0.0.0.0/0' } }];
  return {
    apiVersion: ENVOY_GATEWAY_API_VERSION,
    kind: 'BackendTrafficPolicy',
    metadata: { name: childName(route.name, 'traffic'), namespace: route.namespace },
    spec: {
      targetRefs: targetRefs(route),
      rateLimit: { local: { rules: [{ clientSelectors, limit: { requests: route.rateLimit.requests, unit: route.rateLimit.unit } }] } },
    },
  };
}

export function envoyGatewayProvider(mode: EnvoyAuthMode = 'jwt'): GatewayProvider {
  return {
    name: 'envoy-gateway',
    controllerName: ENVOY_GATEWAY_CONTROLLER,
    childKinds: [
      { apiVersion: GATEWAY_API_VERSION, kind: 'HTTPRoute', plural: 'httproutes' },
      { apiVersion: ENVOY_GATEWAY_API_VERSION, kind: 'SecurityPolicy', plural: 'securitypolicies' },
      { apiVersion: ENVOY_GATEWAY_API_VERSION, kind: 'BackendTrafficPolicy', plural: 'backendtrafficpolicies' },
    ],
    desired(route, target) {
      const btp = backendTrafficPolicy(route);
      return [
        httpRoute(route, target),
        ...(route.auth.required ? [securityPolicy(route, target, mode)] : []),
        ...(btp ? [btp] : []),
      ];
    },
    crossNamespaceRefs(route, target) {
      const svc = target.authService.service;
      if (mode !== 'extAuth' || !route.auth.required || !svc || svc.namespace === route.namespace) return [];
      return [{
        from: { group: ENVOY_GATEWAY_GROUP, kind: 'SecurityPolicy', namespace: route.namespace },
        to: { group: '', kind: 'Service', name: svc.name, namespace: svc.namespace },
      }];
    },
  };
}
