// npm run bench:node [-- N]
// The local node (hack/local/node.ts), binaries cached: how long the cluster
// takes to start and the node to become Ready; then N pods of the project
// image (a small HTTP server with a 1 s readiness probe) created at once,
// time from create to Ready per pod (p50/p99) and until all are Ready. The
// floor: the same N servers as plain processes on the host, time from spawn
// to the port answering. Run under the heavy-work lock on a shared machine.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { buildProjectImage } from '../hack/images/images.js';
import { startCluster } from '../hack/local/node.js';
import { freePort } from '../hack/local/process.js';
import { Bench, loadAverage } from './harness.js';

const N = Number(process.argv[2] ?? process.env.BENCH_N ?? 50);
const NS = 'bench';
const SERVER = `process.on('SIGTERM',()=>process.exit(0));require('http').createServer((q,s)=>s.end('ok')).listen(Number(process.env.PORT||8080),'PORT' in process.env?'127.0.0.1':'0.0.0.0')`;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const say = (m: string) => process.stdout.write(`${m}\n`);

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' }, () => (s.destroy(), resolve(true)));
    s.on('error', () => resolve(false));
  });
}

async function hostFloor(): Promise<{ perPod: number[]; total: number }> {
  const ports = await Promise.all(Array.from({ length: N }, () => freePort()));
  const children: ChildProcess[] = [];
  const t0 = performance.now();
  const perPod = await Promise.all(ports.map(async (port) => {
    const start = performance.now();
    children.push(spawn(process.execPath, ['-e', SERVER], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' }));
    while (!(await portOpen(port))) await new Promise((r) => setTimeout(r, 20));
    return performance.now() - start;
  }));
  const total = performance.now() - t0;
  for (const c of children) c.kill('SIGKILL');
  return { perPod, total };
}

const t0 = performance.now();
const cluster = await startCluster({ audit: false });
const clusterStart = performance.now() - t0;
try {
  say(`cluster start (control plane + node, binaries cached): ${fmt(clusterStart)}; kubelet start to Node Ready: ${fmt(cluster.node.readyAfterMs)}`);
  const built = await buildProjectImage({ from: 'head' });
  const ti = performance.now();
  await cluster.node.importImage(built.archive);
  say(`project image import (${built.ref}): ${fmt(performance.now() - ti)}`);
  await cluster.kubectl(['create', 'namespace', NS]);
  const pod = (i: number) => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name: `p${i}`, namespace: NS, labels: { bench: 'node' } },
    spec: {
      terminationGracePeriodSeconds: 2,
      containers: [{ name: 'web', image: built.ref, imagePullPolicy: 'IfNotPresent', command: ['node', '-e', SERVER], readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 } }],
    },
  });
  // One warm-up pod: the first container of an image pays for unpacking its snapshot.
  await cluster.kubectl(['apply', '-f', '-'], { input: JSON.stringify(pod(9999)) });
  await cluster.kubectl(['-n', NS, 'wait', '--for', 'condition=Ready', 'pod/p9999', '--timeout', '120s'], { timeoutMs: 130_000 });
  await cluster.kubectl(['-n', NS, 'delete', 'pod', 'p9999', '--wait=true'], { timeoutMs: 60_000 });

  const podsLoad = loadAverage();
  const created = new Map<string, number>();
  const readyAt = new Map<string, number>();
  const tc = performance.now();
  await cluster.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: Array.from({ length: N }, (_, i) => pod(i)) }) });
  for (let i = 0; i < N; i++) created.set(`p${i}`, tc);
  while (readyAt.size < N && performance.now() - tc < 300_000) {
    const list = JSON.parse(await cluster.kubectl(['-n', NS, 'get', 'pods', '-l', 'bench=node', '-o', 'json'])).items as Array<{ metadata: { name: string }; status: { conditions?: Array<{ type: string; status: string }> } }>;
    const now = performance.now();
    for (const p of list) if (!readyAt.has(p.metadata.name) && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) readyAt.set(p.metadata.name, now);
    await new Promise((r) => setTimeout(r, 100));
  }
  if (readyAt.size < N) throw new Error(`only ${readyAt.size}/${N} pods Ready after 300 s`);
  const perPod = [...readyAt].map(([name, at]) => at - created.get(name)!);
  const total = Math.max(...readyAt.values()) - tc;
  await cluster.kubectl(['delete', 'namespace', NS, '--wait=false']);

  const bench = new Bench('node', 'pods/s', { pods: N, readinessProbePeriodSeconds: 1 });
  const group = `${N} pods`;
  bench.record('pods', 0, group, N / (total / 1000), total / 1000, podsLoad, { p50Ms: pct(perPod, 50), p99Ms: pct(perPod, 99) });
  const floorLoad = loadAverage();
  const floor = await hostFloor();
  bench.record('host-floor', 0, group, N / (floor.total / 1000), floor.total / 1000, floorLoad, { p50Ms: pct(floor.perPod, 50), p99Ms: pct(floor.perPod, 99) });
  bench.ratio('podsToHostProcesses', 'pods', 'host-floor', group, `${N} pods created → all Ready / the same servers as host processes (the floor)`);
  bench.figures.clusterStartMs = Math.round(clusterStart);
  bench.figures.kubeletToNodeReadyMs = cluster.node.readyAfterMs;
  bench.finish();
  say('');
  say(`| ${N} servers | p50 | p99 | all ready |`);
  say('|---|---|---|---|');
  say(`| pods on the node (create → Ready, 1 s readiness probe) | ${fmt(pct(perPod, 50))} | ${fmt(pct(perPod, 99))} | ${fmt(total)} |`);
  say(`| host processes (spawn → port answers; floor) | ${fmt(pct(floor.perPod, 50))} | ${fmt(pct(floor.perPod, 99))} | ${fmt(floor.total)} |`);
} finally {
  const ts = performance.now();
  await cluster.stop();
  say(`cluster stop and cleanup: ${fmt(performance.now() - ts)}`);
}
// A kube watch or keep-alive socket left by the client kept the process
// alive after the cluster was gone (seen: 20 min holding the bench lock);
// the result is written, so end here as the other benches do.
process.exit(process.exitCode ?? 0);
