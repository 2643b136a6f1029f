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

/**
 * The message published on keys.eventsChannel for each change (state, progress, attempts): the
 * record as it is right after the change, in the shape `get()` answers, so a listener never sees
 * fewer fields than a poller (docs/KEYS.md).
 */
export type JobEvent = JobStatus;

/** The status hash fields, all written when a record is created. */
// The record fields, all written when a record is created: a field without a value holds ''
// (never absent), so a direct reader of the hash finds the same fields in every record.
export const STATUS_FIELDS = [
  'type',
  'state',
  'progress',
  'attempts',
  'createdAt',
  'startedAt',
  'finishedAt',
  'resultKey',
  'errorCode',
  'errorMessage',
  'collection',
  'version',
] as const;

// Builds the event from the hash itself, inside the script that changed it, so the event carries
// what the record holds (resultKey, type, attempts, …) whoever wrote the change. Mirrors
// toStatus() below; test/integration/key-scheme.test.ts holds the two to each other.
const PUBLISH_RECORD_LUA = `
local function iso(ms)
  if ms == nil or ms == '' then return cjson.null end
  local t = tonumber(ms)
  local msec = t % 1000
  local s = (t - msec) / 1000
  local days = math.floor(s / 86400)
  local rem = s - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d,
    math.floor(rem / 3600), math.floor((rem % 3600) / 60), rem % 60, msec)
end
local function publish_record(key, jobId, channel)
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  local e = {
    jobId = jobId,
    type = (h.type ~= nil and h.type ~= '') and h.type or 'aggregate',
    state = h.state,
    progress = (h.progress ~= nil and h.progress ~= '') and cjson.decode(h.progress) or { phase = 'queued', percent = 0 },
    attempts = tonumber(h.attempts or '0') or 0,
    createdAt = iso(h.createdAt),
    startedAt = iso(h.startedAt),
    finishedAt = iso(h.finishedAt),
    resultKey = (h.resultKey ~= nil and h.resultKey ~= '') and h.resultKey or cjson.null,
    error = cjson.null,
  }
  if h.errorCode ~= nil and h.errorCode ~= '' then
    e.error = { code = h.errorCode, message = h.errorMessage or '' }
  end
  if h.collection ~= nil and h.collection ~= '' then e.collection = h.collection end
  if h.version ~= nil and h.version ~= '' then e.version = tonumber(h.version) end
  redis.call('PUBLISH', channel, cjson.encode(e))
end
`;

// Resets a record to `queued` unless a live job (queued or active) already owns it, so an
// identical request joining an in-flight job never rewinds its status.
// A new record also clears a cancellation left by an earlier job under the same id.
// KEYS[1] status key, KEYS[2] cancel flag; ARGV: type, resultKey, collection, createdAt, ttlS, progressJson, channel, jobId
const ENQUEUE_LUA = `${PUBLISH_RECORD_LUA}
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'queued' or state == 'active' then
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return state
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'type', ARGV[1], 'state', 'queued', 'progress', ARGV[6], 'attempts', '0',
  'createdAt', ARGV[4], 'startedAt', '', 'finishedAt', '', 'resultKey', ARGV[2], 'errorCode', '',
  'errorMessage', '', 'collection', ARGV[3], 'version', '')
redis.call('EXPIRE', KEYS[1], ARGV[5])
publish_record(KEYS[1], ARGV[8], ARGV[7])
return 'new'
`;

// KEYS[1] status key; ARGV: finishedAt, errorCode, errorMessage, progressJson, ttlS, channel, jobId
const CANCEL_LUA = `${PUBLISH_RECORD_LUA}
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'active' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'finishedAt', ARGV[1], 'errorCode', ARGV[2],
  'errorMessage', ARGV[3], 'progress', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
publish_record(KEYS[1], ARGV[7], ARGV[6])
return 1
`;

// KEYS[1] status key; ARGV: ttlS, channel, jobId, then field, value pairs
const WRITE_LUA = `${PUBLISH_RECORD_LUA}
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[1])
publish_record(KEYS[1], ARGV[3], ARGV[2])
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
      jobId,
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
    await this.#publishWrite(jobId, { progress: JSON.stringify(progress) });
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
      jobId,
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
    _error: JobStatus['error'], // callers put it in `fields` (errorCode, errorMessage)
    fields: Record<string, string>,
  ): Promise<void> {
    await this.#publishWrite(jobId, { ...fields, state, progress: JSON.stringify(progress) });
  }

  /** Writes fields, renews the TTL and publishes the record as it now is, in one script. */
  async #publishWrite(jobId: string, fields: Record<string, string>): Promise<void> {
    await this.#redis.eval(
      WRITE_LUA,
      1,
      this.#keys.status(jobId),
      String(this.#ttlS),
      this.#keys.eventsChannel,
      jobId,
      ...Object.entries(fields).flat(),
    );
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
