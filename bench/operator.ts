// npm run bench:operator [-- N]
// N FamilyHubs (live PostgreSQL + IdP checks) on a real apiserver, three
// sides at the same concurrency c (c requests in flight for the bare
// scripts; c FamilyHub workers and c creates in flight for the operator):
//   baseline  — a bare client: create, then apply a Ready status;
//   operator  — the compiled operator as its ServiceAccount, create → Ready
//               observed by a watch;
//   reference — what any operator must do per hub, by a bare script: the
//               baseline's writes plus the finalizer, the platform ConfigMap
//               and the PostgreSQL query of the live check.
// A curve over c = 1, 4, 8, 16 (BENCH_CURVE) is printed for all three; the
// headline ratio is at c = 8, the operator's default worker count
// (FAMILYHUB_CONCURRENCY), repeated BENCH_ROUNDS times in the order baseline →
// operator → reference → … → baseline. Every run gets a fresh namespace and
// the objects are removed (operator stopped) before the next, so no run
// reconciles another's objects. At the headline level the steady state is
// checked: one resync must reconcile every object (reconcile counter delta
// == N) with 0 apiserver writes.
import { startControlPlane, readAuditEvents } from '../hack/local/controlplane.js';
import { installCrds, installRbac } from '../hack/local/manifests.js';
import { waitFor } from '../hack/local/process.js';
import { KubeClient } from '../src/core/kube-client.js';
import type { KubeObject } from '../src/core/reconciler.js';
import { startOperator, type RunningOperator } from '../test/support/operator.js';
import { Informer } from '../src/core/informer.js';
import pino from 'pino';
import pgLib from 'pg';
import { startPostgres, type LocalPostgres } from '../hack/local/postgres.js';
import { startDevIdp, type DevIdp } from '../hack/dev-idp/provider.js';
import { applyOwnedChild, applyReadyStatus, createWithFinalizer } from './bare-writes.js';
import { Bench, buildOperator, roundsFromEnv, type SideResult } from './harness.js';
import { pool } from './pool.js';

const N = Number(process.argv[2] ?? process.env.BENCH_N ?? 300);
const CURVE = (process.env.BENCH_CURVE ?? '1,4,8,16').split(',').map(Number);
const HEADLINE = 8; // FAMILYHUB_CONCURRENCY's default
const ROUNDS = roundsFromEnv(2);
const RESYNC_MS = 20_000;
const API = 'familyhub.dev/v1alpha1';
const OPERATOR = 'system:serviceaccount:familyhub-system:familyhub-operator';
const RECONCILES = 'familyhub_reconcile_total{controller="familyhub",result=';

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

const sumSeries = (text: string, prefix: string) =>
  text.split('\n').filter((l) => l.startsWith(prefix)).reduce((s, l) => s + Number(l.split(' ').pop()), 0);

async function main() {
  const bench = new Bench('operator', 'obj/s', { objects: N, curve: CURVE, headlineInFlight: HEADLINE, rounds: ROUNDS, resyncMs: RESYNC_MS });
  buildOperator(bench);
  [pg, idp] = await Promise.all([startPostgres(), startDevIdp({ allowedDomain: 'example.org' })]);
  const cp = await startControlPlane();
  const kube = new KubeClient(cp.kubeConfig);
  let saKc = '';
  const refPg = new pgLib.Pool({ connectionString: pg.url, max: Math.max(...CURVE) });
  const ids = Array.from({ length: N }, (_, i) => i);
  const b64 = (v: string) => Buffer.from(v).toString('base64');
  const namespace = async (ns: string) => {
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, { fieldManager: 'bench' });
    await kube.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'pg-admin', namespace: ns }, data: { username: b64(pg.user), password: b64(pg.password) } }, { fieldManager: 'bench' });
    await kube.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'idp-token', namespace: ns }, data: { token: b64(idp.initialAccessToken) } }, { fieldManager: 'bench' });
  };
  // With the operator stopped: delete every hub of a run (finalizers
  // dropped by hand), so the next operator start finds none to reconcile.
  const clear = async (ns: string) => {
    await kube.request('DELETE', kube.path(API, 'FamilyHub', ns));
    const left = await kube.list(API, 'FamilyHub', ns);
    await pool(left.items, 8, async (o) => {
      if (o.metadata.finalizers?.length) await kube.mergePatch(API, 'FamilyHub', ns, o.metadata.name, { metadata: { finalizers: null } }).catch(() => {});
    });
    await waitFor(`hubs of ${ns} gone`, async () => (await kube.list(API, 'FamilyHub', ns)).items.length === 0, { timeoutMs: 120_000, intervalMs: 250 });
  };

  const baseline = async (c: number, r: number): Promise<SideResult> => {
    const ns = `baseline-c${c}-r${r}`;
    await namespace(ns);
    const t = performance.now();
    await pool(ids, c, async (i) => applyReadyStatus(kube, await kube.create(hub(ns, i))));
    const value = N / ((performance.now() - t) / 1000);
    await clear(ns);
    return { value };
  };

  const reference = async (c: number, r: number): Promise<SideResult> => {
    const ns = `reference-c${c}-r${r}`;
    await namespace(ns);
    const t = performance.now();
    await pool(ids, c, async (i) => {
      const o = await createWithFinalizer(kube, hub(ns, i));
      await refPg.query("select current_setting('server_version') as v");
      await applyOwnedChild(kube, o, {
        apiVersion: 'v1', kind: 'ConfigMap',
        metadata: { name: `${o.metadata.name}-platform`, namespace: ns },
        data: { domain: String(o.spec.domain), allowedEmailDomains: 'example.org', issuerUrl: idp.issuer, identityKind: 'oidc-dcr' },
      });
      await applyReadyStatus(kube, o);
    });
    const value = N / ((performance.now() - t) / 1000);
    await clear(ns);
    return { value };
  };

  const operator = async (c: number, r: number, steady: boolean): Promise<SideResult> => {
    const ns = `operator-c${c}-r${r}`;
    await namespace(ns);
    const op: RunningOperator = await startOperator({
      kubeconfigPath: saKc, compiled: true, name: `bench-operator-c${c}`,
      env: { LOG_LEVEL: 'warn', FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system', FAMILYHUB_RESYNC_MS: String(RESYNC_MS), FAMILYHUB_CONTROLLERS: 'familyhub', FAMILYHUB_CONCURRENCY: String(c) },
      // e.g. BENCH_OPERATOR_NODE_ARGS="--max-semi-space-size=2" to try V8 heap settings
      nodeArgs: process.env.BENCH_OPERATOR_NODE_ARGS?.split(' ').filter(Boolean),
    });
    const extra: Record<string, unknown> = {};
    try {
      // Leader and caches synced before the clock starts.
      await waitFor('operator /readyz', async () => (await fetch(`http://127.0.0.1:${op.port}/readyz`)).ok, { proc: op.proc, timeoutMs: 60_000 });
      const reqBefore = sumSeries(await op.metrics(), 'familyhub_kube_requests_total{');
      const auditBefore = readAuditEvents(cp.auditLogPath).length;
      // Watch (not poll) for Ready, so measuring adds no load to the apiserver.
      const done = new Set<string>();
      let allReady!: () => void;
      const finished = new Promise<void>((res) => (allReady = res));
      const seen = (o: KubeObject) => {
        if (o.status?.observedGeneration === o.metadata.generation && o.status?.conditions?.some((x: { type: string; status: string }) => x.type === 'Ready' && x.status === 'True')) {
          done.add(o.metadata.name);
          if (done.size === N) allReady();
        }
      };
      const watcher = new Informer(kube, { apiVersion: API, kind: 'FamilyHub', namespace: ns }, pino({ level: 'silent' }));
      watcher.addHandlers({ onAdd: seen, onUpdate: (_, o) => seen(o) });
      watcher.start();
      await watcher.hasSynced;
      const t = performance.now();
      await pool(ids, c, async (i) => void (await kube.create(hub(ns, i))));
      const timeout = setTimeout(() => { console.error(`only ${done.size}/${N} Ready after 10 min`); process.exit(1); }, 600_000);
      await finished;
      clearTimeout(timeout);
      const value = N / ((performance.now() - t) / 1000);
      await watcher.stop();
      const metrics = await op.metrics();
      extra.requestsPerObject = Number(((sumSeries(metrics, 'familyhub_kube_requests_total{') - reqBefore) / N).toFixed(2));
      const writes = new Map<string, number>();
      for (const e of readAuditEvents(cp.auditLogPath).slice(auditBefore)) {
        if (e.user.username !== OPERATOR || ['get', 'list', 'watch'].includes(e.verb) || e.objectRef?.resource === 'leases') continue;
        const k = `${e.verb} ${e.objectRef?.resource}${e.objectRef?.subresource ? '/' + e.objectRef.subresource : ''}`;
        writes.set(k, (writes.get(k) ?? 0) + 1);
      }
      extra.writesPerObject = Object.fromEntries([...writes].map(([k, v]) => [k, Number((v / N).toFixed(2))]));
      extra.peakRssMB = Math.round(op.peakRss() / 1024 / 1024);

      if (steady) {
        // One resync enqueues every key at once; wait for it to be worked
        // off, then require exactly N reconciles and no write in between.
        const reconciles = async () => sumSeries(await op.metrics(), RECONCILES);
        const auditAt = readAuditEvents(cp.auditLogPath).length;
        const recBefore = await reconciles();
        await waitFor('a resync reconciled every hub', async () => (await reconciles()) - recBefore >= N, { proc: op.proc, timeoutMs: RESYNC_MS * 3, intervalMs: 200 });
        await waitFor('work queue empty', async () => (await op.metric('familyhub_workqueue_depth{controller="familyhub"}')) === 0, { proc: op.proc, timeoutMs: 60_000, intervalMs: 200 });
        await new Promise((res) => setTimeout(res, 2000)); // in-flight reconciles finish; the next resync is ≥ 18 s away
        const recDelta = (await reconciles()) - recBefore;
        const steadyWrites = readAuditEvents(cp.auditLogPath).slice(auditAt)
          .filter((e) => e.user.username === OPERATOR && !['get', 'list', 'watch'].includes(e.verb) && e.objectRef?.resource !== 'leases');
        bench.check('steady-state resync reconciled every object', recDelta === N, `${recDelta} reconciles for ${N} objects in one resync`);
        bench.check('steady-state resync wrote nothing', steadyWrites.length === 0, `${steadyWrites.length} writes${steadyWrites.length ? ` (${steadyWrites.slice(0, 3).map((e) => `${e.verb} ${e.objectRef?.resource}`).join(', ')})` : ''}`);
        bench.figures.steadyState = { reconciles: recDelta, writes: steadyWrites.length };
        bench.figures.peakRssMB = extra.peakRssMB;
      }
      return { value, extra };
    } finally {
      await op.stop();
      await clear(ns);
    }
  };

  try {
    await installCrds(cp.kubeConfig);
    await installRbac(cp.kubeConfig);
    saKc = await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator');
    for (const c of CURVE) {
      const rounds = c === HEADLINE ? ROUNDS : 1;
      await bench.rounds(rounds, `${c} in flight`, [
        ['baseline', (r) => baseline(c, r)],
        ['operator', (r) => operator(c, r, c === HEADLINE && r === 0)],
        ['reference', (r) => reference(c, r)],
      ]);
      bench.ratio(c === HEADLINE ? 'operator/reference' : `operator/reference@${c}`, 'operator', 'reference', `${c} in flight`, "the operator's own overhead over the minimum work per hub");
      bench.ratio(c === HEADLINE ? 'operator/baseline' : `operator/baseline@${c}`, 'operator', 'baseline', `${c} in flight`, 'against a bare create + status (goal ≥ 0.5)');
    }
    bench.figures.curve = Object.fromEntries(CURVE.map((c) => [c, Object.fromEntries(['baseline', 'operator', 'reference'].map((s) => [s, bench.sideSpread(s, `${c} in flight`)]))]));
    const head = bench.runs.find((r) => r.side === 'operator' && r.group === `${HEADLINE} in flight`);
    if (head) bench.figures.requestsPerObject = head.extra.requestsPerObject;
    bench.notes.push(`headline ratios at ${HEADLINE} in flight (the operator's default FAMILYHUB_CONCURRENCY); baseline and reference run the same number of requests in flight, the operator that many workers and creates`);
    console.log('\nin flight | baseline obj/s | operator obj/s | reference obj/s');
    for (const c of CURVE) {
      const g = `${c} in flight`;
      const m = (s: string) => bench.sideSpread(s, g).median.toFixed(0);
      console.log(`${String(c).padStart(9)} | ${m('baseline').padStart(14)} | ${m('operator').padStart(14)} | ${m('reference').padStart(15)}`);
    }
  } finally {
    bench.finish();
    await refPg.end();
    await cp.stop();
    await idp.stop();
    await pg.stop();
  }
}

main().then(() => process.exit(process.exitCode ?? 0), (err) => {
  console.error(err);
  process.exit(1);
});
