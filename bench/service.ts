// npm run bench:service [-- N]
// N Services with database + oidc, applied at once on the local node (real
// kubelet/containerd pods, real kube-controller-manager rollouts, PostgreSQL,
// OpenBao, the dev IdP), until every one is Ready (claim and client Ready,
// Deployment available). The reference run, on the same servers, is a bare
// script that creates the same children itself (DatabaseClaim, OIDCClient,
// then Deployment + core Service once both Secrets exist — the objects come
// from the same pure builders) and waits for the same readiness; the claim
// and client controllers run in both. Also printed: the operator's apiserver
// writes per Service (audit log) and its writes over three resyncs of the
// settled Services (must be 0). No gateway runs here, so needs.route is left
// out: a Route's readiness is the gateway's word (bench:route measures it).
// Needs root.
import { readAuditEvents } from '../hack/local/controlplane.js';
import { startDevIdp } from '../hack/dev-idp/provider.js';
import { buildProjectImage } from '../hack/images/images.js';
import { installCrds, installRbac } from '../hack/local/manifests.js';
import { BRIDGE_ADDRESS, POD_CIDR, startCluster } from '../hack/local/node.js';
import { startOpenBao } from '../hack/local/openbao.js';
import { startPostgres } from '../hack/local/postgres.js';
import { coreServiceOf, databaseClaimOf, deploymentOf, oidcClientOf, type ServiceInput } from '../src/controllers/service/desired.js';
import { KubeClient } from '../src/core/kube-client.js';
import type { Condition, KubeObject } from '../src/core/reconciler.js';
import { familyHubSpecSchema, serviceSpecSchema } from '../src/crds/index.js';
import type { Hub } from '../src/platform/hub.js';
import { startOperator } from '../test/support/operator.js';
import { Bench, loadAverage } from './harness.js';
import { pool } from './pool.js';

const N = Number(process.argv[2] ?? process.env.BENCH_N ?? 50);
const API = 'familyhub.dev/v1alpha1';
const OPERATOR_USER = 'system:serviceaccount:familyhub-system:familyhub-operator';
const APP = `const s=require('http').createServer((q,r)=>r.end('ok'));s.listen(Number(process.env.PORT));process.on('SIGTERM',()=>s.close(()=>process.exit(0)))`;

const ready = (o: KubeObject | undefined) =>
  !!o && o.status?.observedGeneration === o.metadata.generation && !!(o.status?.conditions as Condition[] | undefined)?.some((c) => c.type === 'Ready' && c.status === 'True');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main() {
  console.log(`bench:service N=${N}`);
  const cluster = await startCluster();
  const kube = new KubeClient(cluster.cp.kubeConfig);
  const built = await buildProjectImage({ from: 'head' });
  await cluster.node.importImage(built.archive);
  const image = built.ref;
  const [db, bao, idp] = await Promise.all([startPostgres({ podAccess: { address: BRIDGE_ADDRESS, cidr: POD_CIDR } }), startOpenBao(), startDevIdp({ allowedDomain: 'family.test' })]);
  const stops: Array<() => Promise<void>> = [];
  try {
    await installCrds(cluster.cp.kubeConfig);
    await installRbac(cluster.cp.kubeConfig);
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const hubSpec = (ns: string) => ({
      domain: 'family.test', allowedEmailDomains: ['family.test'],
      postgres: { host: BRIDGE_ADDRESS, port: db.port, database: db.database, sslMode: 'disable', adminCredentialsSecretRef: { name: 'pg-admin' } },
      vault: { address: bao.address, authMethod: 'token', tokenSecretRef: { name: 'vault-token' } },
      identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'idp-token' } },
      runtime: { image },
      _ns: ns,
    });
    const setupNs = async (ns: string) => {
      await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, { fieldManager: 'bench' });
      for (const [name, data] of [['pg-admin', { username: db.user, password: db.password }], ['vault-token', { token: bao.rootToken }], ['idp-token', { token: idp.initialAccessToken }]] as const) {
        await kube.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: ns }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])) }, { fieldManager: 'bench' });
      }
      const { _ns, ...spec } = hubSpec(ns);
      await kube.apply({ apiVersion: API, kind: 'FamilyHub', metadata: { name: 'home', namespace: ns }, spec }, { fieldManager: 'bench' });
      await waitFor('default ServiceAccount', async () => !!(await kube.get('v1', 'ServiceAccount', ns, 'default')));
    };
    const specOf = (i: number) => ({
      familyHubRef: { name: 'home' }, image, port: 8080, replicas: 1, host: `app-${i}.family.test`, command: ['node', '-e', APP],
      probes: { readiness: { periodSeconds: 1 } }, needs: { database: { enabled: true }, oidc: { enabled: true } },
    });
    const ids = Array.from({ length: N }, (_, i) => i);
    const saKubeconfig = await cluster.cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator');
    const operatorWrites = (from: number, to?: number) => readAuditEvents(cluster.cp.auditLogPath).slice(from, to)
      .filter((e) => e.user.username === OPERATOR_USER && !['get', 'list', 'watch'].includes(e.verb) && e.objectRef?.resource !== 'leases');

    // Both runs start from a node that has unpacked the image once.
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bench-warmup' } }, { fieldManager: 'bench' });
    await waitFor('warm-up ServiceAccount', async () => !!(await kube.get('v1', 'ServiceAccount', 'bench-warmup', 'default')));
    await kube.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'warmup', namespace: 'bench-warmup' }, spec: { containers: [{ name: 'app', image, command: ['node', '-e', APP], env: [{ name: 'PORT', value: '8080' }] }] } }, { fieldManager: 'bench' });
    await waitFor('warm-up pod running', async () => (await kube.get('v1', 'Pod', 'bench-warmup', 'warmup'))?.status?.phase === 'Running', 300_000);
    await kube.delete('v1', 'Pod', 'bench-warmup', 'warmup');

    // --- operator run
    await setupNs('bench-op');
    const op = await startOperator({
      kubeconfigPath: saKubeconfig, name: 'operator-bench-service',
      env: { FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system', FAMILYHUB_CONTROLLERS: 'service,databaseclaim,oidcclient', FAMILYHUB_RESYNC_MS: '5000', LOG_LEVEL: 'info' },
    });
    stops.push(() => op.stop());
    const auditFrom = readAuditEvents(cluster.cp.auditLogPath).length;
    const opLoad = loadAverage();
    const t0 = performance.now();
    await pool(ids, 8, (i) => kube.apply({ apiVersion: API, kind: 'Service', metadata: { name: `app-${i}`, namespace: 'bench-op' }, spec: specOf(i) }, { fieldManager: 'bench' }).then(() => undefined));
    await waitFor(`${N} Services Ready`, async () => (await kube.list(API, 'Service', 'bench-op')).items.filter(ready).length === N, 900_000);
    const opSeconds = (performance.now() - t0) / 1000;
    // One round each (a round is minutes of real rollouts on the node): the
    // harness keeps the figures, the load around them and the checks.
    const bench = new Bench('service', 'Services/s', { services: N, needs: 'database + oidc', node: 'local kubelet/containerd' });
    const group = `${N} Services`;
    bench.record('operator', 0, group, N / opSeconds, opSeconds, opLoad);
    const auditReady = readAuditEvents(cluster.cp.auditLogPath).length;
    const writes = operatorWrites(auditFrom, auditReady);
    const serviceWrites = writes.filter((e) => ['deployments', 'services', 'databaseclaims', 'oidcclients'].includes(e.objectRef?.resource ?? '') && (!e.objectRef?.subresource || e.objectRef?.resource === 'services'));
    // Settled: three resyncs of every Service.
    await sleep(2000);
    const steadyFrom = readAuditEvents(cluster.cp.auditLogPath).length;
    await sleep(16_000);
    const steady = operatorWrites(steadyFrom).filter((e) => ['deployments', 'services', 'databaseclaims', 'oidcclients'].includes(e.objectRef?.resource ?? '') && (!e.objectRef?.subresource || e.objectRef?.resource === 'services'));
    await op.stop();
    stops.pop();
    // Free the node for the reference run.
    await pool(ids, 8, (i) => kube.delete(API, 'Service', 'bench-op', `app-${i}`));
    await waitFor('operator run pods gone', async () => (await kube.list('v1', 'Pod', 'bench-op')).items.length === 0, 300_000);

    // --- reference run: a bare script makes the same children itself
    await setupNs('bench-ref');
    const ref = await startOperator({
      kubeconfigPath: saKubeconfig, name: 'operator-bench-service-ref',
      env: { FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system', FAMILYHUB_CONTROLLERS: 'databaseclaim,oidcclient', LOG_LEVEL: 'info' },
    });
    stops.push(() => ref.stop());
    const hub = { metadata: { name: 'home', namespace: 'bench-ref' }, spec: familyHubSpecSchema.parse((({ _ns, ...s }) => s)(hubSpec('bench-ref'))) } as unknown as Hub;
    const input = (i: number): ServiceInput => ({ name: `app-${i}`, namespace: 'bench-ref', spec: serviceSpecSchema.parse(specOf(i)) });
    const apply = (o: KubeObject) => kube.apply(o, { fieldManager: 'bench-ref' });
    const refLoad = loadAverage();
    const t1 = performance.now();
    await pool(ids, 8, async (i) => {
      await apply(databaseClaimOf(input(i)));
      await apply(oidcClientOf(input(i), hub));
    });
    const pending = new Set(ids);
    const deployed = new Set<number>();
    while (pending.size) {
      const [claims, clients, deps] = await Promise.all([kube.list(API, 'DatabaseClaim', 'bench-ref'), kube.list(API, 'OIDCClient', 'bench-ref'), kube.list('apps/v1', 'Deployment', 'bench-ref')]);
      const byName = (l: { items: KubeObject[] }) => new Map(l.items.map((o) => [o.metadata.name, o]));
      const [c, o, d] = [byName(claims), byName(clients), byName(deps)];
      await pool([...pending], 8, async (i) => {
        const name = `app-${i}`;
        const claim = c.get(name);
        const client = o.get(name);
        if (!deployed.has(i) && ready(claim) && ready(client)) {
          await apply(deploymentOf(input(i), hub, {
            database: { secretName: claim!.status.secretName, schema: claim!.status.schema, database: claim!.status.database },
            oidc: { secretName: client!.status.secretName, clientId: client!.status.clientId, issuer: client!.status.issuerUrl },
          }));
          await apply(coreServiceOf(input(i)));
          deployed.add(i);
        }
        const dep = d.get(name);
        if (deployed.has(i) && dep && (dep.status?.availableReplicas ?? 0) >= 1 && (dep.status?.observedGeneration ?? 0) >= dep.metadata.generation!) pending.delete(i);
      });
      if (pending.size) await sleep(250);
    }
    const refSeconds = (performance.now() - t1) / 1000;
    bench.record('reference', 0, group, N / refSeconds, refSeconds, refLoad);
    await ref.stop();
    stops.pop();

    const ratio = refSeconds / opSeconds;
    console.log(`operator:  ${N} Services Ready in ${opSeconds.toFixed(1)} s (${(N / opSeconds).toFixed(2)}/s)`);
    console.log(`reference: ${N} in ${refSeconds.toFixed(1)} s (${(N / refSeconds).toFixed(2)}/s)`);
    console.log(`operator / reference throughput: ${ratio.toFixed(2)} (goal >= 0.8)`);
    console.log(`operator apiserver writes until Ready: ${(writes.length / N).toFixed(1)} per Service (all controllers), ${(serviceWrites.length / N).toFixed(1)} by the Service controller (children + status)`);
    console.log(`Service controller writes over three resyncs of ${N} settled Services: ${steady.length}`);
    bench.ratio('operatorToReference', 'operator', 'reference', group, 'operator / bare script creating the same children, until all Ready (goal >= 0.8)');
    bench.figures.writesPerService = { allControllers: writes.length / N, serviceController: serviceWrites.length / N };
    bench.check('steadyStateWrites', steady.length === 0, `${steady.length} Service-controller writes over three resyncs of ${N} settled Services`);
    bench.notes.push('one round per side: alternating rounds would double a run of several minutes of real rollouts');
    bench.finish();
  } finally {
    for (const s of stops.reverse()) await s().catch(() => {});
    await Promise.allSettled([db.stop(), bao.stop(), idp.stop()]);
    await cluster.stop();
  }
}

async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await sleep(500);
  }
  throw new Error(`timed out waiting for ${what}`);
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
