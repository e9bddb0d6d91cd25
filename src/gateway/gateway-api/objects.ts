// Gateway API objects every provider shares: the HTTPRoute of a Route, the
// Gateway the operator creates when the hub names a GatewayClass, and the
// reading of an HTTPRoute's parent status (written by the gateway, never by
// us). Defaults the apiserver would fill in are written out, so a read-back
// object compares equal to the desired one.
import { createHash } from 'node:crypto';
import type { KubeObject } from '../../core/reconciler.js';
import { GATEWAY_API_GROUP, GATEWAY_API_VERSION, type CrossNamespaceRef, type GatewayTarget, type RouteIntent } from '../types.js';

export type HTTPRouteFilter = Record<string, unknown> & { type: string };

/**
 * `<base>-<suffix>` within Kubernetes' 253-character name limit; a long base is
 * cut and a hash of it appended, so two long Routes never share a child name.
 */
export function childName(base: string, suffix: string, max = 253): string {
  const name = `${base}-${suffix}`;
  if (name.length <= max) return name;
  const hash = createHash('sha256').update(base).digest('hex').slice(0, 8);
  return `${base.slice(0, max - suffix.length - hash.length - 2).replace(/[-.]+$/, '')}-${hash}-${suffix}`;
}

export function parentRef(target: GatewayTarget): Record<string, unknown> {
  return {
    group: GATEWAY_API_GROUP,
    kind: 'Gateway',
    name: target.gateway.name,
    namespace: target.gateway.namespace,
    ...(target.gateway.sectionName ? { sectionName: target.gateway.sectionName } : {}),
  };
}

/** One HTTPRoute per Route: same name and namespace, one rule, the given filters. */
export function httpRoute(route: RouteIntent, target: GatewayTarget, filters: HTTPRouteFilter[] = []): KubeObject {
  return {
    apiVersion: GATEWAY_API_VERSION,
    kind: 'HTTPRoute',
    metadata: { name: route.name, namespace: route.namespace },
    spec: {
      parentRefs: [parentRef(target)],
      hostnames: [route.hostname],
      rules: [{
        matches: [{ path: { type: 'PathPrefix', value: route.pathPrefix } }],
        ...(filters.length ? { filters } : {}),
        backendRefs: [{ group: '', kind: 'Service', name: route.backend.name, port: route.backend.port, weight: 1 }],
      }],
    },
  };
}

export interface GatewaySpecInput {
  name: string;
  namespace: string;
  className: string;
  httpPort: number;
  httpsPort: number;
  certificateSecretName: string;
}

/**
 * The hub's Gateway: an HTTPS listener with the certificate Secret (for the
 * domain and its subdomains), and a plain HTTP listener that only redirects
 * (it admits routes of the Gateway's own namespace only).
 */
export function gateway(g: GatewaySpecInput): KubeObject {
  const allowed = { namespaces: { from: 'All' } };
  const tls = { mode: 'Terminate', certificateRefs: [{ group: '', kind: 'Secret', name: g.certificateSecretName }] };
  return {
    apiVersion: GATEWAY_API_VERSION,
    kind: 'Gateway',
    metadata: { name: g.name, namespace: g.namespace },
    spec: {
      gatewayClassName: g.className,
      listeners: [
        { name: 'http', protocol: 'HTTP', port: g.httpPort, allowedRoutes: { namespaces: { from: 'Same' } } },
        // No listener hostname: the Route controller already confines every
        // hostname to the domain, and one listener keeps sectionName simple.
        { name: 'https', protocol: 'HTTPS', port: g.httpsPort, tls, allowedRoutes: allowed },
      ],
    },
  };
}

/** Sends every plain-HTTP request to the same URL over HTTPS. */
export function httpsRedirect(g: GatewaySpecInput): KubeObject {
  return {
    apiVersion: GATEWAY_API_VERSION,
    kind: 'HTTPRoute',
    metadata: { name: childName(g.name, 'https-redirect'), namespace: g.namespace },
    spec: {
      parentRefs: [{ group: GATEWAY_API_GROUP, kind: 'Gateway', name: g.name, namespace: g.namespace, sectionName: 'http' }],
      rules: [{
        filters: [{
          type: 'RequestRedirect',
          requestRedirect: { scheme: 'https', statusCode: 301, ...(g.httpsPort !== 443 ? { port: g.httpsPort } : {}) },
        }],
      }],
    },
  };
}

export interface ParentCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  observedGeneration?: number;
}

export type Acceptance =
  | { state: 'Accepted'; message: string }
  | { state: 'Pending'; reason: string; message: string }
  | { state: 'Rejected'; reason: string; message: string };

/**
 * What the gateway says about an HTTPRoute on our Gateway: Accepted only when
 * the parent entry for that Gateway has Accepted and ResolvedRefs True for the
 * HTTPRoute's current generation. A parent entry of another Gateway, or
 * conditions about an older generation, do not count.
 */
export function routeAcceptance(route: KubeObject | undefined, target: GatewayTarget): Acceptance {
  if (!route) return { state: 'Pending', reason: 'HTTPRouteMissing', message: 'the HTTPRoute does not exist yet' };
  const generation = route.metadata.generation;
  const parents = (route.status?.parents ?? []) as Array<{ parentRef: { name: string; namespace?: string; kind?: string; sectionName?: string }; controllerName?: string; conditions?: ParentCondition[] }>;
  const ours = parents.filter((p) =>
    p.parentRef.name === target.gateway.name
    && (p.parentRef.namespace ?? route.metadata.namespace) === target.gateway.namespace
    && (p.parentRef.kind ?? 'Gateway') === 'Gateway'
    && (target.gateway.sectionName === undefined || p.parentRef.sectionName === undefined || p.parentRef.sectionName === target.gateway.sectionName));
  const gw = `Gateway ${target.gateway.namespace}/${target.gateway.name}`;
  if (!ours.length) return { state: 'Pending', reason: 'NotYetAccepted', message: `${gw} has not reported on the HTTPRoute yet` };
  for (const p of ours) {
    const current = (p.conditions ?? []).filter((c) => generation === undefined || c.observedGeneration === undefined || c.observedGeneration === generation);
    const byType = new Map(current.map((c) => [c.type, c]));
    for (const type of ['Accepted', 'ResolvedRefs']) {
      const c = byType.get(type);
      if (!c) return { state: 'Pending', reason: 'NotYetAccepted', message: `${gw} has not reported ${type} for generation ${generation ?? '?'}` };
      if (c.status !== 'True') {
        return { state: 'Rejected', reason: c.reason || `Not${type}`, message: `${gw}${p.controllerName ? ` (${p.controllerName})` : ''}: ${type}=${c.status}: ${c.message || c.reason || 'no message'}` };
      }
    }
  }
  return { state: 'Accepted', message: `accepted by ${gw}` };
}

/** ReferenceGrant is still v1beta1 in the Gateway API standard channel this operator is built against. */
export const REFERENCE_GRANT_API_VERSION = `${GATEWAY_API_GROUP}/v1beta1`;

/**
 * The ReferenceGrant the operator writes for a cross-namespace reference:
 * one per (source namespace, source kind, target object), in the target's
 * namespace, naming the one target object rather than every object of its
 * kind there.
 */
export function referenceGrant(ref: CrossNamespaceRef): KubeObject {
  return {
    apiVersion: REFERENCE_GRANT_API_VERSION,
    kind: 'ReferenceGrant',
    metadata: {
      name: childName(`familyhub-${ref.from.namespace}-${ref.from.kind.toLowerCase()}`, ref.to.name),
      namespace: ref.to.namespace,
      labels: { [GRANT_FROM_LABEL]: ref.from.namespace },
    },
    spec: {
      from: [{ group: ref.from.group, kind: ref.from.kind, namespace: ref.from.namespace }],
      to: [{ group: ref.to.group, kind: ref.to.kind, name: ref.to.name }],
    },
  };
}

/** Label on the operator's ReferenceGrants: the namespace they admit references from (for the sweep of unused ones). */
export const GRANT_FROM_LABEL = 'familyhub.dev/grant-from-namespace';

/** True when `grant` (whoever wrote it) permits `ref`, by Gateway API's rules. */
export function grantPermits(grant: KubeObject, ref: CrossNamespaceRef): boolean {
  if (grant.metadata.namespace !== ref.to.namespace) return false;
  const from = (grant.spec?.from ?? []) as Array<{ group?: string; kind?: string; namespace?: string }>;
  const to = (grant.spec?.to ?? []) as Array<{ group?: string; kind?: string; name?: string }>;
  return from.some((f) => (f.group ?? '') === ref.from.group && f.kind === ref.from.kind && f.namespace === ref.from.namespace)
    && to.some((t) => (t.group ?? '') === ref.to.group && t.kind === ref.to.kind && (!t.name || t.name === ref.to.name));
}
