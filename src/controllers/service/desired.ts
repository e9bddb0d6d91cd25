// The children of a Service as pure functions of its spec, the hub and
// what the other children reported. Same input → byte-identical objects:
// no timestamps, no random names, no tracking labels (Argo CD prunes what
// carries its label; ownership is by ownerReference only), so a resync of
// an unchanged Service compares equal and writes nothing.
import { createHash } from 'node:crypto';
import { canonical } from '../../core/canonical.js';
import type { KubeObject } from '../../core/reconciler.js';
import { RESERVED_MOUNT_PREFIX, type ServiceSpec } from '../../crds/service.js';
import type { Hub } from '../../platform/hub.js';

export const SERVICE_LABEL = 'familyhub.dev/service';
/** On the pod template (ours) and on a DatabaseClaim's Secret (the claim's login hash). */
export const CREDENTIALS_HASH_ANNOTATION = 'familyhub.dev/credentials-hash';
const CONTENT_HASH_ANNOTATION = 'familyhub.dev/content-hash';
export const CONTAINER_NAME = 'app';
export const DATABASE_MOUNT = `${RESERVED_MOUNT_PREFIX}/database`;
export const OIDC_MOUNT = `${RESERVED_MOUNT_PREFIX}/oidc`;
export const REDIS_MOUNT = `${RESERVED_MOUNT_PREFIX}/redis`;

/** What the Service's own object contributes: name, namespace and spec. */
export interface ServiceInput {
  name: string;
  namespace: string;
  spec: ServiceSpec;
  /** Labels of the Service its pods carry as well (POD_LABELS_FROM_SERVICE: a runtime pod's identity). */
  podLabels?: Record<string, string>;
}

/** Facts other children published (their status), needed in the pod template. */
export interface CredentialFacts {
  database?: { secretName: string; schema?: string; database?: string };
  oidc?: { secretName: string; clientId?: string; issuer?: string };
  /**
   * The hub's spec.redis.passwordSecretRef: set only for the hub's own
   * runtime Services (platform/runtime.ts hubRuntimeService), never from a
   * Service's spec, so creating a Service mounts no Secret its author could
   * not read. Read, never written or owned.
   */
  redis?: { secretName: string; key: string };
  /** Changes whenever a mounted credential changes: rolls the pods. */
  hash?: string;
}

const selectorOf = (s: ServiceInput) => ({ [SERVICE_LABEL]: s.name });

/** https://<host>, with the gateway's HTTPS port when it is not 443. */
export function publicOrigin(spec: ServiceSpec, hub: Hub): string {
  const httpsPort = hub.spec.gateway?.listeners.httpsPort ?? 443;
  return `https://${spec.host}${httpsPort === 443 ? '' : `:${httpsPort}`}`;
}

export function databaseClaimOf(s: ServiceInput): KubeObject {
  return {
    apiVersion: 'familyhub.dev/v1alpha1',
    kind: 'DatabaseClaim',
    metadata: { name: s.name, namespace: s.namespace, labels: selectorOf(s) },
    // deletionPolicy is left to the claim's own default (Retain): deleting
    // the Service must never be the way data disappears by accident.
    spec: {
      familyHubRef: s.spec.familyHubRef,
      ...(s.spec.needs.database?.schemaName ? { schemaName: s.spec.needs.database.schemaName } : {}),
      extensions: s.spec.needs.database?.extensions ?? [],
      ...(s.spec.needs.database?.rotateGeneration ? { credentials: { rotateGeneration: s.spec.needs.database.rotateGeneration } } : {}),
    },
  };
}

export function oidcClientOf(s: ServiceInput, hub: Hub): KubeObject {
  const origin = publicOrigin(s.spec, hub);
  return {
    apiVersion: 'familyhub.dev/v1alpha1',
    kind: 'OIDCClient',
    metadata: { name: s.name, namespace: s.namespace, labels: selectorOf(s) },
    spec: {
      familyHubRef: s.spec.familyHubRef,
      redirectUris: (s.spec.needs.oidc?.redirectPaths ?? []).map((p) => `${origin}${p}`),
      postLogoutRedirectUris: [`${origin}/`],
      webOrigins: [origin],
    },
  };
}

export function routeOf(s: ServiceInput): KubeObject {
  const r = s.spec.needs.route!;
  return {
    apiVersion: 'familyhub.dev/v1alpha1',
    kind: 'Route',
    metadata: { name: s.name, namespace: s.namespace, labels: selectorOf(s) },
    spec: {
      familyHubRef: s.spec.familyHubRef,
      hostname: s.spec.host,
      backendRef: { name: s.name, port: s.spec.port },
      auth: { required: r.auth.required },
      ...(r.rateLimit ? { rateLimit: r.rateLimit } : {}),
    },
  };
}

export function coreServiceOf(s: ServiceInput): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: s.name, namespace: s.namespace, labels: selectorOf(s) },
    spec: {
      selector: selectorOf(s),
      ports: [{ name: 'http', port: s.spec.port, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}

/**
 * What identifies a Secret's credentials: the login hash its writer
 * publishes (a DatabaseClaim's changes only with username/password, not with
 * lease bookkeeping such as lease_expires_at), else its content hash, else
 * the digests of its data (the cache holds digests, never values).
 */
function credentialIdentity(secret: KubeObject): unknown {
  const a = secret.metadata.annotations ?? {};
  return a[CREDENTIALS_HASH_ANNOTATION] ?? a[CONTENT_HASH_ANNOTATION] ?? secret.data ?? {};
}

/** Changes exactly when a mounted login changes: rolls the pods. */
export function credentialsHash(secrets: Array<KubeObject | undefined>): string | undefined {
  const parts = secrets.filter((x): x is KubeObject => !!x).map((x) => ({ name: x.metadata.name, id: credentialIdentity(x) }));
  if (!parts.length) return undefined;
  return createHash('sha256').update(canonical(parts)).digest('hex').slice(0, 16);
}

/** Seconds a terminating pod keeps serving before its SIGTERM, while gateways drop its address. */
export const PRESTOP_DELAY_SECONDS = 5;

type Probe = ServiceSpec['probes']['readiness'];

function probeOf(p: Probe): Record<string, unknown> {
  return {
    ...(p.path ? { httpGet: { path: p.path, port: 'http' } } : { tcpSocket: { port: 'http' } }),
    // 0 is omitted by the apiserver (omitempty); sending it would never compare equal.
    ...(p.initialDelaySeconds ? { initialDelaySeconds: p.initialDelaySeconds } : {}),
    periodSeconds: p.periodSeconds,
    timeoutSeconds: p.timeoutSeconds,
    failureThreshold: p.failureThreshold,
  };
}

/** Environment the operator sets; a user entry of the same name is replaced (the platform's facts win). */
function platformEnv(s: ServiceInput, hub: Hub, facts: CredentialFacts): Array<{ name: string; value: string }> {
  const env: Array<{ name: string; value: string }> = [
    { name: 'PORT', value: String(s.spec.port) },
    { name: 'PUBLIC_URL', value: publicOrigin(s.spec, hub) },
  ];
  if (facts.database) {
    env.push(
      { name: 'DATABASE_URL_FILE', value: `${DATABASE_MOUNT}/uri` },
      { name: 'DATABASE_USERNAME_FILE', value: `${DATABASE_MOUNT}/username` },
      { name: 'DATABASE_PASSWORD_FILE', value: `${DATABASE_MOUNT}/password` },
      { name: 'DATABASE_CREDENTIALS_DIR', value: DATABASE_MOUNT },
    );
    if (facts.database.schema) env.push({ name: 'DATABASE_SCHEMA', value: facts.database.schema });
    if (facts.database.database) env.push({ name: 'DATABASE_NAME', value: facts.database.database });
  }
  if (facts.oidc) {
    env.push(
      { name: 'OIDC_CLIENT_ID_FILE', value: `${OIDC_MOUNT}/client-id` },
      { name: 'OIDC_CLIENT_SECRET_FILE', value: `${OIDC_MOUNT}/client-secret` },
      { name: 'OIDC_REDIRECT_URI', value: `${publicOrigin(s.spec, hub)}${s.spec.needs.oidc?.redirectPaths[0] ?? '/'}` },
    );
    if (facts.oidc.clientId) env.push({ name: 'OIDC_CLIENT_ID', value: facts.oidc.clientId });
    if (facts.oidc.issuer) env.push({ name: 'OIDC_ISSUER', value: facts.oidc.issuer });
  }
  if (facts.redis) env.push({ name: 'REDIS_PASSWORD_FILE', value: `${REDIS_MOUNT}/password` });
  return env;
}

/** The apiserver drops empty strings (omitempty): leaving them out keeps the compare exact. */
const envEntry = (e: { name: string; value: string }) => (e.value === '' ? { name: e.name } : e);

export function deploymentOf(s: ServiceInput, hub: Hub, facts: CredentialFacts): KubeObject {
  const spec = s.spec;
  const ours = platformEnv(s, hub, facts);
  const taken = new Set(ours.map((e) => e.name));
  const env = [...spec.env.filter((e) => !taken.has(e.name)), ...ours].map(envEntry);

  const volumes: Record<string, unknown>[] = [{ name: 'tmp', emptyDir: {} }];
  const mounts: Record<string, unknown>[] = [{ name: 'tmp', mountPath: '/tmp' }];
  if (facts.database) {
    volumes.push({ name: 'database-credentials', secret: { secretName: facts.database.secretName } });
    mounts.push({ name: 'database-credentials', mountPath: DATABASE_MOUNT, readOnly: true });
  }
  if (facts.oidc) {
    volumes.push({ name: 'oidc-credentials', secret: { secretName: facts.oidc.secretName } });
    mounts.push({ name: 'oidc-credentials', mountPath: OIDC_MOUNT, readOnly: true });
  }
  if (facts.redis) {
    // Only that key, under a fixed name: the Secret may hold more than the password.
    volumes.push({ name: 'redis-credentials', secret: { secretName: facts.redis.secretName, items: [{ key: facts.redis.key, path: 'password' }] } });
    mounts.push({ name: 'redis-credentials', mountPath: REDIS_MOUNT, readOnly: true });
  }
  for (const v of spec.volumes) {
    if (v.emptyDir) {
      const e: Record<string, unknown> = {};
      if (v.emptyDir.medium) e.medium = v.emptyDir.medium;
      if (v.emptyDir.sizeLimit) e.sizeLimit = v.emptyDir.sizeLimit;
      volumes.push({ name: v.name, emptyDir: e });
    } else if (v.persistentVolumeClaim) {
      volumes.push({ name: v.name, persistentVolumeClaim: { claimName: v.persistentVolumeClaim.claimName, ...(v.persistentVolumeClaim.readOnly ? { readOnly: true } : {}) } });
    }
    mounts.push({ name: v.name, mountPath: v.mountPath, ...(v.persistentVolumeClaim?.readOnly ? { readOnly: true } : {}) });
  }

  const resources: Record<string, unknown> = {};
  if (spec.resources?.requests && Object.keys(spec.resources.requests).length) resources.requests = spec.resources.requests;
  if (spec.resources?.limits && Object.keys(spec.resources.limits).length) resources.limits = spec.resources.limits;

  const container: Record<string, unknown> = {
    name: CONTAINER_NAME,
    image: spec.image,
    ...(spec.command ? { command: spec.command } : {}),
    ...(spec.args ? { args: spec.args } : {}),
    ports: [{ name: 'http', containerPort: spec.port, protocol: 'TCP' }],
    env,
    ...(Object.keys(resources).length ? { resources } : {}),
    readinessProbe: probeOf(spec.probes.readiness),
    livenessProbe: probeOf(spec.probes.liveness),
    // A terminating pod leaves the EndpointSlice at once, but a gateway routes
    // to pod addresses from its own copy (Traefik reloads at most every 2 s by
    // default; Envoy and kube-proxy lag too), so it keeps sending there for a
    // moment. An app that stops listening on SIGTERM, as it should, would
    // answer those with refused connections: 502s in every rollout, a
    // credential rotation included (test/e2e/service-rotation-gateway.test.ts).
    // The kubelet waits this long before the SIGTERM; the sleep action needs
    // no shell in the image. It counts against the pod's 30 s grace period.
    lifecycle: { preStop: { sleep: { seconds: PRESTOP_DELAY_SECONDS } } },
    // Pod Security "restricted", plus a read-only root: the app writes only to /tmp and its volumes.
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: mounts,
  };

  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: s.name, namespace: s.namespace, labels: selectorOf(s) },
    spec: {
      // Omitted: the field stays with whoever sets it (an HPA), not with us.
      ...(spec.replicas !== undefined ? { replicas: spec.replicas } : {}),
      selector: { matchLabels: selectorOf(s) },
      template: {
        metadata: {
          labels: { ...(s.podLabels ?? {}), ...selectorOf(s) },
          ...(facts.hash ? { annotations: { [CREDENTIALS_HASH_ANNOTATION]: facts.hash } } : {}),
        },
        spec: {
          automountServiceAccountToken: spec.automountServiceAccountToken,
          // Other Services' addresses as env variables are noise and leak names.
          enableServiceLinks: false,
          securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [container],
          volumes,
        },
      },
    },
  };
}

/** Kubernetes quantity → number (base units), for comparing what the apiserver may have rewritten. */
export function quantityValue(q: string | number | undefined): number | undefined {
  if (q === undefined) return undefined;
  const m = /^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(String(q));
  if (!m) return undefined;
  const mult: Record<string, number> = { '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };
  return Number(m[1]) * mult[m[2] ?? '']!;
}
