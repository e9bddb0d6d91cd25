// A real Traefik (built from its pinned Go module by hack/controlplane/build.sh
// traefik) serving the test apiserver's Gateway API objects: the
// kubernetesgateway provider for Gateways and HTTPRoutes, kubernetescrd for
// the Middlewares that HTTPRoutes attach through ExtensionRef filters.
// It runs out of cluster as a host process with a ServiceAccount kubeconfig
// and Traefik's own published RBAC, as it would run as a pod.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { KubeClient } from '../../src/core/kube-client.js';
import type { ControlPlane } from './controlplane.js';
import { traefikClusterRoles } from './gateway-crds.js';
import { repoRoot } from './manifests.js';
import { freePort, startProcess, waitFor, workDir, type Managed } from './process.js';

export const TRAEFIK_CONTROLLER_NAME = 'traefik.io/gateway-controller';
const NAMESPACE = 'familyhub-gateway';
const SERVICE_ACCOUNT = 'traefik';

export interface Traefik {
  proc: Managed;
  /** Plain-HTTP entryPoint: a Gateway listener must use this port number. */
  httpPort: number;
  /** entryPoint for HTTPS listeners (TLS is configured per Gateway listener). */
  httpsPort: number;
  /** /ping lives here. */
  adminPort: number;
  logs(): string;
  /** Traefik's own view of its HTTP routers and middlewares (status and errors), for a failing test's message. */
  diagnostics(filter?: string): Promise<string>;
  stop(): Promise<void>;
  kill(): Promise<void>;
  /** Starts the same binary again on the same ports (after stop/kill). */
  restart(): Promise<void>;
}

export function traefikBinary(): string {
  const out = execFileSync('bash', [path.join(repoRoot, 'hack/controlplane/build.sh'), 'traefik'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim().split('\n');
  return out.at(-1)!;
}

/** GatewayClass handled by Traefik (what Traefik's Helm chart would create). */
export async function ensureTraefikGatewayClass(kube: KubeClient, name = 'traefik'): Promise<void> {
  await kube.request('PATCH', `/apis/gateway.networking.k8s.io/v1/gatewayclasses/${name}`, {
    contentType: 'application/apply-patch+yaml',
    query: { fieldManager: 'familyhub-traefik', force: true },
    body: { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name }, spec: { controllerName: TRAEFIK_CONTROLLER_NAME } },
  });
}

async function serviceAccountKubeconfig(cp: ControlPlane): Promise<string> {
  const kube = new KubeClient(cp.kubeConfig);
  const fm = { fieldManager: 'familyhub-traefik' };
  await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } }, fm);
  await kube.apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: SERVICE_ACCOUNT, namespace: NAMESPACE } }, fm);
  for (const role of traefikClusterRoles()) {
    const name = `familyhub-traefik-${role.metadata.name}`;
    await kube.apply({ ...role, metadata: { name } }, fm);
    await kube.apply({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: [{ kind: 'ServiceAccount', name: SERVICE_ACCOUNT, namespace: NAMESPACE }],
    }, fm);
  }
  return cp.serviceAccountKubeconfig(NAMESPACE, SERVICE_ACCOUNT);
}

export interface TraefikOptions {
  /** Minimum time between two configuration reloads (Traefik's default is 2 s). */
  throttleMs?: number;
  logLevel?: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
  accessLog?: boolean;
  /**
   * resolv.conf Traefik sees (e.g. node.ts clusterResolvConf()): in a cluster
   * it resolves `<service>.<namespace>.svc` names (a forward-auth address) as
   * a pod does. It runs in its own mount namespace with this file bound over
   * /etc/resolv.conf; the host's stays untouched.
   */
  resolvConf?: string;
}

/**
 * Starts Traefik against `cp`. The GatewayClass "traefik" is created; the
 * Gateway is the caller's (its listener ports must be httpPort / httpsPort).
 */
export async function startTraefik(cp: ControlPlane, opts: TraefikOptions = {}): Promise<Traefik> {
  const bin = traefikBinary();
  const kubeconfig = await serviceAccountKubeconfig(cp);
  await ensureTraefikGatewayClass(new KubeClient(cp.kubeConfig));
  const dir = workDir('traefik');
  const [httpPort, httpsPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const args = [
    `--entryPoints.web.address=127.0.0.1:${httpPort}`,
    `--entryPoints.websecure.address=127.0.0.1:${httpsPort}`,
    `--entryPoints.traefik.address=127.0.0.1:${adminPort}`,
    '--ping=true',
    '--ping.entryPoint=traefik',
    // The API on the loopback-only admin entryPoint: a failing test prints
    // which routers Traefik built and why one is disabled (diagnostics()).
    '--api=true',
    '--api.insecure=true',
    '--providers.kubernetesgateway=true',
    '--providers.kubernetesgateway.statusAddress.ip=127.0.0.1',
    '--providers.kubernetescrd=true',
    `--providers.providersThrottleDuration=${opts.throttleMs ?? 200}ms`,
    '--log.format=json',
    `--log.level=${opts.logLevel ?? 'INFO'}`,
    ...(opts.accessLog ? ['--accessLog=true', '--accessLog.format=json'] : []),
    // No version check or anonymous usage report: tests never leave the machine.
    '--global.checkNewVersion=false',
    '--global.sendAnonymousUsage=false',
  ];
  const env = { KUBECONFIG: kubeconfig, KUBERNETES_SERVICE_HOST: '', KUBERNETES_SERVICE_PORT: '' };
  let cmd = bin;
  let argv = args;
  if (opts.resolvConf !== undefined) {
    const resolv = path.join(dir, 'resolv.conf');
    writeFileSync(resolv, opts.resolvConf);
    cmd = 'unshare';
    argv = ['--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolv, bin, ...args];
  }
  let proc: Managed;
  const launch = async () => {
    proc = startProcess('traefik', cmd, argv, { cwd: dir, env });
    await waitFor('traefik /ping', async () => (await fetch(`http://127.0.0.1:${adminPort}/ping`)).ok, { proc, timeoutMs: 60_000 });
  };
  await launch();
  return {
    get proc() { return proc; },
    httpPort,
    httpsPort,
    adminPort,
    logs: () => {
      try {
        return readFileSync(proc.logFile, 'utf8');
      } catch {
        return '';
      }
    },
    diagnostics: async (filter = '') => {
      const lines: string[] = [];
      for (const kind of ['routers', 'middlewares', 'services']) {
        try {
          const items = await (await fetch(`http://127.0.0.1:${adminPort}/api/http/${kind}`)).json() as Array<{ name: string; status?: string; error?: string[]; rule?: string; middlewares?: string[]; serverStatus?: Record<string, string> }>;
          for (const i of items.filter((x) => x.name.includes(filter))) {
            lines.push(`traefik ${kind} ${i.name}: ${i.status ?? ''}${i.rule ? ` ${i.rule}` : ''}${i.middlewares ? ` middlewares=${i.middlewares.join(',')}` : ''}${i.serverStatus ? ` servers=${JSON.stringify(i.serverStatus)}` : ''}${i.error ? ` errors=${JSON.stringify(i.error)}` : ''}`);
          }
        } catch (err) {
          lines.push(`traefik ${kind}: ${String(err)}`);
        }
      }
      return lines.join('\n');
    },
    stop: () => proc.stop(5000),
    kill: () => proc.kill(),
    restart: launch,
  };
}
