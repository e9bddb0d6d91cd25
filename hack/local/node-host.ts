// The host side of the local node: the CNI bridge every pod and host service
// meets on, the kernel settings pods need, the node's PKI, and the cleanup of
// everything a node leaves behind (processes, mounts, iptables chains,
// cgroups, network namespaces) — run on stop and again on the next start, so
// a run that was killed never breaks the next one.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SERVICE_CIDR } from './controlplane.js';

/** The bridge the CNI plugin attaches pods to; host services listen on its address. */
export const BRIDGE = 'fh0';
export const BRIDGE_ADDRESS = '10.88.0.1';
export const POD_CIDR = '10.88.0.0/16';
export const CLUSTER_DOMAIN = 'cluster.local';
// tmpfs: gone after a reboot, exactly like the leftovers it describes.
const STATE_DIR = '/run/familyhub-node';
/** The chain that refuses a ClusterIP kube-proxy has not (yet) translated. */
const SERVICE_GUARD = 'FAMILYHUB-SVC-GUARD';
/** iptables chains and rules a node adds (kube-proxy, kubelet, CNI, ours); none may outlive it. */
export const NODE_IPTABLES = /KUBE-|CNI-|FAMILYHUB-/;
const STATE_FILE = path.join(STATE_DIR, 'state.json');
const LOCK_FILE = path.join(STATE_DIR, 'lock');

export interface NodeState {
  runDir: string;
  containerdAddress: string;
  pids: number[];
  ipForward: string;
}

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const quiet = (cmd: string, args: string[]) => {
  try {
    return sh(cmd, args);
  } catch {
    return '';
  }
};

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('the local node needs root (mounts, iptables, cgroups, network namespaces); run as root or use --no-node');
}

/**
 * One node per machine (kubelet uses fixed host paths): a `flock` child holds
 * the lock for as long as this process lives.
 */
export async function acquireNodeLock(timeoutMs = 600_000): Promise<ChildProcess> {
  mkdirSync(STATE_DIR, { recursive: true });
  // The holder watches this process, so even a SIGKILLed run frees the lock.
  const holder = spawn('flock', ['-w', String(Math.ceil(timeoutMs / 1000)), LOCK_FILE, 'sh', '-c', `echo locked; while kill -0 ${process.pid} 2>/dev/null; do sleep 0.5; done`], { stdio: ['ignore', 'pipe', 'inherit'] });
  holder.unref();
  await new Promise<void>((resolve, reject) => {
    holder.stdout!.once('data', () => resolve());
    holder.once('exit', (code) => reject(new Error(`another local node holds ${LOCK_FILE} (flock exited ${code})`)));
  });
  process.once('exit', () => holder.kill('SIGKILL'));
  return holder;
}

export function saveState(state: NodeState): void {
  mkdirSync(STATE_DIR, { recursive: true });
  writeFileSync(STATE_FILE, JSON.stringify(state));
}

export function readState(): NodeState | undefined {
  try {
    return JSON.parse(readFileSync(STATE_FILE, 'utf8')) as NodeState;
  } catch {
    return undefined;
  }
}

/** ip_forward on (pods route through the host), the bridge up with its gateway address. */
export function prepareHost(): string {
  const before = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
  writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
  quiet('modprobe', ['br_netfilter']);
  if (!existsSync(`/sys/class/net/${BRIDGE}`)) sh('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
  // The CNI bridge plugin would add the gateway address at the first pod; the
  // apiserver and host services bind to it before that, so add it now.
  if (!quiet('ip', ['-4', 'addr', 'show', 'dev', BRIDGE]).includes(`${BRIDGE_ADDRESS}/`)) {
    sh('ip', ['addr', 'add', `${BRIDGE_ADDRESS}/16`, 'dev', BRIDGE]);
  }
  sh('ip', ['link', 'set', BRIDGE, 'up']);
  guardServiceRange();
  return before;
}

/**
 * A connection to a ClusterIP that kube-proxy has not translated (a Service
 * newer than its last sync) would follow the default route: on a machine
 * whose egress is a transparent proxy, that proxy answers it (an empty 404),
 * and a client keeping the connection alive — Traefik's forward-auth — keeps
 * asking the proxy long after the rule exists. In a cluster that address
 * leads nowhere; here it is refused, so the client retries on a new
 * connection. The filter hooks run after kube-proxy's DNAT, so translated
 * packets no longer carry a service address and pass.
 */
function guardServiceRange(): void {
  if (quiet('iptables', ['-S', SERVICE_GUARD]) !== '') return;
  sh('iptables', ['-N', SERVICE_GUARD]);
  sh('iptables', ['-A', SERVICE_GUARD, '-d', SERVICE_CIDR, '-p', 'tcp', '-j', 'REJECT', '--reject-with', 'tcp-reset']);
  sh('iptables', ['-A', SERVICE_GUARD, '-d', SERVICE_CIDR, '-j', 'REJECT']);
  for (const chain of ['OUTPUT', 'FORWARD']) sh('iptables', ['-I', chain, '-j', SERVICE_GUARD]);
}

/** Running, not a zombie waiting for a parent that may never reap it. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

async function killAndWait(pids: number[], timeoutMs = 5000): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch { /* already gone */ }
  }
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

/** Every cgroup directory the kubelet made (cgroupfs driver: <controller>/kubepods/...), deepest first. */
function kubepodsCgroups(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(dir, e.name));
    out.push(dir);
  };
  for (const ctrl of quiet('ls', ['/sys/fs/cgroup']).split('\n').filter(Boolean)) {
    const dir = path.join('/sys/fs/cgroup', ctrl, 'kubepods');
    try {
      if (statSync(dir).isDirectory()) walk(dir);
    } catch { /* controller without kubepods */ }
  }
  return out;
}

function mountsUnder(prefixes: string[]): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)
    .map((l) => l.split(' ')[4]!.replace(/\\040/g, ' '))
    .filter((m) => prefixes.some((p) => m === p || m.startsWith(p.endsWith('/') ? p : `${p}/`)))
    // Deepest first; the kubelet mounts its root dir on itself, so repeat.
    .sort((a, b) => b.length - a.length);
}

function unmountAll(prefixes: string[]): void {
  for (let round = 0; round < 10; round++) {
    const mounts = mountsUnder(prefixes);
    if (!mounts.length) return;
    for (const m of mounts) quiet('umount', ['-l', m]);
  }
}

/** Drops every iptables rule and chain the kubelet, kube-proxy, the CNI plugins and prepareHost added. */
export function cleanIptables(): void {
  for (const [save, restore] of [['iptables-save', 'iptables-restore'], ['ip6tables-save', 'ip6tables-restore']] as const) {
    const rules = quiet(save, []);
    if (!NODE_IPTABLES.test(rules)) continue;
    const kept = rules.split('\n').filter((l) => !NODE_IPTABLES.test(l)).join('\n');
    execFileSync(restore, [], { input: kept + '\n' });
  }
}

/**
 * Removes what a node (this run's or a killed one's) left: its processes
 * (recorded pids and every shim of its containerd), the pods' processes and
 * cgroups, mounts under its run dir and the CNI network namespaces, iptables
 * chains, the bridge, container log links.
 */
export async function cleanupNode(state: NodeState | undefined, opts: { keepBridge?: boolean } = {}): Promise<void> {
  if (state) {
    const ours = state.pids.filter((p) => alive(p) && cmdline(p) !== '');
    const shims = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number)
      .filter((p) => cmdline(p).includes('containerd-shim') && cmdline(p).includes(state.containerdAddress));
    await killAndWait([...ours, ...shims]);
  }
  // Container processes outlive their shim: kill them by cgroup.
  for (let round = 0; round < 5; round++) {
    const pids = kubepodsCgroups().flatMap((d) => quiet('cat', [path.join(d, 'cgroup.procs')]).split('\n').filter(Boolean).map(Number));
    if (!pids.length) break;
    await killAndWait(pids);
  }
  for (const d of kubepodsCgroups()) {
    try {
      rmdirSync(d);
    } catch { /* busy or gone; the next cleanup retries */ }
  }
  // /var/run is a link to /run; mountinfo names the real path.
  const nsDir = existsSync('/var/run/netns') ? realpathSync('/var/run/netns') : undefined;
  const netns = nsDir ? readdirSync(nsDir).filter((n) => n.startsWith('cni-')).map((n) => path.join(nsDir, n)) : [];
  unmountAll([...(state ? [state.runDir] : []), ...netns]);
  for (const n of netns) {
    try {
      rmSync(n, { force: true });
    } catch (err) {
      throw new Error(`removing the pod network namespace ${n}: ${String(err)}`);
    }
  }
  cleanIptables();
  if (!opts.keepBridge && existsSync(`/sys/class/net/${BRIDGE}`)) quiet('ip', ['link', 'del', BRIDGE]);
  if (existsSync('/var/log/containers')) {
    for (const l of readdirSync('/var/log/containers')) {
      const p = path.join('/var/log/containers', l);
      try {
        if (state && readlinkSync(p).startsWith(state.runDir)) unlinkSync(p);
      } catch { /* not a link */ }
    }
  }
  if (state) {
    if (state.ipForward) writeFileSync('/proc/sys/net/ipv4/ip_forward', state.ipForward);
    rmSync(state.runDir, { recursive: true, force: true });
    rmSync(STATE_FILE, { force: true });
  }
}

/** A throwaway CA and the client certificates the node's components authenticate with. */
export interface NodePki {
  caCert: string;
  caKey: string;
  client(name: string, cn: string, org?: string): { cert: string; key: string };
}

export function makePki(dir: string): NodePki {
  mkdirSync(dir, { recursive: true });
  const caKey = path.join(dir, 'ca.key');
  const caCert = path.join(dir, 'ca.crt');
  // EC keys: generation is instant, unlike 2048-bit RSA on a loaded machine.
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  sh('openssl', ['req', '-x509', ...ec, '-keyout', caKey, '-out', caCert, '-days', '7', '-subj', '/CN=familyhub-local-node-ca']);
  const ext = path.join(dir, 'client.ext');
  writeFileSync(ext, 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n');
  return {
    caCert,
    caKey,
    client(name, cn, org) {
      const key = path.join(dir, `${name}.key`);
      const csr = path.join(dir, `${name}.csr`);
      const cert = path.join(dir, `${name}.crt`);
      sh('openssl', ['req', '-new', ...ec, '-keyout', key, '-out', csr, '-subj', `${org ? `/O=${org}` : ''}/CN=${cn}`]);
      sh('openssl', ['x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '7', '-extfile', ext]);
      return { cert, key };
    },
  };
}
