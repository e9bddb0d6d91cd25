// npm run bench:operator [-- N]
// Creates N FamilyHub objects on a real apiserver and measures the operator:
// time until all are Ready, API requests per object, peak RSS, and writes
// during a steady-state resync (must be 0). The baseline, measured in the
// same run on the same apiserver, is a bare client loop doing the minimum
// an operator must do per object: create it, then patch its status.
import { execFileSync } from 'node:child_process';
import { startControlPlane, readAuditEvents } from '../hack/local/controlplane.js';
import { installCrds, installRbac, repoRoot } from '../hack/local/manifests.js';
import { KubeClient } from '../src/core/kube-client.js';
import type { KubeObject } from '../src/core/reconciler.js';
import { startOperator } from '../test/support/operator.js';
import { Informer } from '../src/core/informer.js';
import pino from 'pino';
import pgLib from 'pg';
import { startPostgres, type LocalPostgres } from '../hack/local/postgres.js';
import { startDevIdp, type DevIdp } from '../hack/dev-idp/provider.js';
import { applyOwnedChild, applyReadyStatus, createWithFinalizer } from './bare-writes.js';
import { pool } from './pool.js';

const N = Number(process.argv[2] ?? process.env.BENCH_N ?? 1000);
const CONCURRENCY = 4;
const API = 'familyhub.dev/v1alpha1';

let pg: LocalPostgres;
let idp: DevIdp;

// Every hub's live checks really connect: PostgreSQL login + query, IdP discovery.
const hub = (ns: string, i: number): KubeObject => ({
  apiVersion: API,
  kind: 'FamilyHub',
  metadata: { name: `hub-${i}`, namespace: ns },
  spec: {
    domain: `h${i}.example.org`,
    allowedEmailDomains: ['example.org'],
    postgres: { host: pg.host, port: pg.port, database: pg.database, sslMode: 'disable', adminCredentialsSecretRef: { name: 'pg-admin' } },
    identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'idp-token' } },
    runtime: { image: 'runtime:dev' },
  },
});

async function main() {
  console.log(`bench:operator N=${N}`);
  execFileSync('npm', ['run', '-s', 'build'], { cwd: repoRoot, stdio: 'inherit' });
  [pg, idp] = await Promise.all([startPostgres(), startDevIdp({ allowedDomain: 'example.org' })]);
  const cp = await startControlPlane();
  const kube = new KubeClient(cp.kubeConfig);
  try {
    await installCrds(cp.kubeConfig);
    await installRbac(cp.kubeConfig);
    for (const ns of ['baseline', 'operator']) {
      await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, { fieldManager: 'bench' });
      const b64 = (v: string) => Buffer.from(v).toString('base64');
      await kube.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'pg-admin', namespace: ns }, data: { username: b64(pg.user), password: b64(pg.password) } }, { fieldManager: 'bench' });
      await kube.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'idp-token', namespace: ns }, data: { token: b64(idp.initialAccessToken) } }, { fieldManager: 'bench' });
    }
    const ids = Array.from({ length: N }, (_, i) => i);
    let t = performance.now();
    let operatorMs = 0;
    const rows: string[][] = [];

    // Operator: same creates, operator running as its ServiceAccount.
    const saKc = await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator');
    const op = await startOperator({
      kubeconfigPath: saKc, compiled: true, env: { LOG_LEVEL: 'warn', FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system', FAMILYHUB_RESYNC_MS: '20000', FAMILYHUB_CONTROLLERS: 'familyhub' },
      // e.g. BENCH_OPERATOR_NODE_ARGS="--max-semi-space-size=2" to try V8 heap settings
      nodeArgs: process.env.BENCH_OPERATOR_NODE_ARGS?.split(' ').filter(Boolean),
    });
    try {
      await new Promise((r) => setTimeout(r, 1500));
      const reqBefore = await requests(op.metrics());
      // Watch (not poll) for Ready, so measuring adds no load to the apiserver.
      const done = new Set<string>();
      let allReady!: () => void;
      const finished = new Promise<void>((r) => (allReady = r));
      const seen = (o: KubeObject) => {
        if (o.status?.observedGeneration === o.metadata.generation && o.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True')) {
          done.add(o.metadata.name);
          if (done.size === N) allReady();
        }
      };
      const watcher = new Informer(kube, { apiVersion: API, kind: 'FamilyHub', namespace: 'operator' }, pino({ level: 'silent' }));
      watcher.addHandlers({ onAdd: seen, onUpdate: (_, o) => seen(o) });
      watcher.start();
      await watcher.hasSynced;
      t = performance.now();
      await pool(ids, CONCURRENCY, async (i) => void (await kube.create(hub('operator', i))));
      const timeout = setTimeout(() => { console.error(`only ${done.size}/${N} Ready after 10 min`); process.exit(1); }, 600_000);
      await finished;
      clearTimeout(timeout);
      await watcher.stop();
      operatorMs = performance.now() - t;
      const writesByResource = new Map<string, number>();
      for (const e of readAuditEvents(cp.auditLogPath)) {
        if (e.user.username !== OPERATOR || ['get', 'list', 'watch'].includes(e.verb)) continue;
        const k = `${e.verb} ${e.objectRef?.resource}${e.objectRef?.subresource ? '/' + e.objectRef.subresource : ''} ${e.responseStatus?.code}`;
        writesByResource.set(k, (writesByResource.get(k) ?? 0) + 1);
      }
      const reqAfter = await requests(op.metrics());

      // Steady state: wait for one full resync (20 s ± 10 %) and count writes.
      const writesBefore = operatorWrites(cp.auditLogPath);
      const recBefore = (await op.metric('familyhub_reconcile_total{controller="familyhub",result="success"}')) ?? 0;
      await new Promise((r) => setTimeout(r, 24_000));
      const recAfter = (await op.metric('familyhub_reconcile_total{controller="familyhub",result="success"}')) ?? 0;
      const steadyWrites = operatorWrites(cp.auditLogPath) - writesBefore;
      const rss = op.peakRss();
      const metricsText = await op.metrics();
      const byVerb = metricsText.split('\n').filter((l) => l.startsWith('familyhub_kube_requests_total{')).map((l) => `${/verb="(\w+)"/.exec(l)?.[1]}=${l.split(' ').pop()}`).join(' ');
      const heapUsed = Number(/^familyhub_process_nodejs_heap_size_used_bytes (\S+)/m.exec(metricsText)?.[1] ?? NaN);

      rows.push(
        ['operator API requests per object', `${((reqAfter - reqBefore) / N).toFixed(2)} (all verbs, incl. the ConfigMap child)`],
        ['operator requests by verb (whole run)', byVerb],
        ['operator writes by resource (audit log)', [...writesByResource].map(([k, v]) => `${k}: ${v}`).join('; ')],
        ['operator peak RSS', `${(rss / 1024 / 1024).toFixed(0)} MB (goal ≤ 150 MB); JS heap in use at end ${(heapUsed / 1024 / 1024).toFixed(0)} MB`],
        ['reconciles during steady-state resync', String(recAfter - recBefore)],
        ['writes during steady-state resync', `${steadyWrites} (must be 0)`],
      );
      if (steadyWrites !== 0) process.exitCode = 1;
    } finally {
      await op.stop();
    }
    // Baseline after the operator has stopped (it would otherwise reconcile
    // these too): create + one status apply per object, CONCURRENCY in flight.
    t = performance.now();
    await pool(ids, CONCURRENCY, async (i) => {
      await applyReadyStatus(kube, await kube.create(hub('baseline', i)));
    });
    const baselineMs = performance.now() - t;

    // Reference: what any operator must do per hub, by a bare script — the
    // baseline's create and status plus the finalizer, the platform
    // ConfigMap and one PostgreSQL query (the live check). The gap between it
    // and the operator is the operator's own cost; the gap between it and the
    // baseline is the two extra writes the apiserver must make.
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'reference' } }, { fieldManager: 'bench' });
    const refPg = new pgLib.Pool({ connectionString: pg.url, max: 4 });
    t = performance.now();
    await pool(ids, CONCURRENCY, async (i) => {
      const o = await createWithFinalizer(kube, hub('reference', i));
      await refPg.query("select current_setting('server_version') as v");
      await applyOwnedChild(kube, o, {
        apiVersion: 'v1', kind: 'ConfigMap',
        metadata: { name: `${o.metadata.name}-platform`, namespace: 'reference' },
        data: { domain: String(o.spec.domain), allowedEmailDomains: 'example.org', issuerUrl: idp.issuer, identityKind: 'oidc-dcr' },
      });
      await applyReadyStatus(kube, o);
    });
    const referenceMs = performance.now() - t;
    await refPg.end();

    const baseTput = N / (baselineMs / 1000);
    const opTput = N / (operatorMs / 1000);
    rows.unshift(
      ['objects', String(N)],
      ['baseline (bare create + status patch)', `${(baselineMs / 1000).toFixed(1)} s, ${baseTput.toFixed(0)} obj/s`],
      ['operator (create → all Ready)', `${(operatorMs / 1000).toFixed(1)} s, ${opTput.toFixed(0)} obj/s`],
      ['reference (+finalizer, ConfigMap, PG query)', `${(referenceMs / 1000).toFixed(1)} s, ${(N / (referenceMs / 1000)).toFixed(0)} obj/s`],
      ['throughput ratio operator/reference', `${(opTput / (N / (referenceMs / 1000))).toFixed(2)} (the operator's own overhead)`],
      ['throughput ratio operator/baseline', `${(opTput / baseTput).toFixed(2)} (goal ≥ 0.5)`],
    );
    for (const [k, v] of rows) console.log(`${k!.padEnd(42)} ${v}`);
  } finally {
    await cp.stop();
    await idp.stop();
    await pg.stop();
  }
}

async function requests(text: Promise<string>): Promise<number> {
  return (await text).split('\n').filter((l) => l.startsWith('familyhub_kube_requests_total{')).reduce((s, l) => s + Number(l.split(' ').pop()), 0);
}

const OPERATOR = 'system:serviceaccount:familyhub-system:familyhub-operator';

function operatorWrites(file: string): number {
  return readAuditEvents(file).filter((e) => e.user.username === OPERATOR && !['get', 'list', 'watch'].includes(e.verb) && e.objectRef?.resource !== 'leases').length;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
