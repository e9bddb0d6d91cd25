// npm run bench:oidcclient [-- N]
// Reconciles N OIDCClients against a real Keycloak through the real operator
// (child process, real apiserver) and reports clients/s until all are Ready.
// Baseline, measured in the same run against the same Keycloak: a bare
// script making the admin API calls the operator makes for a new client
// (look up, create with the same body, read back with scopes and secret), with the same
// concurrency as the operator's workers, and nothing else — no apiserver, no
// status, no Secret. Each side uses its own realm so neither sees the other.
// A reference run adds exactly the Kubernetes writes a client needs to the
// bare script, to show how much of the gap is the operator and how much is
// the apiserver sharing the machine.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpuBetween, formatCpu, sampleCpu } from './cpu.js';
import { startControlPlane } from '../hack/local/controlplane.js';
import { installCrds, installRbac, repoRoot } from '../hack/local/manifests.js';
import { waitFor } from '../hack/local/process.js';
import { createRealm, startKeycloak, type KeycloakInstance } from '../hack/local/keycloak.js';
import pino from 'pino';
import { Informer } from '../src/core/informer.js';
import { KubeClient } from '../src/core/kube-client.js';
import { toRepresentation } from '../src/idp/keycloak/representation.js';
import { defaultConfig } from '../src/config.js';
import type { KubeObject } from '../src/core/reconciler.js';
import { startOperator } from '../test/support/operator.js';
import { secret } from '../test/support/kube.js';
import { applyOwnedChild, applyReadyStatus, createWithFinalizer } from './bare-writes.js';
import { Bench, loadAverage, type Load } from './harness.js';
import { pool } from './pool.js';

const N = Number(process.argv[2] ?? process.env.BENCH_N ?? 100);
// Same number of concurrent IdP conversations on both sides.
const CONCURRENCY = defaultConfig().oidcClient.concurrency;
const API = 'familyhub.dev/v1alpha1';
const NS = 'bench';
const GOAL = 0.7;
// Keycloak JIT-compiles its hot paths over the first few hundred requests
// (with 150 the two baselines of one run still differed by 25 %).
const WARMUP = Number(process.env.BENCH_WARMUP ?? 400);

/** Prometheus text as series -> value (only unlabelled-or-labelled samples, no comments). */
function parseMetrics(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

function diffMetrics(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
}

/** kc.sh starts the JVM as a child; measure the JVM itself. */
function childPid(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    return kids.length ? Number(kids[0]) : pid;
  } catch {
    return pid;
  }
}

/** The admin calls a Keycloak client creation needs, made directly. */
async function bareCreate(kc: KeycloakInstance, token: string, realm: string, clientId: string): Promise<string> {
  const base = `${kc.baseUrl}/admin/realms/${realm}`;
  const h = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const call = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(`${base}${p}`, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    if (!res.ok) throw new Error(`${method} ${p}: HTTP ${res.status}`);
    const t = await res.text();
    return Object.assign(t ? JSON.parse(t) : {}, { headers: res.headers });
  };
  await call('GET', `/clients?clientId=${clientId}&search=false`);
  // The very request body the operator sends, so Keycloak does the same work.
  const { headers } = await call('POST', '/clients', toRepresentation({
    clientId, name: `${NS}/${clientId}`, confidential: true, redirectUris: [`https://${clientId}.family.test/cb`], postLogoutRedirectUris: [],
    webOrigins: [], grantTypes: ['authorization_code'], pkce: true, defaultScopes: ['openid', 'email', 'profile'], optionalScopes: [], owner: `${NS}/${clientId}`,
  }));
  // Read the new client back (scopes and secret come with it), as any
  // provisioning script must to hand the secret on.
  const rep = (await call('GET', new URL(headers.get('location')!).pathname.replace(/^.*\/clients\//, '/clients/'))) as { id: string; secret?: string; defaultClientScopes: string[] };
  const extra = rep.defaultClientScopes.filter((s) => !['basic', 'email', 'profile', 'service_account'].includes(s));
  if (extra.length) throw new Error(`baseline: Keycloak added scopes ${extra.join(', ')}`);
  if (!rep.secret) throw new Error('baseline: no secret in the client representation');
  return rep.secret;
}

async function main() {
  console.log(`bench:oidcclient — ${N} clients, concurrency ${CONCURRENCY}; starting Keycloak and the control plane…`);
  // The compiled operator, as the container image runs it (no tsx loader thread).
  execFileSync('npm', ['run', '-s', 'build'], { cwd: repoRoot, stdio: 'inherit' });
  const [cp, kc] = await Promise.all([startControlPlane(), startKeycloak()]);
  try {
    await createRealm(kc, 'warmup');
    await createRealm(kc, 'operator');

    // Warm the JVM so neither side pays Keycloak's first-request costs.
    const warmToken = await kc.adminToken();
    await pool(Array.from({ length: WARMUP }, (_, i) => `warm-${i}`), CONCURRENCY, async (id) => void (await bareCreate(kc, warmToken, 'warmup', id)));

    const ids = Array.from({ length: N }, (_, i) => `app-${i}`);
    // The machine is shared and Keycloak keeps warming up, so the baseline
    // runs once before and once after the operator and the two are averaged.
    const jvm = childPid(kc.proc.child.pid);
    // Per-process CPU per client for each phase, so the phases can be compared
    // process by process (Keycloak's own work, the control plane, the operator).
    // This run's servers get their own names: other kube-apiservers, etcds or
    // node processes on the shared machine are summed separately under theirs.
    const labels = (extra: Record<number, string> = {}): Record<number, string> => ({
      ...(jvm ? { [jvm]: 'run:keycloak' } : {}),
      [cp.apiserver.child.pid!]: 'run:apiserver', [cp.etcd.child.pid!]: 'run:etcd', [cp.controllerManager.child.pid!]: 'run:controller-manager',
      ...extra,
    });
    const cpuReport: Record<string, string> = {};
    const baseline = async (realm: string) => {
      await createRealm(kc, realm);
      const token = await kc.adminToken();
      const cpu0 = sampleCpu(labels());
      const start = performance.now();
      await pool(ids, CONCURRENCY, async (id) => void (await bareCreate(kc, token, realm, id)));
      const sec = (performance.now() - start) / 1000;
      const rows = cpuBetween(cpu0, sampleCpu(labels()));
      cpuReport[realm] = formatCpu(rows, N, 'client');
      console.log(`baseline in realm ${realm}: ${sec.toFixed(2)} s, Keycloak CPU ${((rows.find(([n]) => n === 'run:keycloak')?.[1] ?? NaN) / 1000).toFixed(1)} s`);
      return sec;
    };
    const bench = new Bench('oidcclient', 'clients/s', { clients: N, concurrency: CONCURRENCY, warmup: WARMUP, idp: 'Keycloak (hack/keycloak)' });
    const group = `${N} clients`;
    // The sides are timed in their own code (each has its own set-up); the
    // harness gets the same figures, bracketed baseline → operator → baseline,
    // then the reference.
    const loads: Record<string, Load> = { baselineBefore: loadAverage() };
    const record = (side: string, round: number, seconds: number, before: Load, extra: Record<string, unknown> = {}) =>
      bench.record(side, round, group, N / seconds, seconds, before, extra);
    const baseBefore = await baseline('baseline-before');
    record('baseline', 0, baseBefore, loads.baselineBefore!);
    let t0 = 0;

    const kube = new KubeClient(cp.kubeConfig);
    await installCrds(cp.kubeConfig);
    await installRbac(cp.kubeConfig);
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }, { fieldManager: 'bench' });
    await secret(kube, NS, 'keycloak-admin', { username: kc.adminUser, password: kc.adminPassword });
    await kube.apply({
      apiVersion: API, kind: 'FamilyHub', metadata: { name: 'home', namespace: NS },
      spec: {
        domain: 'family.test', allowedEmailDomains: ['family.test'],
        postgres: { host: '127.0.0.1', database: 'fh', adminCredentialsSecretRef: { name: 'pg-admin' } },
        identity: { kind: 'keycloak', issuerUrl: `${kc.baseUrl}/realms/operator`, realm: 'operator', adminCredentialsSecretRef: { name: 'keycloak-admin' } },
        runtime: { image: 'runtime:dev' },
      },
    }, { fieldManager: 'bench' });
    const op = await startOperator({
      kubeconfigPath: await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator'), compiled: true,
      env: { FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system', FAMILYHUB_CONTROLLERS: 'oidcclient', LOG_LEVEL: 'info' },
      // e.g. BENCH_OPERATOR_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to see where the operator's CPU goes
      nodeArgs: process.env.BENCH_OPERATOR_NODE_ARGS?.split(' ').filter(Boolean),
    });
    try {
      // Let the operator reach steady state (leader, informers synced) first.
      await waitFor('operator metrics', async () => (await op.metrics()).includes('familyhub_'), { timeoutMs: 60_000 });
      const objs: KubeObject[] = ids.map((id) => ({
        apiVersion: API, kind: 'OIDCClient', metadata: { name: id, namespace: NS },
        spec: { familyHubRef: { name: 'home' }, clientId: id, redirectUris: [`https://${id}.family.test/cb`], grantTypes: ['authorization_code'] },
      }));
      // A watch, not polling: listing 100 objects several times a second
      // would load the apiserver the operator shares the CPU with.
      const readyNames = new Set<string>();
      const watcher = new Informer<KubeObject>(kube, { apiVersion: API, kind: 'OIDCClient', namespace: NS }, pino({ level: 'silent' }));
      const track = (o: KubeObject) => {
        if (o.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True')) readyNames.add(o.metadata.name);
      };
      watcher.addHandlers({ onAdd: track, onUpdate: (_o, n) => track(n), onDelete: () => {} });
      watcher.start();
      await watcher.hasSynced;
      // The operator's one-time work (admin login, IdP health, the realm's
      // e-mail domain restriction) happens before the clock starts, as the
      // baseline's token request and realm set-up do: one client first.
      await kube.apply({ ...objs[0]!, metadata: { name: 'warmup', namespace: NS }, spec: { ...objs[0]!.spec, clientId: 'warmup', redirectUris: ['https://warmup.family.test/cb'] } }, { fieldManager: 'bench' });
      await waitFor('warm-up OIDCClient Ready', async () => readyNames.has('warmup'), { timeoutMs: 120_000, intervalMs: 50 });
      const opLabels = labels({ [op.proc.child.pid!]: 'run:operator' });
      // Counters from before the run are subtracted: start-up lists, watches and the lease are not per client.
      const metrics0 = parseMetrics(await op.metrics());
      const cpu0 = sampleCpu(opLabels);
      // BENCH_TRACE=1: where the time goes while clients become Ready (Keycloak CPU per interval).
      let trace: NodeJS.Timeout | undefined;
      if (process.env.BENCH_TRACE) {
        let last = sampleCpu(opLabels);
        trace = setInterval(() => {
          const now = sampleCpu(opLabels);
          console.log(`  t=${((performance.now() - t0) / 1000).toFixed(1)}s ready=${readyNames.size} ${formatCpu(cpuBetween(last, now), 1, '500 ms', 5)}`);
          last = now;
        }, 500);
      }
      loads.operator = loadAverage();
      t0 = performance.now();
      await pool(objs, 8, async (o) => {
        await kube.apply(o, { fieldManager: 'bench' });
      });
      await waitFor(`${N} OIDCClients Ready`, async () => ids.every((id) => readyNames.has(id)), { timeoutMs: 15 * 60_000, intervalMs: 50 });
      const opSec = (performance.now() - t0) / 1000;
      clearInterval(trace);
      cpuReport.operator = formatCpu(cpuBetween(cpu0, sampleCpu(opLabels)), N, 'client');
      await watcher.stop();
      const m = diffMetrics(metrics0, parseMetrics(await op.metrics()));
      const label = (series: string, name: string) => new RegExp(`${name}="([^"]+)"`).exec(series)?.[1];
      const perClient = (prefix: string, name: (series: string) => string | undefined) => Object.entries(m)
        .filter(([k, v]) => k.startsWith(prefix) && v > 0)
        .map(([k, v]) => `${name(k) ?? k} ${(v / N).toFixed(2)}`).join(', ');
      const reconciles = m['familyhub_reconcile_duration_seconds_count{controller="oidcclient"}'] ?? NaN;
      const reconcileSec = m['familyhub_reconcile_duration_seconds_sum{controller="oidcclient"}'] ?? NaN;
      const kubeTotal = Object.entries(m).filter(([k]) => k.startsWith('familyhub_kube_requests_total{')).reduce((a, [, v]) => a + v, 0);
      const idpTotal = Object.entries(m).filter(([k]) => k.startsWith('familyhub_idp_request_duration_seconds_count{')).reduce((a, [, v]) => a + v, 0);
      await op.stop();
      record('operator', 0, opSec, loads.operator!, { reconcilesPerClient: reconciles / N, apiserverRequestsPerClient: kubeTotal / N, idpRequestsPerClient: idpTotal / N });
      loads.baselineAfter = loadAverage();
      const baseAfter = await baseline('baseline-after');
      record('baseline', 1, baseAfter, loads.baselineAfter!);

      // Reference, with the operator stopped: the baseline's admin calls plus
      // the four Kubernetes writes a client needs (the user's create, a
      // finalizer, the Secret, the status), by a bare script. Apiserver and
      // etcd share the two cores with Keycloak, so this is the most any
      // operator could reach here; operator/reference is the operator's own cost.
      const refNs = 'reference';
      await createRealm(kc, 'reference');
      await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: refNs } }, { fieldManager: 'bench' });
      const refToken = await kc.adminToken();
      const cpuR = sampleCpu(labels());
      loads.reference = loadAverage();
      const tR = performance.now();
      await pool(objs, CONCURRENCY, async (o) => {
        const id = o.metadata.name;
        const created = await createWithFinalizer(kube, { ...o, metadata: { name: id, namespace: refNs } });
        const secret = await bareCreate(kc, refToken, 'reference', id);
        await applyOwnedChild(kube, created, {
          apiVersion: 'v1', kind: 'Secret',
          metadata: { name: `${id}-oidc`, namespace: refNs },
          stringData: { 'client-id': id, 'client-secret': secret, issuer: `${kc.baseUrl}/realms/reference` },
        });
        await applyReadyStatus(kube, created);
      });
      const refSec = (performance.now() - tR) / 1000;
      cpuReport.reference = formatCpu(cpuBetween(cpuR, sampleCpu(labels())), N, 'client');
      record('reference', 0, refSec, loads.reference!);

      const baseRate = (N / baseBefore + N / baseAfter) / 2;
      const opRate = N / opSec;
      console.log(`baseline (bare admin API script): ${baseRate.toFixed(2)} clients/s (before ${baseBefore.toFixed(2)} s, after ${baseAfter.toFixed(2)} s)`);
      console.log(`operator (CR applied -> Ready):   ${opRate.toFixed(2)} clients/s (${opSec.toFixed(2)} s)`);
      // "run:" marks this run's servers; other names are other processes on the machine (load from elsewhere).
      for (const [phase, line] of Object.entries(cpuReport)) console.log(`${phase.padEnd(16)} ${line}`);
      console.log(`operator per client: ${(reconciles / N).toFixed(2)} reconciles (${(reconcileSec / reconciles * 1000).toFixed(1)} ms mean), ` +
        `${(kubeTotal / N).toFixed(2)} apiserver requests (${perClient('familyhub_kube_requests_total{', (k) => label(k, 'verb'))}), ` +
        `${(idpTotal / N).toFixed(2)} IdP requests (${perClient('familyhub_idp_request_duration_seconds_count{', (k) => `${label(k, 'method')}${label(k, 'outcome') === 'ok' ? '' : ` ${label(k, 'outcome')}`}`)}; baseline 3: GET, POST, GET)`);
      console.log(`reference (bare admin calls + the 4 Kubernetes writes): ${(N / refSec).toFixed(2)} clients/s (${refSec.toFixed(2)} s)`);
      console.log(`ratio operator/reference: ${(opRate / (N / refSec)).toFixed(2)} (the operator's own overhead)`);
      console.log(`ratio operator/baseline: ${(opRate / baseRate).toFixed(2)} (goal >= ${GOAL})`);
      bench.ratio('operatorToBaseline', 'operator', 'baseline', group, `operator / bare admin-API script (mean of the baselines before and after; goal >= ${GOAL})`);
      bench.ratio('operatorToReference', 'operator', 'reference', group, 'operator / bare admin calls + the 4 Kubernetes writes: the operator\'s own overhead');
      bench.figures.perClient = { reconciles: reconciles / N, apiserverRequests: kubeTotal / N, idpRequests: idpTotal / N, baselineIdpRequests: 3 };
      bench.figures.cpu = cpuReport;
      bench.finish();
    } finally {
      await op.stop();
    }
  } finally {
    await Promise.all([cp.stop(), kc.stop()]);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
