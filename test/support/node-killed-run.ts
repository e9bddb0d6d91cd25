// Helper process for test/e2e/node-leftovers.test.ts: starts a cluster with a
// node and one running pod, prints where its leftovers will be, then waits to
// be SIGKILLed (so none of the cleanup runs).
import { startCluster } from '../../hack/local/node.js';

const cluster = await startCluster({ audit: false });
await cluster.kubectl(['run', 'leftover', '--image', 'localhost/familyhub/pause:v1.35.4', '--restart', 'Never']);
await cluster.kubectl(['wait', '--for', 'condition=Ready', 'pod/leftover', '--timeout', '60s'], { timeoutMs: 70_000 });
process.stdout.write(`${JSON.stringify({ kubelet: cluster.node.kubelet.child.pid, dir: cluster.node.dir })}\nPOD RUNNING\n`);
setInterval(() => {}, 1 << 30);
