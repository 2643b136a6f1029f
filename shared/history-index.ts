// The history index's write side, in the scripts that create or reset a status record
// (status.ts, job-retry.ts): a sorted set per tenant (keys.history: job ids scored by createdAt)
// and one over all tenants (keys.historyAll: `<tenant>/<jobId>`). Each write trims both: entries
// older than the status TTL whose record is gone (a bounded batch per write; a record renewed by
// a late change outlives its createdAt + TTL, so age alone is not enough) and everything past
// QUARRY_HISTORY_MAX_JOBS. job-history.ts reads the index.
import type { KeyScheme } from './keys.ts';

/** Entries past the age bound that one write checks (and removes when their record is gone). */
export const HISTORY_TRIM_BATCH = 20;

// Adds a record to both history sets and trims them. `statusPrefix` is the key prefix of status
// records (`<prefix>:` or `<prefix>:t:<tenant>:`); `basePrefix` the deployment's, to find the
// record of an all-tenants member `<tenant>/<jobId>`.
// add_history(hist, histAll, score, jobId, member, cutoffMs, maxJobs, statusPrefix, basePrefix)
export const HISTORY_LUA = `
local function trim_history(hist, cutoff, max, keyOf)
  local old = redis.call('ZRANGE', hist, '-inf', cutoff, 'BYSCORE', 'LIMIT', 0, ${HISTORY_TRIM_BATCH})
  for _, m in ipairs(old) do
    if redis.call('EXISTS', keyOf(m)) == 0 then redis.call('ZREM', hist, m) end
  end
  local n = redis.call('ZCARD', hist)
  local limit = tonumber(max)
  if n > limit then redis.call('ZREMRANGEBYRANK', hist, 0, n - limit - 1) end
end
local function add_history(hist, histAll, score, jobId, member, cutoff, max, statusPrefix, basePrefix)
  redis.call('ZADD', hist, score, jobId)
  redis.call('ZADD', histAll, score, member)
  trim_history(hist, cutoff, max, function(m) return statusPrefix .. 'job:' .. m end)
  trim_history(histAll, cutoff, max, function(m)
    local slash = string.find(m, '/', 1, true)
    if slash == nil then return m end
    local tenant = string.sub(m, 1, slash - 1)
    local id = string.sub(m, slash + 1)
    if tenant == '' then return basePrefix .. ':job:' .. id end
    return basePrefix .. ':t:' .. tenant .. ':job:' .. id
  end)
end
`;

/** The ARGV tail status.ts passes for HISTORY_LUA: cutoff, cap, status prefix, base prefix. */
export function historyArgs(keys: KeyScheme, statusTtlS: number, maxJobs: number, nowMs: number): string[] {
  const statusPrefix = keys.status('').slice(0, -'job:'.length);
  return [String(nowMs - statusTtlS * 1000), String(maxJobs), statusPrefix, keys.prefix];
}
