// The operator as a user runs it: the project image imported into the node's
// containerd, the chart installed with `helm install`, two replicas as pods
// under the restricted Pod Security profile with their ServiceAccount,
// in-cluster config and the chart's RBAC. One becomes leader and a FamilyHub
// (PostgreSQL, Redis and the dev IdP on the host, reached at the bridge
// address) becomes Ready; deleting the leader's pod hands the lease to the
// other replica, which reconciles the next FamilyHub. The chart as users
// install it: its CRDs (kept on uninstall), its monitoring objects validated
// by the Prometheus Operator's own CRDs, `helm upgrade` of a value rolling
// the pods, `helm uninstall` leaving CRDs and custom resources. Needs root.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { buildProjectImage } from '../../hack/images/images.js';
import { BRIDGE_ADDRESS, POD_CIDR, exposeLoopbackToPods, loopbackSidecar, startCluster, type Cluster } from '../../hack/local/node.js';
import { installPrometheusOperatorCrds } from '../../hack/local/prometheus-crds.js';
import { waitFor } from '../../hack/local/process.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { startRedis, type LocalRedis } from '../../hack/local/redis.js';
import { prebuilt } from '../support/prebuilt.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SYSTEM_NS = 'familyhub-system';
/**
 * The chart as committed, like the image (`from: 'head'`): its CRDs then
 * match the schemas the operator in the image parses with, whatever is being
 * edited in the work tree.
 */
function committedChart(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'familyhub-chart-'));
  execFileSync('bash', ['-c', `git -C "${root}" archive HEAD charts/familyhub-operator | tar -x -C "${dir}"`]);
  return path.join(dir, 'charts/familyhub-operator');
}
const KINDS = ['DatabaseClaim', 'FamilyHub', 'OIDCClient', 'Route', 'Service'];
const isRoot = process.getuid?.() === 0;

interface Pod { metadata: { name: string; deletionTimestamp?: string }; spec: { serviceAccountName: string; containers: Array<{ image: string; env?: Array<{ name: string; value?: string }> }> }; status: { phase: string; conditions?: Array<{ type: string; status: string }> } }

describe.skipIf(!isRoot)('operator installed by helm on the local node', () => {
  let cluster: Cluster;
  let pg: LocalPostgres;
  let redis: LocalRedis;
  let idp: DevIdp;
  let idpBridge: { stop(): Promise<void> };
  let image: string;
  let chart: string;
  const kubectl = (...args: string[]) => cluster.kubectl(args);
  const apply = (obj: unknown) => cluster.kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
  const operatorPods = async (): Promise<Pod[]> =>
    JSON.parse(await kubectl('-n', SYSTEM_NS, 'get', 'pods', '-l', 'app.kubernetes.io/name=familyhub-operator', '-o', 'json')).items;
  const ready = (p: Pod) => p.status.phase === 'Running' && !p.metadata.deletionTimestamp && !!p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  const leaseHolder = async () => JSON.parse(await kubectl('-n', SYSTEM_NS, 'get', 'lease', 'familyhub-operator', '-o', 'json')).spec.holderIdentity as string | undefined;

  const hub = async (ns: string) => {
    await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    const secret = (name: string, data: Record<string, string>) => apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: ns }, stringData: data });
    await secret('postgres-admin', { username: pg.user, password: pg.password });
    await secret('idp-initial-access-token', { token: idp.initialAccessToken });
    await apply({
      apiVersion: 'familyhub.dev/v1alpha1', kind: 'FamilyHub', metadata: { name: 'home', namespace: ns },
      spec: {
        domain: `${ns}.family.test`,
        allowedEmailDomains: ['family.test'],
        postgres: { host: BRIDGE_ADDRESS, port: pg.port, database: pg.database, sslMode: 'disable', adminCredentialsSecretRef: { name: 'postgres-admin' } },
        redis: { host: BRIDGE_ADDRESS, port: redis.port },
        identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'idp-initial-access-token' } },
        // No runtime services: they would be real pods needing Vault-issued logins
        // (test/e2e/familyhub-runtime.test.ts runs them); this suite is about the operator's pods.
        runtime: { image },
      },
    });
    let last = '';
    await waitFor(`FamilyHub ${ns}/home Ready`, async () => {
      const h = JSON.parse(await kubectl('-n', ns, 'get', 'familyhubs.familyhub.dev', 'home', '-o', 'json'));
      last = JSON.stringify(h.status ?? null);
      return !!h.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True');
    }, { timeoutMs: 120_000, intervalMs: 500 }).catch((err: Error) => {
      throw new Error(`${err.message}\nlast status: ${last}`);
    });
  };

  beforeAll(async () => {
    const t0 = Date.now();
    const step = (m: string) => process.stderr.write(`[node-operator] ${m} at ${Math.round((Date.now() - t0) / 1000)} s\n`);
    cluster = await startCluster({ audit: false });
    step('cluster up');
    const built = await buildProjectImage({ from: 'head' });
    image = built.ref;
    await cluster.node.importImage(built.archive);
    step('image imported');
    pg = await startPostgres({ podAccess: { address: BRIDGE_ADDRESS, cidr: POD_CIDR } });
    redis = await startRedis({ podAddress: BRIDGE_ADDRESS });
    // The CRD accepts plain-HTTP issuers on loopback only: the IdP stays on
    // 127.0.0.1 and a sidecar brings that port into the operator pods.
    idp = await startDevIdp({ allowedDomain: 'family.test' });
    idpBridge = await exposeLoopbackToPods(Number(new URL(idp.issuer).port));
    step('host services up');
    // The chart brings the familyhub.dev CRDs; the monitoring CRDs come from the Prometheus Operator.
    await installPrometheusOperatorCrds(cluster.cp.kubeConfig);
    await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: SYSTEM_NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } });
    chart = committedChart();
    const [repo, tag] = [image.slice(0, image.lastIndexOf(':')), image.slice(image.lastIndexOf(':') + 1)];
    await cluster.helm(['install', 'familyhub', chart, '-n', SYSTEM_NS,
      '--set', `image.repository=${repo}`, '--set', `image.tag=${tag}`,
      '--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.prometheusRule.enabled=true',
      '--set', 'metrics.grafanaDashboard.enabled=true', '--set', 'networkPolicy.enabled=true',
      // Short leases: the hand-over below waits for one.
      '--set', 'leaderElection.leaseDuration=6s', '--set', 'leaderElection.renewDeadline=4s', '--set', 'leaderElection.retryPeriod=1s',
      '--set-json', `extraContainers=${JSON.stringify([loopbackSidecar(image, [Number(new URL(idp.issuer).port)])])}`,
      '--wait', '--timeout', '3m'], { timeoutMs: 200_000 });
  }, 600_000);

  afterAll(async () => {
    await cluster?.stop();
    await idpBridge?.stop();
    await idp?.stop();
    await redis?.stop();
    await pg?.stop();
  }, 120_000);

  it('runs two ready operator pods of the imported image as the chart\'s ServiceAccount; one holds the lease', async () => {
    const pods = await operatorPods();
    expect(pods.filter(ready)).toHaveLength(2);
    for (const p of pods) {
      expect(p.spec.containers.map((c) => c.image)).toEqual([image, image]);
      expect(p.spec.serviceAccountName).toBe('familyhub-operator');
    }
    await waitFor('a leader', async () => {
      const holder = await leaseHolder();
      return pods.some((p) => p.metadata.name === holder);
    }, { timeoutMs: 60_000 });
    const all = await kubectl('get', 'pods', '-A');
    expect(all).toMatch(new RegExp(`${SYSTEM_NS}\\s+familyhub-operator-\\S+\\s+2/2\\s+Running`));
  });

  it('the leader reconciles a FamilyHub to Ready', async () => {
    await hub('family');
  });

  it('deleting the leader pod hands over to the other replica, which reconciles the next FamilyHub', async () => {
    const leader = (await leaseHolder())!;
    const other = (await operatorPods()).find((p) => p.metadata.name !== leader)!.metadata.name;
    await kubectl('-n', SYSTEM_NS, 'delete', 'pod', leader, '--wait=false');
    let holder: string | undefined;
    await waitFor(`lease taken over by ${other}`, async () => (holder = await leaseHolder()) === other, { timeoutMs: 60_000, intervalMs: 250 }).catch(async (err: Error) => {
      throw new Error(`${err.message}; holder ${holder}; pods:\n${await kubectl('-n', SYSTEM_NS, 'get', 'pods')}\n${await kubectl('-n', SYSTEM_NS, 'logs', other, '-c', 'operator').catch(String)}`);
    });
    await hub('family-two');
    // The ReplicaSet replaced the deleted pod: two ready replicas again.
    await waitFor('two ready operator pods', async () => (await operatorPods()).filter(ready).length === 2, { timeoutMs: 90_000 });
  });

  it('the chart installed the five CRDs (resource-policy keep) and monitoring objects the Prometheus Operator CRDs accept', async () => {
    const crds = JSON.parse(await kubectl('get', 'crd', '-l', 'app.kubernetes.io/part-of=familyhub-operator', '-o', 'json')).items as Array<{ metadata: { name: string; annotations?: Record<string, string> } }>;
    expect(crds.map((c) => c.metadata.name).sort()).toEqual(['databaseclaims', 'familyhubs', 'oidcclients', 'routes', 'services'].map((p) => `${p}.familyhub.dev`));
    for (const c of crds) {
      expect(c.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
      expect(c.metadata.annotations?.['meta.helm.sh/release-name']).toBe('familyhub');
    }
    const get = async (kind: string, name: string) => JSON.parse(await kubectl('-n', SYSTEM_NS, 'get', kind, name, '-o', 'json'));
    expect((await get('servicemonitors.monitoring.coreos.com', 'familyhub-operator')).spec.endpoints[0]).toMatchObject({ port: 'metrics', honorLabels: true });
    const alerts = (await get('prometheusrules.monitoring.coreos.com', 'familyhub-operator')).spec.groups.flatMap((g: { rules: Array<{ alert: string }> }) => g.rules.map((r) => r.alert));
    expect(alerts).toEqual(expect.arrayContaining(['FamilyHubOperatorDown', 'FamilyHubOperatorNoLeader', 'FamilyHubObjectDegraded', 'FamilyHubCredentialsExpiring']));
    expect((await get('configmap', 'familyhub-operator-dashboard')).metadata.labels.grafana_dashboard).toBe('1');
    // The disruption controller counts the replicas it protects.
    await waitFor('PDB counts two healthy pods', async () => (await get('poddisruptionbudget', 'familyhub-operator')).status?.currentHealthy === 2, { timeoutMs: 30_000 });
    expect((await get('networkpolicy', 'familyhub-operator')).spec.policyTypes).toEqual(['Ingress']);
  });

  it('kubectl get familyhub-all -A lists all five kinds; kubectl get familyhub still means FamilyHubs', async () => {
    // No FamilyHub in this namespace: the objects wait (HubNotFound) without creating children.
    await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kinds' } });
    for (const f of readdirSync(path.join(root, 'config/samples')).filter((f) => f.endsWith('.yaml') && !['kustomization.yaml', 'familyhub.yaml'].includes(f))) {
      await kubectl('-n', 'kinds', 'apply', '-f', path.join(root, 'config/samples', f));
    }
    const all = JSON.parse(await kubectl('get', 'familyhub-all', '-A', '-o', 'json')).items as Array<{ kind: string }>;
    expect([...new Set(all.map((o) => o.kind))].sort()).toEqual(KINDS);
    const hubs = JSON.parse(await kubectl('get', 'familyhub', '-A', '-o', 'json')).items as Array<{ kind: string; metadata: { namespace: string } }>;
    expect(hubs.map((h) => `${h.kind} ${h.metadata.namespace}`).sort()).toEqual(['FamilyHub family', 'FamilyHub family-two']);
  });

  it('the leader pod\'s /metrics has a familyhub_object_ready series per object', async () => {
    const leader = (await leaseHolder())!;
    let text = '';
    await waitFor('object series on the leader', async () => {
      text = await kubectl('get', '--raw', `/api/v1/namespaces/${SYSTEM_NS}/pods/${leader}:8080/proxy/metrics`);
      return text.includes('familyhub_object_ready{kind="FamilyHub",namespace="family",name="home",condition="True"} 1');
    }, { timeoutMs: 30_000 }).catch((err: Error) => {
      throw new Error(`${err.message}\n${text.split('\n').filter((l) => l.startsWith('familyhub_object_ready')).join('\n')}`);
    });
    expect(text).toContain('familyhub_object_ready{kind="FamilyHub",namespace="family-two",name="home",condition="True"} 1');
    expect(text).toContain('familyhub_object_ready{kind="DatabaseClaim",namespace="kinds",name="photos",condition="False"} 1');
  });

  it('helm upgrade changing a value rolls the pods; the new pods reconcile', async () => {
    const before = new Set((await operatorPods()).map((p) => p.metadata.name));
    await cluster.helm(['upgrade', 'familyhub', chart, '-n', SYSTEM_NS, '--reuse-values', '--set', 'logLevel=debug', '--wait', '--timeout', '3m'], { timeoutMs: 200_000 });
    await waitFor('two ready operator pods, both new', async () => {
      const live = (await operatorPods()).filter((p) => !p.metadata.deletionTimestamp);
      return live.length === 2 && live.every(ready) && live.every((p) => !before.has(p.metadata.name));
    }, { timeoutMs: 120_000 });
    for (const p of (await operatorPods()).filter((p) => !p.metadata.deletionTimestamp)) {
      expect(p.spec.containers[0]!.env?.find((e) => e.name === 'LOG_LEVEL')?.value).toBe('debug');
    }
    await hub('family-three');
  });

  it('helm uninstall removes the operator and keeps the CRDs and every custom resource', async () => {
    const objects = async () => (JSON.parse(await kubectl('get', 'familyhub-all', '-A', '-o', 'json')).items as Array<{ kind: string; metadata: { namespace: string; name: string } }>)
      .map((o) => `${o.kind} ${o.metadata.namespace}/${o.metadata.name}`).sort();
    const before = await objects();
    expect(before).toContain('FamilyHub family-three/home');
    await cluster.helm(['uninstall', 'familyhub', '-n', SYSTEM_NS, '--wait', '--timeout', '2m'], { timeoutMs: 150_000 });
    expect(JSON.parse(await kubectl('-n', SYSTEM_NS, 'get', 'deployments,servicemonitors.monitoring.coreos.com,prometheusrules.monitoring.coreos.com', '-o', 'json')).items).toEqual([]);
    await expect(kubectl('get', 'clusterrole', 'familyhub-operator')).rejects.toThrow(/not found/i);
    const crds = JSON.parse(await kubectl('get', 'crd', '-l', 'app.kubernetes.io/part-of=familyhub-operator', '-o', 'json')).items;
    expect(crds).toHaveLength(5);
    expect(await objects()).toEqual(before);
    // Status (and the data behind it) stays as the operator left it.
    const h = JSON.parse(await kubectl('-n', 'family', 'get', 'familyhubs.familyhub.dev', 'home', '-o', 'json'));
    expect(h.status.conditions.find((c: { type: string }) => c.type === 'Ready').status).toBe('True');
  });
});
