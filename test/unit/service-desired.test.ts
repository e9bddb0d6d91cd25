// The Service's children as pure functions: deterministic, restricted Pod
// Security, credentials as files, HPA-friendly replicas, quantities compared
// by value, and the readiness roll-up from what kube-controller-manager and
// the kubelet report.
import { describe, expect, it } from 'vitest';
import { canonical } from '../../src/core/canonical.js';
import { changedPaths, deploymentUpToDate } from '../../src/controllers/service/compare.js';
import {
  CREDENTIALS_HASH_ANNOTATION, DATABASE_MOUNT, OIDC_MOUNT, coreServiceOf, credentialsHash, databaseClaimOf, deploymentOf, oidcClientOf, routeOf,
  PRESTOP_DELAY_SECONDS, type CredentialFacts, type ServiceInput,
} from '../../src/controllers/service/desired.js';
import { availabilityOf, childCondition, podProblem } from '../../src/controllers/service/readiness.js';
import { familyHubSpecSchema, serviceSpecSchema, type ServiceSpecInput } from '../../src/crds/index.js';
import type { KubeObject } from '../../src/core/reconciler.js';
import type { Hub } from '../../src/platform/hub.js';

const hub = (httpsPort?: number): Hub => ({
  apiVersion: 'familyhub.dev/v1alpha1', kind: 'FamilyHub', metadata: { name: 'home', namespace: 'apps' },
  spec: familyHubSpecSchema.parse({
    domain: 'family.test', allowedEmailDomains: ['family.test'],
    postgres: { host: 'pg', database: 'fh', adminCredentialsSecretRef: { name: 'pg' } },
    identity: { kind: 'oidc-dcr', issuerUrl: 'https://id.family.test' },
    runtime: { image: 'rt:1' },
    ...(httpsPort ? { gateway: { gatewayName: 'gw', gatewayNamespace: 'gateway', listeners: { httpsPort } } } : {}),
  }),
});

const svc = (spec: Partial<ServiceSpecInput> = {}): ServiceInput => ({
  name: 'recipes', namespace: 'apps',
  spec: serviceSpecSchema.parse({ familyHubRef: { name: 'home' }, image: 'ghcr.io/family/recipes:1.4.2', port: 8080, host: 'recipes.family.test', ...spec }),
});

const facts: CredentialFacts = {
  database: { secretName: 'recipes-db', schema: 'apps_recipes', database: 'fh' },
  oidc: { secretName: 'recipes-oidc', clientId: 'apps-recipes', issuer: 'https://id.family.test' },
  hash: 'abc123',
};

const container = (d: KubeObject) => d.spec.template.spec.containers[0];
const envOf = (d: KubeObject) => Object.fromEntries(container(d).env.map((e: { name: string; value?: string }) => [e.name, e.value ?? '']));

describe('Service desired children', () => {
  it('are byte-identical for the same input (no timestamps, random names or tracking labels)', () => {
    const a = svc({ needs: { database: { enabled: true }, oidc: { enabled: true }, route: {} } });
    const b = svc({ needs: { database: { enabled: true }, oidc: { enabled: true }, route: {} } });
    for (const make of [(s: ServiceInput) => deploymentOf(s, hub(), facts), coreServiceOf, databaseClaimOf, (s: ServiceInput) => oidcClientOf(s, hub()), routeOf]) {
      const x = make(a);
      expect(JSON.stringify(x)).toBe(JSON.stringify(make(b)));
      const text = JSON.stringify(x);
      expect(text).not.toMatch(/argocd|creationTimestamp|\d{4}-\d\d-\d\dT/);
    }
  });

  it('a runtime Service\'s pods carry its runtime-service and hub labels (the runtime PodMonitor selects them); the selector stays the Service\'s own', () => {
    const plain = deploymentOf(svc(), hub(), {});
    expect(plain.spec.template.metadata.labels).toEqual({ 'familyhub.dev/service': 'recipes' });
    const rt = deploymentOf({ ...svc(), podLabels: { 'familyhub.dev/runtime-service': 'audit', 'familyhub.dev/familyhub': 'home', 'familyhub.dev/service': 'not-this' } }, hub(), {});
    expect(rt.spec.template.metadata.labels).toEqual({ 'familyhub.dev/service': 'recipes', 'familyhub.dev/runtime-service': 'audit', 'familyhub.dev/familyhub': 'home' });
    expect(rt.spec.selector).toEqual(plain.spec.selector);
    // A label added later is a change of the pod template: the compare sees it.
    expect(deploymentUpToDate(plain, rt)).toBe(false);
  });

  it('a child Stalled on its configuration is a terminal condition of the Service; one on its way is not', () => {
    const child = (stalled: boolean): KubeObject => ({
      apiVersion: 'familyhub.dev/v1alpha1', kind: 'DatabaseClaim', metadata: { name: 'recipes', namespace: 'apps', generation: 2 },
      status: {
        observedGeneration: 2,
        conditions: [
          { type: 'Ready', status: 'False', reason: stalled ? 'ExtensionNotAllowed' : 'PostgresUnavailable', message: 'no' },
          ...(stalled ? [{ type: 'Stalled', status: 'True', reason: 'ExtensionNotAllowed', message: 'no', observedGeneration: 2 }] : []),
        ],
      },
    });
    expect(childCondition('DatabaseReady', 'DatabaseClaim', child(true))).toMatchObject({ status: 'False', reason: 'ExtensionNotAllowed', terminal: true });
    expect(childCondition('DatabaseReady', 'DatabaseClaim', child(false))).not.toHaveProperty('terminal');
  });

  it('runs the pod under the restricted Pod Security profile with a read-only root and an emptyDir /tmp', () => {
    const d = deploymentOf(svc(), hub(), {});
    const pod = d.spec.template.spec;
    expect(pod.securityContext).toEqual({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(container(d).securityContext).toEqual({
      allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.volumes).toContainEqual({ name: 'tmp', emptyDir: {} });
    expect(container(d).volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
    expect(deploymentOf(svc({ automountServiceAccountToken: true }), hub(), {}).spec.template.spec.automountServiceAccountToken).toBe(true);
  });

  it('delays the SIGTERM by a preStop sleep, within the grace period: gateways stop routing to a terminating pod first', () => {
    const d = deploymentOf(svc(), hub(), {});
    expect(container(d).lifecycle).toEqual({ preStop: { sleep: { seconds: PRESTOP_DELAY_SECONDS } } });
    // Unset: the pod's default of 30 s, which the delay must leave room in for the app's own shutdown.
    expect(d.spec.template.spec.terminationGracePeriodSeconds).toBeUndefined();
    expect(PRESTOP_DELAY_SECONDS).toBeLessThanOrEqual(10);
  });

  it('mounts credentials as files and passes only file paths and plain facts as env', () => {
    const d = deploymentOf(svc({ needs: { database: { enabled: true }, oidc: { enabled: true } } }), hub(8443), facts);
    const env = envOf(d);
    expect(env).toMatchObject({
      DATABASE_URL_FILE: `${DATABASE_MOUNT}/uri`, DATABASE_PASSWORD_FILE: `${DATABASE_MOUNT}/password`, DATABASE_SCHEMA: 'apps_recipes',
      OIDC_CLIENT_SECRET_FILE: `${OIDC_MOUNT}/client-secret`, OIDC_CLIENT_ID: 'apps-recipes', OIDC_ISSUER: 'https://id.family.test',
      PUBLIC_URL: 'https://recipes.family.test:8443', OIDC_REDIRECT_URI: 'https://recipes.family.test:8443/oauth2/callback', PORT: '8080',
    });
    // No env entry is sourced from a Secret.
    expect(container(d).env.every((e: Record<string, unknown>) => !('valueFrom' in e))).toBe(true);
    const vols = d.spec.template.spec.volumes;
    expect(vols).toContainEqual({ name: 'database-credentials', secret: { secretName: 'recipes-db' } });
    expect(vols).toContainEqual({ name: 'oidc-credentials', secret: { secretName: 'recipes-oidc' } });
    expect(container(d).volumeMounts).toContainEqual({ name: 'database-credentials', mountPath: DATABASE_MOUNT, readOnly: true });
    expect(d.spec.template.metadata.annotations[CREDENTIALS_HASH_ANNOTATION]).toBe('abc123');
  });

  it('the platform\'s env wins over a user entry of the same name; empty values are left out as the apiserver does', () => {
    const d = deploymentOf(svc({ env: [{ name: 'PORT', value: '1' }, { name: 'EMPTY', value: '' }, { name: 'LOG_LEVEL', value: 'info' }] }), hub(), {});
    const entries = container(d).env;
    expect(entries.filter((e: { name: string }) => e.name === 'PORT')).toEqual([{ name: 'PORT', value: '8080' }]);
    expect(entries).toContainEqual({ name: 'EMPTY' });
    expect(entries).toContainEqual({ name: 'LOG_LEVEL', value: 'info' });
  });

  it('leaves replicas to an HPA when omitted; sets them when given', () => {
    expect('replicas' in deploymentOf(svc(), hub(), {}).spec).toBe(false);
    expect(deploymentOf(svc({ replicas: 3 }), hub(), {}).spec.replicas).toBe(3);
  });

  it('probes: TCP on the port by default, HTTP on a configured path', () => {
    const d = deploymentOf(svc(), hub(), {});
    expect(container(d).readinessProbe).toEqual({ tcpSocket: { port: 'http' }, periodSeconds: 5, timeoutSeconds: 1, failureThreshold: 3 });
    const h = deploymentOf(svc({ probes: { readiness: { path: '/ready' }, liveness: { path: '/healthz', failureThreshold: 5 } } }), hub(), {});
    expect(container(h).readinessProbe.httpGet).toEqual({ path: '/ready', port: 'http' });
    expect(container(h).livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'http' }, failureThreshold: 5 });
  });

  it('command, args, resources and user volumes reach the pod', () => {
    const d = deploymentOf(svc({
      command: ['node'], args: ['server.js'], resources: { requests: { cpu: '50m' }, limits: { memory: '256Mi' } },
      volumes: [{ name: 'cache', mountPath: '/cache', emptyDir: { sizeLimit: '1Gi' } }, { name: 'data', mountPath: '/data', persistentVolumeClaim: { claimName: 'recipes-data', readOnly: true } }],
    }), hub(), {});
    expect(container(d)).toMatchObject({ command: ['node'], args: ['server.js'], resources: { requests: { cpu: '50m' }, limits: { memory: '256Mi' } } });
    expect(d.spec.template.spec.volumes).toContainEqual({ name: 'cache', emptyDir: { sizeLimit: '1Gi' } });
    expect(d.spec.template.spec.volumes).toContainEqual({ name: 'data', persistentVolumeClaim: { claimName: 'recipes-data', readOnly: true } });
    expect(container(d).volumeMounts).toContainEqual({ name: 'data', mountPath: '/data', readOnly: true });
  });

  it('refuses volumes the operator uses and a volume with two sources', () => {
    expect(() => svc({ volumes: [{ name: 'tmp', mountPath: '/x', emptyDir: {} }] })).toThrow(/used by the operator/);
    expect(() => svc({ volumes: [{ name: 'x', mountPath: '/var/run/familyhub/db', emptyDir: {} }] })).toThrow(/mountPath/);
    expect(() => svc({ volumes: [{ name: 'x', mountPath: '/x', emptyDir: {}, persistentVolumeClaim: { claimName: 'c' } }] })).toThrow(/exactly one/);
  });

  it('OIDCClient redirect URIs are on https://<host> (with the gateway port); the Route points at the core Service', () => {
    const o = oidcClientOf(svc({ needs: { oidc: { enabled: true, redirectPaths: ['/cb', '/auth/done'] } } }), hub(8443));
    expect(o.spec.redirectUris).toEqual(['https://recipes.family.test:8443/cb', 'https://recipes.family.test:8443/auth/done']);
    expect(o.spec.webOrigins).toEqual(['https://recipes.family.test:8443']);
    const r = routeOf(svc({ needs: { route: { auth: { required: false }, rateLimit: { requests: 5, unit: 'Second' } } } }));
    expect(r.spec).toEqual({ familyHubRef: { name: 'home' }, hostname: 'recipes.family.test', backendRef: { name: 'recipes', port: 8080 }, auth: { required: false }, rateLimit: { requests: 5, unit: 'Second' } });
    expect(coreServiceOf(svc()).spec.ports).toEqual([{ name: 'http', port: 8080, targetPort: 'http', protocol: 'TCP' }]);
    // The claim leaves deletionPolicy to its own default (Retain).
    expect('deletionPolicy' in databaseClaimOf(svc()).spec).toBe(false);
  });

  it('the credentials hash follows the Secrets\' data digests only', () => {
    const s = (name: string, data: Record<string, string>, rv = '1'): KubeObject => ({ metadata: { name, resourceVersion: rv, annotations: { x: rv } }, data });
    const h1 = credentialsHash([s('a-db', { password: 'sha256:1' }), s('a-oidc', { 'client-secret': 'sha256:2' })]);
    expect(credentialsHash([s('a-db', { password: 'sha256:1' }, '7'), s('a-oidc', { 'client-secret': 'sha256:2' }, '9')])).toBe(h1);
    expect(credentialsHash([s('a-db', { password: 'sha256:3' }), s('a-oidc', { 'client-secret': 'sha256:2' })])).not.toBe(h1);
    expect(credentialsHash([undefined])).toBeUndefined();
    // A claim's Secret publishes its login hash: lease bookkeeping in the data (lease_expires_at) must not roll the pods.
    const claimSecret = (login: string, expires: string): KubeObject => ({ metadata: { name: 'a-db', annotations: { 'familyhub.dev/credentials-hash': login, 'familyhub.dev/content-hash': expires } }, data: { lease_expires_at: expires } });
    expect(credentialsHash([claimSecret('l1', 'sha256:a')])).toBe(credentialsHash([claimSecret('l1', 'sha256:b')]));
    expect(credentialsHash([claimSecret('l1', 'sha256:a')])).not.toBe(credentialsHash([claimSecret('l2', 'sha256:a')]));
  });
});

describe('Deployment compare', () => {
  const want = deploymentOf(svc({ resources: { limits: { cpu: '1000m', memory: '1024Mi' } } }), hub(), {});
  it('treats quantities the apiserver rewrote as equal, and a real change as a change', () => {
    const stored = structuredClone(want);
    container(stored).resources.limits = { cpu: '1', memory: '1Gi' };
    container(stored).imagePullPolicy = 'IfNotPresent'; // server default
    expect(deploymentUpToDate(stored, want)).toBe(true);
    container(stored).resources.limits.memory = '2Gi';
    expect(deploymentUpToDate(stored, want)).toBe(false);
    const other = structuredClone(want);
    container(other).image = 'ghcr.io/family/recipes:9';
    expect(deploymentUpToDate(other, want)).toBe(false);
    expect(changedPaths({ spec: want.spec }, { spec: other.spec })).toEqual(['spec.template.spec.containers[0].image']);
  });
  it('canonical form is stable', () => {
    expect(canonical(want)).toBe(canonical(structuredClone(want)));
  });
});

describe('Service readiness roll-up', () => {
  const dep = (status: Record<string, unknown>, replicas = 2, generation = 1): KubeObject => ({ metadata: { name: 'recipes', generation }, spec: { replicas }, status: { observedGeneration: 1, ...status } });
  it('Available only when every desired replica is updated and available', () => {
    expect(availabilityOf(dep({ replicas: 2, updatedReplicas: 2, availableReplicas: 2, readyReplicas: 2 }), undefined).condition).toMatchObject({ status: 'True', reason: 'Available' });
    const half = availabilityOf(dep({ replicas: 2, updatedReplicas: 2, availableReplicas: 1, readyReplicas: 1 }), []);
    expect(half.condition).toMatchObject({ status: 'False', reason: 'Progressing' });
    expect(half.available).toBe(1);
    expect(availabilityOf(dep({}, 2, 2), []).condition.reason).toBe('Progressing');
    expect(availabilityOf(undefined, undefined).condition.reason).toBe('Pending');
  });
  it('carries the pod\'s waiting reason (ErrImagePull) with the kubelet\'s message', () => {
    const pod: KubeObject = {
      metadata: { name: 'recipes-abc' },
      status: { conditions: [{ type: 'PodScheduled', status: 'True' }], containerStatuses: [{ name: 'app', ready: false, state: { waiting: { reason: 'ErrImagePull', message: 'failed to pull image "x:1": not found' } } }] },
    };
    const a = availabilityOf(dep({ replicas: 1, updatedReplicas: 1 }, 1), [pod]);
    expect(a.condition.reason).toBe('ErrImagePull');
    expect(a.condition.message).toContain('pod recipes-abc: container app ErrImagePull: failed to pull image');
    expect(podProblem([{ metadata: { name: 'p' }, status: { conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/1 nodes' }] } }])?.reason).toBe('Unschedulable');
    expect(podProblem([{ metadata: { name: 'p' }, status: { containerStatuses: [{ name: 'app', state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 3 } } }] } }])).toEqual({ reason: 'CrashLoopBackOff', message: 'pod p: container app CrashLoopBackOff: last exit code 3' });
    // Normal progress is not a problem (no status write per step).
    expect(podProblem([{ metadata: { name: 'p' }, status: { containerStatuses: [{ name: 'app', state: { waiting: { reason: 'ContainerCreating' } } }] } }])).toBeUndefined();
    // Only a new image reference helps: terminal (the Service is Stalled); CrashLoopBackOff above is not.
    expect(podProblem([{ metadata: { name: 'p' }, status: { containerStatuses: [{ name: 'app', state: { waiting: { reason: 'InvalidImageName', message: 'bad ref' } } }] } }])).toMatchObject({ reason: 'InvalidImageName', terminal: true });
  });
  it('a child CR\'s own reason becomes ours; a stale one is Pending', () => {
    const claim = (gen: number, observed: number, ready: Record<string, string>): KubeObject => ({ metadata: { name: 'recipes', generation: gen }, status: { observedGeneration: observed, conditions: [{ type: 'Ready', ...ready }] } });
    expect(childCondition('DatabaseReady', 'DatabaseClaim', claim(1, 1, { status: 'False', reason: 'SchemaConflict', message: 'schema taken' }))).toEqual({ type: 'DatabaseReady', status: 'False', reason: 'SchemaConflict', message: 'DatabaseClaim recipes: schema taken' });
    expect(childCondition('DatabaseReady', 'DatabaseClaim', claim(2, 1, { status: 'True', reason: 'Ready', message: 'ok' })).reason).toBe('Pending');
    expect(childCondition('RouteReady', 'Route', claim(1, 1, { status: 'True', reason: 'Reconciled', message: 'ok' })).status).toBe('True');
  });
});
