// Pods really run on the local node (hack/local/node.ts): a Deployment of the
// project image (imported without Docker or a registry) under the restricted
// Pod Security profile becomes Available; kubectl logs/exec work; a ClusterIP
// Service answers from the host and from another pod, by its cluster DNS name
// too; a pod reaches PostgreSQL on the host; kubelet and containerd restarts
// keep running pods; a pod deleted by hand is replaced; stopping the node
// leaves nothing behind. Needs root (skipped, with the reason, otherwise).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProjectImage } from '../../hack/images/images.js';
import { BRIDGE_ADDRESS, NODE_NAME, POD_CIDR, startCluster, type Cluster } from '../../hack/local/node.js';
import { NODE_IPTABLES } from '../../hack/local/node-host.js';
import { waitFor } from '../../hack/local/process.js';
import { startPostgres, type LocalPostgres } from '../../hack/local/postgres.js';
import { prebuilt } from '../support/prebuilt.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

const NS = 'node-e2e';
const isRoot = process.getuid?.() === 0;

// An HTTP server in the project image: answers with the pod's name. Node as
// PID 1 ignores SIGTERM unless it handles it, so handle it (fast deletes).
const WEB = `process.on('SIGTERM',()=>process.exit(0));require('http').createServer((q,s)=>s.end(require('os').hostname())).listen(8080,()=>console.log('web listening on 8080'))`;
const IDLE = `process.on('SIGTERM',()=>process.exit(0));setInterval(()=>{},1e9)`;

/** One GET on a fresh connection. */
function getOnce(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject).on('timeout', function (this: http.ClientRequest) { this.destroy(new Error(`GET ${url} timed out`)); });
  });
}

interface Pod { metadata: { name: string; uid: string; labels?: Record<string, string>; deletionTimestamp?: string }; status: { phase: string; podIP?: string; conditions?: Array<{ type: string; status: string }>; containerStatuses?: Array<{ containerID?: string; restartCount: number; ready: boolean; state: { running?: { startedAt: string } } }> } }

describe.skipIf(!isRoot)('local node: pods run', () => {
  let cluster: Cluster;
  let pg: LocalPostgres;
  let image: string;
  const kubectl = (...args: string[]) => cluster.kubectl(['-n', NS, ...args]);
  const apply = (obj: unknown) => cluster.kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
  const pods = async (selector: string): Promise<Pod[]> => JSON.parse(await kubectl('get', 'pods', '-l', selector, '-o', 'json')).items;
  const ready = (p: Pod) => p.status.phase === 'Running' && !p.metadata.deletionTimestamp && !!p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  const execNode = (pod: string, script: string) => kubectl('exec', pod, '--', 'node', '-e', script);
  const restricted = {
    pod: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
    container: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
  };
  const deployment = (name: string, script: string, replicas: number) => ({
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: NS },
    spec: {
      replicas, selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          terminationGracePeriodSeconds: 5,
          securityContext: restricted.pod,
          containers: [{
            name, image, imagePullPolicy: 'IfNotPresent', command: ['node', '-e', script],
            ports: [{ containerPort: 8080, name: 'http' }],
            ...(name === 'web' ? { readinessProbe: { httpGet: { path: '/', port: 'http' }, periodSeconds: 1 } } : {}),
            securityContext: restricted.container,
          }],
        },
      },
    },
  });
  const availableDeployment = (name: string, replicas: number, timeoutMs = 90_000) =>
    waitFor(`deployment ${name} Available with ${replicas} ready`, async () => {
      const d = JSON.parse(await kubectl('get', 'deployment', name, '-o', 'json'));
      return d.status?.readyReplicas === replicas && d.status?.updatedReplicas === replicas &&
        d.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Available' && c.status === 'True');
    }, { timeoutMs, intervalMs: 250 });

  beforeAll(async () => {
    cluster = await startCluster({ audit: false });
    const built = await buildProjectImage({ from: 'head' });
    image = built.ref;
    await cluster.node.importImage(built.archive);
    pg = await startPostgres({ podAccess: { address: BRIDGE_ADDRESS, cidr: POD_CIDR } });
    // Restricted Pod Security enforced: the apiserver refuses any pod below it.
    await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } });
    await waitFor('default ServiceAccount', async () => (await kubectl('get', 'serviceaccount', 'default', '-o', 'name')).includes('default'));
  }, 600_000);

  afterAll(async () => {
    await pg?.stop();
    await cluster?.stop();
  }, 120_000);

  it('a Deployment of the project image becomes Available, restricted pods Running and Ready', async () => {
    await apply(deployment('web', WEB, 2));
    await apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: NS }, spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 'http' }] } });
    await apply(deployment('client', IDLE, 1));
    await availableDeployment('web', 2);
    await availableDeployment('client', 1);
    const web = await pods('app=web');
    expect(web.filter(ready)).toHaveLength(2);
    for (const p of web) expect(p.status.podIP?.startsWith('10.88.')).toBe(true);
    // The profile is what the process really gets, not only what the spec says.
    const facts = JSON.parse(await execNode(web[0]!.metadata.name, `
      const fs=require('fs');const st=fs.readFileSync('/proc/self/status','utf8');
      let rofs=false;try{fs.writeFileSync('/probe','x')}catch(e){rofs=e.code==='EROFS'}
      console.log(JSON.stringify({uid:process.getuid(),gid:process.getgid(),capEff:/CapEff:\\s*(\\w+)/.exec(st)[1],seccomp:/Seccomp:\\s*(\\d)/.exec(st)[1],noNewPrivs:/NoNewPrivs:\\s*(\\d)/.exec(st)[1],rofs}))`));
    expect(facts).toEqual({ uid: 65532, gid: 65532, capEff: '0000000000000000', seccomp: '2', noNewPrivs: '1', rofs: true });
  });

  it('the apiserver refuses a pod below the restricted profile', async () => {
    await expect(apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'root-pod', namespace: NS }, spec: { containers: [{ name: 'c', image, command: ['node', '-e', IDLE] }] } }))
      .rejects.toThrow(/violates PodSecurity "restricted/);
  });

  it('kubectl logs and kubectl exec reach the containers', async () => {
    const [p] = await pods('app=web');
    await waitFor('web log line', async () => (await kubectl('logs', p!.metadata.name)).includes('web listening on 8080'));
    expect((await execNode(p!.metadata.name, 'console.log(require("os").hostname())')).trim()).toBe(p!.metadata.name);
  });

  it('a ClusterIP Service answers from the host and from another pod, by IP and by its cluster DNS name', async () => {
    const svc = JSON.parse(await kubectl('get', 'service', 'web', '-o', 'json'));
    const ip: string = svc.spec.clusterIP;
    expect(ip.startsWith('10.0.0.')).toBe(true);
    const names = new Set((await pods('app=web')).map((p) => p.metadata.name));
    // From the host, through kube-proxy's rules: both replicas answer (a new
    // connection each time: kube-proxy balances connections, not requests).
    const seen = new Set<string>();
    await waitFor('both replicas behind the ClusterIP', async () => {
      seen.add(await getOnce(`http://${ip}/`));
      return [...names].every((n) => seen.has(n));
    }, { timeoutMs: 30_000, intervalMs: 50 });
    const [client] = await pods('app=client');
    const fromPod = async (url: string) => (await execNode(client!.metadata.name, `fetch(${JSON.stringify(url)}).then(r=>r.text()).then(t=>console.log(t))`)).trim();
    expect(names).toContain(await fromPod(`http://${ip}/`));
    expect(names).toContain(await fromPod(`http://web.${NS}.svc/`));
    const resolved = (await execNode(client!.metadata.name, `require('dns').promises.lookup('web.${NS}.svc.cluster.local').then(a=>console.log(a.address))`)).trim();
    expect(resolved).toBe(ip);
  });

  // A ClusterIP kube-proxy has not translated (none here) must fail as in a
  // cluster, not reach whatever the machine's default route leads to — on
  // these machines a transparent egress proxy that answers anything with an
  // empty 404, which a kept-alive client then keeps asking.
  it('a service address nothing translates is refused, from the host and from a pod', async () => {
    const unused = 'http://10.0.0.250:8080/';
    await expect(getOnce(unused)).rejects.toThrow(/ECONNREFUSED/);
    const [client] = await pods('app=client');
    const out = (await execNode(client!.metadata.name, `fetch(${JSON.stringify(unused)}).then(r=>console.log('answered '+r.status),e=>console.log('refused '+(e.cause?.code??e.message)))`)).trim();
    expect(out).toBe('refused ECONNREFUSED');
  });

  it('a pod reaches PostgreSQL on the host at the bridge address', async () => {
    const [client] = await pods('app=client');
    const out = await execNode(client!.metadata.name, `
      const pg=require('pg');const c=new pg.Client({host:${JSON.stringify(BRIDGE_ADDRESS)},port:${pg.port},user:${JSON.stringify(pg.user)},password:${JSON.stringify(pg.password)},database:'postgres'});
      c.connect().then(()=>c.query("select host(inet_client_addr()) as addr, current_user as u")).then(r=>{console.log(JSON.stringify(r.rows[0]));return c.end()})`);
    expect(JSON.parse(out)).toEqual({ addr: client!.status.podIP, u: pg.user });
  });

  it('restarting kubelet, then containerd, keeps the running pods', async () => {
    const snapshot = async () => (await pods('app=web')).map((p) => ({ uid: p.metadata.uid, id: p.status.containerStatuses?.[0]?.containerID, startedAt: p.status.containerStatuses?.[0]?.state.running?.startedAt, restarts: p.status.containerStatuses?.[0]?.restartCount })).sort((a, b) => a.uid.localeCompare(b.uid));
    const before = await snapshot();
    expect(before).toHaveLength(2);
    const svcIp = JSON.parse(await kubectl('get', 'service', 'web', '-o', 'json')).spec.clusterIP as string;
    // The kubelet's own count of PLEG relists (through the apiserver's node
    // proxy): each relist compares every container with the runtime, so a
    // container judged dead after a restart would be restarted within them.
    const relists = async () => {
      const text = await cluster.kubectl(['get', '--raw', `/api/v1/nodes/${NODE_NAME}/proxy/metrics`]);
      return Number(/^kubelet_pleg_relist_duration_seconds_count(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? 0);
    };
    const relistsAfter = async (what: string) => {
      let start = -1;
      await waitFor(`five PLEG relists after ${what}`, async () => {
        const n = await relists().catch(() => -1);
        if (n < 0) return false;
        if (start < 0 || n < start) start = n; // a restarted kubelet counts from 0
        return n >= start + 5;
      }, { timeoutMs: 60_000 });
    };
    await cluster.node.restartKubelet();
    await availableDeployment('web', 2);
    await relistsAfter('the kubelet restart');
    expect(await snapshot()).toEqual(before);
    await cluster.node.restartContainerd();
    await relistsAfter('the containerd restart');
    await availableDeployment('web', 2);
    expect(await snapshot()).toEqual(before);
    expect((await getOnce(`http://${svcIp}/`)).length).toBeGreaterThan(0);
  });

  it('a pod deleted by hand is replaced by its ReplicaSet', async () => {
    const before = await pods('app=web');
    const victim = before[0]!.metadata.name;
    await kubectl('delete', 'pod', victim, '--wait=false');
    await waitFor('a replacement web pod Ready', async () => {
      const now = (await pods('app=web')).filter(ready);
      return now.length === 2 && !now.some((p) => p.metadata.name === victim);
    }, { timeoutMs: 60_000, intervalMs: 250 });
  });

  it('stopping the node leaves no process, mount, iptables chain, cgroup or bridge behind', async () => {
    const dir = cluster.node.dir;
    const pids = [cluster.node.kubelet, cluster.node.containerd, cluster.node.proxy, cluster.node.coredns].map((m) => m.child.pid!);
    await pg.stop();
    await cluster.stop();
    for (const pid of pids) expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(dir);
    expect(execFileSync('iptables-save', { encoding: 'utf8' })).not.toMatch(NODE_IPTABLES);
    expect(existsSync('/sys/fs/cgroup/memory/kubepods')).toBe(false);
    expect(existsSync('/sys/class/net/fh0')).toBe(false);
    expect(execFileSync('sh', ['-c', 'ps -eo args | grep -c "[c]ontainerd-shim" || true'], { encoding: 'utf8' }).trim()).toBe('0');
    cluster = undefined as unknown as Cluster;
    pg = undefined as unknown as LocalPostgres;
  });
});
