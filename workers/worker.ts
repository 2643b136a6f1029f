// A worker process's parts, wired together: connections, the DuckDB engine, the BullMQ Workers
// for aggregations and index builds, the reconciler. `startWorker` returns a handle whose close() is graceful and idempotent.
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import { Queue, Worker } from 'bullmq';
import type { AggregationJobData } from '../shared/aggregation.ts';
import { runCloseSteps, settleWithin } from '../shared/close-steps.ts';
import type { QuarryConfig } from '../shared/config.ts';
import { fairnessEnabled, releaseJob, tenantPolicies, tenantUsage } from '../shared/fairness.ts';
import type { IndexJobData } from '../shared/indexing.ts';
import { keyScheme, QUEUE_NAMES } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import { createMetrics } from '../shared/metrics.ts';
import { createObjectStore } from '../shared/object-store.ts';
import {
  checkQueueEvictionPolicy,
  checkQueueNotCluster,
  closeRedis,
  createCacheConnection,
  createRoleConnection,
  cutRedis,
  warnAboutRoles,
} from '../shared/redis.ts';
import { type AggregateJobResult, createAggregateProcessor } from './aggregate-processor.ts';
import { createDuckDBEngine } from './engines/duckdb.ts';
import { createJsEngine } from './engines/js.ts';
import { createPolarsEngine } from './engines/polars.ts';
import { withFairAdmission } from './fair-admission.ts';
import { withHeavySlots } from './heavy-slots.ts';
import { IndexBuilder } from './index-builder.ts';
import { createIndexProcessor, type IndexJobResult } from './index-processor.ts';
import { ControlListener } from './job-control.ts';
import { jobScope, tenantOf } from './job-scope.ts';
import { type MetricsServer, startMetricsServer } from './metrics-server.ts';
import { ObjectCache } from './object-cache.ts';
import { createQueueProbe } from './queue-metrics.ts';
import { Reconciler } from './reconciler.ts';
import { WebhookDeliverer } from './webhook-deliverer.ts';

export interface WorkerHandle {
  /** Resolves when the BullMQ worker is connected and taking jobs. */
  readonly ready: Promise<void>;
  /** Where this worker serves Prometheus metrics; null when the address could not be bound. */
  readonly metricsUrl: string | null;
  /**
   * Stops taking jobs, lets running ones finish for up to `timeoutMs` (default from config),
   * then closes everything. Jobs still running at the deadline are handed back: their locks
   * lapse and BullMQ's stall check gives them to another worker. The steps after that share
   * CLOSE_BUDGET_MS (shared/close-steps.ts); connections still open then are cut, so close()
   * always ends. Safe to call twice.
   */
  close(timeoutMs?: number): Promise<void>;
}

/**
 * The name BullMQ records on each job this process takes (the job hash's `pb`, "processedBy"):
 * tools that kill or inspect workers (the chaos run, bull-board) learn from it who holds a job.
 */
export function workerName(pid: number = process.pid): string {
  return `${os.hostname()}:${pid}`;
}

export async function startWorker(config: QuarryConfig, logger: Logger): Promise<WorkerHandle> {
  warnAboutRoles(config, logger);
  await mkdir(config.spoolDir, { recursive: true });
  const keys = keyScheme(config.prefix);
  const queueRedis = createRoleConnection(config, 'queue');
  const cacheRedis = createCacheConnection(config);
  const bullConnection = createRoleConnection(config, 'queue', {
    blocking: true,
    connectionName: 'quarry-worker',
  });
  for (const redis of [queueRedis, cacheRedis, bullConnection]) {
    redis.on('error', (err) => logger.warn({ err }, 'redis connection error'));
  }
  void checkQueueNotCluster(queueRedis, logger).catch((err) =>
    logger.warn({ err }, 'could not tell whether the queue Redis is a Cluster node'),
  );
  void checkQueueEvictionPolicy(queueRedis, logger).catch((err) =>
    logger.warn({ err }, 'could not read the queue Redis eviction policy'),
  );
  const objectStore = createObjectStore(config);
  const objectCache = new ObjectCache({
    dir: config.objectCacheDir,
    maxBytes: config.objectCacheBytes,
    store: objectStore,
    logger,
  });
  await mkdir(objectCache.objectsDir, { recursive: true });
  const duckdb = await createDuckDBEngine({
    threads: config.duckdbThreads,
    ...(config.duckdbMemoryLimit ? { memoryLimit: config.duckdbMemoryLimit } : {}),
    dataDir: config.dataDir,
    // The object cache is where s3:// datasets are read from (workers/object-cache.ts).
    tenantDataDirs: [...Object.values(config.tenantDataDirs), objectCache.objectsDir],
    spoolDir: config.spoolDir,
  });
  const polars = createPolarsEngine({
    threads: config.duckdbThreads,
    poolSize: config.polarsThreads,
    heapMb: config.threadHeapMb,
    logger,
  });
  const metrics = createMetrics('worker');
  const processor = createAggregateProcessor({
    config,
    queueRedis,
    cacheRedis,
    engines: { duckdb, polars, js: createJsEngine() },
    logger,
    metrics,
    objects: { cache: objectCache, store: objectStore },
  });
  const builder = new IndexBuilder({
    size: config.indexConcurrency,
    resourceLimits: { maxOldGenerationSizeMb: config.threadHeapMb },
  });
  // Load the build threads now, not on the first job; a failure here only costs that head start.
  builder.warmup().catch((err: unknown) => logger.warn({ err }, 'index build threads did not warm up'));
  const indexProcessor = createIndexProcessor({
    config,
    queueRedis,
    builder,
    duckdb,
    logger,
    metrics,
    objects: objectCache,
  });
  const common = {
    connection: bullConnection,
    prefix: config.prefix,
    name: workerName(),
    lockDuration: config.lockDurationMs,
    stalledInterval: config.stalledIntervalMs,
    maxStalledCount: config.maxStalledCount,
    autorun: true,
  };
  // Fair dispatch between tenants (workers/fair-admission.ts); a no-op without API keys.
  const admission = { config, queueRedis, logger };
  const workers = [
    new Worker<AggregationJobData, AggregateJobResult>(
      QUEUE_NAMES.aggregate,
      // Heavy slots first: a heavy job sent back unrun never takes (and gives back) a tenant lease.
      withHeavySlots(
        { slots: config.workerHeavySlots, heavyBytes: config.heavyJobBytes, logger },
        withFairAdmission(
          {
            ...admission,
            queue: QUEUE_NAMES.aggregate,
            leaseMs: config.aggregateTimeoutMs + 2 * config.lockDurationMs,
          },
          processor,
        ),
      ),
      {
        ...common,
        concurrency: config.workerConcurrency,
      },
    ),
    new Worker<IndexJobData, IndexJobResult>(
      QUEUE_NAMES.index,
      withFairAdmission(
        {
          ...admission,
          queue: QUEUE_NAMES.index,
          leaseMs: config.indexTimeoutMs + 2 * config.lockDurationMs,
        },
        indexProcessor,
      ),
      {
        ...common,
        concurrency: config.indexConcurrency,
      },
    ),
  ];
  for (const w of workers) w.on('error', (err) => logger.error({ err, queue: w.name }, 'worker error'));
  for (const w of workers) w.on('stalled', () => metrics.jobStalls.inc({ queue: w.name }));
  // An index job's inline data goes once BullMQ has recorded its completion, not when the attempt
  // writes its record: an update applied on another job's behalf completes that job's record
  // while its own attempt may still be reading the data (index-update-order.ts), and a refused
  // record means a retry that needs it. A deletion that fails here is left to the data's TTL
  // (QUARRY_INLINE_DATA_TTL_S). An aggregation's completing script deletes its data itself.
  for (const w of workers) {
    if (w.name !== QUEUE_NAMES.index) continue;
    w.on('completed', (job) => {
      if (job?.id === undefined) return;
      // Only the key is needed here: no status store per completion.
      queueRedis
        .del(keyScheme(config.prefix, tenantOf(job.data)).inlineData(job.id))
        .catch((err: unknown) =>
          logger.warn({ err, jobId: job.id }, "could not delete a completed job's inline data"),
        );
    });
  }
  const queueProbe = createQueueProbe({
    connection: queueRedis,
    prefix: config.prefix,
    queues: Object.values(QUEUE_NAMES),
    logger,
  });
  metrics.trackQueues(() => queueProbe.snapshot());
  if (fairnessEnabled(config)) {
    metrics.trackTenants(() =>
      Promise.all(
        tenantPolicies(config).map(async ({ tenant }) => ({
          tenant,
          ...(await tenantUsage(queueRedis, keyScheme(config.prefix, tenant))),
        })),
      ),
    );
  }
  // BullMQ fails a job that stalled more than maxStalledCount times by itself, without calling
  // the processor (job.deferredFailure): nothing else would finish its status record.
  for (const w of workers) {
    w.on('failed', (job) => {
      if (job?.id === undefined || !job.deferredFailure) return;
      const scope = jobScope(config, queueRedis, tenantOf(job.data));
      // stalledCounter counts every stall over the job's life; attemptsStarted counts retries too.
      const message = `the worker running the job died ${job.stalledCounter} times (${job.deferredFailure})`;
      metrics.jobsFailed.inc({ type: w.name, code: 'QUARRY_ERR_JOB_STALLED' });
      metrics.jobs.inc({ type: w.name, state: 'failed' });
      // The record keeps the inline data for a retry (QUARRY_RETRY_DATA_TTL_S).
      Promise.all([
        scope.status.failed(job.id, { code: 'QUARRY_ERR_JOB_STALLED', message }, true),
        releaseJob(queueRedis, scope.keys, job.id),
      ]).catch((err: unknown) => logger.error({ err, jobId: job.id }, 'could not record a stalled job'));
    });
  }
  const controlConnection = createRoleConnection(config, 'queue', {
    blocking: true,
    connectionName: 'quarry-control',
  });
  controlConnection.on('error', (err) => logger.warn({ err }, 'control connection error'));
  const control = new ControlListener(controlConnection, keys, workers, logger);
  await control.start();
  // Producers' queues of the worker's own, for the reconciler's re-enqueues (fail-fast-free
  // queueRedis: a command that hangs times out after QUARRY_REDIS_COMMAND_TIMEOUT_MS).
  const queues = {
    [QUEUE_NAMES.aggregate]: new Queue(QUEUE_NAMES.aggregate, {
      connection: queueRedis,
      prefix: config.prefix,
    }),
    [QUEUE_NAMES.index]: new Queue(QUEUE_NAMES.index, { connection: queueRedis, prefix: config.prefix }),
  };
  for (const q of Object.values(queues))
    q.on('error', (err) => logger.warn({ err, queue: q.name }, 'queue error'));
  const reconciler = new Reconciler({ config, queueRedis, cacheRedis, queues, logger });
  reconciler.start();
  const deliverer = new WebhookDeliverer({ config, redis: queueRedis, logger, metrics });
  deliverer.start();
  // Metrics are for operators: a worker whose port is taken (two workers on one host with the
  // same QUARRY_WORKER_METRICS_PORT) still processes jobs, and says loudly that it is not scraped.
  let metricsServer: MetricsServer | null = null;
  try {
    metricsServer = await startMetricsServer({
      registry: metrics.registry,
      host: config.workerMetricsHost,
      port: config.workerMetricsPort,
    });
    logger.info({ url: metricsServer.url }, 'worker metrics listening');
  } catch (err) {
    logger.error(
      { err, host: config.workerMetricsHost, port: config.workerMetricsPort },
      'worker metrics endpoint could not listen: metrics are not served (set QUARRY_WORKER_METRICS_PORT; 0 picks a free port)',
    );
  }
  const ready = Promise.all(workers.map((w) => w.waitUntilReady())).then(() => {
    logger.info(
      {
        concurrency: config.workerConcurrency,
        indexConcurrency: config.indexConcurrency,
        prefix: config.prefix,
      },
      'worker ready',
    );
  });

  let closing: Promise<void> | undefined;
  return {
    ready,
    metricsUrl: metricsServer?.url ?? null,
    close(timeoutMs = config.shutdownTimeoutMs) {
      closing ??= (async () => {
        const graceful = Promise.all(workers.map((w) => w.close())).catch((err: unknown) =>
          logger.warn({ err }, 'worker close failed'),
        );
        if ((await settleWithin(graceful, timeoutMs)) === 'timeout') {
          logger.warn({ timeoutMs }, 'jobs still running at the shutdown deadline: handing them back');
          // BullMQ's close() is memoized (close(true) after close() returns the same promise), and
          // it waits on Redis replies: cutting the connections ends it, and the jobs' locks lapse.
          // (cutRedis ends BullMQ's own blocking duplicates of bullConnection too.)
          cutRedis(bullConnection);
        }
        // The rest shares one budget (shared/close-steps.ts), so a Redis that stopped answering
        // (or a peer that is not Redis) cannot hold close() forever; then everything is cut.
        await runCloseSteps(
          [
            ['reconciler', () => reconciler.close()],
            ['webhook deliverer', () => deliverer.close()],
            ['reconciler queues', () => Promise.all(Object.values(queues).map((q) => q.close()))],
            ['metrics server', async () => metricsServer?.close()],
            ['queue metrics', () => queueProbe.close()],
            ['control', () => control.close()],
            ['duckdb', () => duckdb.close()],
            ['index builder', () => builder.close()],
            ['object store', async () => objectStore.close()],
            ['polars', () => polars.close()],
            ['bull connection', () => closeRedis(bullConnection)],
            ['cache redis', () => closeRedis(cacheRedis)],
            ['queue redis', () => closeRedis(queueRedis)],
          ],
          logger,
        );
        for (const connection of [bullConnection, cacheRedis, queueRedis, controlConnection])
          cutRedis(connection);
      })();
      return closing;
    },
  };
}
