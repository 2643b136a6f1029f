// Entrypoint of the status API (`npm run api`). Only entrypoints handle signals: the first
// SIGTERM/SIGINT closes gracefully within QUARRY_SHUTDOWN_TIMEOUT_MS, a second forces.
import { createQuarry } from '../producers/client.ts';
import { loadConfig } from '../shared/config.ts';
import { createLogger, routeConsoleToLogger } from '../shared/logger.ts';
import { warnAboutRoles } from '../shared/redis.ts';
import { startTracing } from '../shared/tracing.ts';
import { buildApp } from './app.ts';

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

const config = loadConfig();
// One access line per request: gathered into 4 KiB writes (at most LOG_FLUSH_MS late).
const logger = createLogger({
  level: config.logLevel,
  name: 'quarry-api',
  format: config.logFormat,
  bufferBytes: 4096,
});
// BullMQ and ioredis print warnings with console.*: make them log records like the rest.
routeConsoleToLogger(logger);
warnAboutRoles(config, logger);
if (config.apiKeys.length === 0) {
  if (!isLoopback(config.apiHost)) {
    logger.fatal(
      { host: config.apiHost },
      'refusing to serve without API keys on a non-loopback address: set QUARRY_API_KEYS, or QUARRY_API_HOST=127.0.0.1',
    );
    process.exit(1);
  }
  logger.warn('no QUARRY_API_KEYS: the API is open to anyone who can reach this loopback address');
}
// Before anything that makes spans; null config (no OTLP endpoint): nothing is loaded.
const traces = await startTracing(config.tracing, { serviceName: 'quarry-api', logger });
const client = createQuarry({ config, logger, failFast: true });
await client.ready();
const app = buildApp({ config, client, registry: await client.indexRegistry(), logger });
await app.listen({ host: config.apiHost, port: config.apiPort });

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, 'shutting down');
    setTimeout(() => {
      logger.error('shutdown did not finish in time: exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs).unref();
    (async () => {
      try {
        await app.close();
      } catch (err) {
        logger.warn({ err }, 'error closing the HTTP server');
      }
      try {
        await client.close();
      } catch (err) {
        logger.warn({ err }, 'error closing Redis connections');
      }
      try {
        // The spans of the last requests are still buffered: export them before exiting.
        await traces?.shutdown();
      } catch (err) {
        logger.warn({ err }, 'error flushing traces');
      }
      process.exit(0);
    })();
  });
}
