// `npm run dev`: the whole platform on this machine, no Docker needed —
// a real control plane (etcd, kube-apiserver, kube-controller-manager),
// PostgreSQL, Redis, the development IdP and, when built, OpenBao; the CRDs
// installed; a FamilyHub wired to all of them; and the operator.
// By default (root) the cluster has a node (hack/local/node.ts): the project
// image is built and imported, the chart installed with helm, and the
// operator runs as pods exactly as a user gets it. `--no-node` keeps the
// control-plane-only mode: RBAC from config/rbac and the operator as a host
// process with its ServiceAccount's token. `--smoke` exits 0 once the
// FamilyHub is Ready (used by the tests to prove this command works).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { startControlPlane } from './local/controlplane.js';
import { buildProjectImage } from './images/images.js';
import { BRIDGE_ADDRESS, POD_CIDR, exposeLoopbackToPods, loopbackSidecar, startCluster } from './local/node.js';
import { installCrds, installRbac, repoRoot } from './local/manifests.js';
import { startPostgres } from './local/postgres.js';
import { startRedis } from './local/redis.js';
import { startOpenBao } from './local/openbao.js';
import { waitFor, workDir } from './local/process.js';
import { startDevIdp } from './dev-idp/provider.js';
import { KubeClient } from '../src/core/kube-client.js';

const smoke = process.argv.includes('--smoke');
// With --smoke, where to write what the test needs to check that no secret
// reached a log: every log of the operator and the runtime pods, and the
// secret values this command created or the operator issued (file mode 0600).
const smokeReport = process.env.FAMILYHUB_DEV_SMOKE_REPORT;
const withNode = !process.argv.includes('--no-node');
const NS = 'family';
const say = (msg: string) => process.stdout.write(`[dev] ${msg}\n`);
if (withNode && process.getuid?.() !== 0) {
  say('the node (kubelet, containerd, iptables, mounts) needs root: run as root, or `npm run dev -- --no-node` for the control plane only');
  process.exit(1);
}

const cluster = withNode ? await startCluster() : undefined;
const cp = cluster?.cp ?? await startControlPlane();
say(`control plane up: ${cp.server}${cluster ? ` with node ${cluster.node.name} Ready` : ''}`);
// With a node the chart installs the CRDs (and would refuse ones it does not own).
if (!cluster) {
  await installCrds(cp.kubeConfig);
  await installRbac(cp.kubeConfig);
}
// With a node, these listen on the bridge address too: the operator pods reach them there.
const pg = await startPostgres(cluster ? { podAccess: { address: BRIDGE_ADDRESS, cidr: POD_CIDR } } : {});
const redis = await startRedis(cluster ? { podAddress: BRIDGE_ADDRESS } : {});
// The CRD accepts plain-HTTP issuers on loopback only: the IdP stays on
// 127.0.0.1 and, with a node, a sidecar brings that port into the operator pods.
const idp = await startDevIdp({ allowedDomain: 'family.test' });
const idpPort = Number(new URL(idp.issuer).port);
const idpBridge = cluster ? await exposeLoopbackToPods(idpPort) : undefined;
// The runtime's DatabaseClaims get their logins from OpenBao; like the IdP it
// stays on loopback and the operator pods reach it through the sidecar.
const bao = await startOpenBao();
const baoPort = Number(new URL(bao.address).port);
const baoBridge = cluster ? await exposeLoopbackToPods(baoPort) : undefined;
const hostForPods = cluster ? BRIDGE_ADDRESS : pg.host;
say(`PostgreSQL ${hostForPods}:${pg.port}, Redis ${hostForPods}:${redis.port}, dev IdP ${idp.issuer}`);
let image = 'familyhub-runtime:dev';
if (cluster) {
  say('building the project image (cached by sources and package-lock.json) and installing the chart with helm');
  const built = await buildProjectImage();
  await cluster.node.importImage(built.archive);
  image = built.ref;
  await cluster.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'familyhub-system', labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } }) });
  await cluster.helm(['install', 'familyhub', path.join(repoRoot, 'charts/familyhub-operator'), '-n', 'familyhub-system',
    '--set', `image.repository=${image.slice(0, image.lastIndexOf(':'))}`, '--set', `image.tag=${image.slice(image.lastIndexOf(':') + 1)}`,
    '--set-json', `extraContainers=${JSON.stringify([loopbackSidecar(image, [idpPort, baoPort])])}`,
    '--wait', '--timeout', '3m'], { timeoutMs: 200_000 });
  say(`operator installed: ${image}, 2 replicas in familyhub-system`);
}

const kube = new KubeClient(cp.kubeConfig);
const apply = (o: any) => kube.apply(o, { fieldManager: 'familyhub-dev' });
const secret = (name: string, data: Record<string, string>) =>
  apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) });
await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
await secret('postgres-admin', { username: pg.user, password: pg.password });
await secret('idp-initial-access-token', { token: idp.initialAccessToken });
await secret('vault-token', { token: bao.rootToken });
await apply({
  apiVersion: 'familyhub.dev/v1alpha1',
  kind: 'FamilyHub',
  metadata: { name: 'home', namespace: NS },
  spec: {
    domain: 'home.family.test',
    allowedEmailDomains: ['family.test'],
    postgres: { host: hostForPods, port: pg.port, database: pg.database, sslMode: 'disable', adminCredentialsSecretRef: { name: 'postgres-admin' } },
    redis: { host: hostForPods, port: redis.port },
    vault: { address: bao.address, authMethod: 'token', tokenSecretRef: { name: 'vault-token' } },
    identity: { kind: 'oidc-dcr', issuerUrl: idp.issuer, initialAccessTokenSecretRef: { name: 'idp-initial-access-token' } },
    runtime: { image, services: { chat: { enabled: true }, audit: { enabled: true } } },
  },
});

const adminKubeconfig = path.join(repoRoot, '.familyhub-kubeconfig');
writeFileSync(adminKubeconfig, `# written by npm run dev\n` + readFileSync(cp.kubeconfigPath, 'utf8'), { mode: 0o600 });
let operator: ChildProcess | undefined;
let operatorLog: string | undefined;
if (!cluster) {
  const saKubeconfig = await cp.serviceAccountKubeconfig('familyhub-system', 'familyhub-operator');
  const loader = pathToFileURL(path.join(repoRoot, 'node_modules/tsx/dist/loader.mjs')).href;
  operator = spawn(process.execPath, ['--import', loader, path.join(repoRoot, 'src/main.ts')], {
    env: { ...process.env, KUBECONFIG: saKubeconfig, FAMILYHUB_LEASE_NAMESPACE: 'familyhub-system', FAMILYHUB_METRICS_PORT: '0' },
    stdio: smoke ? ['ignore', 'pipe', 'pipe'] : 'inherit',
  });
  if (smoke) {
    operatorLog = path.join(workDir('dev-operator'), 'operator.log');
    const out = createWriteStream(operatorLog);
    operator.stdout!.pipe(out);
    operator.stderr!.pipe(out);
  }
}

/** Logs of the operator (host process or pods) and of every pod in the hub's namespace. */
async function collectLogs(): Promise<string> {
  if (!cluster) return operatorLog ? readFileSync(operatorLog, 'utf8') : '';
  let all = '';
  for (const ns of ['familyhub-system', NS]) {
    for (const pod of (await kube.list('v1', 'Pod', ns)).items) {
      all += await cluster.kubectl(['logs', '-n', ns, pod.metadata.name, '--all-containers', '--prefix']).catch((e) => `[dev] no logs of ${ns}/${pod.metadata.name}: ${e}\n`);
    }
  }
  return all;
}

/** Values of every credential-shaped key of the Secrets in the hub's namespace (ours and the operator's). */
async function secretValues(): Promise<string[]> {
  const values = [pg.password, idp.initialAccessToken, bao.rootToken];
  for (const s of (await kube.list('v1', 'Secret', NS)).items as Array<{ data?: Record<string, string> }>) {
    for (const [k, v] of Object.entries(s.data ?? {})) {
      if (/password|token|secret|^uri$|database_url/i.test(k)) values.push(Buffer.from(v, 'base64').toString('utf8'));
    }
  }
  return [...new Set(values)].filter((v) => v.length >= 8);
}

let stopping = false;
async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    if (operator) {
      const op = operator;
      op.kill('SIGTERM');
      await new Promise((r) => (op.exitCode !== null ? r(null) : op.once('exit', r)));
    }
    await idpBridge?.stop();
    await idp.stop();
    await baoBridge?.stop();
    await bao.stop();
    await redis.stop();
    await pg.stop();
    if (cluster) await cluster.stop();
    else await cp.stop();
  }
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

await waitFor('FamilyHub home Ready', async () => {
  const hub = await kube.get('familyhub.dev/v1alpha1', 'FamilyHub', NS, 'home');
  return !!hub?.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True');
}, { timeoutMs: 120_000 }).catch(async (err) => {
  say(String(err));
  await shutdown(1);
});
say('FamilyHub family/home is Ready.');
say(`kubectl access: export KUBECONFIG=${adminKubeconfig}  (kubectl get familyhub-all -A${cluster ? '; kubectl get pods -A' : ''})`);
if (smoke) {
  if (smokeReport) {
    const secrets = await secretValues();
    // The operator's and pods' output up to now, after the hub became Ready.
    writeFileSync(smokeReport, JSON.stringify({ logs: await collectLogs(), secrets }), { mode: 0o600 });
  }
  await shutdown(0);
}
say(cluster ? 'operator pods running (kubectl -n familyhub-system logs deploy/familyhub-operator); Ctrl-C stops everything.' : 'operator running; Ctrl-C stops everything.');
