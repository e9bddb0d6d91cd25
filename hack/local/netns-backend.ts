// Backends for gateway tests until pods run on a real node: the apiserver
// refuses loopback addresses in EndpointSlices, so each backend is a process
// in its own network namespace, reached from the host over a veth pair with
// private addresses (10.213.0.0/16, away from the service range 10.0.0.0/24
// and the node's pod range 10.88.0.0/16). Nothing leaves this machine.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { KubeClient } from '../../src/core/kube-client.js';
import { repoRoot } from './manifests.js';
import { startProcess, waitFor, workDir, type Managed } from './process.js';

export interface NetnsBackend {
  /** Network namespace name (`ip netns`). */
  netns: string;
  /** The backend's non-loopback address, reachable from the host. */
  address: string;
  port: number;
  proc: Managed;
  stop(): Promise<void>;
}

const SUBNET_PREFIX = '10.213';

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A /30 in 10.213.0.0/16 that no interface on the host uses yet. */
function freeSubnet(): { host: string; backend: string } {
  const used = new Set([...ip('-4', '-o', 'addr').matchAll(/inet (10\.213\.\d+\.\d+)/g)].map((m) => m[1]));
  for (let attempt = 0; attempt < 200; attempt++) {
    const n = randomBytes(2).readUInt16BE() & 0x3fff; // 16384 /30 blocks
    const third = n >> 6;
    const fourth = (n & 0x3f) * 4;
    const host = `${SUBNET_PREFIX}.${third}.${fourth + 1}`;
    if (!used.has(host)) return { host, backend: `${SUBNET_PREFIX}.${third}.${fourth + 2}` };
  }
  throw new Error('no free /30 left in 10.213.0.0/16');
}

function removeNetns(netns: string, hostVeth: string): void {
  // Deleting one veth end removes both; the namespace goes with its last process.
  try { ip('link', 'del', hostVeth); } catch { /* already gone */ }
  try { ip('netns', 'del', netns); } catch { /* already gone */ }
}

export interface NetnsLink {
  netns: string;
  /** Host side of the veth pair: a non-loopback address of this machine. */
  hostAddress: string;
  /** Namespace side of the veth pair. */
  address: string;
  remove(): void;
}

/**
 * A network namespace joined to the host by a veth pair. Its host-side
 * address is also usable on its own: a host process bound to it can be an
 * EndpointSlice endpoint (the auth service in the tests).
 */
export function createNetnsLink(): NetnsLink {
  const id = randomBytes(3).toString('hex');
  const netns = `fh-${id}`;
  const hostVeth = `fh${id}h`;
  const nsVeth = `fh${id}n`;
  const { host, backend } = freeSubnet();
  const cleanup = () => removeNetns(netns, hostVeth);
  process.once('exit', cleanup);
  try {
    ip('netns', 'add', netns);
    ip('link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', nsVeth);
    ip('link', 'set', nsVeth, 'netns', netns);
    ip('addr', 'add', `${host}/30`, 'dev', hostVeth);
    ip('link', 'set', hostVeth, 'up');
    ip('netns', 'exec', netns, 'ip', 'addr', 'add', `${backend}/30`, 'dev', nsVeth);
    ip('netns', 'exec', netns, 'ip', 'link', 'set', nsVeth, 'up');
    ip('netns', 'exec', netns, 'ip', 'link', 'set', 'lo', 'up');
  } catch (err) {
    cleanup();
    process.removeListener('exit', cleanup);
    throw new Error(`setting up network namespace ${netns}: ${(err as { stderr?: string }).stderr ?? String(err)}`);
  }
  return {
    netns,
    hostAddress: host,
    address: backend,
    remove() {
      cleanup();
      process.removeListener('exit', cleanup);
    },
  };
}

/**
 * Starts hack/local/echo-backend.ts (or `script`) inside a new network
 * namespace. Everything is removed on stop() and, as a safety net, when the
 * test process exits.
 */
export async function startNetnsBackend(opts: { name?: string; port?: number; script?: string; env?: Record<string, string> } = {}): Promise<NetnsBackend> {
  const link = createNetnsLink();
  const { netns } = link;
  const id = netns.slice(3);
  const backend = link.address;
  const port = opts.port ?? 8080;
  const loader = pathToFileURL(path.join(repoRoot, 'node_modules/tsx/dist/loader.mjs')).href;
  const script = opts.script ?? path.join(repoRoot, 'hack/local/echo-backend.ts');
  const proc = startProcess(`backend-${opts.name ?? id}`, 'ip', ['netns', 'exec', netns, process.execPath, '--import', loader, script], {
    cwd: workDir(`backend-${opts.name ?? id}`),
    env: { PORT: String(port), HOST: backend, BACKEND_NAME: opts.name ?? id, ...opts.env },
  });
  const stop = async () => {
    await proc.stop(5000);
    link.remove();
  };
  try {
    await waitFor(`backend ${opts.name ?? id} on ${backend}:${port}`, () => canConnect(backend, port), { proc, timeoutMs: 30_000 });
  } catch (err) {
    await stop();
    throw err;
  }
  return { netns, address: backend, port, proc, stop };
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port }, () => { s.destroy(); resolve(true); });
    s.setTimeout(1000, () => { s.destroy(); resolve(false); });
    s.on('error', () => resolve(false));
  });
}

/**
 * A selector-less Service plus the EndpointSlice the endpointslice controller
 * would write for a ready pod, pointing at the backend's address; named port
 * `http`, as Traefik matches Service and EndpointSlice ports by name.
 */
export async function publishBackend(kube: KubeClient, b: { address: string; port: number }, ref: { namespace: string; name: string; servicePort?: number }): Promise<void> {
  const servicePort = ref.servicePort ?? 80;
  await kube.apply({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: ref.name, namespace: ref.namespace },
    spec: { ports: [{ name: 'http', port: servicePort, targetPort: b.port, protocol: 'TCP' }] },
  }, { fieldManager: 'e2e-backend' });
  await kube.request('PATCH', `/apis/discovery.k8s.io/v1/namespaces/${ref.namespace}/endpointslices/${ref.name}`, {
    contentType: 'application/apply-patch+yaml',
    query: { fieldManager: 'e2e-backend', force: true },
    body: {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: ref.name, namespace: ref.namespace, labels: { 'kubernetes.io/service-name': ref.name } },
      addressType: 'IPv4',
      endpoints: [{ addresses: [b.address], conditions: { ready: true, serving: true, terminating: false } }],
      ports: [{ name: 'http', port: b.port, protocol: 'TCP' }],
    },
  });
}
