// Where a hub's bundled runtime lives: the names and hosts of its Services
// and the auth service a login-protected Route asks. Shared by the FamilyHub
// controller (which creates those Services) and the Route controller (which
// lets exactly them claim the platform's hostnames, and sends forward-auth to
// the hub's own auth service when the spec names none).
import type { KubeObject } from '../core/reconciler.js';
import type { FamilyHubSpec } from '../crds/familyhub.js';
import { FAMILYHUB, type Hub } from './hub.js';

export type RuntimeServiceName = keyof FamilyHubSpec['runtime']['services'];
export const RUNTIME_SERVICE_NAMES: readonly RuntimeServiceName[] = ['audit', 'auth', 'chat', 'gaming', 'media'];

/** On a runtime Service and its pods: which runtime service it is (the chart's runtime PodMonitor selects pods by it). */
export const RUNTIME_SERVICE_LABEL = 'familyhub.dev/runtime-service';
/** On a runtime Service and its pods: the FamilyHub it belongs to. */
export const HUB_LABEL = 'familyhub.dev/familyhub';
/** The Service labels its pods carry too: a runtime pod says what it is, for monitoring. */
export const POD_LABELS_FROM_SERVICE: readonly string[] = [RUNTIME_SERVICE_LABEL, HUB_LABEL];

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

/** The runtime services that talk to Redis: they need spec.redis, and get its password. */
export const REDIS_RUNTIME_SERVICES: readonly RuntimeServiceName[] = ['audit', 'chat', 'gaming', 'media'];

/**
 * Which of `hub`'s own runtime services `service` (a familyhub.dev Service)
 * is, or undefined: its RUNTIME_SERVICE_LABEL names an enabled runtime
 * service, its name and namespace are the ones the hub gives that service,
 * and its controller ownerReference is this very FamilyHub by uid (a hub
 * re-created under the same name is another hub). Labels and names alone
 * prove nothing — anyone who may create a Service may copy them — and the
 * hub adopts and rewrites whatever carries its uid under that name, so a
 * Service passing this is the hub's spec. Only such a Service gets what the
 * hub holds for its runtime (the Redis password), as the Route controller
 * lets only its Route claim the platform's hostnames.
 */
export function hubRuntimeService(hub: Hub, service: KubeObject): RuntimeServiceName | undefined {
  const svc = RUNTIME_SERVICE_NAMES.find((s) => s === service.metadata.labels?.[RUNTIME_SERVICE_LABEL]);
  if (!svc || !hub.spec.runtime.services[svc].enabled) return undefined;
  if (service.metadata.namespace !== hub.metadata.namespace || service.metadata.name !== runtimeServiceName(hub, svc)) return undefined;
  const ref = service.metadata.ownerReferences?.find((r) => r.controller);
  if (!ref || ref.apiVersion !== FAMILYHUB.apiVersion || ref.kind !== FAMILYHUB.kind || ref.name !== hub.metadata.name || ref.uid !== hub.metadata.uid) return undefined;
  return svc;
}
