// Job status records: one hash per job in the queue Redis, read in one round trip, kept after
// BullMQ removes the job (TTL QUARRY_STATUS_TTL_S). Every change is also published on the
// events channel so waiters wake without polling.
import type { ErrorCode } from './errors.ts';
import type { KeyScheme } from './keys.ts';
import type { Redis } from './redis.ts';

export type JobType = 'aggregate' | 'index';
export type JobState = 'queued' | 'active' | 'completed' | 'failed' | 'cancelled';

export function isFinalState(state: JobState): boolean {
  return state === 'completed' || state === 'failed' || state === 'cancelled';
}

export interface JobProgress {
  /** What the worker is doing: `queued`, `load`, `compute` (aggregations) or `build` (indexes), `store`, `done`. */
  readonly phase: string;
  /** 0-100. */
  readonly percent: number;
  /** Rows or documents handled so far, when the phase counts them. */
  readonly count?: number;
}

export interface JobStatus {
  readonly jobId: string;
  readonly type: JobType;
  readonly state: JobState;
  readonly progress: JobProgress;
  readonly attempts: number;
  readonly createdAt: string | null;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  readonly resultKey: string | null;
  readonly error: { readonly code: ErrorCode | string; readonly message: string } | null;
  /** Index jobs: the collection and the version the job built. */
  readonly collection?: string;
  readonly version?: number;
}

/** The message published on keys.eventsChannel for each change. */
export interface JobEvent {
  readonly jobId: string;
  readonly state: JobState;
  readonly resultKey: string | null;
  readonly progress: JobProgress;
  readonly error: JobStatus['error'];
}

// Resets a record to `queued` unless a live job (queued or active) already owns it, so an
// identical request joining an in-flight job never rewinds its status.
// A new record also clears a cancellation left by an earlier job under the same id.
// KEYS[1] status key, KEYS[2] cancel flag; ARGV: type, resultKey, collection, createdAt, ttlS, progressJson, channel, eventJson
const ENQUEUE_LUA = `
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'queued' or state == 'active' then
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return state
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'type', ARGV[1], 'state', 'queued', 'resultKey', ARGV[2], 'createdAt', ARGV[4],
  'attempts', '0', 'progress', ARGV[6])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'collection', ARGV[3]) end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('PUBLISH', ARGV[7], ARGV[8])
return 'new'
`;

// KEYS[1] status key; ARGV: finishedAt, errorCode, errorMessage, progressJson, ttlS, channel, event
const CANCEL_LUA = `
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'active' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finishedAt', ARGV[1], 'errorCode', ARGV[2],
  'errorMessage', ARGV[3], 'progress', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
`;

const QUEUED: JobProgress = { phase: 'queued', percent: 0 };

export class StatusStore {
  readonly #redis: Redis;
  readonly #keys: KeyScheme;
  readonly #ttlS: number;

  constructor(redis: Redis, keys: KeyScheme, ttlS: number) {
    this.#redis = redis;
    this.#keys = keys;
    this.#ttlS = ttlS;
  }

  /** Marks a job queued; returns 'new', or the state of the live job the request joins. */
  async enqueue(
    jobId: string,
    type: JobType,
    resultKey: string | null,
    collection?: string,
  ): Promise<'new' | 'queued' | 'active'> {
    const event: JobEvent = { jobId, state: 'queued', resultKey, progress: QUEUED, error: null };
    return (await this.#redis.eval(
      ENQUEUE_LUA,
      2,
      this.#keys.status(jobId),
      this.#keys.cancelFlag(jobId),
      type,
      resultKey ?? '',
      collection ?? '',
      String(Date.now()),
      String(this.#ttlS),
      JSON.stringify(QUEUED),
      this.#keys.eventsChannel,
      JSON.stringify(event),
    )) as 'new' | 'queued' | 'active';
  }

  async active(jobId: string, attempts: number): Promise<void> {
    await this.#write(jobId, 'active', { phase: 'load', percent: 0 }, null, {
      startedAt: String(Date.now()),
      attempts: String(attempts),
      errorCode: '',
      errorMessage: '',
    });
  }

  async progress(jobId: string, progress: JobProgress): Promise<void> {
    const key = this.#keys.status(jobId);
    const event: JobEvent = { jobId, state: 'active', resultKey: null, progress, error: null };
    await this.#redis
      .multi()
      .hset(key, 'progress', JSON.stringify(progress))
      .expire(key, this.#ttlS)
      .publish(this.#keys.eventsChannel, JSON.stringify(event))
      .exec();
  }

  async completed(jobId: string, resultKey: string | null, extra: { version?: number } = {}): Promise<void> {
    await this.#write(jobId, 'completed', { phase: 'done', percent: 100 }, null, {
      finishedAt: String(Date.now()),
      ...(resultKey === null ? {} : { resultKey }),
      ...(extra.version === undefined ? {} : { version: String(extra.version) }),
    });
  }

  /**
   * A failed attempt: `final` when no retry follows (the job is `failed`, or `cancelled` for
   * QUARRY_ERR_JOB_CANCELLED), else back to `queued`.
   */
  async failed(jobId: string, error: { code: string; message: string }, final: boolean): Promise<void> {
    const fields: Record<string, string> = { errorCode: error.code, errorMessage: error.message };
    if (final) fields.finishedAt = String(Date.now());
    if (final && error.code === 'QUARRY_ERR_JOB_CANCELLED') {
      await this.#write(jobId, 'cancelled', { phase: 'done', percent: 100 }, error, fields);
      return;
    }
    await this.#write(
      jobId,
      final ? 'failed' : 'queued',
      final ? { phase: 'done', percent: 100 } : QUEUED,
      error,
      fields,
    );
  }

  /**
   * Marks a job cancelled unless it already ended (a job that completed while the cancellation
   * was on its way keeps its completed record). Returns true when it was marked.
   */
  async cancelIfLive(jobId: string, message: string): Promise<boolean> {
    const error = { code: 'QUARRY_ERR_JOB_CANCELLED', message };
    const progress = { phase: 'done', percent: 100 };
    const event: JobEvent = { jobId, state: 'cancelled', resultKey: null, progress, error };
    const marked = await this.#redis.eval(
      CANCEL_LUA,
      1,
      this.#keys.status(jobId),
      String(Date.now()),
      error.code,
      message,
      JSON.stringify(progress),
      String(this.#ttlS),
      this.#keys.eventsChannel,
      JSON.stringify(event),
    );
    return marked === 1;
  }

  async get(jobId: string): Promise<JobStatus | null> {
    const h = await this.#redis.hgetall(this.#keys.status(jobId));
    return h.state === undefined ? null : toStatus(jobId, h);
  }

  async #write(
    jobId: string,
    state: JobState,
    progress: JobProgress,
    error: JobStatus['error'],
    fields: Record<string, string>,
  ): Promise<void> {
    const key = this.#keys.status(jobId);
    const resultKey = fields.resultKey ?? null;
    const event: JobEvent = { jobId, state, resultKey, progress, error };
    await this.#redis
      .multi()
      .hset(key, { ...fields, state, progress: JSON.stringify(progress) })
      .expire(key, this.#ttlS)
      .publish(this.#keys.eventsChannel, JSON.stringify(event))
      .exec();
  }
}

const iso = (ms: string | undefined) => (ms ? new Date(Number(ms)).toISOString() : null);

export function toStatus(jobId: string, h: Record<string, string>): JobStatus {
  return {
    jobId,
    type: (h.type ?? 'aggregate') as JobType,
    state: h.state as JobState,
    progress: h.progress ? (JSON.parse(h.progress) as JobProgress) : QUEUED,
    attempts: Number(h.attempts ?? 0),
    createdAt: iso(h.createdAt),
    startedAt: iso(h.startedAt),
    finishedAt: iso(h.finishedAt),
    resultKey: h.resultKey || null,
    error: h.errorCode ? { code: h.errorCode, message: h.errorMessage ?? '' } : null,
    ...(h.collection ? { collection: h.collection } : {}),
    ...(h.version ? { version: Number(h.version) } : {}),
  };
}
