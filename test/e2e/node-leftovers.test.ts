// A node whose owner was killed (SIGKILL: no cleanup ran) leaves kubelet,
// containerd, shims, pod processes, mounts, iptables chains, cgroups and the
// bridge behind; the next start must remove them and run pods again.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startCluster } from '../../hack/local/node.js';
import { waitFor } from '../../hack/local/process.js';
import { prebuilt } from '../support/prebuilt.js';

// Traefik, the node, helm, Keycloak or a Go tool: built in the background by hack/test.sh.
await prebuilt();

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('local node after a killed run', () => {
  it('the next start removes the leftovers and runs pods', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test/support/node-killed-run.ts')], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (c) => (out += c));
    await waitFor('killed-run helper has a running pod', async () => out.includes('POD RUNNING'), { timeoutMs: 240_000, intervalMs: 250 });
    const { dir } = JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!) as { dir: string };
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // What a killed run really leaves: the pod's shim and processes, mounts, rules.
    const shims = () => execFileSync('sh', ['-c', 'ps -eo args | grep -c "[c]ontainerd-shim" || true'], { encoding: 'utf8' }).trim();
    expect(Number(shims())).toBeGreaterThan(0);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).toContain(dir);
    expect(execFileSync('iptables-save', { encoding: 'utf8' })).toMatch(/KUBE-/);

    const cluster = await startCluster({ audit: false });
    try {
      expect(shims()).toBe('0');
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(dir);
      expect(existsSync(dir)).toBe(false);
      await cluster.kubectl(['run', 'again', '--image', 'localhost/familyhub/pause:v1.35.4', '--restart', 'Never']);
      await cluster.kubectl(['wait', '--for', 'condition=Ready', 'pod/again', '--timeout', '60s'], { timeoutMs: 70_000 });
    } finally {
      await cluster.stop();
    }
  });
});
