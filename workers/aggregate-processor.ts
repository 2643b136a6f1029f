// The aggregation processor: a factory that receives its dependencies and returns BullMQ's
// processor function. One attempt: mark active, skip if the result exists, fetch the data,
// compute with the engine, store the envelope (pre-serialized, with TTL), mark completed.
import { stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Job } from 'bullmq';
import type { AggregationJobData, EngineName, ResultEnvelope } from '../shared/aggregation.ts';
import type { QuarryConfig } from '../shared/config.ts';
import { hashFile, resolveDataFile } from '../shared/datasets.ts';
import { QuarryError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import type { Redis } from '../shared/redis.ts';
import { chooseEngine } from './engines/choose.ts';
import type { AggregationEngine, EngineSource } from './engines/engine.ts';
import { serializeEnvelope } from './envelope.ts';
import { jobSignal } from './job-control.ts';
import { failAttempt } from './job-failure.ts';
import { type JobScope, jobScope } from './job-scope.ts';

export interface AggregateProcessorDeps {
  config: QuarryConfig;
  /** The queue Redis (status records, inline data). */
  queueRedis: Redis;
  /** The cache Redis (results). */
  cacheRedis: Redis;
  engines: Record<EngineName, AggregationEngine>;
  logger: Logger;
}

export interface AggregateJobResult {
  resultKey: string;
  /** True when the result already existed and nothing was computed. */
  reused: boolean;
  rowCount?: number;
  durationMs?: number;
}

export function createAggregateProcessor(deps: AggregateProcessorDeps) {
  const { config, queueRedis, cacheRedis, engines, logger } = deps;

  async function attempt(
    job: Job<AggregationJobData>,
    jobId: string,
    signal: AbortSignal,
    scope: JobScope,
  ): Promise<AggregateJobResult> {
    const { keys, status } = scope;
    const finish = async (jobId: string, resultKey: string) => {
      await Promise.all([status.completed(jobId, resultKey), queueRedis.del(keys.inlineData(jobId))]);
    };
    const { resultKey, spec } = job.data;
    const resultKeyName = keys.result(resultKey);
    // Two servers, three questions, two round trips at once.
    const [, [exists, cancelled]] = await Promise.all([
      status.active(jobId, job.attemptsMade + 1),
      Promise.all([cacheRedis.exists(resultKeyName), queueRedis.exists(keys.cancelFlag(jobId))]),
    ]);
    if (cancelled === 1) throw new QuarryError('QUARRY_ERR_JOB_CANCELLED', 'the aggregate job was cancelled');
    if (exists === 1) {
      await finish(jobId, resultKey);
      return { resultKey, reused: true };
    }

    const started = performance.now();
    let spoolFile: string | undefined;
    let source: EngineSource;
    try {
      if (spec.dataset.kind === 'inline') {
        const data = await queueRedis.getBuffer(keys.inlineData(jobId));
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
        spoolFile = path.join(config.spoolDir, `${jobId}-${job.attemptsMade}-${process.pid}.json`);
        await writeFile(spoolFile, data);
        source = { kind: 'inline', file: spoolFile, columns: spec.dataset.columns };
      } else {
        const file = await resolveDataFile(config.dataDir, spec.dataset.path);
        const info = await stat(file);
        const sameStat = info.size === spec.dataset.size && Math.trunc(info.mtimeMs) === spec.dataset.mtimeMs;
        const same =
          sameStat ||
          (spec.dataset.contentHash !== undefined &&
            info.size === spec.dataset.size &&
            (await hashFile(file)) === spec.dataset.contentHash);
        if (!same) {
          throw new QuarryError(
            'QUARRY_ERR_DATASET_CHANGED',
            `dataset "${spec.dataset.path}" changed after the job was enqueued; enqueue it again`,
            { field: 'dataset.path' },
          );
        }
        source = { kind: 'file', file, format: spec.dataset.format };
      }

      // Progress is informational: never let it delay or fail the computation.
      status.progress(jobId, { phase: 'compute', percent: 10 }).catch((err: unknown) => {
        logger.debug({ err, jobId }, 'progress update failed');
      });
      const engine = engines[chooseEngine(spec)];
      const output = await engine.run({ spec, source, maxRows: config.maxResultRows, signal });
      const durationMs = Math.round((performance.now() - started) * 1000) / 1000;
      const envelope: ResultEnvelope = {
        resultKey,
        columns: output.columns,
        rows: output.rows,
        rowCount: output.rows.length,
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
      await cacheRedis.set(resultKeyName, bytes, 'EX', config.resultTtlS);
      await finish(jobId, resultKey);
      return { resultKey, reused: false, rowCount: envelope.rowCount, durationMs };
    } finally {
      if (spoolFile !== undefined) await unlink(spoolFile).catch(() => undefined);
    }
  }

  return async function processAggregate(
    job: Job<AggregationJobData>,
    _token?: string,
    bullSignal?: AbortSignal,
  ): Promise<AggregateJobResult> {
    const control = jobSignal(bullSignal, config.aggregateTimeoutMs, 'aggregate');
    const jobId = job.id!;
    const log = logger.child({ jobId, attempt: job.attemptsMade + 1, tenant: job.data.tenant });
    const scope = jobScope(config, queueRedis, job.data.tenant);
    try {
      const result = await attempt(job, jobId, control.signal, scope);
      log.info(
        { reused: result.reused, rows: result.rowCount, durationMs: result.durationMs },
        'aggregation done',
      );
      return result;
    } catch (error) {
      throw await failAttempt(
        { ...scope, queueRedis },
        job,
        control.signal.aborted ? control.signal.reason : error,
        log,
      );
    } finally {
      control.dispose();
    }
  };
}
