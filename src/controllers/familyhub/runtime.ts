// The hub's bundled runtime as Service objects: one per enabled runtime
// service, so chat, audit, media, gaming and the auth service get their
// schema, OIDC client and route the same way a developer's app does. Pure
// functions of the hub (same hub → byte-identical Services), plus the
// roll-up of what those Services report.
import type { ConditionInput, KubeObject } from '../../core/reconciler.js';
import type { ServiceSpecInput } from '../../crds/service.js';
import type { Hub } from '../../platform/hub.js';
import {
  HUB_LABEL, REDIS_RUNTIME_SERVICES, RUNTIME_PORT, RUNTIME_SERVICE_LABEL, enabledRuntimeServices, runtimeHost, runtimeServiceName, type RuntimeServiceName,
} from '../../platform/runtime.js';

/** The compiled runtime entry point inside the image (see Dockerfile: WORKDIR /app, dist/). */
export const RUNTIME_COMMAND = ['node', '--max-semi-space-size=4', 'dist/runtime-services/main.js'];
/**
 * The runtime opens its pools from this file and reopens them when the
 * kubelet swaps the mounted Secret (base/credential-file.ts); the path is
 * where the Service controller mounts a DatabaseClaim's Secret.
 */
export const DATABASE_URL_FROM_FILE = 'file:///var/run/familyhub/database/uri';
/** OIDC redirect path of the auth service's login callback (runtime-services/auth/routes.ts). */
export const AUTH_CALLBACK_PATH = '/auth/callback';

/** Schema each service's SQL names (its migrations: CREATE SCHEMA IF NOT EXISTS <name>). */
const SCHEMA: Partial<Record<RuntimeServiceName, string>> = { chat: 'chat', media: 'media', gaming: 'gaming' };
/** Services that keep state in PostgreSQL. Audit's login is the writer; the audit schema has its own owner (see audit-schema.ts). */
const NEEDS_DATABASE = new Set<RuntimeServiceName>(['audit', 'chat', 'media', 'gaming']);
const NEEDS_REDIS = new Set<RuntimeServiceName>(REDIS_RUNTIME_SERVICES);

/** The Redis stream the hub's services publish audit events on; one per hub, so hubs sharing a Redis never mix their logs. */
export function auditStream(hub: Pick<Hub, 'metadata'>): string {
  return `familyhub:${hub.metadata.namespace}:${hub.metadata.name}:audit`;
}

/** Why the runtime cannot be wired from this hub at all (nothing is created then), or undefined. */
export function runtimeBlocker(hub: Hub): { reason: string; message: string } | undefined {
  const enabled = enabledRuntimeServices(hub);
  const redisUsers = enabled.filter((s) => NEEDS_REDIS.has(s));
  if (redisUsers.length && !hub.spec.redis) {
    return { reason: 'RedisNotConfigured', message: `${redisUsers.join(', ')} need Redis: set spec.redis` };
  }
  return undefined;
}

function envOf(hub: Hub, svc: RuntimeServiceName): Array<{ name: string; value: string }> {
  const env: Record<string, string> = {
    RUNTIME_SERVICES: svc,
    OIDC_ISSUER_URL: hub.spec.identity.issuerUrl,
    OIDC_AUDIENCE: hub.spec.gateway?.audience ?? 'familyhub',
    AUTH_ALLOWED_EMAIL_DOMAINS: [...hub.spec.allowedEmailDomains].sort().join(','),
  };
  if (NEEDS_DATABASE.has(svc)) env.DATABASE_URL = DATABASE_URL_FROM_FILE;
  if (NEEDS_REDIS.has(svc) && hub.spec.redis) {
    // Never the password (no env value is a credential): the Service controller mounts
    // spec.redis.passwordSecretRef into exactly these Services (hubRuntimeService) and sets REDIS_PASSWORD_FILE.
    env.REDIS_URL = `redis://${hub.spec.redis.host.includes(':') ? `[${hub.spec.redis.host}]` : hub.spec.redis.host}:${hub.spec.redis.port}`;
    env.AUDIT_STREAM = auditStream(hub);
  }
  if (svc === 'auth') {
    env.AUTH_DOMAIN = hub.spec.domain;
    env.AUTH_PUBLIC_URL = `https://${runtimeHost(hub, 'auth')}${httpsPortSuffix(hub)}`;
    // Exactly the scopes its OIDCClient is registered with (the hub's defaults, see oidcclient/desired.ts):
    // an IdP that holds a client to its registered scopes (oidc-provider does) refuses the login when the
    // auth service asks for one more, such as its built-in default's `groups`. `openid` is the login itself.
    env.AUTH_SCOPES = [...new Set(['openid', ...hub.spec.identity.defaultScopes])].join(' ');
  }
  return Object.entries(env).sort(([a], [b]) => a.localeCompare(b)).map(([name, value]) => ({ name, value }));
}

const httpsPortSuffix = (hub: Hub) => {
  const p = hub.spec.gateway?.listeners.httpsPort ?? 443;
  return p === 443 ? '' : `:${p}`;
};

export function runtimeServiceOf(hub: Hub, svc: RuntimeServiceName): KubeObject & { spec: ServiceSpecInput } {
  const cfg = hub.spec.runtime.services[svc];
  const needs: NonNullable<ServiceSpecInput['needs']> = {};
  if (NEEDS_DATABASE.has(svc)) needs.database = { enabled: true, ...(SCHEMA[svc] ? { schemaName: SCHEMA[svc] } : {}) };
  if (svc === 'auth') needs.oidc = { enabled: true, redirectPaths: [AUTH_CALLBACK_PATH] };
  // Without a gateway there is nothing to publish on; the Service is then Ready on its pods alone.
  // The auth service is the login itself: nothing may stand in front of it.
  if (hub.spec.gateway) needs.route = { auth: { required: svc !== 'auth' } };
  return {
    apiVersion: 'familyhub.dev/v1alpha1',
    kind: 'Service',
    metadata: {
      name: runtimeServiceName(hub, svc),
      namespace: hub.metadata.namespace,
      labels: { [HUB_LABEL]: hub.metadata.name, [RUNTIME_SERVICE_LABEL]: svc },
    },
    spec: {
      familyHubRef: { name: hub.metadata.name },
      image: hub.spec.runtime.image,
      command: RUNTIME_COMMAND,
      port: RUNTIME_PORT,
      replicas: cfg.replicas,
      host: runtimeHost(hub, svc),
      env: envOf(hub, svc),
      probes: {
        readiness: { path: '/ready', periodSeconds: 2 },
        // Generous: a process busy migrating at start must not be killed for it.
        liveness: { path: '/health', periodSeconds: 10, failureThreshold: 6 },
      },
      ...(svc === 'media' ? { volumes: [{ name: 'media-data', mountPath: '/var/lib/familyhub/media', emptyDir: {} }] } : {}),
      needs,
    },
  };
}

/** Internal base URL of a runtime Service's pods (its core Service, same name). */
export function clusterUrl(hub: Pick<Hub, 'metadata'>, svc: RuntimeServiceName): string {
  return `http://${runtimeServiceName(hub, svc)}.${hub.metadata.namespace}.svc:${RUNTIME_PORT}`;
}

type Cond = { type: string; status: string; reason?: string; message?: string; observedGeneration?: number };

/**
 * RuntimeReady from the Services' own Ready conditions, at their current
 * generation; False carries the first not-Ready one's reason (in service
 * order), so `kubectl get fh` says e.g. ErrImagePull without a second look.
 */
export function runtimeCondition(enabled: RuntimeServiceName[], services: Map<RuntimeServiceName, KubeObject | undefined>): ConditionInput {
  for (const svc of enabled) {
    const o = services.get(svc);
    if (!o) return { type: 'RuntimeReady', status: 'False', reason: 'Pending', message: `Service for ${svc} not created yet` };
    const ready = (o.status?.conditions as Cond[] | undefined)?.find((c) => c.type === 'Ready');
    const current = ready && (ready.observedGeneration === undefined || ready.observedGeneration === o.metadata.generation);
    if (!ready || !current) return { type: 'RuntimeReady', status: 'False', reason: 'Pending', message: `${svc}: Service ${o.metadata.name} not reconciled yet` };
    if (ready.status !== 'True') {
      return { type: 'RuntimeReady', status: 'False', reason: ready.reason ?? 'NotReady', message: `${svc}: ${ready.message ?? 'not ready'}` };
    }
  }
  return { type: 'RuntimeReady', status: 'True', reason: 'ServicesReady', message: `${enabled.join(', ')} ready` };
}

/** service → public URL: what the Service reports, else where it will be. */
export function runtimeEndpoints(hub: Hub, enabled: RuntimeServiceName[], services: Map<RuntimeServiceName, KubeObject | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const svc of enabled) out[svc] = (services.get(svc)?.status?.url as string | undefined) ?? `https://${runtimeHost(hub, svc)}${httpsPortSuffix(hub)}/`;
  return out;
}
