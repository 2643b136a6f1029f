// A whole Quarry in one test process: real Redis (from the caller), a worker, a client and the
// API app, all under a unique key prefix. close() shuts everything down in reverse order.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../api/app.ts';
import { createQuarry, type QuarryClient } from '../../producers/client.ts';
import { loadConfig, type QuarryConfig } from '../../shared/config.ts';
import { silentLogger } from '../../shared/logger.ts';
import { startWorker, type WorkerHandle } from '../../workers/worker.ts';

export interface TestSystem {
  readonly config: QuarryConfig;
  readonly client: QuarryClient;
  readonly app: FastifyInstance;
  readonly worker: WorkerHandle | undefined;
  close(): Promise<void>;
}

export function uniquePrefix(): string {
  return `qt${randomBytes(5).toString('hex')}`;
}

export function testConfig(env: Record<string, string>): QuarryConfig {
  return loadConfig({
    QUARRY_PREFIX: uniquePrefix(),
    QUARRY_LOG_LEVEL: 'silent',
    QUARRY_DUCKDB_THREADS: '2',
    // A free port per worker: tests run workers side by side, and 9464 may be a real worker's.
    QUARRY_WORKER_METRICS_PORT: '0',
    ...env,
  });
}

export async function startSystem(options: {
  env: Record<string, string>;
  worker?: boolean;
}): Promise<TestSystem> {
  const config = testConfig(options.env);
  const logger = silentLogger();
  const worker = options.worker === false ? undefined : await startWorker(config, logger);
  await worker?.ready;
  const client = createQuarry({ config, logger, failFast: true });
  await client.ready();
  const app = buildApp({ config, client, registry: await client.indexRegistry(), logger });
  await app.ready();
  return {
    config,
    client,
    app,
    worker,
    async close() {
      await app.close();
      await client.close();
      await worker?.close();
    },
  };
}
