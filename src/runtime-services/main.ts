// Process entry point of the runtime image: `RUNTIME_SERVICES=audit,chat`.
import { ConfigError, loadConfig } from './config.js';
import { createRuntimeLogger } from './base/logger.js';
import { startRuntime } from './runtime.js';
import { SERVICES } from './services.js';

let config;
try {
  config = loadConfig(process.env, SERVICES);
} catch (err) {
  if (err instanceof ConfigError) {
    // One plain line on stderr: the logger is not configured yet and the
    // operator shows the last line of a crashed container.
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
  throw err;
}

const logger = createRuntimeLogger({ level: config.base.LOG_LEVEL });
const shutdownTimeoutMs = config.base.SHUTDOWN_TIMEOUT_MS;

startRuntime(config, logger).then(
  (runtime) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down');
      const timer = setTimeout(() => {
        logger.error({ timeoutMs: shutdownTimeoutMs }, 'graceful shutdown timed out; exiting');
        process.exit(1);
      }, shutdownTimeoutMs);
      timer.unref();
      runtime.shutdown().then(
        () => process.exit(0),
        (err: Error) => {
          logger.error({ err: err.message }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  },
  (err: Error) => {
    logger.fatal({ err: err.message }, 'runtime failed to start');
    process.exit(1);
  },
);
