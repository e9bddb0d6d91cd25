// Traefik: the HTTPRoute carries ExtensionRef filters to traefik.io
// Middlewares (served by Traefik's kubernetescrd provider): ForwardAuth to the
// platform's auth service, which passes the identity headers on, then a
// RateLimit keyed by the authenticated user (by client address on public
// routes). Order matters: Traefik runs the filters in the order listed.
import type { KubeObject } from '../../core/reconciler.js';
import type { RateLimit } from '../../crds/route.js';
import { childName, httpRoute, type HTTPRouteFilter } from '../gateway-api/objects.js';
import { GATEWAY_API_VERSION, IDENTITY_HEADERS, forwardAuthUrl, type GatewayProvider, type GatewayTarget, type RouteIntent } from '../types.js';

export const TRAEFIK_API_VERSION = 'traefik.io/v1alpha1';
export const TRAEFIK_CONTROLLER = 'traefik.io/gateway-controller';
/** The auth service's session cookie; a refreshed one must reach the browser. */
export const SESSION_COOKIE = 'familyhub_session';

const PERIOD: Record<RateLimit['unit'], string> = { Second: '1s', Minute: '1m', Hour: '1h' };

function middleware(route: RouteIntent, suffix: string, spec: Record<string, unknown>): KubeObject {
  return {
    apiVersion: TRAEFIK_API_VERSION,
    kind: 'Middleware',
    metadata: { name: childName(route.name, suffix), namespace: route.namespace },
    spec,
  };
}

export function forwardAuthMiddleware(route: RouteIntent, target: GatewayTarget): KubeObject {
  return middleware(route, 'auth', {
    forwardAuth: {
      address: forwardAuthUrl(route, target),
      // Traefik sets X-Forwarded-* itself from the real request.
      trustForwardHeader: false,
      // Only what the auth service reads (Traefik adds X-Forwarded-* itself).
      authRequestHeaders: ['Authorization', 'Cookie', 'Accept'],
      authResponseHeaders: [IDENTITY_HEADERS.email, IDENTITY_HEADERS.user, IDENTITY_HEADERS.groups],
      addAuthCookiesToResponse: [SESSION_COOKIE],
      // The auth service answers small JSON bodies; a bound keeps a broken one from filling memory.
      maxResponseBodySize: 16384,
      // Without its own TLS settings ForwardAuth uses Go's default transport
      // (HTTP/1.1 here, 2 idle connections per host: a new connection for
      // most checks under load); with them, HTTP/2 over one connection.
      ...(target.authService.caSecretName ? { tls: { caSecret: target.authService.caSecretName } } : {}),
    },
  });
}

export function rateLimitMiddleware(route: RouteIntent, limit: RateLimit): KubeObject {
  return middleware(route, 'ratelimit', {
    rateLimit: {
      average: limit.requests,
      period: PERIOD[limit.unit],
      burst: limit.requests,
      // Family members often share one address (home NAT): count per person
      // when the auth middleware before this one has set the header.
      ...(route.auth.required ? { sourceCriterion: { requestHeaderName: IDENTITY_HEADERS.email } } : {}),
    },
  });
}

const extensionRef = (m: KubeObject): HTTPRouteFilter => ({
  type: 'ExtensionRef',
  extensionRef: { group: 'traefik.io', kind: 'Middleware', name: m.metadata.name },
});

export const traefikProvider: GatewayProvider = {
  name: 'traefik',
  controllerName: TRAEFIK_CONTROLLER,
  childKinds: [
    { apiVersion: GATEWAY_API_VERSION, kind: 'HTTPRoute', plural: 'httproutes' },
    { apiVersion: TRAEFIK_API_VERSION, kind: 'Middleware', plural: 'middlewares' },
  ],
  desired(route, target) {
    const middlewares = [
      ...(route.auth.required ? [forwardAuthMiddleware(route, target)] : []),
      ...(route.rateLimit ? [rateLimitMiddleware(route, route.rateLimit)] : []),
    ];
    return [httpRoute(route, target, middlewares.map(extensionRef)), ...middlewares];
  },
  // ForwardAuth calls a URL, not an object: Gateway API's reference rules do not apply.
  crossNamespaceRefs: () => [],
};
