// The BullMQ options every Quarry job is added with, in one place: the SDK's enqueues, schedule
// ticks and the reconciler's re-enqueues must agree on retries and retention.
import type { JobsOptions } from 'bullmq';
import type { QuarryConfig } from './config.ts';

export function jobOptions(config: QuarryConfig, jobId?: string): JobsOptions {
  return {
    ...(jobId === undefined ? {} : { jobId }),
    attempts: config.jobAttempts,
    backoff: { type: 'exponential', delay: config.jobBackoffMs },
    // Status records (with their own TTL) are the history; BullMQ keeps no finished jobs, so
    // Redis memory stays flat, a later identical request can enqueue the same job id, and a job
    // hash in BullMQ means a job still to run (what the reconciler relies on).
    removeOnComplete: true,
    removeOnFail: true,
  };
}
