// Which hostnames a Route may claim: the hub's domain or a subdomain of it,
// never one the platform itself serves, and never a hostname + path another,
// older Route already holds (Gateway API's conflict rule: oldest wins, then
// namespace/name order).
import type { KubeObject } from '../../core/reconciler.js';
import type { Hub } from '../../platform/hub.js';

/** Subdomains the bundled runtime services are published on. */
export const PLATFORM_SUBDOMAINS = ['chat', 'media', 'gaming', 'audit'] as const;

export function authHostname(hub: Hub): string {
  return hub.spec.gateway?.authService?.hostname ?? `auth.${hub.spec.domain}`;
}

/** Hostname → what uses it. */
export function reservedHostnames(hub: Hub): Map<string, string> {
  const domain = hub.spec.domain;
  const out = new Map<string, string>();
  for (const s of PLATFORM_SUBDOMAINS) out.set(`${s}.${domain}`, `the ${s} service`);
  out.set(authHostname(hub), 'the login service');
  out.set(new URL(hub.spec.identity.issuerUrl).hostname, 'the identity provider');
  for (const [name, url] of Object.entries(hub.status?.endpoints ?? {})) {
    try {
      out.set(new URL(url).hostname, `the platform's ${name} endpoint`);
    } catch {
      // not a URL: nothing to reserve
    }
  }
  return out;
}

export type HostnameProblem = { reason: 'HostnameOutsideDomain' | 'HostnameReserved'; message: string };

/**
 * `platformRoute`: the Route is the one the hub's own runtime Service for
 * this hostname publishes (see platformService in reconciler.ts); the
 * platform's hostnames are reserved for exactly such Routes. The IdP's
 * hostname is never a runtime service's, so it stays refused.
 */
export function hostnameProblem(hostname: string, hub: Hub, platformRoute = false): HostnameProblem | undefined {
  const domain = hub.spec.domain;
  if (hostname !== domain && !hostname.endsWith(`.${domain}`)) {
    return { reason: 'HostnameOutsideDomain', message: `hostname ${hostname} is not ${domain} or a subdomain of it` };
  }
  if (platformRoute && hostname !== new URL(hub.spec.identity.issuerUrl).hostname) return undefined;
  const owner = reservedHostnames(hub).get(hostname);
  if (owner) return { reason: 'HostnameReserved', message: `hostname ${hostname} is reserved for ${owner}` };
  return undefined;
}

const claimOf = (o: KubeObject) => `${o.spec?.hostname}\u0000${o.spec?.pathPrefix ?? '/'}`;

function olderThan(a: KubeObject, b: KubeObject): boolean {
  const ta = Date.parse(a.metadata.creationTimestamp ?? '') || Infinity;
  const tb = Date.parse(b.metadata.creationTimestamp ?? '') || Infinity;
  if (ta !== tb) return ta < tb;
  return `${a.metadata.namespace}/${a.metadata.name}` < `${b.metadata.namespace}/${b.metadata.name}`;
}

/** The Route that holds `route`'s hostname + path instead of it, if any. */
export function conflictingWinner(route: KubeObject, all: KubeObject[]): KubeObject | undefined {
  const claim = claimOf(route);
  let winner: KubeObject | undefined;
  for (const o of all) {
    if (o.metadata.uid === route.metadata.uid || o.metadata.deletionTimestamp || claimOf(o) !== claim) continue;
    if (olderThan(o, route) && (!winner || olderThan(o, winner))) winner = o;
  }
  return winner;
}

export function sameClaim(a: KubeObject, b: KubeObject): boolean {
  return a.spec?.hostname === b.spec?.hostname;
}
