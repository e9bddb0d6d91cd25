// Operator entry point: `tsx src/main.ts` (dev) or `node dist/src/main.js`.
// Configuration comes from the environment so the Helm chart and the tests
// set it the same way.
import { readFileSync } from 'node:fs';
import { allControllers } from './controllers/index.js';
import { createLogger } from './core/logger.js';
import { Manager } from './core/manager.js';
import { loadKubeAccess } from './core/kube-access.js';
import { parseDuration } from './crds/duration.js';

const log = createLogger();

/** Env durations accept Go syntax ("15s", "10m") or plain milliseconds. */
function envMs(name: string, fallback: number): number {
  const v = process.env[name];
  if (!v) return fallback;
  if (/^\d+$/.test(v)) return Number(v);
  try {
    return parseDuration(v);
  } catch (err) {
    throw new Error(`${name}: ${(err as Error).message}`);
  }
}

function podNamespace(): string {
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim();
  } catch {
    return 'familyhub-system';
  }
}

async function main(): Promise<void> {
  const kc = await loadKubeAccess();
  const only = process.env.FAMILYHUB_CONTROLLERS?.split(',').map((s) => s.trim()).filter(Boolean);
  const leaderElection = process.env.FAMILYHUB_LEADER_ELECTION !== 'false';
  const mgr = new Manager({
    kubeConfig: kc,
    log,
    port: Number(process.env.FAMILYHUB_METRICS_PORT ?? 8080),
    watchIdleTimeoutMs: envMs('FAMILYHUB_WATCH_IDLE_MS', 90_000),
    leaderElection: leaderElection
      ? {
          namespace: process.env.FAMILYHUB_LEASE_NAMESPACE ?? podNamespace(),
          identity: process.env.FAMILYHUB_IDENTITY,
          leaseDurationMs: envMs('FAMILYHUB_LEASE_DURATION_MS', 15_000),
          renewDeadlineMs: envMs('FAMILYHUB_RENEW_DEADLINE_MS', 10_000),
          retryPeriodMs: envMs('FAMILYHUB_RETRY_PERIOD_MS', 2_000),
        }
      : undefined,
  });
  for (const def of allControllers()) {
    if (!only || only.includes(def.reconciler.name)) mgr.add(def);
  }
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 30_000);
    force.unref();
    await mgr.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  await mgr.start();
  log.info({ port: mgr.address }, 'operator started');
}

main().catch((err) => {
  log.fatal({ err }, 'operator failed to start');
  process.exit(1);
});
