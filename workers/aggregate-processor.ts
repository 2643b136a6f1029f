// The aggregation processor: a factory that receives its dependencies and returns BullMQ's
// processor function. One attempt: mark active, skip if the result exists, fetch the data,
// compute with the engine, store the envelope (pre-serialized, with TTL), mark completed.
import { unlinkSync, writeFileSync } from 'node:fs';
import { unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Job } from 'bullmq';
import {
  type AddressedAggregation,
  type AggregationJobData,
  addressAggregation,
  checkAggregationJobData,
  type EngineName,
  parseAggregation,
  type ResultEnvelope,
} from '../shared/aggregation.ts';
import type { QuarryConfig } from '../shared/config.ts';
import { type DataFile, openDataFile, tenantDataRoot } from '../shared/data-files.ts';
import { fingerprintFile, hashFile } from '../shared/datasets.ts';
import { isQuarryError, QuarryError } from '../shared/errors.ts';
import { describeAggregation } from '../shared/job-description.ts';
import type { Logger } from '../shared/logger.ts';
import type { WorkerMetrics } from '../shared/metrics.ts';
import { checkBucketScope, type ObjectStore, parseObjectUrl } from '../shared/object-store.ts';
import { checkSpecColumns } from '../shared/plan.ts';
import type { CacheConnection, Redis } from '../shared/redis.ts';
import { redisFailureCode } from '../shared/redis-errors.ts';
import { checkRefreshJobData, type RefreshJobData } from '../shared/schedules.ts';
import { traced } from '../shared/tracing.ts';
import { chooseEngine } from './engines/choose.ts';
import type { AggregationEngine, EngineSource, RecordsSource } from './engines/engine.ts';
import { serializeEnvelope } from './envelope.ts';
import { refuseEnded, runAttempt } from './job-attempt.ts';
import { coalescedProgress } from './job-progress.ts';
import { type JobScope, jobScope } from './job-scope.ts';
import type { ObjectCache } from './object-cache.ts';

export interface AggregateProcessorDeps {
  config: QuarryConfig;
  /** The queue Redis (status records, inline data). */
  queueRedis: Redis;
  /** The cache Redis (results): one server or a Cluster. */
  cacheRedis: CacheConnection;
  engines: Record<EngineName, AggregationEngine>;
  logger: Logger;
  /** The worker's metrics; absent, nothing is observed. */
  metrics?: WorkerMetrics;
  /** s3:// datasets: the host's object cache and the store a refresh fingerprints against. */
  objects?: { cache: ObjectCache; store: ObjectStore };
}

export interface AggregateJobResult {
  resultKey: string;
  /** True when the result already existed and nothing was computed. */
  reused: boolean;
  rowCount?: number;
  durationMs?: number;
}

/**
 * An attempt reports its progress once it has run this long, then at most this often: a small
 * job's record goes from active to completed without progress writes in between.
 */
export const PROGRESS_DELAY_MS = 250;
/** Inline datasets up to this size are spooled with synchronous writes (see attempt()). */
const SYNC_SPOOL_BYTES = 64 * 1024;

export function createAggregateProcessor(deps: AggregateProcessorDeps) {
  const { config, queueRedis, cacheRedis, engines, logger, metrics, objects } = deps;

  async function attempt(
    job: Pick<Job<AggregationJobData>, 'data' | 'attemptsMade' | 'stalledCounter'>,
    jobId: string,
    signal: AbortSignal,
    scope: JobScope,
  ): Promise<AggregateJobResult> {
    const { keys, status } = scope;
    // The completion deletes the inline records in the same script: once the record says
    // completed, a later attempt (a retry after BullMQ refused the completion, a stalled copy)
    // finds it ended and stops without them. A completion Redis refuses deletes nothing, and the
    // retry has its records.
    const finish = async (jobId: string, resultKey: string) => {
      await status.completed(jobId, resultKey, { dropInlineData: true });
    };
    const { resultKey, spec } = job.data;
    const resultKeyName = keys.result(resultKey);
    const inline = spec.dataset.kind === 'inline';
    // Two servers, two round trips at once: the start of the attempt (which also answers whether
    // it was cancelled, and brings the inline records), and whether the result exists already.
    const [start, exists] = await Promise.all([
      // Earlier attempts: failed ones (attemptsMade) and crashed ones (stalls). Not attemptsStarted:
      // BullMQ counts a job sent back unrun (a heavy slot or a tenant lease refused) as a start.
      status.active(jobId, job.attemptsMade + job.stalledCounter + 1, inline),
      cacheRedis.exists(resultKeyName),
    ]);
    if (start.ended !== null) {
      refuseEnded(start.ended, 'aggregate');
      return { resultKey, reused: true };
    }
    if (start.cancelled) throw new QuarryError('QUARRY_ERR_JOB_CANCELLED', 'the aggregate job was cancelled');
    if (exists === 1) {
      await finish(jobId, resultKey);
      return { resultKey, reused: true };
    }

    const started = performance.now();
    let spoolFile: string | undefined;
    let smallSpool = false;
    let dataFile: DataFile | undefined;
    let source: EngineSource | RecordsSource;
    const engine = engines[chooseEngine(spec)];
    // Progress is informational: never let it delay or fail the computation.
    const progress = coalescedProgress(
      (p) =>
        status.progress(jobId, p).catch((err: unknown) => {
          logger.debug({ err, jobId }, 'progress update failed');
        }),
      PROGRESS_DELAY_MS,
    );
    try {
      if (spec.dataset.kind === 'inline') {
        const data = start.inlineData;
        if (data === null) {
          // A job sharing this data may have finished and cleaned up after storing the result.
          if ((await cacheRedis.exists(resultKeyName)) === 1) {
            await finish(jobId, resultKey);
            return { resultKey, reused: true };
          }
          throw new QuarryError(
            'QUARRY_ERR_DATASET_MISSING',
            'the inline records of this job expired before it ran',
          );
        }
        if (engine.name === 'js') {
          // The JS engine reads the records as they are: no spool file to write and remove.
          source = { kind: 'records', records: parseRecords(data), columns: spec.dataset.columns };
        } else {
          spoolFile = path.join(config.spoolDir, `${jobId}-${job.attemptsMade}-${process.pid}.json`);
          // A small dataset is written at once: a few kilobytes take microseconds, less than the
          // thread-pool round trips of an async open, write and close (the event loop stays free).
          smallSpool = data.length <= SYNC_SPOOL_BYTES;
          if (smallSpool) writeFileSync(spoolFile, data);
          else await writeFile(spoolFile, data);
          source = { kind: 'inline', file: spoolFile, columns: spec.dataset.columns };
        }
      } else if (spec.dataset.kind === 'object') {
        if (objects === undefined) throw new Error('this worker has no object cache');
        // Defence in depth: the producer checked the tenant's buckets; a forged payload is refused.
        checkBucketScope(
          config,
          job.data.tenant,
          parseObjectUrl(spec.dataset.url, 'dataset.url'),
          'dataset.url',
        );
        const cached = await objects.cache.open(spec.dataset, {
          field: 'dataset.url',
          format: spec.dataset.format,
          signal,
        });
        dataFile = cached.file;
        metrics?.objectFetch.observe({ cache: cached.hit ? 'hit' : 'miss' }, cached.fetchMs / 1000);
        source = { kind: 'file', file: dataFile.readPath, format: spec.dataset.format };
      } else {
        // Held open until the engine is done: the engine reads exactly this file, by descriptor.
        dataFile = await openDataFile(tenantDataRoot(config, job.data.tenant), spec.dataset.path, {
          field: 'dataset.path',
          format: spec.dataset.format,
        });
        const sameStat = dataFile.size === spec.dataset.size && dataFile.mtimeMs === spec.dataset.mtimeMs;
        const same =
          sameStat ||
          (spec.dataset.contentHash !== undefined &&
            dataFile.size === spec.dataset.size &&
            (await hashFile(dataFile.handle, signal)) === spec.dataset.contentHash);
        if (!same) {
          throw new QuarryError(
            'QUARRY_ERR_DATASET_CHANGED',
            `dataset "${spec.dataset.path}" changed after the job was enqueued; enqueue it again`,
            { field: 'dataset.path' },
          );
        }
        source = { kind: 'file', file: dataFile.readPath, format: spec.dataset.format };
      }

      progress.report({
        phase: 'compute',
        percent: 10,
        ...(spec.dataset.kind === 'inline' ? { count: spec.dataset.rows } : {}),
      });
      const output = await traced(
        `engine ${engine.name}`,
        { attributes: { 'quarry.engine': engine.name, 'quarry.dataset.kind': spec.dataset.kind } },
        async (span) => {
          const out = await engine.run({ spec, source, maxRows: config.maxResultRows, signal });
          span?.setAttributes({ 'quarry.rows': out.rows.length, 'quarry.total_rows': out.totalRows });
          return out;
        },
      );
      const durationMs = Math.round((performance.now() - started) * 1000) / 1000;
      const envelope: ResultEnvelope = {
        resultKey,
        columns: output.columns,
        rows: output.rows,
        rowCount: output.rows.length,
        totalRows: output.totalRows,
        engine: engine.name,
        computedAt: new Date().toISOString(),
        durationMs,
      };
      const bytes = await serializeEnvelope(envelope);
      if (bytes.length > config.maxResultBytes) {
        throw new QuarryError(
          'QUARRY_ERR_RESULT_TOO_LARGE',
          `the result takes ${bytes.length} bytes, more than QUARRY_MAX_RESULT_BYTES (${config.maxResultBytes})`,
        );
      }
      // A cancelled or timed-out job leaves no result behind.
      signal.throwIfAborted();
      progress.report({ phase: 'store', percent: 90, count: envelope.rowCount });
      metrics?.resultBytes.observe(Buffer.byteLength(bytes));
      await traced(
        'store result',
        {
          kind: 'client',
          attributes: {
            'db.system': 'redis',
            'db.system.name': 'redis',
            'db.operation.name': 'SET',
            'quarry.result_key': resultKey,
            'quarry.result.bytes': Buffer.byteLength(bytes),
          },
        },
        () => cacheRedis.set(resultKeyName, bytes, 'EX', config.resultTtlS),
      );
      if (signal.aborted) {
        // Cancelled (or timed out) while the result was being written: take it back.
        await cacheRedis.del(resultKeyName);
        throw signal.reason;
      }
      // No progress write may follow the final one.
      progress.stop();
      await finish(jobId, resultKey);
      return { resultKey, reused: false, rowCount: envelope.rowCount, durationMs };
    } finally {
      progress.stop();
      if (spoolFile !== undefined) {
        if (!smallSpool) await unlink(spoolFile).catch(() => undefined);
        else {
          try {
            unlinkSync(spoolFile);
          } catch {
            // Gone already, or not removable: a leftover spool file is only disk space.
          }
        }
      }
      await dataFile?.close();
    }
  }

  /**
   * A scheduled refresh: address the registered spec against the data as it is now, compute it
   * under its content-addressed job id (reusing a cached result), then point the alias at it.
   */
  async function refresh(
    job: Pick<Job<RefreshJobData>, 'data' | 'attemptsMade' | 'stalledCounter'>,
    ownerId: string,
    signal: AbortSignal,
  ): Promise<AggregateJobResult> {
    const { name, tenant, spec: input } = job.data;
    const scope = jobScope(config, queueRedis, tenant);
    const parsed = parseAggregation(input, config);
    let addressed: AddressedAggregation;
    if (parsed.dataset.kind === 'inline') {
      checkSpecColumns(parsed.spec, parsed.dataset.data.columns);
      addressed = addressAggregation(parsed, undefined, tenant);
    } else if (parsed.dataset.kind === 'object') {
      if (objects === undefined) throw new Error('this worker has no object store');
      const { url, format } = parsed.dataset;
      checkBucketScope(config, tenant, parseObjectUrl(url, 'dataset.url'), 'dataset.url');
      addressed = addressAggregation(
        parsed,
        await objects.store.head(url, format, 'dataset.url', signal),
        tenant,
      );
    } else {
      const { path: rel, format, fingerprint } = parsed.dataset;
      addressed = addressAggregation(
        parsed,
        await fingerprintFile(tenantDataRoot(config, tenant), rel, format, fingerprint),
        tenant,
      );
    }
    const { jobId, resultKey } = addressed;
    const data: AggregationJobData = { v: 1, resultKey, spec: addressed.spec, ...(tenant ? { tenant } : {}) };
    // Computed inside this refresh job (its owner): the reconciler leaves the record alone while
    // the owner is in BullMQ, and enqueues the payload on its own if both are lost.
    await scope.status.enqueue(jobId, 'aggregate', {
      resultKey,
      payload: data,
      owner: ownerId,
      // Scheduled refreshes run as batch (docs/FAIRNESS.md); the record says so.
      priority: 'batch',
      description: describeAggregation(addressed.spec),
      ...(addressed.inlineJson === undefined
        ? {}
        : { inline: { json: addressed.inlineJson, ttlS: config.inlineDataTtlS } }),
    });
    let result: AggregateJobResult;
    try {
      result = await attempt({ ...job, data }, jobId, signal, scope);
    } catch (error) {
      // The computation's own record says how it ended; the refresh job fails (and retries) too.
      const cause = signal.aborted ? signal.reason : error;
      const code = redisFailureCode(cause) ?? (isQuarryError(cause) ? cause.code : 'QUARRY_ERR_ENGINE');
      await scope.status.failed(jobId, { code, message: String((cause as Error)?.message ?? cause) }, true);
      throw cause;
    }
    await queueRedis.hset(scope.keys.alias(name), { resultKey, refreshedAt: String(Date.now()), jobId });
    return result;
  }

  return async function processAggregate(
    job: Job<AggregationJobData>,
    _token?: string,
    bullSignal?: AbortSignal,
  ): Promise<AggregateJobResult> {
    if (job.name === 'refresh') {
      return runAttempt(deps, 'aggregate', job, bullSignal, async ({ signal, log }) => {
        const data = checkRefreshJobData(job.data);
        const result = await refresh(
          { data, attemptsMade: job.attemptsMade, stalledCounter: job.stalledCounter },
          job.id!,
          signal,
        );
        log.info(
          { schedule: data.name, resultKey: result.resultKey, reused: result.reused },
          'schedule refreshed',
        );
        return result;
      });
    }
    return runAttempt(deps, 'aggregate', job, bullSignal, async ({ jobId, signal, scope, log }) => {
      const data = checkAggregationJobData(job.data);
      const result = await attempt(
        { data, attemptsMade: job.attemptsMade, stalledCounter: job.stalledCounter },
        jobId,
        signal,
        scope,
      );
      log.info(
        { reused: result.reused, rows: result.rowCount, durationMs: result.durationMs },
        'aggregation done',
      );
      return result;
    });
  };
}

/** The inline records from the queue Redis: a JSON array of objects, or QUARRY_ERR_DATASET_UNREADABLE. */
function parseRecords(data: Buffer): Record<string, unknown>[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString('utf8'));
  } catch (cause) {
    throw new QuarryError('QUARRY_ERR_DATASET_UNREADABLE', 'dataset: the inline records are not JSON', {
      field: 'dataset.records',
      cause,
    });
  }
  if (!Array.isArray(parsed) || parsed.some((r) => r === null || typeof r !== 'object' || Array.isArray(r))) {
    throw new QuarryError(
      'QUARRY_ERR_DATASET_UNREADABLE',
      'dataset: the inline records are not an array of objects',
      {
        field: 'dataset.records',
      },
    );
  }
  return parsed as Record<string, unknown>[];
}
