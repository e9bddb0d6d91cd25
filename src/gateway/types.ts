// One interface for every gateway implementation. A provider only builds
// desired objects (pure functions of the Route and the hub); the Route
// reconciler applies them as children and reads their status back, so adding
// an implementation means adding a folder here and nothing in the controller.
import type { KubeObject } from '../core/reconciler.js';
import type { RateLimit } from '../crds/route.js';

export const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';
export const GATEWAY_API_VERSION = `${GATEWAY_API_GROUP}/v1`;

export type GatewayProviderName = 'traefik' | 'envoy-gateway';

/** Identity headers the gateway passes on to backends (oauth2-proxy's names, which many apps read). */
export const IDENTITY_HEADERS = {
  email: 'X-Auth-Request-Email',
  user: 'X-Auth-Request-User',
  groups: 'X-Auth-Request-Groups',
} as const;

/** A Route as the gateway sees it: already validated and defaulted. */
export interface RouteIntent {
  /** Name and namespace of the Route; children share both. */
  name: string;
  namespace: string;
  hostname: string;
  pathPrefix: string;
  backend: { name: string; port: number };
  auth: { required: boolean; audiences: string[]; requiredGroups: string[] };
  rateLimit?: RateLimit;
}

/** What the hub contributes: where to attach and how to check identity. */
export interface GatewayTarget {
  gateway: { name: string; namespace: string; /** listener to attach to; all when unset */ sectionName?: string };
  identity: {
    issuer: string;
    /** JWKS URL of the issuer (from discovery). */
    jwksUri: string;
    /** Audience tokens must carry (the platform's own). */
    audience: string;
    groupsClaim: string;
  };
  /** The platform's auth service (forward-auth / ext_authz). */
  authService: {
    /** Base URL the gateway calls, e.g. http://familyhub-auth.familyhub-system.svc:8080 */
    url: string;
    /** The Service behind url, for implementations that reference backends by object (Envoy Gateway). */
    service?: { name: string; namespace: string; port: number };
    /**
     * An https url: the Secret (ca.crt, in the Route's namespace, where
     * Traefik looks for it) with the CA of the auth service's gateway
     * listener. Over TLS the gateway's client negotiates HTTP/2, so every
     * check shares one connection.
     */
    caSecretName?: string;
  };
}

/**
 * A reference from one of a Route's children to an object in another
 * namespace. Gateway API lets it resolve only when a ReferenceGrant in the
 * target's namespace permits it.
 */
export interface CrossNamespaceRef {
  from: { group: string; kind: string; namespace: string };
  to: { group: string; kind: string; name: string; namespace: string };
}

export interface ChildKind {
  apiVersion: string;
  kind: string;
  plural: string;
}

export interface GatewayProvider {
  readonly name: GatewayProviderName;
  /** GatewayClass controllerName this implementation answers to. */
  readonly controllerName: string;
  /** Kinds of the objects desired() returns, HTTPRoute first. */
  readonly childKinds: readonly ChildKind[];
  /** Every object the Route needs, HTTPRoute first; names derive from the Route's. */
  desired(route: RouteIntent, target: GatewayTarget): KubeObject[];
  /** References of those objects into other namespaces (each needs a ReferenceGrant there). */
  crossNamespaceRefs(route: RouteIntent, target: GatewayTarget): CrossNamespaceRef[];
}

/** The forward-auth URL for one route: its own requirements travel in the query string. */
export function forwardAuthUrl(route: RouteIntent, target: GatewayTarget): string {
  const url = new URL('/auth/verify', target.authService.url);
  if (route.auth.requiredGroups.length) url.searchParams.set('groups', [...route.auth.requiredGroups].sort().join(','));
  if (route.auth.audiences.length) url.searchParams.set('aud', [...route.auth.audiences].sort().join(','));
  return url.toString();
}
