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
// BENCH_PARTS=2 runs only the second part.
// Everything shares this machine's two cores: load generator, Traefik, the
// auth service, the backend, the apiserver and the operator.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { startDevIdp } from '../hack/dev-idp/provider.js';
import { startControlPlane } from '../hack/local/controlplane.js';
import { installGatewayCrds } from '../hack/local/gateway-crds.js';
import { installCrds, installRbac } from '../hack/local/manifests.js';
import { publishBackend, startNetnsBackend } from '../hack/local/netns-backend.js';
import { freePort, waitFor } from '../hack/local/process.js';
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
const load = () => os.loadavg().map((x) => Math.round(x * 100) / 100);

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

let certCa = '';

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
    certCa = tls.caPem;
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

  let applyToServed: Record<string, unknown> | undefined;
  if (PARTS.includes('1')) applyToServed = await partOne();
  async function partOne() {
  // (1a) reference: a bare script writes what the operator would write.
  const refNames = Array.from({ length: N }, (_, i) => `ref-${i}`);
  const refStarted = new Map<string, number>();
  const refPoll = timeToServed(refNames.map((n) => `${n}.${DOMAIN}`), refStarted, withToken);
  await pool(refNames, WRITE_CONCURRENCY, async (n) => {
    refStarted.set(`${n}.${DOMAIN}`, performance.now());
    for (const o of traefikProvider.desired(intent(n), target)) await applyObject(kube, o, 'bench-reference');
  });
  const reference = await refPoll;
  await pool(refNames, WRITE_CONCURRENCY, async (n) => {
    for (const o of traefikProvider.desired(intent(n), target)) await deleteObject(kube, { apiVersion: o.apiVersion!, kind: o.kind!, namespace: NS, name: o.metadata.name });
  });
  await waitFor('reference routes unserved', async () => (await get(`ref-0.${DOMAIN}`, withToken)) === 404, { timeoutMs: 60_000 });

  // (1b) the operator.
  const op = await startOperator({
    kubeconfigPath: await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator'),
    env: { FAMILYHUB_CONTROLLERS: 'route', FAMILYHUB_LEADER_ELECTION: 'false', LOG_LEVEL: 'warn' },
  });
  const opNames = Array.from({ length: N }, (_, i) => `app-${i}`);
  const opStarted = new Map<string, number>();
  const opPoll = timeToServed(opNames.map((n) => `${n}.${DOMAIN}`), opStarted, withToken);
  await pool(opNames, WRITE_CONCURRENCY, async (n) => {
    opStarted.set(`${n}.${DOMAIN}`, performance.now());
    const route: KubeObject = { apiVersion: API, kind: 'Route', metadata: { name: n, namespace: NS }, spec: { familyHubRef: { name: 'home' }, hostname: `${n}.${DOMAIN}`, backendRef: { name: 'echo', port: 80 } } };
    await kube.apply(route, { fieldManager: 'bench' });
  });
  const operator = await opPoll;
  await op.stop();
  await pool(opNames, WRITE_CONCURRENCY, async (n) => kube.delete(API, 'Route', NS, n));
  return {
    operator,
    reference,
    ratio: round(reference.allServedMs / operator.allServedMs * 100) / 100,
    goal: '>= 0.8 of the reference (time until all served)',
  };
  }

  // (2) throughput with and without forward-auth, same backend, same Traefik.
  await kube.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'auth-gateway-ca', namespace: NS }, stringData: { 'ca.crt': certCa } }, { fieldManager: 'bench' });
  const h2Target: GatewayTarget = { ...target, authService: { url: `https://${auth.address}:${tlsPort}`, caSecretName: 'auth-gateway-ca' } };
  const h2Objects = traefikProvider.desired(intent('secured-h2'), h2Target);
  for (const o of [
    ...traefikProvider.desired(intent('secured'), target),
    ...h2Objects,
    ...traefikProvider.desired({ ...intent('open'), auth: { required: false, audiences: [], requiredGroups: [] } }, target),
  ]) await applyObject(kube, o, 'bench');
  await waitFor('load routes served', async () => (await get(`secured.${DOMAIN}`, withToken)) === 200 && (await get(`secured-h2.${DOMAIN}`, withToken)) === 200
    && (await get(`open.${DOMAIN}`, {})) === 200, { timeoutMs: 60_000 });
  for (const h of ['secured', 'secured-h2']) {
    if ((await get(`${h}.${DOMAIN}`, {})) !== 401) throw new Error(`${h} answers without a token: forward-auth is not on the path`);
  }
  await closedLoop(`open.${DOMAIN}`, {}, 2); // warm-up of every process on the path
  await closedLoop(`secured.${DOMAIN}`, withToken, 2);
  await closedLoop(`secured-h2.${DOMAIN}`, withToken, 2);
  const measured = async <T>(f: () => Promise<T>) => {
    // Let the previous run's TIME-WAIT sockets age out of the count as far as they will in 2 s.
    await new Promise((r) => setTimeout(r, 2000));
    const loadBefore = load();
    const r = await f();
    return { ...r, loadAvgBefore: loadBefore, timeWaitToAuthAfter: timeWait(auth.address) };
  };
  const openMax = await measured(() => closedLoop(`open.${DOMAIN}`, {}, LOAD_SECONDS));
  const authMax = await measured(() => closedLoop(`secured.${DOMAIN}`, withToken, LOAD_SECONDS));
  const h2Max = await measured(() => closedLoop(`secured-h2.${DOMAIN}`, withToken, LOAD_SECONDS));
  const openFixed = await measured(() => openLoop(`open.${DOMAIN}`, {}, FIXED_RATE, LOAD_SECONDS));
  const authFixed = await measured(() => openLoop(`secured.${DOMAIN}`, withToken, FIXED_RATE, LOAD_SECONDS));
  const h2Fixed = await measured(() => openLoop(`secured-h2.${DOMAIN}`, withToken, FIXED_RATE, LOAD_SECONDS));

  const result = {
    routes: N,
    applyToServed,
    throughput: {
      connections: CONNECTIONS,
      seconds: LOAD_SECONDS,
      withoutAuth: openMax,
      withForwardAuthHttp1: authMax,
      withForwardAuthHttp2Tls: h2Max,
      ratioHttp1: Math.round(authMax.rps / openMax.rps * 100) / 100,
      ratioHttp2Tls: Math.round(h2Max.rps / openMax.rps * 100) / 100,
      goal: '>= 0.6 of the unauthenticated throughput',
    },
    fixedRate: {
      withoutAuth: openFixed,
      withForwardAuthHttp1: authFixed,
      withForwardAuthHttp2Tls: h2Fixed,
      addedP99MsHttp1: round(authFixed.p99Ms - openFixed.p99Ms),
      addedP99MsHttp2Tls: round(h2Fixed.p99Ms - openFixed.p99Ms),
      goal: `added p99 < 5 ms at ${FIXED_RATE} requests/s`,
    },
    cpus: os.cpus().length,
  };
  console.log(JSON.stringify(result, null, 2));
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
