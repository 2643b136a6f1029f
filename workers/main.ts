// Entrypoint of a worker process (`npm run worker`). Only entrypoints handle signals: the
// first SIGTERM/SIGINT closes gracefully within QUARRY_SHUTDOWN_TIMEOUT_MS; a copy of it within
// DUPLICATE_SIGNAL_WINDOW_MS (the terminal's and npm's for one Ctrl-C) changes nothing; a later
// signal forces. Each log line about it carries `shutdown`: graceful | duplicate | forced.
import { loadConfig } from '../shared/config.ts';
import { createLogger, routeConsoleToLogger } from '../shared/logger.ts';
import { onShutdownSignals } from '../shared/shutdown-signals.ts';
import { startTracing } from '../shared/tracing.ts';
import { startWorker } from './worker.ts';

const config = loadConfig();
const logger = createLogger({ level: config.logLevel, name: 'quarry-worker', format: config.logFormat });
// BullMQ and ioredis print warnings with console.*: make them log records like the rest.
routeConsoleToLogger(logger);
// Before the worker takes jobs; null config (no OTLP endpoint): nothing is loaded.
const traces = await startTracing(config.tracing, { serviceName: 'quarry-worker', logger });
const worker = await startWorker(config, logger);
await worker.ready;

onShutdownSignals({
  graceful(signal) {
    logger.info({ signal, shutdown: 'graceful' }, 'shutting down');
    const force = setTimeout(() => {
      logger.error({ shutdown: 'forced' }, 'shutdown did not finish in time: exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs + 5000);
    force.unref();
    worker
      .close()
      // The last attempts' spans are still buffered: export them; a failed flush is only logged.
      .then(() => traces?.shutdown().catch((err: unknown) => logger.warn({ err }, 'error flushing traces')))
      .then(
        () => {
          logger.info({ shutdown: 'graceful', exitCode: 0 }, 'worker stopped');
          process.exit(0);
        },
        (err: unknown) => {
          logger.error({ err, shutdown: 'graceful', exitCode: 1 }, 'shutdown failed');
          process.exit(1);
        },
      );
  },
  duplicate(signal) {
    logger.info({ signal, shutdown: 'duplicate' }, 'the same stop request again: still stopping gracefully');
  },
  forced(signal) {
    logger.warn({ signal, shutdown: 'forced', exitCode: 1 }, 'second signal: exiting now');
    process.exit(1);
  },
});
