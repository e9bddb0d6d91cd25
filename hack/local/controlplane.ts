// A real Kubernetes control plane on loopback, without Docker: etcd,
// kube-apiserver and kube-controller-manager (garbage collector + namespace
// controllers, so ownerReference GC and namespace deletion really happen),
// built from pinned Go modules by hack/controlplane/build.sh.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { freePort, startProcess, waitFor, withFreePort, workDir, type Managed } from './process.js';

/** ClusterIPs come from here; with a node, kube-proxy DNATs them (node-host.ts guards the rest). */
export const SERVICE_CIDR = '10.0.0.0/24';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface ControlPlane {
  server: string;
  kubeconfigPath: string;
  kubeConfig: KubeConfig;
  adminToken: string;
  dir: string;
  etcdUrl: string;
  auditLogPath: string;
  etcd: Managed;
  apiserver: Managed;
  controllerManager: Managed;
  /** Kills and restarts kube-apiserver on the same port and certificates. */
  restartApiserver(opts?: { downMs?: number; beforeStart?: () => Promise<void> }): Promise<void>;
  stopApiserver(): Promise<void>;
  startApiserver(): Promise<void>;
  /** Compacts etcd history up to its current revision (forces 410 Gone on old watches). */
  compactEtcd(): Promise<number>;
  /** Kubeconfig that authenticates as a ServiceAccount via the TokenRequest API. */
  serviceAccountKubeconfig(namespace: string, name: string): Promise<string>;
  stop(): Promise<void>;
}

export function binaries(): { etcd: string; apiserver: string; controllerManager: string } {
  const out = execFileSync('bash', [path.join(root, 'hack/controlplane/build.sh'), 'etcd'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n');
  const kube = execFileSync('bash', [path.join(root, 'hack/controlplane/build.sh'), 'kubernetes'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n');
  return { etcd: out.at(-1)!, apiserver: kube.at(-2)!, controllerManager: kube.at(-1)! };
}

/**
 * What a node (hack/local/node.ts) needs from the control plane; without it
 * the control plane stays loopback-only with no kubelet-facing settings.
 */
export interface NodeAccess {
  /** Non-loopback address the apiserver binds and advertises (the CNI bridge's): pods reach it through the kubernetes Service. */
  address: string;
  /** CA of the kubelet's and kube-proxy's client certificates. */
  clientCaFile: string;
  /** The apiserver's client certificate towards kubelets (logs, exec, port-forward); O=system:masters. */
  kubeletClient: { cert: string; key: string };
}

export async function startControlPlane(opts: { audit?: boolean; watchCache?: boolean; node?: NodeAccess } = {}): Promise<ControlPlane> {
  const bins = binaries();
  const dir = workDir('controlplane');
  // Both servers on ports from freePort(): withFreePort starts one again on
  // a new port when another process took its port in between (seen once:
  // the apiserver's "bind: address already in use").
  const { etcd, etcdUrl } = await withFreePort(undefined, async (etcdPort) => {
    const url = `http://127.0.0.1:${etcdPort}`;
    const etcdPeer = await freePort();
    const proc = startProcess('etcd', bins.etcd, [
      // Per port: a failed attempt's data dir must not be reused with other URLs.
      '--data-dir', path.join(dir, `etcd-${etcdPort}`),
      '--listen-client-urls', url, '--advertise-client-urls', url,
      '--listen-peer-urls', `http://127.0.0.1:${etcdPeer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${etcdPeer}`,
      '--initial-cluster', `default=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync', '--quota-backend-bytes', String(4 * 1024 ** 3),
    ], { cwd: dir });
    await waitFor('etcd health', async () => (await fetch(`${url}/health`)).ok, { proc });
    return { etcd: proc, etcdUrl: url };
  });

  const adminToken = randomBytes(24).toString('hex');
  writeFileSync(path.join(dir, 'tokens.csv'), `${adminToken},admin,admin-uid,"system:masters"\n`, { mode: 0o600 });
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(path.join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(path.join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  const auditLogPath = path.join(dir, 'audit.log');
  writeFileSync(path.join(dir, 'audit-policy.yaml'), [
    'apiVersion: audit.k8s.io/v1',
    'kind: Policy',
    'omitStages: ["RequestReceived"]',
    'rules:',
    '  - level: Metadata',
  ].join('\n'));
  const host = opts.node?.address ?? '127.0.0.1';
  const apiArgs = (apiPort: number) => [
    '--etcd-servers', etcdUrl,
    '--cert-dir', path.join(dir, 'certs'),
    '--secure-port', String(apiPort),
    '--bind-address', host,
    '--advertise-address', host,
    '--service-cluster-ip-range', SERVICE_CIDR,
    '--allow-privileged=true',
    '--token-auth-file', path.join(dir, 'tokens.csv'),
    '--service-account-issuer', `https://${host}:${apiPort}`,
    '--service-account-key-file', path.join(dir, 'sa.pub'),
    '--service-account-signing-key-file', path.join(dir, 'sa.key'),
    '--enable-priority-and-fairness=false',
    ...(opts.node
      ? [
          // Pods get ServiceAccount tokens and reach this apiserver at the
          // kubernetes Service, whose endpoint is the advertised address.
          '--authorization-mode', 'Node,RBAC',
          '--enable-admission-plugins', 'NodeRestriction',
          '--client-ca-file', opts.node.clientCaFile,
          '--kubelet-client-certificate', opts.node.kubeletClient.cert,
          '--kubelet-client-key', opts.node.kubeletClient.key,
          // The node's hostname does not resolve; its InternalIP does.
          '--kubelet-preferred-address-types', 'InternalIP',
        ]
      : ['--authorization-mode', 'RBAC', '--disable-admission-plugins', 'ServiceAccount', '--endpoint-reconciler-type', 'none']),
    ...(opts.watchCache === false ? ['--watch-cache=false'] : []),
    ...(opts.audit === false ? [] : ['--audit-policy-file', path.join(dir, 'audit-policy.yaml'), '--audit-log-path', auditLogPath, '--audit-log-format', 'json', '--audit-log-mode', 'blocking']),
  ];
  const launchApi = (apiPort: number) => startProcess('kube-apiserver', bins.apiserver, apiArgs(apiPort), { cwd: dir });
  const healthyAt = (url: string) => async () => (await probe('GET', `${url}/readyz`, adminToken)).status === 200;
  // Restarts (startApiserver) keep the port: clients hold its URL.
  const first = await withFreePort(undefined, async (port) => {
    const proc = launchApi(port);
    await waitFor('kube-apiserver /readyz', healthyAt(`https://${host}:${port}`), { proc, timeoutMs: 120_000 });
    return { proc, port };
  });
  let apiserver = first.proc;
  const apiPort = first.port;
  const server = `https://${host}:${apiPort}`;
  const healthy = healthyAt(server);

  const kubeconfigPath = path.join(dir, 'kubeconfig');
  // The apiserver generates its serving cert plus a one-off CA into cert-dir;
  // apiserver.crt holds the chain, whose last certificate is that CA.
  const caFile = path.join(dir, 'ca.crt');
  const chain = readFileSync(path.join(dir, 'certs', 'apiserver.crt'), 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (chain.length) writeFileSync(caFile, chain.at(-1)! + '\n');
  writeFileSync(kubeconfigPath, kubeconfigYaml(server, adminToken, existsSync(caFile) ? caFile : undefined, 'admin'), { mode: 0o600 });
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(kubeconfigPath);

  const controllerManager = startProcess('kube-controller-manager', bins.controllerManager, [
    '--kubeconfig', kubeconfigPath,
    // With a node: every default controller (deployments, replica sets,
    // endpoint slices, service accounts, the kube-root-ca.crt publisher, pod
    // GC, node lifecycle...). Without: only what object tests need.
    ...(opts.node
      ? ['--controllers', '*', '--root-ca-file', caFile, '--service-account-private-key-file', path.join(dir, 'sa.key')]
      : ['--controllers', 'garbage-collector-controller,namespace-controller']),
    '--secure-port', '0',
    '--leader-elect=false',
    '--concurrent-gc-syncs', '5',
  ], { cwd: dir });
  // Wait for the namespaces the rest of the world expects.
  await waitFor('default namespace', async () => (await probe('GET', `${server}/api/v1/namespaces/default`, adminToken)).status === 200, { timeoutMs: 60_000 });

  const cp: ControlPlane = {
    server, kubeconfigPath, kubeConfig, adminToken, dir, etcdUrl, auditLogPath, etcd,
    get apiserver() { return apiserver; },
    controllerManager,
    async stopApiserver() {
      await apiserver.kill();
    },
    async startApiserver() {
      apiserver = launchApi(apiPort);
      await waitFor('kube-apiserver /readyz after restart', healthy, { proc: apiserver, timeoutMs: 120_000 });
    },
    async restartApiserver(o = {}) {
      await cp.stopApiserver();
      await new Promise((r) => setTimeout(r, o.downMs ?? 1000));
      await o.beforeStart?.();
      await cp.startApiserver();
    },
    async compactEtcd() {
      const range = await (await fetch(`${etcdUrl}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('/').toString('base64') }) })).json() as { header: { revision: string } };
      const rev = Number(range.header.revision);
      const res = await fetch(`${etcdUrl}/v3/kv/compaction`, { method: 'POST', body: JSON.stringify({ revision: rev, physical: true }) });
      if (!res.ok) throw new Error(`etcd compaction failed: ${res.status} ${await res.text()}`);
      return rev;
    },
    async serviceAccountKubeconfig(namespace, name) {
      const res = await probe('POST', `${server}/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, adminToken,
        { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 86400 } });
      if (res.status !== 201 && res.status !== 200) throw new Error(`TokenRequest for ${namespace}/${name} failed: ${res.status} ${res.body}`);
      const token = (JSON.parse(res.body) as { status: { token: string } }).status.token;
      const file = path.join(dir, `kubeconfig-${namespace}-${name}`);
      writeFileSync(file, kubeconfigYaml(server, token, existsSync(caFile) ? caFile : undefined, `${namespace}-${name}`), { mode: 0o600 });
      return file;
    },
    async stop() {
      await controllerManager.stop(5000);
      await apiserver.stop(10_000);
      await etcd.stop(5000);
    },
  };
  return cp;
}

function kubeconfigYaml(server: string, token: string, caFile: string | undefined, user: string): string {
  const tls = caFile ? `      certificate-authority: ${caFile}` : '      insecure-skip-tls-verify: true';
  return `apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster:
      server: ${server}
${tls}
users:
  - name: ${user}
    user:
      token: ${token}
contexts:
  - name: local
    context:
      cluster: local
      user: ${user}
current-context: local
`;
}

// The apiserver's serving certificate is self-signed and generated at start,
// so these local start-up probes (not the operator) skip verification.
function probe(method: string, url: string, token: string, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, {
      method,
      rejectUnauthorized: false,
      headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    if (body) req.write(JSON.stringify(body));
    req.end();
  });
}

export function readAuditEvents(file: string): Array<{ verb: string; user: { username: string }; objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string }; responseStatus?: { code?: number } }> {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}
