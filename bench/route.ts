// npm run bench:route [-- N]
// (1) N Routes applied at once → time until each answers 200 through a real
//     Traefik (bearer token, so ForwardAuth is on the path), p50/p99 and the
//     time until all N are served. Reference in the same run, against the
//     same Traefik: a bare script writing exactly the HTTPRoutes and
//     Middlewares the operator would (the gateway's own floor).
// (2) Requests/s and latency through Traefik to one backend, with
//     forward-auth (bearer JWT checked by the auth service) and on a route
//     without auth, same run: closed loop for throughput, then an open loop
//     at a fixed rate for the added p99. Forward-auth twice: over HTTP/1.1
//     (Traefik's ForwardAuth client keeps at most 2 idle connections to the
//     auth service) and over TLS with HTTP/2 to the auth service's gateway
//     listener (one multiplexed connection). TIME-WAIT sockets to the auth
//     service and the load average are printed with each run.
//     A reference on the same transports: a bare forward-auth server
//     (bench/forward-auth-reference.ts) that only checks the JWT, so the
//     run shows both what forward-auth costs at all on this machine and
//     what the auth service adds to that. CPU per request of each process
//     (Traefik, auth service, reference, backend, load generator) is
//     recorded with every phase.
// On the shared harness (bench/harness.ts): alternating rounds, spreads,
// load average, bench/results/route.json. BENCH_PARTS=2 runs only the
// second part, BENCH_ROUNDS the number of closed-loop rounds (default 2).
// Everything shares this machine's two cores: load generator, Traefik, the
// auth service, the backend, the apiserver and the operator.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { startDevIdp } from '../hack/dev-idp/provider.js';
import { startControlPlane } from '../hack/local/controlplane.js';
import { installGatewayCrds } from '../hack/local/gateway-crds.js';
import { installCrds, installRbac } from '../hack/local/manifests.js';
import { publishBackend, startNetnsBackend } from '../hack/local/netns-backend.js';
import { freePort, startProcess, waitFor, workDir } from '../hack/local/process.js';
import { startTraefik } from '../hack/local/traefik.js';
import { KubeClient } from '../src/core/kube-client.js';
import type { KubeObject } from '../src/core/reconciler.js';
import { traefikProvider } from '../src/gateway/traefik/provider.js';
import type { GatewayTarget, RouteIntent } from '../src/gateway/types.js';
import { startAuthService } from '../test/support/auth-service.js';
import { applyObject, deleteObject } from '../test/support/gateway.js';
import { namespace } from '../test/support/kube.js';
import { addressCertificate } from '../test/support/tls.js';
import { startOperator } from '../test/support/operator.js';
import { cpuMsOf } from './cpu.js';
import { Bench, roundsFromEnv, spread, type SideResult } from './harness.js';
import { pool } from './pool.js';

const N = Number(process.argv[2] ?? process.env.BENCH_N ?? 200);
const API = 'familyhub.dev/v1alpha1';
const NS = 'bench';
const GW = { name: 'family', namespace: 'gateway' };
const DOMAIN = 'family.test';
const WRITE_CONCURRENCY = 8;
const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const FIXED_RATE = Number(process.env.BENCH_RATE ?? 1000);
const PARTS = (process.env.BENCH_PARTS ?? '1,2').split(',');

/** TCP sockets in TIME-WAIT towards the auth service (both of its ports). */
function timeWait(address: string): number {
  return Number(execFileSync('sh', ['-c', `ss -Htan state time-wait dst ${address} | wc -l`], { encoding: 'utf8' }).trim());
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
let port = 0;

function get(host: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host, ...headers }, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
};
const round = (x: number) => Math.round(x * 10) / 10;

/** Polls every pending host (one sweep at a time) and records when each first answers 200. */
async function timeToServed(hosts: string[], started: Map<string, number>, headers: Record<string, string>, timeoutMs = 300_000) {
  const served = new Map<string, number>();
  const deadline = Date.now() + timeoutMs;
  let sweeps = 0;
  while (served.size < hosts.length && Date.now() < deadline) {
    const pending = hosts.filter((h) => !served.has(h) && started.has(h));
    sweeps++;
    await pool(pending, 16, async (h) => {
      if ((await get(h, headers)) === 200) served.set(h, performance.now());
    });
    if (!pending.length) await new Promise((r) => setTimeout(r, 5));
  }
  if (served.size < hosts.length) throw new Error(`only ${served.size}/${hosts.length} routes served within ${timeoutMs} ms`);
  const lat = hosts.map((h) => served.get(h)! - started.get(h)!);
  const first = Math.min(...started.values());
  return { p50Ms: round(pct(lat, 50)), p99Ms: round(pct(lat, 99)), allServedMs: Math.round(Math.max(...served.values()) - first), sweeps };
}

async function closedLoop(host: string, headers: Record<string, string>, seconds: number) {
  const lat: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    while (performance.now() < end) {
      const t = performance.now();
      const s = await get(host, headers);
      if (s === 200) lat.push(performance.now() - t);
      else errors++;
    }
  }));
  return { rps: Math.round(lat.length / seconds), p50Ms: round(pct(lat, 50)), p99Ms: round(pct(lat, 99)), errors };
}

async function openLoop(host: string, headers: Record<string, string>, rate: number, seconds: number) {
  const lat: number[] = [];
  let errors = 0;
  const inflight: Promise<void>[] = [];
  const start = performance.now();
  const total = rate * seconds;
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    // Latency from the scheduled time: a generator that falls behind shows up, not hides.
    inflight.push(get(host, headers).then((s) => {
      if (s === 200) lat.push(performance.now() - due);
      else errors++;
    }));
  }
  await Promise.all(inflight);
  const took = (performance.now() - start) / 1000;
  return { targetRps: rate, achievedRps: Math.round(lat.length / took), p50Ms: round(pct(lat, 50)), p99Ms: round(pct(lat, 99)), errors };
}

/** The auth service's gateway certificate, its key and the CA that signed it (the reference serves the same). */
let authTls = { certFile: '', keyFile: '', caPem: '' };

async function main() {
  const [cp, idp, backend] = await Promise.all([startControlPlane({ audit: false }), startDevIdp({ allowedDomain: DOMAIN }), startNetnsBackend({ name: 'echo' })]);
  const kube = new KubeClient(cp.kubeConfig);
  await installCrds(cp.kubeConfig);
  await installGatewayCrds(cp.kubeConfig, ['gateway-api', 'traefik']);
  await installRbac(cp.kubeConfig);
  await Promise.all([namespace(kube, NS), namespace(kube, GW.namespace)]);
  const traefik = await startTraefik(cp, { logLevel: 'ERROR' });
  port = traefik.httpPort;
  const tlsPort = await freePort();
  const auth = await startAuthService({
    OIDC_ISSUER_URL: idp.issuer, OIDC_AUDIENCE: 'familyhub', AUTH_ALLOWED_EMAIL_DOMAINS: DOMAIN, AUTH_DOMAIN: DOMAIN,
    AUTH_PUBLIC_URL: `https://auth.${DOMAIN}`, AUTH_CLIENT_ID: 'unused-in-bench', AUTH_COOKIE_SECRET: randomBytes(32).toString('hex'), LOG_LEVEL: 'warn',
  }, (address) => {
    const tls = addressCertificate(address);
    authTls = tls;
    return { AUTH_GATEWAY_TLS_CERT_FILE: tls.certFile, AUTH_GATEWAY_TLS_KEY_FILE: tls.keyFile, AUTH_GATEWAY_TLS_PORT: String(tlsPort) };
  });
  await publishBackend(kube, backend, { namespace: NS, name: 'echo' });
  // Plain HTTP listener: the bench measures the gateway and auth path, not TLS.
  await applyObject(kube, {
    apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: GW,
    spec: { gatewayClassName: 'traefik', listeners: [{ name: 'http', protocol: 'HTTP', port: traefik.httpPort, allowedRoutes: { namespaces: { from: 'All' } } }] },
  });
  const token = await idp.issueAccessToken({ email: `alice@${DOMAIN}`, groups: ['parents'], audience: 'familyhub', expiresInSec: 3600 });
  const withToken = { authorization: `Bearer ${token}` };
  await kube.apply({
    apiVersion: API, kind: 'FamilyHub', metadata: { name: 'home', namespace: NS },
    spec: {
      domain: DOMAIN, allowedEmailDomains: [DOMAIN],
      postgres: { host: '127.0.0.1', port: 5432, database: 'familyhub', adminCredentialsSecretRef: { name: 'pg-admin' } },
      identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer },
      gateway: { gatewayName: GW.name, gatewayNamespace: GW.namespace, provider: 'traefik', authService: { url: auth.url } },
      runtime: { image: 'ghcr.io/familyhub/runtime:0.1.0' },
    },
  }, { fieldManager: 'bench' });

  const target: GatewayTarget = { gateway: GW, identity: { issuer: idp.issuer, jwksUri: '', audience: 'familyhub', groupsClaim: 'groups' }, authService: { url: auth.url } };
  const intent = (name: string): RouteIntent => ({
    name, namespace: NS, hostname: `${name}.${DOMAIN}`, pathPrefix: '/', backend: { name: 'echo', port: 80 },
    auth: { required: true, audiences: [], requiredGroups: [] },
  });

  const bench = new Bench('route', 'req/s', {
    routes: N, connections: CONNECTIONS, loadSeconds: LOAD_SECONDS, fixedRate: FIXED_RATE, traefik: 'v3.6.12', parts: PARTS,
    where: 'load generator, Traefik, auth service, reference, backend, apiserver and operator on the same cores',
  });
  const rounds = roundsFromEnv(2);

  if (PARTS.includes('1')) {
    // (1) N Routes applied → all served. Reference: a bare script writing
    // exactly what the operator would. Value: routes served per second until
    // the last one answers (larger is better, as the harness wants).
    const kubeconfigPath = await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator');
    const applyAll = async (prefix: string, write: (n: string) => Promise<void>, remove: (n: string) => Promise<void>) => {
      const names = Array.from({ length: N }, (_, i) => `${prefix}-${i}`);
      const started = new Map<string, number>();
      const poll = timeToServed(names.map((n) => `${n}.${DOMAIN}`), started, withToken);
      await pool(names, WRITE_CONCURRENCY, async (n) => {
        started.set(`${n}.${DOMAIN}`, performance.now());
        await write(n);
      });
      const t = await poll;
      await pool(names, WRITE_CONCURRENCY, remove);
      await waitFor(`${prefix} routes unserved`, async () => (await get(`${names.at(-1)}.${DOMAIN}`, withToken)) === 404, { timeoutMs: 120_000 });
      return { value: N / (t.allServedMs / 1000), extra: t };
    };
    bench.unitOf(`apply ${N}`, 'Routes/s');
    await bench.rounds(1, `apply ${N}`, [
      ['reference', (r) => applyAll(`ref${r}`, async (n) => {
        for (const o of traefikProvider.desired(intent(n), target)) await applyObject(kube, o, 'bench-reference');
      }, async (n) => {
        for (const o of traefikProvider.desired(intent(n), target)) await deleteObject(kube, { apiVersion: o.apiVersion!, kind: o.kind!, namespace: NS, name: o.metadata.name });
      })],
      // The operator runs only during its own side (started before its clock,
      // which begins with the first write), so the reference never shares the
      // cores with it.
      ['operator', async (r) => {
        const op = await startOperator({ kubeconfigPath, env: { FAMILYHUB_CONTROLLERS: 'route', FAMILYHUB_LEADER_ELECTION: 'false', LOG_LEVEL: 'warn' } });
        try {
          return await applyAll(`app${r}`, async (n) => {
            await kube.apply({ apiVersion: API, kind: 'Route', metadata: { name: n, namespace: NS }, spec: { familyHubRef: { name: 'home' }, hostname: `${n}.${DOMAIN}`, backendRef: { name: 'echo', port: 80 } } }, { fieldManager: 'bench' });
          }, (n) => kube.delete(API, 'Route', NS, n));
        } finally {
          await op.stop();
        }
      }],
    ]);
    bench.ratio('applyToServed', 'operator', 'reference', `apply ${N}`, `operator / bare writes, routes served per second until all ${N} answer through Traefik (goal >= 0.8)`);
  }

  if (PARTS.includes('2')) {
  // (2) throughput with and without forward-auth, same backend, same Traefik.
  // The reference: a bare forward-auth server (bench/forward-auth-reference.ts)
  // on the auth service's address doing only the JWT check, behind the same
  // Traefik ForwardAuth, over the same two transports.
  const [refPort, refTlsPort] = [await freePort(), await freePort()];
  const ref = startProcess('forward-auth-reference', process.execPath, ['--import', import.meta.resolve('tsx'), new URL('./forward-auth-reference.ts', import.meta.url).pathname], {
    cwd: workDir('forward-auth-reference'),
    env: {
      ISSUER: idp.issuer, AUDIENCE: 'familyhub', DOMAIN, HOST: auth.address, PORT: String(refPort),
      TLS_PORT: String(refTlsPort), TLS_CERT_FILE: authTls.certFile, TLS_KEY_FILE: authTls.keyFile,
    },
  });
  await waitFor('forward-auth reference ready', async () => readFileSync(ref.logFile, 'utf8').includes('ready'), { proc: ref, timeoutMs: 30_000 });
  await kube.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'auth-gateway-ca', namespace: NS }, stringData: { 'ca.crt': authTls.caPem } }, { fieldManager: 'bench' });
  const variants = {
    'service-h2': { host: 'secured-h2', target: { ...target, authService: { url: `https://${auth.address}:${tlsPort}`, caSecretName: 'auth-gateway-ca' } } },
    'reference-h2': { host: 'ref-h2', target: { ...target, authService: { url: `https://${auth.address}:${refTlsPort}`, caSecretName: 'auth-gateway-ca' } } },
    'service-h1': { host: 'secured', target },
    'reference-h1': { host: 'ref-h1', target: { ...target, authService: { url: `http://${auth.address}:${refPort}` } } },
  } satisfies Record<string, { host: string; target: GatewayTarget }>;
  for (const o of [
    ...Object.values(variants).flatMap((v) => traefikProvider.desired(intent(v.host), v.target)),
    ...traefikProvider.desired({ ...intent('open'), auth: { required: false, audiences: [], requiredGroups: [] } }, target),
  ]) await applyObject(kube, o, 'bench');
  const hosts = Object.values(variants).map((v) => v.host);
  await waitFor('load routes served', async () => (await Promise.all([...hosts.map((h) => get(`${h}.${DOMAIN}`, withToken)), get(`open.${DOMAIN}`, {})])).every((s) => s === 200), { timeoutMs: 60_000 });
  for (const h of hosts) {
    if ((await get(`${h}.${DOMAIN}`, {})) !== 401) throw new Error(`${h} answers without a token: forward-auth is not on the path`);
  }
  await closedLoop(`open.${DOMAIN}`, {}, 2); // warm-up of every process on the path
  for (const h of hosts) await closedLoop(`${h}.${DOMAIN}`, withToken, 2);
  const pids = { traefik: traefik.proc.child.pid, authService: auth.proc.child.pid, reference: ref.child.pid, backend: backend.proc.child.pid };
  /** One load phase, with the CPU each process spent per request (where an authenticated request's cost goes). */
  const measured = async (f: () => Promise<{ rps?: number; achievedRps?: number; p99Ms: number; errors: number } & Record<string, unknown>>) => {
    // Let the previous run's TIME-WAIT sockets age out of the count as far as they will in 2 s.
    await new Promise((r) => setTimeout(r, 2000));
    const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMsOf(pid)]));
    const selfBefore = process.cpuUsage();
    const r = await f();
    const self = process.cpuUsage(selfBefore);
    const rate = r.rps ?? r.achievedRps ?? 0;
    const requests = rate * LOAD_SECONDS;
    const cpuUsPerRequest = Object.fromEntries([
      ...Object.entries(pids).map(([k, pid]) => [k, Math.round((cpuMsOf(pid) - before[k]!) * 1e3 / requests)]),
      ['loadGenerator', Math.round((self.user + self.system) / requests)],
    ]);
    if (r.errors) bench.notes.push(`${r.errors} non-200 answers in one phase (${JSON.stringify(r)})`);
    return { value: rate, extra: { ...r, timeWaitToAuthAfter: timeWait(auth.address), cpuUsPerRequest } };
  };
  const sides = (run: (host: string, headers: Record<string, string>) => Promise<{ rps?: number; achievedRps?: number; p99Ms: number; errors: number }>) => [
    ['no-auth', () => measured(() => run(`open.${DOMAIN}`, {}))] as [string, () => Promise<SideResult>],
    ...Object.entries(variants).map(([k, v]) => [k, () => measured(() => run(`${v.host}.${DOMAIN}`, withToken))] as [string, () => Promise<SideResult>]),
  ];
  const closed = `closed loop, ${CONNECTIONS} connections`;
  await bench.rounds(rounds, closed, sides((h, hd) => closedLoop(h, hd, LOAD_SECONDS)));
  bench.ratio('forwardAuthHttp2', 'service-h2', 'no-auth', closed, 'with forward-auth over TLS + HTTP/2 / without auth (the issue\'s goal: >= 0.6)');
  bench.ratio('forwardAuthHttp1', 'service-h1', 'no-auth', closed, 'with forward-auth over HTTP/1.1 / without auth');
  bench.ratio('referenceFloorHttp2', 'reference-h2', 'no-auth', closed, 'bare JWT-checking forward-auth over TLS + HTTP/2 / without auth: the most any forward-auth reaches here');
  bench.ratio('serviceToReferenceHttp2', 'service-h2', 'reference-h2', closed, 'auth service / bare forward-auth, both over TLS + HTTP/2: the service\'s own overhead');
  bench.ratio('serviceToReferenceHttp1', 'service-h1', 'reference-h1', closed, 'auth service / bare forward-auth, both over HTTP/1.1');
  const fixed = `open loop, ${FIXED_RATE} req/s`;
  await bench.rounds(1, fixed, sides((h, hd) => openLoop(h, hd, FIXED_RATE, LOAD_SECONDS)));
  const p99 = (side: string) => spread(bench.runs.filter((r) => r.side === side && r.group === fixed).map((r) => (r.extra as { p99Ms: number }).p99Ms)).median;
  bench.figures.addedP99Ms = Object.fromEntries(Object.keys(variants).map((k) => [k, round(p99(k) - p99('no-auth'))]));
  bench.figures.addedP99Goal = `< 5 ms at ${FIXED_RATE} requests/s`;
  await ref.stop(5000);
  }
  bench.finish();
  await auth.remove();
  await traefik.stop();
  await backend.stop();
  await idp.stop();
  await cp.stop();
  agent.destroy();
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
