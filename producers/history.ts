// Job history and redrive, as the SDK offers them (`client.jobs`, `client.activity()`): list the
// status records newest first with filters (shared/job-history.ts), run a failed or cancelled
// job again under the same id (shared/job-retry.ts, then the BullMQ add, undone when the add
// fails: the enqueue's rule), and read the per-minute activity counters with the queue depth
// (shared/activity.ts).
import type { Queue } from 'bullmq';
import { type Activity, type QueueDepth, readActivityMinutes } from '../shared/activity.ts';
import type { QuarryConfig } from '../shared/config.ts';
import { QuarryError } from '../shared/errors.ts';
import {
  DEFAULT_PRIORITY,
  fairnessEnabled,
  placeJob,
  QUOTA_RETRY_AFTER_S,
  tenantPolicy,
} from '../shared/fairness.ts';
import {
  type HistoryPage,
  type HistoryQueryInput,
  listHistory,
  parseHistoryQuery,
} from '../shared/job-history.ts';
import { jobOptions } from '../shared/job-options.ts';
import { resetForRetry, undoRetry } from '../shared/job-retry.ts';
import { JOB_ID_PATTERN, type KeyScheme, QUEUE_NAMES, type QueueName } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import type { Redis } from '../shared/redis.ts';
import type { JobStatus, JobType } from '../shared/status.ts';
import { type JobTrace, retraced } from '../shared/tracing.ts';

/**
 * A retry right after a job ended can find BullMQ still removing the job it just failed (the
 * record is written first); the retry waits this long for that, checking every RETRY_BUSY_STEP_MS.
 */
const RETRY_BUSY_WAIT_MS = 2000;
const RETRY_BUSY_STEP_MS = 50;

export interface JobsDeps {
  readonly config: QuarryConfig;
  readonly keys: KeyScheme;
  readonly logger: Logger;
  readonly queueRedis: Redis;
  readonly queues: Record<QueueName, Queue>;
  /** The client's bound on Redis work (its redisTimeoutMs, Redis faults as their codes). */
  bounded<T>(work: Promise<T>): Promise<T>;
  /** The client's status read (null for an unknown job). */
  status(jobId: string): Promise<JobStatus | null>;
  /** Resolves with the job's final status (the client's waitForJob). */
  waitForJob(jobId: string, options?: { timeoutMs?: number }): Promise<JobStatus>;
}

/** What a retry answers: the job, queued again under its id. */
export interface RetryHandle {
  readonly jobId: string;
  readonly type: JobType;
  /** Aggregations: the result key the run writes (unchanged). */
  readonly resultKey: string | null;
  /** Index builds: the collection. */
  readonly collection?: string;
  /** Resolves with the run's final status (completed, failed or cancelled). */
  wait(options?: { timeoutMs?: number }): Promise<JobStatus>;
}

export class Jobs {
  readonly #d: JobsDeps;

  constructor(deps: JobsDeps) {
    this.#d = deps;
  }

  /**
   * One page of this tenant's jobs (`all: true`: every tenant's), newest first by creation (a
   * retry counts as a new creation). Pass `nextCursor` back as `cursor` for the next page; a page
   * may be shorter than `limit` while a nextCursor remains (a filter that rarely matches).
   */
  async list(filters: HistoryQueryInput = {}): Promise<HistoryPage> {
    const query = parseHistoryQuery(filters);
    return this.#d.bounded(listHistory(this.#d.queueRedis, this.#d.keys, query));
  }

  /**
   * Runs a failed or cancelled job again under the same id and result key. Rejects with
   * QUARRY_ERR_JOB_NOT_FOUND (unknown job), QUARRY_ERR_JOB_NOT_RETRYABLE (queued, active or
   * completed; a concurrent retry got there first), QUARRY_ERR_RETRY_DATA_GONE (its inline data
   * or payload expired), or a Redis code (nothing changed).
   */
  async retry(jobId: string): Promise<RetryHandle> {
    const { config, keys } = this.#d;
    const status = JOB_ID_PATTERN.test(jobId) ? await this.#d.status(jobId) : null;
    if (status === null) throw new QuarryError('QUARRY_ERR_JOB_NOT_FOUND', `no job ${jobId}`);
    const name: QueueName = status.type === 'index' ? QUEUE_NAMES.index : QUEUE_NAMES.aggregate;
    // Fair dispatch: a retry is a new job of its tenant (maxQueued, a fair place in the queue).
    const policy =
      keys.tenant !== undefined && fairnessEnabled(config) ? tenantPolicy(config, keys.tenant) : undefined;
    const deps = {
      redis: this.#d.queueRedis,
      keys,
      statusTtlS: config.statusTtlS,
      inlineDataTtlS: config.inlineDataTtlS,
      historyMaxJobs: config.historyMaxJobs,
      ...(policy === undefined ? {} : { maxQueued: policy.maxQueued }),
    };
    const started = Date.now();
    let outcome = await this.#d.bounded(resetForRetry(deps, jobId, name));
    while (outcome.kind === 'busy' && Date.now() - started < RETRY_BUSY_WAIT_MS) {
      await new Promise((resolve) => setTimeout(resolve, RETRY_BUSY_STEP_MS));
      outcome = await this.#d.bounded(resetForRetry(deps, jobId, name));
    }
    switch (outcome.kind) {
      case 'missing':
        throw new QuarryError('QUARRY_ERR_JOB_NOT_FOUND', `no job ${jobId}`);
      case 'state':
        throw new QuarryError(
          'QUARRY_ERR_JOB_NOT_RETRYABLE',
          `job ${jobId} is ${outcome.state}: only a failed or cancelled job can be retried`,
        );
      case 'busy':
        throw new QuarryError(
          'QUARRY_ERR_JOB_NOT_RETRYABLE',
          `job ${jobId} is still being removed from the queue; try again in a moment`,
          { retryAfterS: 1 },
        );
      case 'quota':
        throw new QuarryError(
          'QUARRY_ERR_TENANT_QUOTA',
          `tenant "${keys.tenant}" has ${policy?.maxQueued} jobs queued (its maxQueued): retry when some have run`,
          { field: 'maxQueued', retryAfterS: QUOTA_RETRY_AFTER_S },
        );
      case 'gone':
        throw new QuarryError(
          'QUARRY_ERR_RETRY_DATA_GONE',
          outcome.what === 'data'
            ? `job ${jobId}'s inline data is gone (kept ${config.retryDataTtlS} s after it ended); enqueue it again`
            : `job ${jobId}'s record holds no payload to run again; enqueue it again`,
        );
    }
    try {
      const options = jobOptions(config, jobId);
      if (policy !== undefined) {
        const placing = placeJob(this.#d.queueRedis, keys, name, policy, status.priority ?? DEFAULT_PRIORITY);
        options.priority = await this.#d.bounded(placing);
      }
      // Traced, the retry runs in the retrying request's trace, linked to the job's first one.
      const payload = retraced(JSON.parse(outcome.payload) as { trace?: JobTrace });
      await this.#d.bounded(this.#d.queues[name].add(name, payload, options));
    } catch (error) {
      await undoRetry(deps, jobId, name, outcome).catch((err: unknown) => {
        this.#d.logger.warn({ err, jobId }, 'could not take back a failed retry; the reconciler will');
      });
      throw error;
    }
    return {
      jobId,
      type: status.type,
      resultKey: status.resultKey,
      ...(status.collection === undefined ? {} : { collection: status.collection }),
      wait: (options) => this.#d.waitForJob(jobId, options),
    };
  }
}

/** Per-minute activity over the window and the depth of the (shared) queues. */
export async function readActivity(deps: JobsDeps, options: { all?: boolean } = {}): Promise<Activity> {
  const windowS = deps.config.activityWindowS;
  const depthOf = async (queue: Queue): Promise<QueueDepth> => {
    const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    return {
      waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
      active: counts.active ?? 0,
      delayed: counts.delayed ?? 0,
    };
  };
  const [minutes, aggregate, index] = await deps.bounded(
    Promise.all([
      readActivityMinutes(deps.queueRedis, deps.keys, { windowS, all: options.all ?? false }),
      depthOf(deps.queues.aggregate),
      depthOf(deps.queues.index),
    ]),
  );
  return { windowS, minutes, depth: { aggregate, index } };
}
