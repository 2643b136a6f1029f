// One job attempt as the worker's metrics see it: its queue wait when it starts (first start
// only: a retry's or a stalled job's restart would count the earlier attempts and the backoff),
// its run time when it ends, and its final state when no retry follows.
import { type Job, UnrecoverableError } from 'bullmq';
import { isQuarryError } from '../shared/errors.ts';
import type { WorkerMetrics } from '../shared/metrics.ts';
import type { JobType } from '../shared/status.ts';

export interface AttemptObserver {
  completed(): void;
  /** `cause` is what stopped the attempt; `thrown` what failAttempt gave back to BullMQ. */
  failed(cause: unknown, thrown: Error): void;
}

const NONE: AttemptObserver = { completed() {}, failed() {} };

export function observeAttempt(metrics: WorkerMetrics | undefined, type: JobType, job: Job): AttemptObserver {
  if (metrics === undefined) return NONE;
  const started = performance.now();
  // The first attempt only (no failure, no stall before it); its wait includes any time it was
  // sent back unrun (heavy slots, tenant leases), which attemptsStarted would count as starts.
  if (job.attemptsMade + job.stalledCounter === 0 && job.processedOn !== undefined) {
    metrics.jobWait.observe({ type }, Math.max(0, job.processedOn - job.timestamp) / 1000);
  }
  const ran = () => metrics.jobRun.observe({ type }, (performance.now() - started) / 1000);
  return {
    completed() {
      ran();
      metrics.jobs.inc({ type, state: 'completed' });
    },
    failed(cause, thrown) {
      ran();
      // The rule failAttempt applies: unrecoverable errors, or the last allowed attempt.
      const final = thrown instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (!final) return;
      // failAttempt's classification: anything not a QuarryError is an engine failure.
      const code = isQuarryError(cause) ? cause.code : 'QUARRY_ERR_ENGINE';
      const cancelled = code === 'QUARRY_ERR_JOB_CANCELLED';
      metrics.jobs.inc({ type, state: cancelled ? 'cancelled' : 'failed' });
      if (!cancelled) metrics.jobsFailed.inc({ type, code });
    },
  };
}
