// What every processor does when an attempt fails: classify the error, record it in the status
// record (final or retrying; a final one keeps the job's inline data for QUARRY_RETRY_DATA_TTL_S
// so it can be retried, see shared/job-retry.ts), and tell BullMQ whether retrying makes sense.
import { type Job, UnrecoverableError } from 'bullmq';
import { isQuarryError, QuarryError } from '../shared/errors.ts';
import type { KeyScheme } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import type { Redis } from '../shared/redis.ts';
import { asRedisError } from '../shared/redis-errors.ts';
import type { StatusStore } from '../shared/status.ts';

export interface FailureDeps {
  keys: KeyScheme;
  queueRedis: Redis;
  status: StatusStore;
}

/** Records the failure and returns the error to throw back to BullMQ. */
export async function failAttempt(deps: FailureDeps, job: Job, error: unknown, log: Logger): Promise<Error> {
  const jobId = job.id!;
  // A Redis that refused or did not answer a write (the status, the result, the data) is a
  // transient fault of the job's surroundings, never the engine's: retried like any other.
  const quarry =
    asRedisError(error) ??
    (isQuarryError(error)
      ? error
      : new QuarryError('QUARRY_ERR_ENGINE', error instanceof Error ? error.message : String(error), {
          cause: error,
        }));
  const final = quarry.unrecoverable || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
  // Bad input, a cancellation, a vanished dataset (any code the API would answer with a 4xx) is
  // the job's expected outcome: `info`, no stack. Anything else (engine crash, stall, timeout) is
  // a fault: `error`, with the stack of what was thrown.
  if (quarry.status < 500)
    log.info({ code: quarry.code, reason: quarry.message, final }, 'job attempt failed');
  else log.error({ code: quarry.code, err: error, final }, 'job attempt failed');
  try {
    await deps.status.failed(
      jobId,
      {
        code: quarry.code,
        message: quarry.message,
        ...(quarry.field === undefined ? {} : { field: quarry.field }),
      },
      final,
    );
  } catch (statusError) {
    // The record stays queued/active in the live set; if BullMQ drops the job now (last
    // attempt), the reconciler (reconciler.ts) finds it and enqueues it again.
    log.error({ err: statusError }, 'could not record the failure');
  }
  // UnrecoverableError tells BullMQ not to retry; the code travels in the message prefix.
  return quarry.unrecoverable ? new UnrecoverableError(`${quarry.code}: ${quarry.message}`) : quarry;
}
