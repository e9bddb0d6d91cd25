// npm run bench:databaseclaim [-- N]
// Provisions N DatabaseClaims (VaultDynamic) through the operator against a
// real apiserver, PostgreSQL and OpenBao, and reports claims/second to Ready
// and p50/p99 time from create to Secret. The baseline, measured in the same
// run on the same servers, is a bare script doing per claim only the same
// schema+role DDL and Vault calls (role write + creds read), with the same
// parallelism as the operator's workers.
import pg from 'pg';
import pino from 'pino';
import { startControlPlane } from '../hack/local/controlplane.js';
import { execFileSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { request } from 'node:https';
import { installCrds, installRbac, repoRoot } from '../hack/local/manifests.js';
import { startOpenBao } from '../hack/local/openbao.js';
import { startPostgres } from '../hack/local/postgres.js';
import { Informer } from '../src/core/informer.js';
import { KubeClient } from '../src/core/kube-client.js';
import type { KubeObject } from '../src/core/reconciler.js';
import { claimIdentifiers, quoteIdent } from '../src/postgres/identifiers.js';
import { claimRoleStatements, vaultConnectionUrl } from '../src/vault/database-engine.js';
import { startOperator } from '../test/support/operator.js';
import { cpuBetween, formatCpu, sampleCpu } from './cpu.js';
import { applyOwnedChild, applyReadyStatus, createWithFinalizer } from './bare-writes.js';
import { pool } from './pool.js';

const N = Number(process.argv[2] ?? process.env.BENCH_N ?? 200);
const WORKERS = 8;
const API = 'familyhub.dev/v1alpha1';

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function main() {
  console.log(`bench:databaseclaim N=${N}`);
  // The compiled operator, as the container image runs it.
  execFileSync('npm', ['run', '-s', 'build'], { cwd: repoRoot, stdio: 'inherit' });
  const [cp, db, bao] = await Promise.all([startControlPlane(), startPostgres(), startOpenBao()]);
  const kube = new KubeClient(cp.kubeConfig);
  const vault = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${bao.address}/v1/${path}`, { method, headers: { 'X-Vault-Token': bao.rootToken }, body: body ? JSON.stringify(body) : undefined });
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${await res.text()}`);
    return res.status === 204 ? {} : res.json();
  };
  try {
    await installCrds(cp.kubeConfig);
    await installRbac(cp.kubeConfig);
    const ns = 'bench';
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }, { fieldManager: 'bench' });
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    await kube.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'pg-admin', namespace: ns }, data: { username: b64(db.user), password: b64(db.password) } }, { fieldManager: 'bench' });
    await kube.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'vault-token', namespace: ns }, data: { token: b64(bao.rootToken) } }, { fieldManager: 'bench' });

    // Baseline: the database engine connection is set up once, like the operator does per hub.
    await vault('POST', 'sys/mounts/database', { type: 'database' });
    await vault('POST', 'database/config/baseline', {
      plugin_name: 'postgresql-database-plugin',
      connection_url: vaultConnectionUrl('127.0.0.1', db.port, 'postgres', 'disable'),
      username: db.user, password: db.password, allowed_roles: ['*'],
    });
    const admin = new pg.Pool({ connectionString: db.url, max: 4 });
    const ids = Array.from({ length: N }, (_, i) => i);
    const baseLat: number[] = [];
    const cpu0 = sampleCpu();
    const t0 = performance.now();
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
    await pool(ids, WORKERS, async (i) => {
      await bareDbAndVault('baseline', i);
      baseLat.push(performance.now() - t0);
    });
    const baseMs = performance.now() - t0;
    const baseCpu = formatCpu(cpuBetween(cpu0, sampleCpu()), N, 'claim (baseline)');

    // Operator: the same work as N DatabaseClaims.
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
    const saKc = await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator');
    let result: { opMs: number; toSecret: number[]; opCpu: string } | undefined;
    const op = await startOperator({
      kubeconfigPath: saKc, name: 'operator-bench', compiled: true,
      env: { LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn', FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system', FAMILYHUB_CONTROLLERS: 'databaseclaim', FAMILYHUB_DATABASECLAIM_CONCURRENCY: process.env.BENCH_OPERATOR_WORKERS ?? String(WORKERS),
      },
      // e.g. BENCH_OPERATOR_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to see where the operator's CPU goes
      nodeArgs: process.env.BENCH_OPERATOR_NODE_ARGS?.split(' ').filter(Boolean),
    });
    try {
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
      // BENCH_APISERVER_PPROF=<file>: a 6 s CPU profile of kube-apiserver during the run (go tool pprof -top <file>).
      const pprof = process.env.BENCH_APISERVER_PPROF ? apiserverProfile(cp.server, cp.adminToken, process.env.BENCH_APISERVER_PPROF, 6) : undefined;
      const t1 = performance.now();
      await pool(ids, 8, async (i) => {
        const name = `claim-${i}`;
        created.set(name, performance.now());
        await kube.create({ apiVersion: API, kind: 'DatabaseClaim', metadata: { name, namespace: ns }, spec: { familyHubRef: { name: 'home' } } });
      });
      const deadline = Date.now() + 15 * 60_000;
      while (readyAt.size < N && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      const opMs = Math.max(...readyAt.values()) - t1;
      await pprof;
      const opCpu = formatCpu(cpuBetween(cpu1, sampleCpu(labels)), N, 'claim (operator) ');
      await Promise.all([secrets.stop(), claims.stop()]);
      const metrics = await op.metrics();
      const sum = (prefix: string) => metrics.split('\n').filter((l) => l.startsWith(prefix)).reduce((a, l) => a + Number(l.split(' ').at(-1)), 0);
      const reconciles = sum('familyhub_reconcile_duration_seconds_count{controller="databaseclaim"}');
      const reconcileSec = sum('familyhub_reconcile_duration_seconds_sum{controller="databaseclaim"}');
      console.log(`operator: ${(reconciles / N).toFixed(1)} reconciles/claim, mean reconcile ${((reconcileSec / reconciles) * 1000).toFixed(0)} ms, ${(sum('familyhub_kube_requests_total') / N).toFixed(1)} apiserver requests/claim`);
      if (readyAt.size < N) throw new Error(`only ${readyAt.size}/${N} claims Ready`);
      const toSecret = [...created].map(([name, at]) => secretAt.get(name)! - at);
      result = { opMs, toSecret, opCpu };
    } finally {
      await op.stop();
    }

    // Reference, with the operator stopped: a bare script that does the
    // baseline's work plus the Kubernetes writes any operator needs per claim
    // (the user's create, a finalizer, the Secret, the status). The apiserver
    // and etcd share the two cores, so this is the most an operator could do
    // here; the gap between it and the operator is the operator's own cost.
    const refNs = 'reference';
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: refNs } }, { fieldManager: 'bench' });
    const cpu2 = sampleCpu();
    const t2 = performance.now();
    await pool(ids, WORKERS, async (i) => {
      const name = `claim-${i}`;
      const claim = await createWithFinalizer(kube, { apiVersion: API, kind: 'DatabaseClaim', metadata: { name, namespace: refNs }, spec: { familyHubRef: { name: 'home' } } });
      const creds = await bareDbAndVault(refNs, i);
      await applyOwnedChild(kube, claim, {
        apiVersion: 'v1', kind: 'Secret',
        metadata: { name: `${name}-db`, namespace: refNs },
        stringData: { username: creds.username, password: creds.password },
      });
      await applyReadyStatus(kube, claim);
    });
    const refMs = performance.now() - t2;
    const refCpu = formatCpu(cpuBetween(cpu2, sampleCpu()), N, 'claim (reference)');
    await admin.end();

    const { opMs, toSecret, opCpu } = result!;
    const baseRate = N / (baseMs / 1000);
    const opRate = N / (opMs / 1000);
    const refRate = N / (refMs / 1000);
    console.log('');
    console.log(`| run                                    | claims/s | p50 ms | p99 ms |`);
    console.log(`|----------------------------------------|---------:|-------:|-------:|`);
    console.log(`| baseline: DDL + Vault calls, bare      | ${baseRate.toFixed(1).padStart(8)} | ${pct(baseLat, 50).toFixed(0).padStart(6)} | ${pct(baseLat, 99).toFixed(0).padStart(6)} |`);
    console.log(`| operator: create → Ready               | ${opRate.toFixed(1).padStart(8)} | ${pct(toSecret, 50).toFixed(0).padStart(6)} | ${pct(toSecret, 99).toFixed(0).padStart(6)} |`);
    console.log(`| reference: baseline + 4 kube writes    | ${refRate.toFixed(1).padStart(8)} |        |        |`);
    console.log('');
    console.log(baseCpu);
    console.log(opCpu);
    console.log(refCpu);
    console.log(`baseline latency = time from start to credentials for each claim (all queued at once); operator latency = create → Secret.`);
    console.log(`ratio operator/reference claims/s: ${(opRate / refRate).toFixed(2)} (the operator's own overhead)`);
    console.log(`ratio operator/baseline claims/s: ${(opRate / baseRate).toFixed(2)} (goal >= 0.70)`);
  } finally {
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

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
