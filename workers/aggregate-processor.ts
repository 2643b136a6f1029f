// The aggregation processor: a factory that receives its dependencies and returns BullMQ's
// processor function. One attempt: mark active, skip if the result exists, fetch the data,
// compute with the engine, store the envelope (pre-serialized, with TTL), mark completed.
import { stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Job, UnrecoverableError } from 'bullmq';
import type { AggregationJobData, ResultEnvelope } from '../shared/aggregation.ts';
import type { QuarryConfig } from '../shared/config.ts';
import { resolveDataFile } from '../shared/datasets.ts';
import { isQuarryError, QuarryError } from '../shared/errors.ts';
import type { KeyScheme } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import type { Redis } from '../shared/redis.ts';
import type { StatusStore } from '../shared/status.ts';
import type { AggregationEngine, EngineSource } from './engines/engine.ts';

export interface AggregateProcessorDeps {
  config: QuarryConfig;
  keys: KeyScheme;
  /** The queue Redis (inline data). */
  queueRedis: Redis;
  /** The cache Redis (results). */
  cacheRedis: Redis;
  status: StatusStore;
  engines: { duckdb: AggregationEngine };
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
  const { config, keys, queueRedis, cacheRedis, status, engines, logger } = deps;

  async function attempt(job: Job<AggregationJobData>, jobId: string): Promise<AggregateJobResult> {
    const { resultKey, spec } = job.data;
    const resultKeyName = keys.result(resultKey);
    // Two servers, two round trips at once.
    const [, exists] = await Promise.all([
      status.active(jobId, job.attemptsMade + 1),
      cacheRedis.exists(resultKeyName),
    ]);
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
        if (info.size !== spec.dataset.size || Math.trunc(info.mtimeMs) !== spec.dataset.mtimeMs) {
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
      const engine = engines.duckdb; // 'auto' and 'duckdb' both run DuckDB until Polars lands
      const output = await engine.run({ spec, source, maxRows: config.maxResultRows });
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
      const bytes = JSON.stringify(envelope);
      if (bytes.length > config.maxResultBytes) {
        throw new QuarryError(
          'QUARRY_ERR_RESULT_TOO_LARGE',
          `the result takes ${bytes.length} bytes, more than QUARRY_MAX_RESULT_BYTES (${config.maxResultBytes})`,
        );
      }
      await cacheRedis.set(resultKeyName, bytes, 'EX', config.resultTtlS);
      await finish(jobId, resultKey);
      return { resultKey, reused: false, rowCount: envelope.rowCount, durationMs };
    } finally {
      if (spoolFile !== undefined) await unlink(spoolFile).catch(() => undefined);
    }
  }

  async function finish(jobId: string, resultKey: string): Promise<void> {
    await Promise.all([status.completed(jobId, resultKey), queueRedis.del(keys.inlineData(jobId))]);
  }

  return async function processAggregate(job: Job<AggregationJobData>): Promise<AggregateJobResult> {
    const jobId = job.id!;
    const log = logger.child({ jobId, attempt: job.attemptsMade + 1 });
    try {
      const result = await attempt(job, jobId);
      log.info(
        { reused: result.reused, rows: result.rowCount, durationMs: result.durationMs },
        'aggregation done',
      );
      return result;
    } catch (error) {
      const quarry = isQuarryError(error)
        ? error
        : new QuarryError('QUARRY_ERR_ENGINE', error instanceof Error ? error.message : String(error), {
            cause: error,
          });
      const final = quarry.unrecoverable || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      log.warn({ code: quarry.code, err: error, final }, 'aggregation attempt failed');
      try {
        await status.failed(jobId, { code: quarry.code, message: quarry.message }, final);
        if (final) await queueRedis.del(keys.inlineData(jobId));
      } catch (statusError) {
        log.error({ err: statusError }, 'could not record the failure');
      }
      // UnrecoverableError tells BullMQ not to retry; the code travels in the message prefix.
      if (quarry.unrecoverable) throw new UnrecoverableError(`${quarry.code}: ${quarry.message}`);
      throw quarry;
    }
  };
}
