// Operator entry point: `tsx src/main.ts` (dev) or `node dist/main.js`.
// Parse the configuration, build the manager, register the controllers —
// nothing else. Settings come from the environment (src/config.ts) so the
// Helm chart and the tests set them the same way.
import { allControllers } from './controllers/index.js';
import { ConfigError, loadConfig, type OperatorConfig } from './config.js';
import { createLogger } from './core/logger.js';
import { Manager } from './core/manager.js';
import { loadKubeAccess } from './core/kube-access.js';

let config: OperatorConfig;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  // One plain line per bad variable, before any logger exists.
  process.stderr.write(`${err.message}\n`);
  process.exit(2);
}

const log = createLogger({ level: config.logLevel });

async function main(): Promise<void> {
  const mgr = new Manager({
    kubeConfig: await loadKubeAccess(),
    log,
    port: config.metrics.port,
    bindAddress: config.metrics.bindAddress,
    watchIdleTimeoutMs: config.watchIdleTimeoutMs,
    leaderElection: config.leaderElection,
    controllers: config.core,
  });
  for (const def of allControllers(config, log)) {
    if (!config.controllers || config.controllers.includes(def.reconciler.name)) mgr.add(def);
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
