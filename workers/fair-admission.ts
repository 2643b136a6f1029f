// The worker's side of fair dispatch (docs/FAIRNESS.md): before a tenant's job runs, it is
// admitted against the tenant's maxActive (past it, the job goes back to BullMQ's delayed set for
// ADMISSION_RETRY_MS, not counted as an attempt) and holds a lease until its attempt ends; a
// schedule's refresh tick (BullMQ's job schedulers give it no priority) is first put back as a
// `batch` job in its tenant's lane. Without API keys the processor runs as it is.
import { DelayedError, type Job } from 'bullmq';
import type { QuarryConfig } from '../shared/config.ts';
import {
  ADMISSION_RETRY_MS,
  admitJob,
  fairnessEnabled,
  placeJob,
  releaseJob,
  tenantPolicy,
} from '../shared/fairness.ts';
import { keyScheme, type QueueName } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import type { Redis } from '../shared/redis.ts';
import { tenantOf } from './job-scope.ts';

export interface AdmissionDeps {
  readonly config: QuarryConfig;
  readonly queueRedis: Redis;
  readonly logger: Logger;
  readonly queue: QueueName;
  /** The longest an attempt may hold its lease (its hard timeout plus a lock's lapse). */
  readonly leaseMs: number;
}

// Three parameters: BullMQ gives a processor that declares the third an AbortSignal (cancellation).
type Processor<D, R> = (job: Job<D, R>, token?: string, signal?: AbortSignal) => Promise<R>;

export function withFairAdmission<D, R>(deps: AdmissionDeps, processor: Processor<D, R>): Processor<D, R> {
  if (!fairnessEnabled(deps.config)) return processor;
  const { config, queueRedis, logger, queue, leaseMs } = deps;
  return async (job, token, signal) => {
    const tenant = tenantOf(job.data);
    if (tenant === undefined || job.id === undefined) return processor(job, token, signal);
    const keys = keyScheme(config.prefix, tenant);
    const policy = tenantPolicy(config, tenant);
    if (!job.priority) {
      // A refresh tick: its place in the tenant's batch lane, then back to the queue at once.
      const priority = await placeJob(queueRedis, keys, queue, policy, 'batch');
      await job.changePriority({ priority });
      await job.moveToDelayed(Date.now(), token);
      throw new DelayedError();
    }
    if (!(await admitJob(queueRedis, keys, queue, { id: job.id, priority: job.priority }, policy, leaseMs))) {
      await job.moveToDelayed(Date.now() + ADMISSION_RETRY_MS, token);
      throw new DelayedError();
    }
    try {
      return await processor(job, token, signal);
    } finally {
      await releaseJob(queueRedis, keys, job.id).catch((err: unknown) =>
        logger.warn({ err, jobId: job.id }, "could not release a job's tenant lease; it expires by itself"),
      );
    }
  };
}
