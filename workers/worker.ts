// A worker process's parts, wired together: connections, the DuckDB engine, the BullMQ Worker
// for aggregations. `startWorker` returns a handle whose close() is graceful and idempotent.
import { mkdir } from 'node:fs/promises';
import { Worker } from 'bullmq';
import type { AggregationJobData } from '../shared/aggregation.ts';
import type { QuarryConfig } from '../shared/config.ts';
import { keyScheme, QUEUE_NAMES } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import {
  checkQueueEvictionPolicy,
  closeRedis,
  createRoleConnection,
  warnAboutRoles,
} from '../shared/redis.ts';
import { StatusStore } from '../shared/status.ts';
import { type AggregateJobResult, createAggregateProcessor } from './aggregate-processor.ts';
import { createDuckDBEngine } from './engines/duckdb.ts';

export interface WorkerHandle {
  /** Resolves when the BullMQ worker is connected and taking jobs. */
  readonly ready: Promise<void>;
  /**
   * Stops taking jobs, lets running ones finish for up to `timeoutMs` (default from config),
   * then closes everything. Jobs still running at the deadline are handed back: their locks
   * lapse and BullMQ's stall check gives them to another worker. Safe to call twice.
   */
  close(timeoutMs?: number): Promise<void>;
}

export async function startWorker(config: QuarryConfig, logger: Logger): Promise<WorkerHandle> {
  warnAboutRoles(config, logger);
  await mkdir(config.spoolDir, { recursive: true });
  const keys = keyScheme(config.prefix);
  const queueRedis = createRoleConnection(config, 'queue');
  const cacheRedis = createRoleConnection(config, 'cache');
  const bullConnection = createRoleConnection(config, 'queue', {
    blocking: true,
    connectionName: 'quarry-worker',
  });
  for (const redis of [queueRedis, cacheRedis, bullConnection]) {
    redis.on('error', (err) => logger.warn({ err }, 'redis connection error'));
  }
  void checkQueueEvictionPolicy(queueRedis, logger).catch((err) =>
    logger.warn({ err }, 'could not read the queue Redis eviction policy'),
  );
  const duckdb = await createDuckDBEngine({
    threads: config.duckdbThreads,
    ...(config.duckdbMemoryLimit ? { memoryLimit: config.duckdbMemoryLimit } : {}),
    dataDir: config.dataDir,
    spoolDir: config.spoolDir,
  });
  const processor = createAggregateProcessor({
    config,
    keys,
    queueRedis,
    cacheRedis,
    status: new StatusStore(queueRedis, keys, config.statusTtlS),
    engines: { duckdb },
    logger,
  });
  const worker = new Worker<AggregationJobData, AggregateJobResult>(QUEUE_NAMES.aggregate, processor, {
    connection: bullConnection,
    prefix: config.prefix,
    concurrency: config.workerConcurrency,
    lockDuration: config.lockDurationMs,
    stalledInterval: config.stalledIntervalMs,
    maxStalledCount: 1,
    autorun: true,
  });
  worker.on('error', (err) => logger.error({ err }, 'worker error'));
  const ready = worker.waitUntilReady().then(() => {
    logger.info({ concurrency: config.workerConcurrency, prefix: config.prefix }, 'worker ready');
  });

  let closing: Promise<void> | undefined;
  return {
    ready,
    close(timeoutMs = config.shutdownTimeoutMs) {
      closing ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(resolve, timeoutMs, 'timeout');
        });
        const graceful = worker.close().then(() => 'closed' as const);
        if ((await Promise.race([graceful, deadline])) === 'timeout') {
          logger.warn({ timeoutMs }, 'jobs still running at the shutdown deadline: handing them back');
          await worker.close(true).catch((err) => logger.warn({ err }, 'forced worker close failed'));
        }
        clearTimeout(timer);
        for (const [name, step] of [
          ['duckdb', () => duckdb.close()],
          ['bull connection', () => closeRedis(bullConnection)],
          ['cache redis', () => closeRedis(cacheRedis)],
          ['queue redis', () => closeRedis(queueRedis)],
        ] as const) {
          try {
            await step();
          } catch (err) {
            logger.warn({ err, step: name }, 'error while closing');
          }
        }
      })();
      return closing;
    },
  };
}
