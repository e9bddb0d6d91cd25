// A real single-node cluster without Docker, the way Kubernetes'
// hack/local-up-cluster.sh runs one: the control plane (hack/local/controlplane.ts,
// bound to the CNI bridge address so pods reach it), containerd 2 with
// Debian's runc and CNI plugins, kubelet, kube-scheduler, kube-proxy (iptables)
// and CoreDNS on the host answering on the bridge address as the pods'
// cluster DNS. Binaries come from hack/node/build.sh, images from hack/images.
// Needs root. stop() removes every process, mount, iptables chain, cgroup and
// the bridge; a killed run's leftovers are removed by the next start.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { CoreV1Api } from '@kubernetes/client-node';
import { buildPauseImage, nodeBinaries } from '../images/images.js';
import { startControlPlane, type ControlPlane } from './controlplane.js';
import {
  BRIDGE, BRIDGE_ADDRESS, CLUSTER_DOMAIN, POD_CIDR,
  acquireNodeLock, cleanupNode, makePki, prepareHost, readState, requireRoot, saveState, type NodeState,
} from './node-host.js';
import { freePort, startProcess, tcpOpen, waitFor, workDir, type Managed } from './process.js';

export { BRIDGE_ADDRESS, POD_CIDR } from './node-host.js';
export const NODE_NAME = 'familyhub-node';
const run = promisify(execFile);

export interface LocalNode {
  name: string;
  /** Where pods reach the host: services meant for pods listen here. */
  hostAddress: string;
  dir: string;
  containerd: Managed;
  kubelet: Managed;
  scheduler: Managed;
  proxy: Managed;
  coredns: Managed;
  /** ctr against this node's containerd, in the k8s.io namespace. */
  ctr(args: string[]): Promise<string>;
  /** Imports an OCI archive into the CRI's image store. */
  importImage(archive: string): Promise<void>;
  restartKubelet(): Promise<void>;
  restartContainerd(): Promise<void>;
  /** Kubelet up to Node Ready, from process start (ms), for the benchmark. */
  readyAfterMs: number;
}

export interface Cluster {
  cp: ControlPlane;
  node: LocalNode;
  /** The kubectl built with the node (same release), as the admin; `input` goes to stdin. */
  kubectl(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<string>;
  /** helm (hack/go/helm) against this cluster. */
  helm(args: string[], opts?: { timeoutMs?: number }): Promise<string>;
  stop(): Promise<void>;
}

function yamlish(o: unknown): string {
  // JSON is YAML: the kubelet and kube-proxy read their config files as YAML.
  return JSON.stringify(o, null, 2);
}

/** Starts a control plane with a node. One per machine; waits for another to stop. */
export async function startCluster(opts: { audit?: boolean } = {}): Promise<Cluster> {
  requireRoot();
  const lock = await acquireNodeLock();
  await cleanupNode(readState());
  const bins = nodeBinaries();
  const dir = workDir('node');
  const ipForward = prepareHost();
  const containerdAddress = path.join(dir, 'containerd', 'containerd.sock');
  const state: NodeState = { runDir: dir, containerdAddress, pids: [], ipForward };
  saveState(state);
  const track = (m: Managed) => {
    state.pids.push(m.child.pid!);
    saveState(state);
    return m;
  };

  const pki = makePki(path.join(dir, 'pki'));
  const apiKubeletClient = pki.client('apiserver-kubelet-client', 'kube-apiserver-kubelet-client', 'system:masters');
  let cp: ControlPlane | undefined;
  try {
    cp = await startControlPlane({ audit: opts.audit, node: { address: BRIDGE_ADDRESS, clientCaFile: pki.caCert, kubeletClient: apiKubeletClient } });
    for (const m of [cp.etcd, cp.apiserver, cp.controllerManager]) track(m);
    const node = await startNode(cp, bins, dir, pki, containerdAddress, track);
    const kubeconfigPath = cp.kubeconfigPath;
    const tool = (bin: string) => (args: string[], o: { input?: string; timeoutMs?: number } = {}) =>
      new Promise<string>((resolve, reject) => {
        const child = execFile(bin, args, { env: { ...process.env, KUBECONFIG: kubeconfigPath, HELM_CACHE_HOME: path.join(dir, 'helm'), HELM_CONFIG_HOME: path.join(dir, 'helm'), HELM_DATA_HOME: path.join(dir, 'helm') }, timeout: o.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
          err ? reject(new Error(`${path.basename(bin)} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout));
        if (o.input !== undefined) child.stdin!.end(o.input);
      });
    return {
      cp,
      node,
      kubectl: tool(bins.kubectl!),
      helm: tool(bins.helm!),
      async stop() {
        for (const m of [node.coredns, node.proxy, node.scheduler, node.kubelet]) await m.stop(5000);
        await cp!.stop();
        await node.containerd.stop(5000);
        await cleanupNode(state);
        lock.kill('SIGKILL');
      },
    };
  } catch (err) {
    await cp?.stop().catch(() => {});
    await cleanupNode(state);
    lock.kill('SIGKILL');
    throw err;
  }
}

async function startNode(
  cp: ControlPlane,
  bins: Record<string, string>,
  dir: string,
  pki: ReturnType<typeof makePki>,
  containerdAddress: string,
  track: (m: Managed) => Managed,
): Promise<LocalNode> {
  const pause = await buildPauseImage(bins.pause!);
  const caFile = path.join(cp.dir, 'ca.crt');
  const kubeconfig = (name: string, cred: { cert: string; key: string }) => {
    const file = path.join(dir, `${name}.kubeconfig`);
    writeFileSync(file, yamlish({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'local',
      clusters: [{ name: 'local', cluster: { server: cp.server, 'certificate-authority': caFile } }],
      users: [{ name, user: { 'client-certificate': cred.cert, 'client-key': cred.key } }],
      contexts: [{ name: 'local', context: { cluster: 'local', user: name } }],
    }), { mode: 0o600 });
    return file;
  };

  // containerd: its own shim first on PATH (not a system one), runc's state
  // and the CNI configuration under the run dir.
  const cdDir = path.join(dir, 'containerd');
  const cniConf = path.join(dir, 'cni', 'net.d');
  mkdirSync(cniConf, { recursive: true });
  mkdirSync(cdDir, { recursive: true });
  writeFileSync(path.join(cniConf, '10-familyhub.conflist'), JSON.stringify({
    cniVersion: '1.0.0',
    name: 'familyhub',
    plugins: [
      {
        type: 'bridge', bridge: BRIDGE, isGateway: true, ipMasq: true, hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: POD_CIDR, gateway: BRIDGE_ADDRESS }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: path.join(dir, 'cni', 'ipam') },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  }));
  const streamPort = await freePort();
  writeFileSync(path.join(cdDir, 'config.toml'), `version = 3
root = "${cdDir}/root"
state = "${cdDir}/state"
[grpc]
  address = "${containerdAddress}"
[ttrpc]
  address = "${containerdAddress}.ttrpc"
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "${streamPort}"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "${pause.ref}"
[plugins.'io.containerd.cri.v1.runtime']
  # These VMs lack CAP_SYS_RESOURCE: lowering a sandbox's OOM score (-998)
  # fails in runc's nsexec ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ["/usr/lib/cni"]
  conf_dir = "${cniConf}"
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  BinaryName = "/usr/bin/runc"
  Root = "${dir}/runc"
  SystemdCgroup = false
`);
  const cdBin = path.dirname(bins.containerd!);
  const env = { PATH: `${cdBin}:${process.env.PATH}` };
  const launchContainerd = () => track(startProcess('containerd', bins.containerd!, ['--config', path.join(cdDir, 'config.toml')], { cwd: dir, env }));
  let containerd = launchContainerd();
  const ctr = async (args: string[]) => (await run(bins.ctr!, ['--address', containerdAddress, '-n', 'k8s.io', ...args], { maxBuffer: 64 * 1024 * 1024 })).stdout;
  const containerdUp = () => waitFor('containerd', async () => (await ctr(['version'])).includes('Server'), { proc: containerd, timeoutMs: 30_000 });
  await containerdUp();
  const importImage = async (archive: string) => {
    await ctr(["images", "import", archive]);
  };
  await importImage(pause.archive);

  // kubelet: cgroup v1 (hybrid) hosts need failCgroupV1: false; cgroupfs, no systemd.
  const kubeletCred = pki.client('kubelet', `system:node:${NODE_NAME}`, 'system:nodes');
  const kubeletPort = await freePort();
  const healthzPort = await freePort();
  const kubeletConfig = path.join(dir, 'kubelet.yaml');
  writeFileSync(kubeletConfig, yamlish({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    failCgroupV1: false,
    cgroupDriver: 'cgroupfs',
    containerRuntimeEndpoint: `unix://${containerdAddress}`,
    address: BRIDGE_ADDRESS,
    port: kubeletPort,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: pki.caCert } },
    authorization: { mode: 'Webhook' },
    failSwapOn: false,
    podLogsDir: path.join(dir, 'pod-logs'),
    clusterDNS: [BRIDGE_ADDRESS],
    clusterDomain: CLUSTER_DOMAIN,
    resolvConf: '/etc/resolv.conf',
    // Small CI disks: the default 10-15 % thresholds would evict everything.
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '2%', 'imagefs.available': '2%', 'nodefs.inodesFree': '2%' },
    imageGCHighThresholdPercent: 99,
    imageGCLowThresholdPercent: 98,
    serializeImagePulls: false,
    maxPods: 110,
    // Faster pod status to the apiserver (the default 10 s is for big clusters).
    nodeStatusUpdateFrequency: '4s',
  }));
  const kubeletArgs = [
    '--config', kubeletConfig,
    '--kubeconfig', kubeconfig('kubelet', kubeletCred),
    '--root-dir', path.join(dir, 'kubelet'),
    '--cert-dir', path.join(dir, 'kubelet-pki'),
    '--node-ip', BRIDGE_ADDRESS,
    '--hostname-override', NODE_NAME,
    '--v', '1',
  ];
  const launchKubelet = () => track(startProcess('kubelet', bins.kubelet!, kubeletArgs, { cwd: dir, env }));
  const kubeletStart = Date.now();
  let kubelet = launchKubelet();
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  const nodeReady = async () => {
    const n = await core.readNode({ name: NODE_NAME });
    return !!n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  };
  await waitFor(`node ${NODE_NAME} Ready`, nodeReady, { proc: kubelet, timeoutMs: 90_000, intervalMs: 100 });
  const readyAfterMs = Date.now() - kubeletStart;

  const schedulerConfig = path.join(dir, 'scheduler.yaml');
  writeFileSync(schedulerConfig, yamlish({
    apiVersion: 'kubescheduler.config.k8s.io/v1',
    kind: 'KubeSchedulerConfiguration',
    clientConnection: { kubeconfig: cp.kubeconfigPath, qps: 200, burst: 400 },
    leaderElection: { leaderElect: false },
  }));
  const scheduler = track(startProcess('kube-scheduler', bins['kube-scheduler']!, ['--config', schedulerConfig, '--secure-port', '0'], { cwd: dir }));

  const proxyCred = pki.client('kube-proxy', 'system:kube-proxy');
  const proxyConfig = path.join(dir, 'kube-proxy.yaml');
  const [proxyHealthz, proxyMetrics] = [await freePort(), await freePort()];
  writeFileSync(proxyConfig, yamlish({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    mode: 'iptables',
    clientConnection: { kubeconfig: kubeconfig('kube-proxy', proxyCred) },
    hostnameOverride: NODE_NAME,
    clusterCIDR: POD_CIDR,
    healthzBindAddress: `127.0.0.1:${proxyHealthz}`,
    metricsBindAddress: `127.0.0.1:${proxyMetrics}`,
    // Leave the host's conntrack table size alone.
    conntrack: { maxPerCore: 0 },
    iptables: { syncPeriod: '30s', minSyncPeriod: '0s' },
  }));
  const proxy = track(startProcess('kube-proxy', bins['kube-proxy']!, ['--config', proxyConfig], { cwd: dir }));

  // Cluster DNS on the host, bound to the bridge address the kubelet hands
  // pods as their nameserver; names outside the cluster go to the host's resolver.
  const corefile = path.join(dir, 'Corefile');
  writeFileSync(corefile, `.:53 {
  bind ${BRIDGE_ADDRESS}
  errors
  kubernetes ${CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {
    kubeconfig ${cp.kubeconfigPath} local
    pods insecure
    fallthrough in-addr.arpa ip6.arpa
  }
  forward . /etc/resolv.conf
  cache 5
}
`);
  const coredns = track(startProcess('coredns', bins.coredns!, ['-conf', corefile], { cwd: dir }));
  await waitFor('kube-proxy healthz', async () => (await fetch(`http://127.0.0.1:${proxyHealthz}/healthz`)).ok, { proc: proxy, timeoutMs: 30_000 });
  await waitFor('CoreDNS on the bridge', () => tcpOpen(53, BRIDGE_ADDRESS), { proc: coredns, timeoutMs: 30_000 });

  return {
    name: NODE_NAME,
    hostAddress: BRIDGE_ADDRESS,
    dir,
    get containerd() { return containerd; },
    get kubelet() { return kubelet; },
    scheduler,
    proxy,
    coredns,
    ctr,
    importImage,
    readyAfterMs,
    async restartKubelet() {
      await kubelet.stop(10_000);
      kubelet = launchKubelet();
      await waitFor('kubelet healthz after restart', async () => (await fetch(`http://127.0.0.1:${healthzPort}/healthz`)).ok, { proc: kubelet, timeoutMs: 60_000 });
    },
    async restartContainerd() {
      await containerd.stop(10_000);
      containerd = launchContainerd();
      await containerdUp();
    },
  };
}

/**
 * Issuers a spec may name over plain HTTP are loopback-only (the FamilyHub
 * CRD's rule), and a pod's loopback is its own. For a development IdP on the
 * host's 127.0.0.1:<port>, this forwards <bridge>:<port> to it on the host,
 * and loopbackSidecar() forwards the pod's 127.0.0.1:<port> to the bridge —
 * so the same issuer URL works on the host and in the operator's pods.
 */
export async function exposeLoopbackToPods(port: number): Promise<{ stop(): Promise<void> }> {
  const server = net.createServer((inbound) => {
    const out = net.connect({ host: '127.0.0.1', port });
    inbound.pipe(out).pipe(inbound);
    const close = () => (inbound.destroy(), out.destroy());
    inbound.on('error', close);
    out.on('error', close);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, BRIDGE_ADDRESS, () => resolve()));
  return { stop: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** The one-line forwarder both ends run: the caller's 127.0.0.1:<port> to the bridge address. */
const loopbackToBridgeScript = (ports: number[]) =>
  `process.on('SIGTERM',()=>process.exit(0));const net=require('net');for(const p of ${JSON.stringify(ports)})net.createServer(i=>{const o=net.connect({host:${JSON.stringify(BRIDGE_ADDRESS)},port:p});i.pipe(o).pipe(i);const c=()=>{i.destroy();o.destroy()};i.on('error',c);o.on('error',c)}).listen(p,'127.0.0.1')`;

/**
 * loopbackSidecar() for pods whose spec a test does not write (the pods of
 * the operator's Services): the same forwarder, started from the host in
 * each pod's network namespace (`ip netns exec cni-…`) as soon as the CNI
 * has made it, so 127.0.0.1:<port> in every pod on this node reaches the
 * bridge, where exposeLoopbackToPods() answers for the host's service.
 * A namespace that goes away takes its forwarder with it.
 */
export function forwardPodLoopback(ports: number[], opts: { intervalMs?: number } = {}): { stop(): Promise<void>; namespaces(): string[] } {
  const dir = '/var/run/netns';
  const forwarders = new Map<string, ChildProcess>();
  const script = loopbackToBridgeScript(ports);
  const scan = () => {
    let names: string[] = [];
    try {
      names = readdirSync(dir).filter((n) => n.startsWith('cni-'));
    } catch {
      // no pod network namespace yet
    }
    for (const n of names) {
      if (forwarders.has(n)) continue;
      const child = spawn('ip', ['netns', 'exec', n, process.execPath, '-e', script], { stdio: 'ignore' });
      child.on('error', () => {});
      forwarders.set(n, child);
    }
    for (const [n, child] of forwarders) {
      if (names.includes(n)) continue;
      child.kill('SIGTERM');
      forwarders.delete(n);
    }
  };
  scan();
  const timer = setInterval(scan, opts.intervalMs ?? 200);
  return {
    namespaces: () => [...forwarders.keys()],
    async stop() {
      clearInterval(timer);
      await Promise.all([...forwarders.values()].map((c) => new Promise<void>((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve();
        c.once('exit', () => resolve());
        c.kill('SIGTERM');
      })));
      forwarders.clear();
    },
  };
}

/** resolv.conf of a pod on this node: cluster names through the node's CoreDNS (for host processes that stand in for pods, e.g. a gateway). */
export function clusterResolvConf(namespace = 'default'): string {
  return `nameserver ${BRIDGE_ADDRESS}\nsearch ${namespace}.svc.${CLUSTER_DOMAIN} svc.${CLUSTER_DOMAIN} ${CLUSTER_DOMAIN}\noptions ndots:5\n`;
}

/** A restricted sidecar (project image) forwarding the pod's 127.0.0.1:<port> to the host bridge address. */
export function loopbackSidecar(image: string, ports: number[]): Record<string, unknown> {
  const script = loopbackToBridgeScript(ports);
  return {
    name: 'host-loopback', image, imagePullPolicy: 'IfNotPresent', command: ['node', '-e', script],
    resources: { requests: { cpu: '5m', memory: '16Mi' }, limits: { memory: '64Mi' } },
    securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
  };
}

/** Fails with the node's component logs: what a test prints when pods do not come up. */
export function nodeLogs(node: LocalNode, lines = 40): string {
  return [node.kubelet, node.containerd].map((m) => `--- ${m.name} (${m.logFile})\n${execFileSync('tail', ['-n', String(lines), m.logFile], { encoding: 'utf8' })}`).join('\n');
}

