// Activity counters: what ended in each minute, kept in the queue Redis by the status transitions
// that end a job (status.ts runs ACTIVITY_LUA inside the same script, so a job is counted once,
// when its record leaves queued/active). One hash per tenant and minute (and one summed over all
// tenants): counts by final state and a run-time histogram with fixed buckets, so the memory is
// bounded by the window, never by the number of jobs. GET /v1/activity reads them back.
import type { KeyScheme, QueueName } from './keys.ts';
import type { Redis } from './redis.ts';

/** Final states counted per minute. */
export const ACTIVITY_STATES = ['completed', 'failed', 'cancelled'] as const;
export type ActivityState = (typeof ACTIVITY_STATES)[number];

/**
 * Run-time histogram: bucket i holds runs of at most 10^(i / BUCKETS_PER_DECADE) ms (bucket 0:
 * up to 1 ms), so a percentile is known to within one bucket (a factor of 10^(1/8), +33 %). The
 * last bucket takes everything longer (10^(62/8) ms is about 16 hours).
 */
export const BUCKETS_PER_DECADE = 8;
export const BUCKET_COUNT = 64;
const MINUTE_MS = 60_000;

/** The minute (since the epoch) a time falls in: the `<minute>` of the activity keys. */
export const activityMinute = (ms: number): number => Math.floor(ms / MINUTE_MS);

/** A bucket's upper bound in ms (the value a percentile in it is reported as). */
export function bucketUpperMs(bucket: number): number {
  const ms = 10 ** (bucket / BUCKETS_PER_DECADE);
  return ms >= 100 ? Math.round(ms) : Math.round(ms * 100) / 100;
}

// Counts one ended job in its minute's hashes: `<state>` += 1 and, when it ended while running
// (the caller passes startedAt only then), `runs` += 1 and `b<bucket>` += 1 for finishedAt -
// startedAt. Called only by scripts that saw the record leave queued/active.
// count_end(tenantKey, allKey, ttlS, state, startedAtMs, finishedAtMs)
export const ACTIVITY_LUA = `
local function count_end(key, allKey, ttl, state, startedAt, finishedAt)
  local bucket = nil
  local s = tonumber(startedAt or '')
  local f = tonumber(finishedAt or '')
  if s ~= nil and f ~= nil then
    local ms = f - s
    if ms <= 1 then bucket = 0 else
      bucket = math.ceil(math.log10(ms) * ${BUCKETS_PER_DECADE} - 1e-9)
      if bucket > ${BUCKET_COUNT - 1} then bucket = ${BUCKET_COUNT - 1} end
    end
  end
  for _, k in ipairs({ key, allKey }) do
    -- The TTL is set as the minute's hash is made (its first count of a state is 1), not renewed
    -- on every count: set then, it outlasts the minute by the window already.
    if redis.call('HINCRBY', k, state, 1) == 1 then redis.call('EXPIRE', k, ttl) end
    if bucket ~= nil then
      redis.call('HINCRBY', k, 'runs', 1)
      redis.call('HINCRBY', k, 'b' .. bucket, 1)
    end
  end
end
`;

export interface RunPercentiles {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
}

export interface ActivityMinute {
  /** ISO time of the minute's start. */
  readonly minute: string;
  readonly completed: number;
  readonly failed: number;
  readonly cancelled: number;
  /** Run time of the jobs that ran and ended in this minute; null when none did. */
  readonly runMs: RunPercentiles | null;
}

export interface QueueDepth {
  readonly waiting: number;
  readonly active: number;
  readonly delayed: number;
}

export interface Activity {
  readonly windowS: number;
  /** Oldest first; minutes in which no job ended are left out. */
  readonly minutes: ActivityMinute[];
  readonly depth: Record<QueueName, QueueDepth>;
}

/** The percentiles of a histogram (counts by bucket), each reported as its bucket's upper bound. */
export function histogramPercentiles(counts: readonly number[]): RunPercentiles | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const at = (q: number) => {
    const rank = Math.max(1, Math.ceil(q * total));
    let seen = 0;
    for (let i = 0; i < counts.length; i++) {
      seen += counts[i]!;
      if (seen >= rank) return bucketUpperMs(i);
    }
    return bucketUpperMs(counts.length - 1);
  };
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99) };
}

/** One minute's hash as the answer shows it (null for a minute nothing ended in). */
export function toActivityMinute(minute: number, h: Record<string, string>): ActivityMinute | null {
  const count = (field: string) => Number(h[field] ?? 0) || 0;
  const [completed, failed, cancelled] = ACTIVITY_STATES.map(count) as [number, number, number];
  if (completed + failed + cancelled === 0) return null;
  const buckets = Array.from({ length: BUCKET_COUNT }, (_, i) => count(`b${i}`));
  return {
    minute: new Date(minute * MINUTE_MS).toISOString(),
    completed,
    failed,
    cancelled,
    runMs: histogramPercentiles(buckets),
  };
}

/**
 * The minutes of the window ending now, oldest first: the tenant's counters (`all`: summed over
 * every tenant). One pipelined round trip of HGETALLs, one per minute of the window.
 */
export async function readActivityMinutes(
  redis: Redis,
  keys: KeyScheme,
  options: { windowS: number; all: boolean; nowMs?: number },
): Promise<ActivityMinute[]> {
  const now = activityMinute(options.nowMs ?? Date.now());
  const count = Math.ceil(options.windowS / 60);
  const minutes = Array.from({ length: count }, (_, i) => now - count + 1 + i);
  const pipeline = redis.pipeline();
  for (const m of minutes) pipeline.hgetall(options.all ? keys.activityAll(m) : keys.activity(m));
  const replies = (await pipeline.exec()) ?? [];
  const out: ActivityMinute[] = [];
  replies.forEach(([error, value], i) => {
    if (error) throw error;
    const minute = toActivityMinute(minutes[i]!, value as Record<string, string>);
    if (minute !== null) out.push(minute);
  });
  return out;
}
