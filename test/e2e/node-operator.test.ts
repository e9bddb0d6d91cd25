// The operator as a user runs it: the project image imported into the node's
// containerd, the chart installed with `helm install`, two replicas as pods
// under the restricted Pod Security profile with their ServiceAccount,
// in-cluster config and the chart's RBAC. One becomes leader and a FamilyHub
// (PostgreSQL, Redis and the dev IdP on the host, reached at the bridge
// address) becomes Ready; deleting the leader's pod hands the lease to the
// other replica, which reconciles the next FamilyHub. Needs root.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevIdp, type DevIdp } from '../../hack/dev-idp/provider.js';
import { buildProjectImage } from '../../hack/images/images.js';
import { BRIDGE_ADDRESS, POD_CIDR, exposeLoopbackToPods, loopbackSidecar, startCluster, type Cluster } from '../../hack/local/node.js';
import { waitFor } from '../../hack/local/process.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { startRedis, type LocalRedis } from '../../hack/local/redis.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SYSTEM_NS = 'familyhub-system';
const isRoot = process.getuid?.() === 0;

interface Pod { metadata: { name: string; deletionTimestamp?: string }; spec: { serviceAccountName: string; containers: Array<{ image: string }> }; status: { phase: string; conditions?: Array<{ type: string; status: string }> } }

describe.skipIf(!isRoot)('operator installed by helm on the local node', () => {
  let cluster: Cluster;
  let pg: LocalPostgres;
  let redis: LocalRedis;
  let idp: DevIdp;
  let idpBridge: { stop(): Promise<void> };
  let image: string;
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
        runtime: { image, services: { chat: { enabled: true }, audit: { enabled: true } } },
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
    await kubectl('apply', '-k', path.join(root, 'config/crd'));
    await kubectl('wait', '--for', 'condition=Established', 'crd', '--all', '--timeout', '60s');
    await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: SYSTEM_NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } });
    const [repo, tag] = [image.slice(0, image.lastIndexOf(':')), image.slice(image.lastIndexOf(':') + 1)];
    await cluster.helm(['install', 'familyhub', path.join(root, 'charts/familyhub-operator'), '-n', SYSTEM_NS,
      '--set', `image.repository=${repo}`, '--set', `image.tag=${tag}`,
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
});
