// Job status records: one hash per job in the queue Redis, read in one round trip, kept after
// BullMQ removes the job (TTL QUARRY_STATUS_TTL_S). Every change is also published on the
// events channel so waiters wake without polling.
import { ACTIVITY_LUA, activityMinute } from './activity.ts';
import type { ErrorCode } from './errors.ts';
import { DEFAULT_PRIORITY, type PriorityClass } from './fairness.ts';
import { HISTORY_LUA, historyArgs } from './history-index.ts';
import type { JobDescription } from './job-description.ts';
import { type KeyScheme, liveMember, type QueueName } from './keys.ts';
import { luaScript, runScript, runScriptBuffer } from './lua-script.ts';
import type { Redis } from './redis.ts';
import { OUTBOX_LUA } from './webhook-outbox.ts';

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
  /** `field`: the request field the error names (a spec column found missing in the job, ...). */
  readonly error: {
    readonly code: ErrorCode | string;
    readonly message: string;
    readonly field?: string;
  } | null;
  /** Index jobs: the collection and the version the job built. */
  readonly collection?: string;
  readonly version?: number;
  /** The priority class it was enqueued with (shared/fairness.ts). */
  readonly priority: PriorityClass;
  /** What the job computes and over what data, one line each (shared/job-description.ts). */
  readonly summary?: string;
  readonly dataset?: string;
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
  'errorField',
  'collection',
  'version',
  'priority',
  'summary',
  'dataset',
] as const;

// Builds the event from the hash itself, inside the script that changed it, so the event carries
// what the record holds (resultKey, type, attempts, …) whoever wrote the change. Mirrors
// toStatus() below; test/integration/key-scheme.test.ts holds the two to each other.
export const PUBLISH_RECORD_LUA = `
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
    priority = (h.priority ~= nil and h.priority ~= '') and h.priority or 'normal',
  }
  if h.errorCode ~= nil and h.errorCode ~= '' then
    e.error = { code = h.errorCode, message = h.errorMessage or '' }
    if h.errorField ~= nil and h.errorField ~= '' then e.error.field = h.errorField end
  end
  if h.collection ~= nil and h.collection ~= '' then e.collection = h.collection end
  if h.version ~= nil and h.version ~= '' then e.version = tonumber(h.version) end
  if h.summary ~= nil and h.summary ~= '' then e.summary = h.summary end
  if h.dataset ~= nil and h.dataset ~= '' then e.dataset = h.dataset end
  redis.call('PUBLISH', channel, cjson.encode(e))
end
`;

// Writes everything an enqueue needs in one step: the inline data (when given) and the status
// record, and registers the job in the live-jobs set the reconciler watches. A Lua script runs
// whole or not at all, and Redis checks maxmemory only at a script's first write, so a Redis
// that refuses writes (OOM) refuses this one before anything is written: never a record
// without its data. The record keeps the BullMQ payload (and, for a job computed inside another
// job, that owner's id) until it ends, so the reconciler can put a lost job back in the queue.
// Unless a live job (queued or active) already owns the record, it is reset to `queued`, so an
// identical request joining an in-flight job never rewinds its status; a new record also
// clears a cancellation left by an earlier job under the same id.
// A new record enters the history index (job-history.ts).
// Fair dispatch (shared/fairness.ts): a new job past the tenant's maxQueued is refused before
// anything is written ('quota'); one that is written joins the tenant's queued set.
// KEYS: status, cancel flag, inline data, live set, history, history of all tenants, the
//       tenant's fair-queued set
// ARGV: type, resultKey, collection, createdAt, ttlS, progressJson, channel, jobId,
//       inlineData, inlineTtlS, liveMember, payload, owner, then historyArgs() (14-17), then
//       maxQueued ('' without fair dispatch, 0 = no limit), priority class, summary, dataset
const ENQUEUE_LUA = `${PUBLISH_RECORD_LUA}${HISTORY_LUA}
local state = redis.call('HGET', KEYS[1], 'state')
local live = state == 'queued' or state == 'active'
if not live and ARGV[18] ~= '' and tonumber(ARGV[18]) > 0
  and redis.call('SCARD', KEYS[7]) >= tonumber(ARGV[18]) then
  return 'quota'
end
if ARGV[9] ~= '' then redis.call('SET', KEYS[3], ARGV[9], 'EX', ARGV[10]) end
if live then
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  redis.call('ZADD', KEYS[4], 'NX', ARGV[4], ARGV[11])
  return state
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'type', ARGV[1], 'state', 'queued', 'progress', ARGV[6], 'attempts', '0',
  'createdAt', ARGV[4], 'startedAt', '', 'finishedAt', '', 'resultKey', ARGV[2], 'errorCode', '',
  'errorMessage', '', 'errorField', '', 'collection', ARGV[3], 'version', '', 'priority', ARGV[19],
  'summary', ARGV[20], 'dataset', ARGV[21])
if ARGV[12] ~= '' then redis.call('HSET', KEYS[1], 'payload', ARGV[12]) end
if ARGV[13] ~= '' then redis.call('HSET', KEYS[1], 'owner', ARGV[13]) end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[11])
add_history(KEYS[5], KEYS[6], ARGV[4], ARGV[8], ARGV[11], ARGV[14], ARGV[15], ARGV[16], ARGV[17])
if ARGV[18] ~= '' then redis.call('SADD', KEYS[7], ARGV[8]) end
publish_record(KEYS[1], ARGV[8], ARGV[7])
return 'new'
`;

// Takes back what ENQUEUE_LUA wrote when the BullMQ add that should follow it failed: only a
// record this request created (still queued, never attempted) and only while BullMQ has no job
// under the id (a concurrent identical request may have added it: then the job stands).
// DEL and ZREM are allowed on a Redis at maxmemory, so the rollback works when the add did not.
// KEYS: status, inline data, live set, BullMQ job hash, history, history of all tenants,
//       fair-queued set
// ARGV: liveMember, jobId
const ROLLBACK_LUA = `
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'queued' or redis.call('HGET', KEYS[1], 'attempts') ~= '0' then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[2])
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('SREM', KEYS[7], ARGV[2])
return 1
`;

// What every script that ends a job does besides writing the record: counts it in the minute's
// activity (only when the record left queued/active, so a job is counted once per run), drops
// the payload of a completed job, and keeps a failed or cancelled one's payload and inline data
// (for retryDataTtlS) so it can be retried (job-retry.ts).
// The caller read the record's state and startedAt before its write (one HMGET), and knows the
// state and finishedAt it wrote: the record is not read again here.
// end_job(status, activity, activityAll, inlineData, activityTtlS, retryTtlS, prevState,
//         startedAt, state, finishedAt)
const END_JOB_LUA = `${ACTIVITY_LUA}
local function end_job(key, act, actAll, data, actTtl, retryTtl, prev, startedAt, state, finishedAt)
  -- A run time only for a job that was running: a queued one's startedAt is an earlier attempt's.
  if prev == 'queued' then count_end(act, actAll, actTtl, state, nil, finishedAt) end
  if prev == 'active' then count_end(act, actAll, actTtl, state, startedAt, finishedAt) end
  if state == 'completed' then
    redis.call('HDEL', key, 'payload', 'owner')
  else
    redis.call('HDEL', key, 'owner')
    if redis.call('EXISTS', data) == 1 then redis.call('EXPIRE', data, retryTtl) end
  end
end
`;

// Ends a job that is still live (queued or active) in a final state; a job that ended already
// keeps its record (one that completed while a cancellation was on its way stays completed).
// The tenant's webhooks hear of the end through the outbox (webhook-outbox.ts).
// KEYS: status, live set, activity, activity of all tenants, inline data, fair-queued set,
//       webhook outbox, the tenant's webhooks
// ARGV: state, finishedAt, errorCode, errorMessage, progressJson, ttlS, channel, jobId,
//       liveMember, activityTtlS, retryTtlS
const END_IF_LIVE_LUA = `${PUBLISH_RECORD_LUA}${END_JOB_LUA}${OUTBOX_LUA}
local before = redis.call('HMGET', KEYS[1], 'state', 'startedAt')
local state = before[1]
if state ~= 'queued' and state ~= 'active' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'finishedAt', ARGV[2], 'errorCode', ARGV[3],
  'errorMessage', ARGV[4], 'errorField', '', 'progress', ARGV[5])
end_job(KEYS[1], KEYS[3], KEYS[4], KEYS[5], ARGV[10], ARGV[11], state, before[2], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('ZREM', KEYS[2], ARGV[9])
redis.call('SREM', KEYS[6], ARGV[8])
outbox_job(KEYS[7], KEYS[8], KEYS[1], ARGV[8], ARGV[9])
publish_record(KEYS[1], ARGV[8], ARGV[7])
return 1
`;

// Writes fields, renews the TTL, keeps the live set exact (a final record leaves it, see end_job;
// a live one stays in it) and publishes the record as it now is, in one script. Returns 0 and
// writes nothing over a record that ended (see the guard below), 1 when it wrote.
// A job that ends here (it was live) goes to the webhook outbox too (webhook-outbox.ts).
// KEYS: status, live set, activity, activity of all tenants, inline data, fair-queued set,
//       webhook outbox, the tenant's webhooks
// ARGV: ttlS, channel, jobId, liveMember, mode (final|live|none), activityTtlS, retryTtlS,
//       dropData ('1': a completion deletes the inline data with it), then field, value pairs
const WRITE_LUA = `${PUBLISH_RECORD_LUA}${END_JOB_LUA}${OUTBOX_LUA}
local before = redis.call('HMGET', KEYS[1], 'state', 'startedAt')
local was = before[1]
-- A record that ended stays as it ended, whatever a late attempt writes (its progress, a retry's
-- queued, another end): only a new enqueue or a retry, by their own scripts, start it again. A
-- record that is gone is not brought back as a stub by a progress write.
if was == 'completed' or was == 'failed' or was == 'cancelled' or (not was and ARGV[5] == 'none') then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 9))
if ARGV[5] == 'final' then
  -- What the record holds now: before's, with the fields just written over it.
  local h = { state = before[1], startedAt = before[2] }
  for i = 9, #ARGV, 2 do h[ARGV[i]] = ARGV[i + 1] end
  end_job(KEYS[1], KEYS[3], KEYS[4], KEYS[5], ARGV[6], ARGV[7], before[1], h.startedAt, h.state, h.finishedAt)
  if ARGV[8] == '1' and h.state == 'completed' then redis.call('DEL', KEYS[5]) end
  redis.call('ZREM', KEYS[2], ARGV[4])
  redis.call('SREM', KEYS[6], ARGV[3])
  if before[1] == 'queued' or before[1] == 'active' then outbox_job(KEYS[7], KEYS[8], KEYS[1], ARGV[3], ARGV[4]) end
elseif ARGV[5] == 'live' then
  redis.call('ZADD', KEYS[2], 'NX', redis.call('TIME')[1] * 1000, ARGV[4])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
publish_record(KEYS[1], ARGV[3], ARGV[2])
return 1
`;

/** What an attempt's start found (StatusStore.active). */
export interface AttemptStart {
  /** The job's cancellation is flagged. */
  cancelled: boolean;
  /** The inline data, when asked for and still there. */
  inlineData: Buffer | null;
  /** The record had ended already, in this state: the attempt must not run (nothing was written). */
  ended: 'completed' | 'failed' | 'cancelled' | null;
  /** An ended index build's version. */
  version: number | null;
}

/** What an enqueue found: a new job, the state of the live one it joins, or the tenant's quota. */
export type EnqueueOutcome = 'new' | 'queued' | 'active' | 'quota';
// Starts an attempt in one step: marks the record active (attempts, startedAt, the load phase,
// the error of an earlier attempt cleared), keeps it in the live set, publishes it, and reads
// what the attempt needs next: whether a cancellation is flagged and, when asked, the inline data.
// A record that ended already (completed, failed, cancelled) is left as it is and its state is
// answered instead: a late attempt (BullMQ redelivering a job whose end it did not record, or an
// attempt whose start reached Redis after a newer attempt finished) must not make a finished job
// live again. A completed record holds no payload, so a job revived and then cut off could only
// be failed as orphaned by the reconciler: an acknowledged job lost.
// KEYS: status, live set, cancel flag, inline data
// ARGV: ttlS, channel, jobId, liveMember, startedAt, attempts, progressJson, readData (1|0)
// Returns { cancel flag, inline data or false, ended state or false, version or false }.
const START_LUA = `${PUBLISH_RECORD_LUA}
local prev = redis.call('HMGET', KEYS[1], 'state', 'version')
if prev[1] == 'completed' or prev[1] == 'failed' or prev[1] == 'cancelled' then
  return { redis.call('EXISTS', KEYS[3]), false, prev[1], prev[2] }
end
redis.call('HSET', KEYS[1], 'state', 'active', 'progress', ARGV[7], 'startedAt', ARGV[5],
  'attempts', ARGV[6], 'errorCode', '', 'errorMessage', '', 'errorField', '')
-- Scored by the producer's and the reconciler's clock (epoch ms from the client), as at enqueue.
redis.call('ZADD', KEYS[2], 'NX', ARGV[5], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[1])
publish_record(KEYS[1], ARGV[3], ARGV[2])
local data = false
if ARGV[8] == '1' then data = redis.call('GET', KEYS[4]) end
return { redis.call('EXISTS', KEYS[3]), data, false, false }
`;

const SCRIPTS = {
  START_LUA: luaScript(START_LUA),
  ENQUEUE_LUA: luaScript(ENQUEUE_LUA),
  ROLLBACK_LUA: luaScript(ROLLBACK_LUA),
  END_IF_LIVE_LUA: luaScript(END_IF_LIVE_LUA),
  WRITE_LUA: luaScript(WRITE_LUA),
};

const QUEUED: JobProgress = { phase: 'queued', percent: 0 };
const DONE: JobProgress = { phase: 'done', percent: 100 };
const LOADING: JobProgress = { phase: 'load', percent: 0 };

/** What an enqueue writes besides the record itself. */
export interface EnqueueWrite {
  resultKey: string | null;
  collection?: string;
  /** The job's inline data (canonical JSON), written with the record, TTL inlineTtlS. */
  inline?: { json: string; ttlS: number };
  /** The BullMQ payload, kept until the job ends so the reconciler can enqueue it again. */
  payload?: unknown;
  /** The BullMQ job (same queue) that computes this one inside itself, if any (schedules). */
  owner?: string;
  /** The job's priority class (recorded; default normal). */
  priority?: PriorityClass;
  /** What it computes, over what (recorded for people: the console, GET /v1/jobs). */
  description?: JobDescription;
  /** Fair dispatch on: the tenant's maxQueued (0 = no limit); the job joins its queued set. */
  maxQueued?: number;
}

/** A live record as the reconciler reads it. */
export interface LiveRecord {
  readonly state: JobState | null;
  readonly type: JobType;
  readonly payload: string | null;
  readonly owner: string | null;
  readonly priority: PriorityClass;
}

/** How long what the records lead to is kept (shared/config.ts; defaults are its defaults). */
export interface StatusRetention {
  /** QUARRY_HISTORY_MAX_JOBS. */
  readonly historyMaxJobs?: number;
  /** QUARRY_ACTIVITY_WINDOW_S. */
  readonly activityWindowS?: number;
  /** QUARRY_RETRY_DATA_TTL_S. */
  readonly retryDataTtlS?: number;
}

const DEFAULT_RETENTION = { historyMaxJobs: 100_000, activityWindowS: 6 * 3600, retryDataTtlS: 86_400 };

export class StatusStore {
  readonly #redis: Redis;
  readonly #keys: KeyScheme;
  readonly #ttlS: number;
  readonly #retention: Required<StatusRetention>;

  constructor(redis: Redis, keys: KeyScheme, ttlS: number, retention: StatusRetention = {}) {
    this.#redis = redis;
    this.#keys = keys;
    this.#ttlS = ttlS;
    // The three fields only: callers pass the whole config (jobScope builds a store per job), and
    // spreading its ~150 fields cost ~130 µs a job in a worker profile (docs/PERFORMANCE.md).
    this.#retention = {
      historyMaxJobs: retention.historyMaxJobs ?? DEFAULT_RETENTION.historyMaxJobs,
      activityWindowS: retention.activityWindowS ?? DEFAULT_RETENTION.activityWindowS,
      retryDataTtlS: retention.retryDataTtlS ?? DEFAULT_RETENTION.retryDataTtlS,
    };
  }

  /** The keys and arguments every job-ending script takes (the minute of `nowMs`). */
  #endKeys(jobId: string, nowMs: number): { keys: string[]; ttls: string[] } {
    const minute = activityMinute(nowMs);
    return {
      keys: [this.#keys.activity(minute), this.#keys.activityAll(minute), this.#keys.inlineData(jobId)],
      ttls: [String(this.#retention.activityWindowS + 60), String(this.#retention.retryDataTtlS)],
    };
  }

  #member(jobId: string): string {
    return liveMember(this.#keys.tenant, jobId);
  }

  /**
   * Marks a job queued, with its inline data, in one atomic write; returns 'new', or the state
   * of the live job the request joins, or 'quota' (nothing written) for a new job past the
   * tenant's maxQueued. Throws (nothing written) when Redis refuses the write.
   */
  async enqueue(
    jobId: string,
    type: JobType,
    write: EnqueueWrite,
  ): Promise<'new' | 'queued' | 'active' | 'quota'> {
    return (await runScript(
      this.#redis,
      SCRIPTS.ENQUEUE_LUA,
      7,
      ...this.#enqueueArgs(jobId, type, write, Date.now()),
    )) as EnqueueOutcome;
  }

  /**
   * enqueue() for many jobs in one round trip: the same script per job, in order (so each sees
   * the quota the ones before it used), pipelined behind a SCRIPT LOAD that makes its EVALSHAs
   * safe. Answers per job, in order: its outcome, or the error Redis answered for that job alone
   * (nothing written for it). Rejects, nothing known of any job, when the round trip itself fails.
   */
  async enqueueMany(
    jobs: readonly { jobId: string; type: JobType; write: EnqueueWrite }[],
  ): Promise<(EnqueueOutcome | Error)[]> {
    if (jobs.length === 0) return [];
    const now = Date.now();
    const pipeline = this.#redis.pipeline().script('LOAD', ENQUEUE_LUA);
    for (const job of jobs) {
      pipeline.evalsha(SCRIPTS.ENQUEUE_LUA.sha, 7, ...this.#enqueueArgs(job.jobId, job.type, job.write, now));
    }
    const replies = (await pipeline.exec()) ?? [];
    // Without the script every EVALSHA failed: the round trip failed as a whole.
    const loadError = replies[0]?.[0];
    if (loadError) throw loadError;
    return jobs.map((_, i) => {
      const [error, reply] = replies[i + 1] ?? [new Error('no reply from Redis'), null];
      return error ?? (reply as EnqueueOutcome);
    });
  }

  /** ENQUEUE_LUA's keys and arguments. */
  #enqueueArgs(jobId: string, type: JobType, write: EnqueueWrite, now: number): string[] {
    return [
      this.#keys.status(jobId),
      this.#keys.cancelFlag(jobId),
      this.#keys.inlineData(jobId),
      this.#keys.liveJobs,
      this.#keys.history,
      this.#keys.historyAll,
      this.#keys.fairQueued,
      type,
      write.resultKey ?? '',
      write.collection ?? '',
      String(now),
      String(this.#ttlS),
      JSON.stringify(QUEUED),
      this.#keys.eventsChannel,
      jobId,
      write.inline?.json ?? '',
      String(write.inline?.ttlS ?? 1),
      this.#member(jobId),
      write.payload === undefined ? '' : JSON.stringify(write.payload),
      write.owner ?? '',
      ...historyArgs(this.#keys, this.#ttlS, this.#retention.historyMaxJobs, now),
      write.maxQueued === undefined ? '' : String(write.maxQueued),
      write.priority ?? DEFAULT_PRIORITY,
      write.description?.summary ?? '',
      write.description?.dataset ?? '',
    ];
  }

  /**
   * Takes back a 'new' enqueue whose BullMQ add failed (see ROLLBACK_LUA); true when it did.
   * A rollback that fails too leaves a queued record without a job: the reconciler's case.
   */
  async rollback(jobId: string, queue: QueueName): Promise<boolean> {
    const undone = await runScript(
      this.#redis,
      SCRIPTS.ROLLBACK_LUA,
      7,
      this.#keys.status(jobId),
      this.#keys.inlineData(jobId),
      this.#keys.liveJobs,
      this.#keys.bullJob(queue, jobId),
      this.#keys.history,
      this.#keys.historyAll,
      this.#keys.fairQueued,
      this.#member(jobId),
      jobId,
    );
    return undone === 1;
  }

  /**
   * Marks an attempt started (see START_LUA) and answers, from the same round trip, whether
   * the job's cancellation is flagged and (`readInlineData`) its inline data, null when gone; or,
   * writing nothing, that the record had ended already (`ended`).
   */
  async active(jobId: string, attempts: number, readInlineData = false): Promise<AttemptStart> {
    const [cancelled, inlineData, ended, version] = (await runScriptBuffer(
      this.#redis,
      SCRIPTS.START_LUA,
      4,
      this.#keys.status(jobId),
      this.#keys.liveJobs,
      this.#keys.cancelFlag(jobId),
      this.#keys.inlineData(jobId),
      String(this.#ttlS),
      this.#keys.eventsChannel,
      jobId,
      this.#member(jobId),
      String(Date.now()),
      String(attempts),
      JSON.stringify(LOADING),
      readInlineData ? '1' : '0',
    )) as [number, Buffer | null, Buffer | null, Buffer | null];
    return {
      cancelled: cancelled === 1,
      inlineData,
      ended: ended === null ? null : (ended.toString() as 'completed' | 'failed' | 'cancelled'),
      version: version === null ? null : Number(version.toString()),
    };
  }

  async progress(jobId: string, progress: JobProgress): Promise<void> {
    await this.#publishWrite(jobId, 'none', { progress: JSON.stringify(progress) });
  }

  /**
   * Marks a job completed. `dropInlineData` deletes its inline data in the same step: for a job
   * whose later attempts never need it once the record says completed (they find the record
   * ended and stop), which saves the deletion's own round trip after BullMQ's completion.
   */
  async completed(
    jobId: string,
    resultKey: string | null,
    extra: { version?: number; dropInlineData?: boolean } = {},
  ): Promise<void> {
    await this.#publishWrite(
      jobId,
      'final',
      {
        finishedAt: String(Date.now()),
        ...(resultKey === null ? {} : { resultKey }),
        ...(extra.version === undefined ? {} : { version: String(extra.version) }),
        state: 'completed',
        progress: JSON.stringify(DONE),
      },
      extra.dropInlineData === true,
    );
  }

  /**
   * A failed attempt: `final` when no retry follows (the job is `failed`, or `cancelled` for
   * QUARRY_ERR_JOB_CANCELLED), else back to `queued`.
   */
  async failed(
    jobId: string,
    error: { code: string; message: string; field?: string },
    final: boolean,
  ): Promise<void> {
    const fields: Record<string, string> = {
      errorCode: error.code,
      errorMessage: error.message,
      errorField: error.field ?? '',
    };
    if (final) fields.finishedAt = String(Date.now());
    if (final && error.code === 'QUARRY_ERR_JOB_CANCELLED') {
      await this.#write(jobId, 'cancelled', DONE, error, fields);
      return;
    }
    await this.#write(jobId, final ? 'failed' : 'queued', final ? DONE : QUEUED, error, fields);
  }

  /**
   * Marks a job cancelled unless it already ended (a job that completed while the cancellation
   * was on its way keeps its completed record). Returns true when it was marked.
   */
  async cancelIfLive(jobId: string, message: string): Promise<boolean> {
    return this.endIfLive(jobId, 'cancelled', { code: 'QUARRY_ERR_JOB_CANCELLED', message });
  }

  /** Ends a still-live job as `state` with `error`; false when it had ended already. */
  async endIfLive(
    jobId: string,
    state: 'cancelled' | 'failed',
    error: { code: string; message: string },
  ): Promise<boolean> {
    const now = Date.now();
    const end = this.#endKeys(jobId, now);
    const marked = await runScript(
      this.#redis,
      SCRIPTS.END_IF_LIVE_LUA,
      8,
      this.#keys.status(jobId),
      this.#keys.liveJobs,
      ...end.keys,
      this.#keys.fairQueued,
      this.#keys.webhookOutbox,
      this.#keys.webhooks,
      state,
      String(now),
      error.code,
      error.message,
      JSON.stringify(DONE),
      String(this.#ttlS),
      this.#keys.eventsChannel,
      jobId,
      this.#member(jobId),
      ...end.ttls,
    );
    return marked === 1;
  }

  async get(jobId: string): Promise<JobStatus | null> {
    const h = await this.#redis.hgetall(this.#keys.status(jobId));
    return h.state === undefined ? null : toStatus(jobId, h);
  }

  /**
   * The record's state alone (null: no record), one field instead of the whole hash: what a
   * waiter asks first, the job usually still being queued or active.
   */
  async state(jobId: string): Promise<JobState | null> {
    return (await this.#redis.hget(this.#keys.status(jobId), 'state')) as JobState | null;
  }

  /** What the reconciler needs of a record (state null: the record is gone). */
  async live(jobId: string): Promise<LiveRecord> {
    const [state, type, payload, owner, priority] = await this.#redis.hmget(
      this.#keys.status(jobId),
      'state',
      'type',
      'payload',
      'owner',
      'priority',
    );
    return {
      state: (state as JobState | null) ?? null,
      type: (type ?? 'aggregate') as JobType,
      payload: payload ?? null,
      owner: owner || null,
      priority: (priority || DEFAULT_PRIORITY) as PriorityClass,
    };
  }

  async #write(
    jobId: string,
    state: JobState,
    progress: JobProgress,
    _error: JobStatus['error'], // callers put it in `fields` (errorCode, errorMessage)
    fields: Record<string, string>,
  ): Promise<void> {
    await this.#publishWrite(jobId, isFinalState(state) ? 'final' : 'live', {
      ...fields,
      state,
      progress: JSON.stringify(progress),
    });
  }

  /** Writes fields, renews the TTL and publishes the record as it now is, in one script. */
  async #publishWrite(
    jobId: string,
    mode: 'final' | 'live' | 'none',
    fields: Record<string, string>,
    dropInlineData = false,
  ): Promise<void> {
    const end = this.#endKeys(jobId, Date.now());
    await runScript(
      this.#redis,
      SCRIPTS.WRITE_LUA,
      8,
      this.#keys.status(jobId),
      this.#keys.liveJobs,
      ...end.keys,
      this.#keys.fairQueued,
      this.#keys.webhookOutbox,
      this.#keys.webhooks,
      String(this.#ttlS),
      this.#keys.eventsChannel,
      jobId,
      this.#member(jobId),
      mode,
      ...end.ttls,
      dropInlineData ? '1' : '0',
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
    error: h.errorCode
      ? { code: h.errorCode, message: h.errorMessage ?? '', ...(h.errorField ? { field: h.errorField } : {}) }
      : null,
    ...(h.collection ? { collection: h.collection } : {}),
    ...(h.version ? { version: Number(h.version) } : {}),
    ...(h.summary ? { summary: h.summary } : {}),
    ...(h.dataset ? { dataset: h.dataset } : {}),
    priority: (h.priority || DEFAULT_PRIORITY) as PriorityClass,
  };
}
