// One attempt of any Quarry job, the frame both processors share: the job's signal (cancellation
// and hard timeout), its tenant's scope, a logger, metrics, and on failure the status record and
// the error BullMQ gets back (unrecoverable or retried).
import type { Job } from 'bullmq';
import type { QuarryConfig } from '../shared/config.ts';
import { isQuarryError, QuarryError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import type { WorkerMetrics } from '../shared/metrics.ts';
import type { Redis } from '../shared/redis.ts';
import type { AttemptStart, JobType } from '../shared/status.ts';
import { tracer } from '../shared/tracing.ts';
import { jobSignal } from './job-control.ts';
import { failAttempt } from './job-failure.ts';
import { observeAttempt } from './job-metrics.ts';
import { type JobScope, jobScope, tenantOf } from './job-scope.ts';
import { traceAttempt } from './job-tracing.ts';

export interface AttemptContext {
  readonly jobId: string;
  /** Fires on cancellation or at the type's hard timeout; its reason is the error to fail with. */
  readonly signal: AbortSignal;
  readonly scope: JobScope;
  readonly log: Logger;
}

export interface AttemptDeps {
  config: QuarryConfig;
  queueRedis: Redis;
  logger: Logger;
  metrics?: WorkerMetrics;
}

export async function runAttempt<T>(
  deps: AttemptDeps,
  type: JobType,
  job: Job,
  bullSignal: AbortSignal | undefined,
  body: (context: AttemptContext) => Promise<T>,
): Promise<T> {
  const { config, queueRedis, logger, metrics } = deps;
  const control = jobSignal(
    bullSignal,
    type === 'index' ? config.indexTimeoutMs : config.aggregateTimeoutMs,
    type,
  );
  const jobId = job.id!;
  // The payload is checked inside `body`: a malformed one fails with a code, like any error.
  const tenant = tenantOf(job.data);
  const log = logger.child({ jobId, attempt: job.attemptsMade + 1, tenant });
  const scope = jobScope(config, queueRedis, tenant);
  const observed = observeAttempt(metrics, type, job);
  const run = async () => {
    try {
      const result = await body({ jobId, signal: control.signal, scope, log });
      observed.completed();
      return result;
    } catch (error) {
      const cause = control.signal.aborted ? control.signal.reason : error;
      // The attempt's span (when traced) says why, as the metrics do: an unrecoverable error
      // reaches BullMQ without its code.
      tracer()?.annotate({ 'error.type': isQuarryError(cause) ? cause.code : 'QUARRY_ERR_ENGINE' });
      const failure = await failAttempt({ ...scope, queueRedis }, job, cause, log);
      observed.failed(cause, failure);
      throw failure;
    } finally {
      control.dispose();
    }
  };
  const traces = tracer();
  return traces === undefined ? run() : traceAttempt(traces, type, job, run);
}

/**
 * An attempt whose start found the record ended (StatusStore.active, `ended`): BullMQ delivered a
 * job Quarry had finished, or this attempt started after a newer one ended. Nothing runs and the
 * record stays as it is. A failed or cancelled job's attempt fails for good (its record keeps the
 * first error and its inline data stays for a retry); the caller completes a completed one.
 */
export function refuseEnded(ended: NonNullable<AttemptStart['ended']>, type: JobType): void {
  if (ended === 'cancelled')
    throw new QuarryError('QUARRY_ERR_JOB_CANCELLED', `the ${type} job was cancelled`);
  if (ended === 'failed') {
    throw new QuarryError(
      'QUARRY_ERR_JOB_FAILED',
      `the ${type} job had failed already; this attempt did not run`,
    );
  }
}
