// npm run bench:databaseclaim [-- N]
// Provisions N DatabaseClaims (VaultDynamic) against a real apiserver,
// PostgreSQL and OpenBao, three sides with the same 8 workers and the same
// PostgreSQL admin pool (8 connections, the operator's FAMILYHUB_PG_POOL_MAX):
//   baseline  — a bare script doing per claim only the schema+role DDL and
//               the Vault calls (role write + creds read);
//   operator  — the compiled operator: create → Ready;
//   reference — the baseline's work plus the Kubernetes writes any operator
//               needs per claim (the user's create, a finalizer, the Secret,
//               the status), with the operator stopped.
// Run order baseline → operator → reference → … → baseline (BENCH_ROUNDS).
// Latency means the same on every side: per claim, from the moment it was
// requested (the create sent; for the baseline, which has no object, the
// burst's start, when all N are requested at once) until its credentials
// are usable (in the Secret; for the baseline, returned by Vault); a sample
// of them is then used to log in to PostgreSQL.
import pg from 'pg';
import pino from 'pino';
import { startControlPlane } from '../hack/local/controlplane.js';
import { createWriteStream } from 'node:fs';
import { request } from 'node:https';
import { installCrds, installRbac } from '../hack/local/manifests.js';
import { startOpenBao } from '../hack/local/openbao.js';
import { startPostgres } from '../hack/local/postgres.js';
import { waitFor } from '../hack/local/process.js';
import { Informer } from '../src/core/informer.js';
import { KubeClient } from '../src/core/kube-client.js';
import type { KubeObject } from '../src/core/reconciler.js';
import { claimIdentifiers, quoteIdent } from '../src/postgres/identifiers.js';
import { claimRoleStatements, vaultConnectionUrl } from '../src/vault/database-engine.js';
import { startOperator } from '../test/support/operator.js';
import { cpuBetween, formatCpu, sampleCpu } from './cpu.js';
import { applyOwnedChild, applyReadyStatus, createWithFinalizer } from './bare-writes.js';
import { Bench, buildOperator, percentile, roundsFromEnv, type SideResult } from './harness.js';
import { pool } from './pool.js';

const N = Number(process.argv[2] ?? process.env.BENCH_N ?? 200);
const WORKERS = 8;
const PG_POOL = 8; // the operator's FAMILYHUB_PG_POOL_MAX default, passed to it explicitly below
const ROUNDS = roundsFromEnv(2);
const API = 'familyhub.dev/v1alpha1';

const latencyFigures = (lat: number[]) => ({ p50Ms: Math.round(percentile(lat, 50)), p99Ms: Math.round(percentile(lat, 99)), n: lat.length });

async function main() {
  const bench = new Bench('databaseclaim', 'claims/s', { claims: N, workers: WORKERS, pgPoolMax: PG_POOL, rounds: ROUNDS });
  // The compiled operator, as the container image runs it.
  buildOperator(bench);
  const [cp, db, bao] = await Promise.all([startControlPlane(), startPostgres(), startOpenBao()]);
  const kube = new KubeClient(cp.kubeConfig);
  const vault = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${bao.address}/v1/${path}`, { method, headers: { 'X-Vault-Token': bao.rootToken }, body: body ? JSON.stringify(body) : undefined });
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${await res.text()}`);
    return res.status === 204 ? {} : res.json();
  };
  const admin = new pg.Pool({ connectionString: db.url, max: PG_POOL });
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const namespace = async (ns: string, withHub: boolean) => {
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, { fieldManager: 'bench' });
    if (!withHub) return;
    await kube.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'pg-admin', namespace: ns }, data: { username: b64(db.user), password: b64(db.password) } }, { fieldManager: 'bench' });
    await kube.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'vault-token', namespace: ns }, data: { token: b64(bao.rootToken) } }, { fieldManager: 'bench' });
    await kube.apply({
      apiVersion: API, kind: 'FamilyHub', metadata: { name: 'home', namespace: ns },
      spec: {
        domain: 'home.example.org', allowedEmailDomains: ['example.org'],
        postgres: { host: '127.0.0.1', port: db.port, database: 'postgres', sslMode: 'disable', adminCredentialsSecretRef: { name: 'pg-admin' } },
        vault: { address: bao.address, tokenSecretRef: { name: 'vault-token' } },
        identity: { kind: 'oidc-dcr', issuerUrl: 'http://127.0.0.1:9999' },
        runtime: { image: 'runtime:dev' },
      },
    }, { fieldManager: 'bench' });
  };
  // With the operator stopped: the claims of a finished run are removed
  // (finalizers dropped by hand, their roles left in PostgreSQL), so the
  // next operator start has nothing old to reconcile.
  const clear = async (ns: string) => {
    await kube.request('DELETE', kube.path(API, 'DatabaseClaim', ns));
    const left = await kube.list(API, 'DatabaseClaim', ns);
    await pool(left.items, 8, async (o) => {
      if (o.metadata.finalizers?.length) await kube.mergePatch(API, 'DatabaseClaim', ns, o.metadata.name, { metadata: { finalizers: null } }).catch(() => {});
    });
    await waitFor(`claims of ${ns} gone`, async () => (await kube.list(API, 'DatabaseClaim', ns)).items.length === 0, { timeoutMs: 120_000, intervalMs: 250 });
  };
  // The credentials really work: a login as a sample of the claims' users.
  const login = async (c: { username: string; password: string }) => {
    const client = new pg.Client({ host: '127.0.0.1', port: db.port, database: 'postgres', user: c.username, password: c.password });
    await client.connect();
    await client.query('select 1');
    await client.end();
  };
  const sample = <T>(xs: T[]) => [xs[0], xs[xs.length >> 1], xs.at(-1)].filter((x): x is T => x !== undefined);
  try {
    await installCrds(cp.kubeConfig);
    await installRbac(cp.kubeConfig);
    // Baseline: the database engine connection is set up once, like the operator does per hub.
    await vault('POST', 'sys/mounts/database', { type: 'database' });
    await vault('POST', 'database/config/baseline', {
      plugin_name: 'postgresql-database-plugin',
      connection_url: vaultConnectionUrl('127.0.0.1', db.port, 'postgres', 'disable'),
      username: db.user, password: db.password, allowed_roles: ['*'],
    });
    const ids = Array.from({ length: N }, (_, i) => i);
    // Per claim: the schema+role DDL and the Vault role write + creds read, nothing else.
    const bareDbAndVault = async (prefix: string, i: number) => {
      const n = claimIdentifiers(prefix, `claim-${i}`);
      const owner = quoteIdent(n.ownerRole);
      const schema = quoteIdent(n.schema);
      const c = await admin.connect();
      try {
        await c.query('begin');
        await c.query(`create role ${owner} nologin`);
        await c.query(`create schema ${schema} authorization ${owner}`);
        await c.query(`revoke all on schema ${schema} from public`);
        await c.query(`grant usage, create on schema ${schema} to ${owner}`);
        await c.query(`alter role ${owner} set search_path to ${schema}`);
        await c.query('commit');
      } finally {
        c.release();
      }
      await vault('POST', `database/roles/${n.vaultName}`, { db_name: 'baseline', ...toVault(claimRoleStatements(n.schema, n.ownerRole)), default_ttl: 3600, max_ttl: 86400 });
      const creds = (await vault('GET', `database/creds/${n.vaultName}`)) as { data: { username: string; password: string } };
      if (!creds.data.username) throw new Error('no creds');
      return creds.data;
    };

    const baseline = async (r: number): Promise<SideResult> => {
      const lat: number[] = [];
      const got: { username: string; password: string }[] = [];
      const cpu0 = sampleCpu();
      const t0 = performance.now();
      await pool(ids, WORKERS, async (i) => {
        got.push(await bareDbAndVault(`baseline-r${r}`, i));
        lat.push(performance.now() - t0);
      });
      const ms = performance.now() - t0;
      const cpu = formatCpu(cpuBetween(cpu0, sampleCpu()), N, 'claim');
      for (const c of sample(got)) await login(c);
      return { value: N / (ms / 1000), extra: { ...latencyFigures(lat), cpu, loggedIn: sample(got).length } };
    };

    const operator = async (r: number): Promise<SideResult> => {
      const ns = `operator-r${r}`;
      await namespace(ns, true);
      const saKc = await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator');
      const op = await startOperator({
        kubeconfigPath: saKc, name: 'operator-bench', compiled: true,
        env: {
          LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn', FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system', FAMILYHUB_CONTROLLERS: 'databaseclaim',
          FAMILYHUB_DATABASECLAIM_CONCURRENCY: process.env.BENCH_OPERATOR_WORKERS ?? String(WORKERS), FAMILYHUB_PG_POOL_MAX: String(PG_POOL),
        },
        // e.g. BENCH_OPERATOR_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to see where the operator's CPU goes
        nodeArgs: process.env.BENCH_OPERATOR_NODE_ARGS?.split(' ').filter(Boolean),
      });
      try {
        await waitFor('operator /readyz', async () => (await fetch(`http://127.0.0.1:${op.port}/readyz`)).ok, { proc: op.proc, timeoutMs: 60_000 });
        const created = new Map<string, number>();
        const secretAt = new Map<string, number>();
        const readyAt = new Map<string, number>();
        const quiet = pino({ level: 'silent' });
        const secrets = new Informer(kube, { apiVersion: 'v1', kind: 'Secret', namespace: ns }, quiet);
        const onSecret = (o: KubeObject) => {
          const claim = o.metadata.labels?.['familyhub.dev/databaseclaim'];
          if (claim && !secretAt.has(claim)) secretAt.set(claim, performance.now());
        };
        secrets.addHandlers({ onAdd: onSecret, onUpdate: (_, o) => onSecret(o) });
        const claims = new Informer(kube, { apiVersion: API, kind: 'DatabaseClaim', namespace: ns }, quiet);
        const onClaim = (o: KubeObject) => {
          const ready = (o.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True');
          if (ready && !readyAt.has(o.metadata.name)) readyAt.set(o.metadata.name, performance.now());
        };
        claims.addHandlers({ onAdd: onClaim, onUpdate: (_, o) => onClaim(o) });
        secrets.start();
        claims.start();
        await Promise.all([secrets.hasSynced, claims.hasSynced]);

        const labels = { [op.proc.child.pid!]: 'operator' };
        const cpu1 = sampleCpu(labels);
        const metricsBefore = await op.metrics();
        // BENCH_APISERVER_PPROF=<file>: a 6 s CPU profile of kube-apiserver during the run (go tool pprof -top <file>).
        const pprof = process.env.BENCH_APISERVER_PPROF && r === 0 ? apiserverProfile(cp.server, cp.adminToken, process.env.BENCH_APISERVER_PPROF, 6) : undefined;
        const t1 = performance.now();
        await pool(ids, WORKERS, async (i) => {
          const name = `claim-${i}`;
          created.set(name, performance.now());
          await kube.create({ apiVersion: API, kind: 'DatabaseClaim', metadata: { name, namespace: ns }, spec: { familyHubRef: { name: 'home' } } });
        });
        const deadline = Date.now() + 15 * 60_000;
        while (readyAt.size < N && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
        const opMs = Math.max(...readyAt.values()) - t1;
        await pprof;
        const cpu = formatCpu(cpuBetween(cpu1, sampleCpu(labels)), N, 'claim');
        await Promise.all([secrets.stop(), claims.stop()]);
        const metrics = await op.metrics();
        const sum = (text: string, prefix: string) => text.split('\n').filter((l) => l.startsWith(prefix)).reduce((a, l) => a + Number(l.split(' ').at(-1)), 0);
        const delta = (prefix: string) => sum(metrics, prefix) - sum(metricsBefore, prefix);
        const reconciles = delta('familyhub_reconcile_duration_seconds_count{controller="databaseclaim"}');
        const reconcileSec = delta('familyhub_reconcile_duration_seconds_sum{controller="databaseclaim"}');
        if (readyAt.size < N) throw new Error(`only ${readyAt.size}/${N} claims Ready`);
        const lat = [...created].map(([name, at]) => secretAt.get(name)! - at);
        const loginSample = sample(ids);
        for (const i of loginSample) {
          const s = await kube.readSecret(ns, `claim-${i}-db`);
          if (!s?.username || !s.password) throw new Error(`claim-${i}: no username/password in its Secret (keys ${Object.keys(s ?? {}).join(', ')})`);
          await login({ username: s.username, password: s.password });
        }
        return {
          value: N / (opMs / 1000),
          extra: {
            ...latencyFigures(lat), cpu, loggedIn: loginSample.length,
            reconcilesPerClaim: Number((reconciles / N).toFixed(2)), meanReconcileMs: Math.round((reconcileSec / reconciles) * 1000),
            apiserverRequestsPerClaim: Number((delta('familyhub_kube_requests_total') / N).toFixed(2)),
          },
        };
      } finally {
        await op.stop();
        await clear(ns);
      }
    };

    const reference = async (r: number): Promise<SideResult> => {
      const ns = `reference-r${r}`;
      await namespace(ns, false);
      const lat: number[] = [];
      const got: { username: string; password: string }[] = [];
      const cpu0 = sampleCpu();
      const t2 = performance.now();
      // As with the operator, the user's creates go out as a burst (8 in
      // flight) while 8 workers provision the claims already created.
      const createdAt: number[] = [];
      const created = ids.map(() => {
        let resolve!: (o: KubeObject) => void;
        let reject!: (e: unknown) => void;
        const promise = new Promise<KubeObject>((res, rej) => ((resolve = res), (reject = rej)));
        return { promise, resolve, reject };
      });
      const creating = pool(ids, WORKERS, async (i) => {
        createdAt[i] = performance.now();
        await createWithFinalizer(kube, { apiVersion: API, kind: 'DatabaseClaim', metadata: { name: `claim-${i}`, namespace: ns }, spec: { familyHubRef: { name: 'home' } } })
          .then(created[i]!.resolve, created[i]!.reject);
      });
      await pool(ids, WORKERS, async (i) => {
        const claim = await created[i]!.promise;
        const creds = await bareDbAndVault(ns, i);
        await applyOwnedChild(kube, claim, {
          apiVersion: 'v1', kind: 'Secret',
          metadata: { name: `claim-${i}-db`, namespace: ns },
          stringData: { username: creds.username, password: creds.password },
        });
        lat.push(performance.now() - createdAt[i]!);
        got.push(creds);
        await applyReadyStatus(kube, claim);
      });
      await creating;
      const ms = performance.now() - t2;
      const cpu = formatCpu(cpuBetween(cpu0, sampleCpu()), N, 'claim');
      for (const c of sample(got)) await login(c);
      await clear(ns);
      return { value: N / (ms / 1000), extra: { ...latencyFigures(lat), cpu, loggedIn: sample(got).length } };
    };

    await bench.rounds(ROUNDS, `${WORKERS} workers`, [['baseline', baseline], ['operator', operator], ['reference', reference]]);
    const g = `${WORKERS} workers`;
    bench.ratio('operator/reference', 'operator', 'reference', g, "the operator's own overhead over the minimum work per claim");
    bench.ratio('operator/baseline', 'operator', 'baseline', g, 'against the DDL + Vault calls alone (goal ≥ 0.7)');
    for (const side of ['baseline', 'operator', 'reference']) {
      const runs = bench.runs.filter((x) => x.side === side);
      bench.figures[side] = { rate: bench.sideSpread(side, g), p50Ms: runs.map((x) => x.extra.p50Ms), p99Ms: runs.map((x) => x.extra.p99Ms), cpu: runs.map((x) => x.extra.cpu) };
    }
    bench.notes.push('latency: per claim, requested (create sent; baseline: burst start) → credentials usable (Secret written; baseline: Vault response); a sample logged in to PostgreSQL');
  } finally {
    bench.finish();
    await admin.end().catch(() => {});
    await Promise.allSettled([cp.stop(), db.stop(), bao.stop()]);
  }
}

async function apiserverProfile(server: string, token: string, file: string, seconds: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const req = request(`${server}/debug/pprof/profile?seconds=${seconds}`, { rejectUnauthorized: false, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      res.pipe(createWriteStream(file)).on('finish', resolve).on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function toVault(s: ReturnType<typeof claimRoleStatements>) {
  return { creation_statements: s.creationStatements, revocation_statements: s.revocationStatements };
}

main().then(() => process.exit(process.exitCode ?? 0), (err) => {
  console.error(err);
  process.exit(1);
});
