// Runs the real operator (`tsx src/main.ts`) as a child process against a
// test control plane, capturing its JSON logs so tests can assert on them
// (including that no secret value ever appears).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePort, startProcess, waitFor, workDir, type Managed } from '../../hack/local/process.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** node flags of the operator image's ENTRYPOINT (a unit test keeps the two in step). */
export const IMAGE_NODE_ARGS = ['--max-semi-space-size=4'];

export interface RunningOperator {
  proc: Managed;
  port: number;
  logs(): string;
  metrics(): Promise<string>;
  /** Value of a metric line, e.g. metric('familyhub_leader_election_status{lease="familyhub-operator"}'). */
  metric(series: string): Promise<number | undefined>;
  /** Peak resident set size of the operator process so far, in bytes (Linux VmHWM). */
  peakRss(): number;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

export async function startOperator(opts: { kubeconfigPath: string; env?: Record<string, string>; name?: string; waitReady?: boolean; compiled?: boolean; nodeArgs?: string[] }): Promise<RunningOperator> {
  const dir = workDir(opts.name ?? 'operator');
  const port = await freePort();
  // One node process (tsx as a loader, not the tsx CLI wrapper), so signals,
  // SIGSTOP and RSS measurements hit the operator itself.
  const loader = pathToFileURL(path.join(root, 'node_modules/tsx/dist/loader.mjs')).href;
  // `compiled` runs the tsc output (npm run build), as the container image does.
  // nodeArgs: e.g. --cpu-prof, which NODE_OPTIONS does not accept. The
  // compiled operator runs with the image's node flags (Dockerfile ENTRYPOINT).
  const args = [
    ...(opts.compiled ? IMAGE_NODE_ARGS : []),
    ...(opts.nodeArgs ?? []),
    ...(opts.compiled ? [path.join(root, 'dist/main.js')] : ['--import', loader, path.join(root, 'src/main.ts')]),
  ];
  const proc = startProcess(opts.name ?? 'operator', process.execPath, args, {
    cwd: dir,
    env: {
      KUBECONFIG: opts.kubeconfigPath,
      FAMILYHUB_METRICS_PORT: String(port),
      FAMILYHUB_BIND: '127.0.0.1',
      FAMILYHUB_LEASE_NAMESPACE: 'default',
      LOG_LEVEL: 'debug',
      ...opts.env,
    },
  });
  const op: RunningOperator = {
    proc,
    port,
    logs: () => {
      try {
        return readFileSync(proc.logFile, 'utf8');
      } catch {
        return '';
      }
    },
    metrics: async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text(),
    async metric(series) {
      const text = await op.metrics();
      const line = text.split('\n').find((l) => l.startsWith(series + ' '));
      return line ? Number(line.slice(series.length + 1)) : undefined;
    },
    peakRss() {
      const status = readFileSync(`/proc/${proc.child.pid}/status`, 'utf8');
      const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
      return kb * 1024;
    },
    stop: () => proc.stop(15_000),
    kill: () => proc.kill(),
  };
  if (opts.waitReady !== false) {
    await waitFor('operator /healthz', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, { proc, timeoutMs: 60_000 });
  }
  return op;
}
