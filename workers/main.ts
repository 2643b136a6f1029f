// Entrypoint of a worker process (`npm run worker`). Only entrypoints handle signals: the
// first SIGTERM/SIGINT closes gracefully within QUARRY_SHUTDOWN_TIMEOUT_MS, a second forces.
import { loadConfig } from '../shared/config.ts';
import { createLogger, routeConsoleToLogger } from '../shared/logger.ts';
import { startWorker } from './worker.ts';

const config = loadConfig();
const logger = createLogger({ level: config.logLevel, name: 'quarry-worker', format: config.logFormat });
// BullMQ and ioredis print warnings with console.*: make them log records like the rest.
routeConsoleToLogger(logger);
const worker = await startWorker(config, logger);
await worker.ready;

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      logger.error('shutdown did not finish in time: exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs + 5000);
    force.unref();
    worker.close().then(
      () => {
        logger.info('worker stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
