// Retry (redrive) of a failed or cancelled job, the record's side: one script checks that the job
// can run again and resets its record to `queued` under the same id and result key, with its
// kept payload and inline data (status.ts keeps both when a job fails or is cancelled, the data
// for QUARRY_RETRY_DATA_TTL_S). Like an enqueue, the caller then adds the BullMQ job and, when
// that add fails, undoes the reset (UNDO_RETRY_LUA) so nothing is left half-written; a job whose
// undo fails too is queued without a BullMQ job, which the reconciler enqueues again.
import { HISTORY_LUA, historyArgs } from './history-index.ts';
import { type KeyScheme, liveMember, type QueueName } from './keys.ts';
import type { Redis } from './redis.ts';
import { PUBLISH_RECORD_LUA } from './status.ts';

/** The record fields a retry resets, and an undo puts back. */
const RESET_FIELDS = [
  'state',
  'progress',
  'attempts',
  'createdAt',
  'startedAt',
  'finishedAt',
  'errorCode',
  'errorMessage',
  'errorField',
] as const;

// The first write is the HSET (denied at maxmemory), so a Redis that refuses writes refuses the
// whole script. A second retry of the same job finds it queued: one run, whoever asked first.
// Under fair dispatch (shared/fairness.ts) the job joins its tenant's queued set and, like a new
// job, is refused past the tenant's maxQueued before anything is written ({'quota'}).
// KEYS: status, cancel flag, inline data, live set, BullMQ job hash, history, history-all,
//       the tenant's fair-queued set
// ARGV: now, ttlS, progressJson, channel, jobId, liveMember, inlineTtlS, then historyArgs()
//       (8-11), then maxQueued ('' without fair dispatch, 0 = no limit)
// Returns {'new', payload, <previous values of RESET_FIELDS>} or {'missing'} / {'state', state} /
// {'busy'} (BullMQ still holds the job it just ended) / {'gone', why} / {'quota'}.
const RETRY_LUA = `${PUBLISH_RECORD_LUA}${HISTORY_LUA}
local h = redis.call('HMGET', KEYS[1], ${RESET_FIELDS.map((f) => `'${f}'`).join(', ')}, 'payload')
local state = h[1]
if not state then return { 'missing' } end
if state ~= 'failed' and state ~= 'cancelled' then return { 'state', state } end
if redis.call('EXISTS', KEYS[5]) == 1 then return { 'busy' } end
local payload = h[${RESET_FIELDS.length + 1}]
if not payload or payload == '' then return { 'gone', 'payload' } end
local ok, p = pcall(cjson.decode, payload)
if not ok or type(p) ~= 'table' then return { 'gone', 'payload' } end
local inline = (type(p.spec) == 'table' and type(p.spec.dataset) == 'table' and p.spec.dataset.kind == 'inline')
  or (type(p.source) == 'table' and (p.source.kind == 'inline' or p.source.kind == 'update'))
if inline and redis.call('EXISTS', KEYS[3]) == 0 then return { 'gone', 'data' } end
if ARGV[12] ~= '' and tonumber(ARGV[12]) > 0 and redis.call('SCARD', KEYS[8]) >= tonumber(ARGV[12]) then
  return { 'quota' }
end
redis.call('HSET', KEYS[1], 'state', 'queued', 'progress', ARGV[3], 'attempts', '0', 'createdAt', ARGV[1],
  'startedAt', '', 'finishedAt', '', 'errorCode', '', 'errorMessage', '', 'errorField', '')
redis.call('DEL', KEYS[2])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if inline then redis.call('EXPIRE', KEYS[3], ARGV[7]) end
redis.call('ZADD', KEYS[4], ARGV[1], ARGV[6])
add_history(KEYS[6], KEYS[7], ARGV[1], ARGV[5], ARGV[6], ARGV[8], ARGV[9], ARGV[10], ARGV[11])
if ARGV[12] ~= '' then redis.call('SADD', KEYS[8], ARGV[5]) end
publish_record(KEYS[1], ARGV[5], ARGV[4])
local out = { 'new', payload }
for i = 1, ${RESET_FIELDS.length} do out[i + 2] = h[i] or '' end
return out
`;

// Puts back what RETRY_LUA replaced, only while the record is the reset one (queued, never
// attempted, the retry's createdAt) and BullMQ holds no job under the id.
// KEYS: status, live set, BullMQ job hash, history, history-all, fair-queued set
// ARGV: retry createdAt, liveMember, jobId, channel, then field, value pairs of RESET_FIELDS
const UNDO_RETRY_LUA = `${PUBLISH_RECORD_LUA}
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local h = redis.call('HMGET', KEYS[1], 'state', 'attempts', 'createdAt')
if h[1] ~= 'queued' or h[2] ~= '0' or h[3] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SREM', KEYS[6], ARGV[3])
local created = redis.call('HGET', KEYS[1], 'createdAt')
if created ~= '' then
  redis.call('ZADD', KEYS[4], 'XX', created, ARGV[3])
  redis.call('ZADD', KEYS[5], 'XX', created, ARGV[2])
end
publish_record(KEYS[1], ARGV[3], ARGV[4])
return 1
`;

export type RetryOutcome =
  | {
      readonly kind: 'new';
      /** The BullMQ payload to add again (JSON). */
      readonly payload: string;
      readonly previous: Readonly<Record<string, string>>;
      readonly createdAt: string;
    }
  | { readonly kind: 'missing' }
  | { readonly kind: 'state'; readonly state: string }
  | { readonly kind: 'busy' }
  | { readonly kind: 'gone'; readonly what: 'payload' | 'data' }
  | { readonly kind: 'quota' };

export interface RetryDeps {
  readonly redis: Redis;
  readonly keys: KeyScheme;
  readonly statusTtlS: number;
  readonly inlineDataTtlS: number;
  readonly historyMaxJobs: number;
  /** Fair dispatch on: the tenant's maxQueued (0 = no limit). */
  readonly maxQueued?: number;
}

/** Resets a failed or cancelled record to queued (see RETRY_LUA). */
export async function resetForRetry(deps: RetryDeps, jobId: string, queue: QueueName): Promise<RetryOutcome> {
  const { redis, keys } = deps;
  const now = Date.now();
  const reply = (await redis.eval(
    RETRY_LUA,
    8,
    keys.status(jobId),
    keys.cancelFlag(jobId),
    keys.inlineData(jobId),
    keys.liveJobs,
    keys.bullJob(queue, jobId),
    keys.history,
    keys.historyAll,
    keys.fairQueued,
    String(now),
    String(deps.statusTtlS),
    JSON.stringify({ phase: 'queued', percent: 0 }),
    keys.eventsChannel,
    jobId,
    liveMember(keys.tenant, jobId),
    String(deps.inlineDataTtlS),
    ...historyArgs(keys, deps.statusTtlS, deps.historyMaxJobs, now),
    deps.maxQueued === undefined ? '' : String(deps.maxQueued),
  )) as string[];
  const [kind, ...rest] = reply;
  if (kind === 'new') {
    const [payload = '', ...fields] = rest;
    const previous = Object.fromEntries(RESET_FIELDS.map((f, i) => [f, fields[i] ?? '']));
    return { kind, payload, previous, createdAt: String(now) };
  }
  if (kind === 'state') return { kind, state: rest[0] ?? '' };
  if (kind === 'gone') return { kind, what: rest[0] === 'data' ? 'data' : 'payload' };
  if (kind === 'busy' || kind === 'quota') return { kind };
  return { kind: 'missing' };
}

/** Takes back a reset whose BullMQ add failed; true when it did. */
export async function undoRetry(
  deps: RetryDeps,
  jobId: string,
  queue: QueueName,
  reset: Extract<RetryOutcome, { kind: 'new' }>,
): Promise<boolean> {
  const { redis, keys } = deps;
  const undone = await redis.eval(
    UNDO_RETRY_LUA,
    6,
    keys.status(jobId),
    keys.liveJobs,
    keys.bullJob(queue, jobId),
    keys.history,
    keys.historyAll,
    keys.fairQueued,
    reset.createdAt,
    liveMember(keys.tenant, jobId),
    jobId,
    keys.eventsChannel,
    ...Object.entries(reset.previous).flat(),
  );
  return undone === 1;
}
