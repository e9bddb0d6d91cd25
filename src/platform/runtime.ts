// Where a hub's bundled runtime lives: the names and hosts of its Services
// and the auth service a login-protected Route asks. Shared by the FamilyHub
// controller (which creates those Services) and the Route controller (which
// lets exactly them claim the platform's hostnames, and sends forward-auth to
// the hub's own auth service when the spec names none).
import type { FamilyHubSpec } from '../crds/familyhub.js';
import type { Hub } from './hub.js';

export type RuntimeServiceName = keyof FamilyHubSpec['runtime']['services'];
export const RUNTIME_SERVICE_NAMES: readonly RuntimeServiceName[] = ['audit', 'auth', 'chat', 'gaming', 'media'];

/** Port every runtime process listens on (the runtime's PORT default). */
export const RUNTIME_PORT = 8080;

export type AuthServiceSettings = NonNullable<NonNullable<FamilyHubSpec['gateway']>['authService']>;

export function runtimeServiceName(hub: Pick<Hub, 'metadata'>, svc: RuntimeServiceName): string {
  return `${hub.metadata.name}-${svc}`;
}

/** Public host: `<svc>.<domain>`, the auth service on the hub's auth hostname. */
export function runtimeHost(hub: Hub, svc: RuntimeServiceName): string {
  return svc === 'auth' ? hub.spec.gateway?.authService?.hostname ?? `auth.${hub.spec.domain}` : `${svc}.${hub.spec.domain}`;
}

export function enabledRuntimeServices(hub: Hub): RuntimeServiceName[] {
  return RUNTIME_SERVICE_NAMES.filter((s) => hub.spec.runtime.services[s].enabled);
}

/** The enabled runtime service published on `hostname`, if any. */
export function runtimeServiceOnHost(hub: Hub, hostname: string): RuntimeServiceName | undefined {
  return enabledRuntimeServices(hub).find((s) => runtimeHost(hub, s) === hostname);
}

/**
 * The auth service Routes of this hub ask: the spec's, else — when the hub
 * runs its own (`runtime.services.auth`) — that Service. Derived on every
 * read and never written back, so the spec stays what its author (or Git)
 * wrote. As a serviceRef (not only a URL) so Envoy Gateway's extAuth works too.
 */
export function effectiveAuthService(hub: Hub): AuthServiceSettings | undefined {
  const own = hub.spec.gateway?.authService;
  if (own) return own;
  if (!hub.spec.runtime.services.auth.enabled) return undefined;
  return { serviceRef: { name: runtimeServiceName(hub, 'auth'), namespace: hub.metadata.namespace!, port: RUNTIME_PORT } };
}
