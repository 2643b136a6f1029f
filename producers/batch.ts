// Many aggregations enqueued at once (client.aggregateMany, POST /v1/aggregations/batch) with
// every guarantee of a single enqueue (client.ts #submit and #enqueueDurably), in a few round
// trips for the whole batch instead of three or four per job:
//   1. the cache: one pipeline of GETs; a hit is answered without a job;
//   2. the records: one pipeline of the same ENQUEUE script per job, in order (quota, joins of
//      live jobs, inline data and record in one atomic write per job);
//   3. fair places (with API keys): one pipeline of the same PLACE script per new job, in order;
//   4. the jobs: one BullMQ addBulk.
// Identical specs in one batch are one job: the later ones get the first one's answer. A job is
// acknowledged only once its BullMQ job exists; when the add fails, each new record is taken
// back unless BullMQ has its job (addBulk pipelines its adds, so some may have been stored),
// and each job is answered by what Redis holds: acknowledged, or the error. With
// QUARRY_QUEUE_MIN_REPLICAS, jobs written are acknowledged once the replicas have them (one
// WAIT for the batch, producers/replica-wait.ts); else each fails QUARRY_ERR_REDIS_NOT_REPLICATED.
import type { Queue } from 'bullmq';
import type { AddressedAggregation, AggregationJobData } from '../shared/aggregation.ts';
import type { QuarryConfig } from '../shared/config.ts';
import { QuarryError } from '../shared/errors.ts';
import {
  DEFAULT_PRIORITY,
  fairnessEnabled,
  placeJobs,
  QUOTA_RETRY_AFTER_S,
  tenantPolicy,
} from '../shared/fairness.ts';
import { describeAggregation } from '../shared/job-description.ts';
import { jobOptions } from '../shared/job-options.ts';
import { type KeyScheme, QUEUE_NAMES } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import { type CacheConnection, isCluster, type Redis } from '../shared/redis.ts';
import type { EnqueueOutcome, StatusStore } from '../shared/status.ts';
import { tracer } from '../shared/tracing.ts';
import type { ReplicaWait } from './replica-wait.ts';

/** One item's answer: its value, or the error it alone got (the others are not affected). */
export type Settled<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: Error };

/** What a batch's enqueue answers per job (the shape client.submitAddressed answers). */
export interface BatchSubmission {
  readonly jobId: string;
  readonly resultKey: string;
  readonly cachedBytes: Buffer | null;
  /** A queued job's state as the enqueue found it: queued (new), or the live job's it joined. */
  readonly state?: 'queued' | 'active';
}

export interface BatchDeps {
  readonly config: QuarryConfig;
  readonly keys: KeyScheme;
  readonly tenant: string | undefined;
  readonly logger: Logger;
  /** Where enqueues write (the client's enqueue connection), with its queue and status store. */
  readonly queueRedis: Redis;
  readonly cacheRedis: CacheConnection;
  readonly aggregateQueue: Queue;
  readonly status: StatusStore;
  /** QUARRY_QUEUE_MIN_REPLICAS on that connection. */
  readonly replicas: ReplicaWait;
  /** The client's bound on one enqueue (redisTimeoutMs) with Redis faults as their codes. */
  readonly bounded: <T>(work: Promise<T>) => Promise<T>;
  /** A Redis reply error as its Quarry code (QUARRY_ERR_REDIS_REFUSED, …); others as they are. */
  readonly redisError: (error: unknown) => Error;
}

const NAME = QUEUE_NAMES.aggregate;

/**
 * Enqueues addressed aggregations; answers each, in order. Never rejects: a fault that hits the
 * whole batch (Redis away, the bound passed) is every unanswered job's error.
 */
export async function submitBatch(
  deps: BatchDeps,
  jobs: readonly AddressedAggregation[],
): Promise<Settled<BatchSubmission>[]> {
  const firstOf = new Map<string, number>();
  const unique: number[] = [];
  for (const [i, job] of jobs.entries()) {
    if (firstOf.has(job.jobId)) continue;
    firstOf.set(job.jobId, i);
    unique.push(i);
  }
  const answers: (Settled<BatchSubmission> | undefined)[] = new Array(jobs.length);
  try {
    await deps.bounded(submitUnique(deps, jobs, unique, answers));
  } catch (error) {
    const failure = deps.redisError(error);
    for (const i of unique) answers[i] ??= { ok: false, error: failure };
  }
  // A snapshot: work that outlives the bound answers nobody.
  return jobs.map((job) => answers[firstOf.get(job.jobId)!]!);
}

async function submitUnique(
  deps: BatchDeps,
  jobs: readonly AddressedAggregation[],
  unique: readonly number[],
  answers: (Settled<BatchSubmission> | undefined)[],
): Promise<void> {
  const fail = (i: number, error: unknown) => {
    answers[i] = { ok: false, error: deps.redisError(error) };
  };
  const acknowledge = (i: number, cachedBytes: Buffer | null, outcome?: string) => {
    const job = jobs[i]!;
    const state = outcome === 'active' ? 'active' : 'queued';
    answers[i] = {
      ok: true,
      value: { jobId: job.jobId, resultKey: job.resultKey, cachedBytes, ...(cachedBytes ? {} : { state }) },
    };
  };

  // 1. The cache.
  const cached = await lookUp(
    deps.cacheRedis,
    unique.map((i) => deps.keys.result(jobs[i]!.resultKey)),
  );
  const misses: number[] = [];
  for (const [n, i] of unique.entries()) {
    const [error, bytes] = cached[n] ?? [new Error('no reply from the cache Redis'), null];
    if (error) fail(i, error);
    else if (bytes !== null) acknowledge(i, bytes as Buffer);
    else misses.push(i);
  }
  if (misses.length === 0) return;
  try {
    await deps.replicas.check();
  } catch (error) {
    for (const i of misses) fail(i, error);
    return;
  }

  // 2. The records (and inline data), one atomic script per job.
  const policy =
    deps.tenant !== undefined && fairnessEnabled(deps.config)
      ? tenantPolicy(deps.config, deps.tenant)
      : undefined;
  const payloads = new Map<number, AggregationJobData>();
  // Traced, every job of the batch carries the caller's context (the batch request's span).
  const trace = tracer()?.jobTrace();
  const outcomes = await deps.status.enqueueMany(
    misses.map((i) => {
      const job = jobs[i]!;
      const payload: AggregationJobData = {
        v: 1,
        resultKey: job.resultKey,
        spec: job.spec,
        ...(deps.tenant === undefined ? {} : { tenant: deps.tenant }),
        ...(trace === undefined ? {} : { trace }),
      };
      payloads.set(i, payload);
      return {
        jobId: job.jobId,
        type: 'aggregate' as const,
        write: {
          resultKey: job.resultKey,
          priority: job.priority,
          description: describeAggregation(job.spec),
          payload,
          ...(job.inlineJson === undefined
            ? {}
            : { inline: { json: job.inlineJson, ttlS: deps.config.inlineDataTtlS } }),
          ...(policy === undefined ? {} : { maxQueued: policy.maxQueued }),
        },
      };
    }),
  );
  const written: { i: number; outcome: Exclude<EnqueueOutcome, 'quota'> }[] = [];
  for (const [n, i] of misses.entries()) {
    const outcome = outcomes[n]!;
    if (outcome instanceof Error) fail(i, outcome);
    else if (outcome === 'quota') {
      answers[i] = {
        ok: false,
        error: new QuarryError(
          'QUARRY_ERR_TENANT_QUOTA',
          `tenant "${deps.tenant}" has ${policy?.maxQueued} jobs queued (its maxQueued): retry when some have run`,
          { field: 'maxQueued', retryAfterS: QUOTA_RETRY_AFTER_S },
        ),
      };
    } else written.push({ i, outcome });
  }
  if (written.length === 0) return;

  // 3 and 4. Places, then the BullMQ jobs; what fails is taken back.
  const created = written.filter((w) => w.outcome === 'new');
  let toAdd: { i: number; outcome: string; priority?: number }[] = written;
  const unplaced: { i: number; error: Error }[] = [];
  try {
    if (policy !== undefined && created.length > 0) {
      const placed = await placeJobs(
        deps.queueRedis,
        deps.keys,
        NAME,
        policy,
        created.map((w) => jobs[w.i]!.priority ?? DEFAULT_PRIORITY),
      );
      const places = new Map(created.map((w, n) => [w.i, placed[n]!]));
      toAdd = [];
      for (const w of written) {
        const place = places.get(w.i);
        // A job joining a live one keeps that one's place: BullMQ ignores an add under a taken id.
        if (place === undefined) toAdd.push(w);
        else if (place instanceof Error) unplaced.push({ i: w.i, error: place });
        else toAdd.push({ ...w, priority: place });
      }
    }
    if (toAdd.length > 0) {
      await deps.aggregateQueue.addBulk(
        toAdd.map(({ i, priority }) => {
          const opts = jobOptions(deps.config, jobs[i]!.jobId);
          if (priority !== undefined) opts.priority = priority;
          return { name: NAME, data: payloads.get(i)!, opts };
        }),
      );
    }
    for (const { i, outcome } of toAdd) acknowledge(i, null, outcome);
  } catch (error) {
    // Some adds may have been stored: Redis says which jobs stand.
    await settleFailedAdds(deps, jobs, toAdd, error, answers);
  }
  // A job that got no place was not added: its record goes, and it fails.
  await Promise.all(
    unplaced.map(({ i, error }) =>
      rollBack(deps, jobs[i]!.jobId).then(
        () => fail(i, error),
        () => fail(i, error),
      ),
    ),
  );
  // Acknowledged only once replicated; the writes stay either way (the jobs may run).
  try {
    await deps.replicas.wait();
  } catch (error) {
    for (const { i } of written) if (answers[i]?.ok) fail(i, error);
  }
}

/**
 * Each key's bytes, or the error its GET got. One pipeline on a single server; a Cluster's
 * pipeline must stay on one node, so there each GET goes on its own (routed to its slot's node,
 * written in the same tick).
 */
async function lookUp(cache: CacheConnection, keys: readonly string[]): Promise<[Error | null, unknown][]> {
  if (isCluster(cache)) {
    return Promise.all(
      keys.map((key) =>
        cache.getBuffer(key).then(
          (bytes): [Error | null, unknown] => [null, bytes],
          (error: Error): [Error | null, unknown] => [error, null],
        ),
      ),
    );
  }
  const lookups = cache.pipeline();
  for (const key of keys) lookups.getBuffer(key);
  return (await lookups.exec()) ?? [];
}

/** After a failed addBulk: a job whose BullMQ job exists is acknowledged, any other fails. */
async function settleFailedAdds(
  deps: BatchDeps,
  jobs: readonly AddressedAggregation[],
  entries: readonly { i: number; outcome: string }[],
  error: unknown,
  answers: (Settled<BatchSubmission> | undefined)[],
): Promise<void> {
  const failure = deps.redisError(error);
  await Promise.all(
    entries.map(async ({ i, outcome }) => {
      const job = jobs[i]!;
      let stands = false;
      try {
        stands =
          outcome === 'new'
            ? !(await rollBack(deps, job.jobId))
            : (await deps.queueRedis.exists(deps.keys.bullJob(NAME, job.jobId))) === 1;
      } catch {
        // Unknown: not acknowledged (the reconciler puts a queued record without a job back).
        stands = false;
      }
      const state = outcome === 'active' ? 'active' : 'queued';
      answers[i] = stands
        ? { ok: true, value: { jobId: job.jobId, resultKey: job.resultKey, cachedBytes: null, state } }
        : { ok: false, error: failure };
    }),
  );
}

/**
 * Takes back a new record whose job was not added; true when it did, false when the job stands
 * (BullMQ has it). Throws when Redis does not answer: the record stays for the reconciler.
 */
async function rollBack(deps: BatchDeps, jobId: string): Promise<boolean> {
  try {
    return await deps.status.rollback(jobId, NAME);
  } catch (err) {
    deps.logger.warn({ err, jobId }, 'could not take back a failed enqueue; the reconciler will');
    throw err;
  }
}
