// Heavy jobs never take every slot of a worker process (docs/FAIRNESS.md "Heavy jobs"). Fair
// dispatch orders jobs by count, not cost: a tenant's flood with large file scans in it would
// otherwise fill all of a worker's slots with long runs, and every other tenant's small job would
// wait for one of them to end. An aggregation over a file of at least QUARRY_HEAVY_JOB_BYTES is
// heavy; at most QUARRY_WORKER_HEAVY_SLOTS of them run at once per process (default: all slots
// but one). Past it, the job goes back to BullMQ's delayed set for HEAVY_RETRY_MS, keeping its
// priority and not counting as an attempt, and the free slot takes the next job.
import { DelayedError, type Job } from 'bullmq';
import type { AggregationJobData } from '../shared/aggregation.ts';
import type { Logger } from '../shared/logger.ts';

/** A heavy job refused a slot comes back this much later: long runs make a second's wait small. */
export const HEAVY_RETRY_MS = 1000;

type Processor<R> = (job: Job<AggregationJobData, R>, token?: string, signal?: AbortSignal) => Promise<R>;

export interface HeavySlots {
  /** Heavy jobs running in this process now. */
  running(): number;
}

/** Whether a job's dataset is a file of at least `heavyBytes` (inline data never is). */
export function isHeavy(data: AggregationJobData, heavyBytes: number): boolean {
  const dataset = data?.spec?.dataset;
  return (
    (dataset?.kind === 'file' || dataset?.kind === 'object') &&
    typeof dataset.size === 'number' &&
    dataset.size >= heavyBytes
  );
}

/** The worker's slots for heavy jobs: `slots` of them at most, or every one when `slots` is 0. */
export function withHeavySlots<R>(
  options: { slots: number; heavyBytes: number; logger: Logger },
  processor: Processor<R>,
): Processor<R> & HeavySlots {
  let running = 0;
  const wrapped = async (job: Job<AggregationJobData, R>, token?: string, signal?: AbortSignal) => {
    if (options.slots === 0 || !isHeavy(job.data, options.heavyBytes)) return processor(job, token, signal);
    if (running >= options.slots) {
      options.logger.debug({ jobId: job.id, heavyRunning: running }, 'heavy job deferred: heavy slots full');
      await job.moveToDelayed(Date.now() + HEAVY_RETRY_MS, token);
      throw new DelayedError();
    }
    running++;
    try {
      return await processor(job, token, signal);
    } finally {
      running--;
    }
  };
  return Object.assign(wrapped, { running: () => running });
}
