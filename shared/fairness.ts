// Fair dispatch between tenants (docs/FAIRNESS.md): each tenant's policy (weight, maxActive,
// maxQueued) from its API keys, the priority classes, and the Redis scripts that give each job
// its place (a BullMQ priority computed from a virtual clock) and admit it when a worker takes
// it (the tenant's maxActive). Used by producers (enqueue), workers (admission) and the
// reconciler (re-enqueues). Without API keys none of this runs.
import { z } from 'zod';
import type { QuarryConfig } from './config.ts';
import type { KeyScheme, QueueName } from './keys.ts';
import type { Redis } from './redis.ts';

/** Within a tenant, interactive jobs go first and batch jobs last; across tenants, shares hold. */
export const PRIORITY_CLASSES = ['interactive', 'normal', 'batch'] as const;
export type PriorityClass = (typeof PRIORITY_CLASSES)[number];
export const PrioritySchema = z.enum(PRIORITY_CLASSES);
export const DEFAULT_PRIORITY: PriorityClass = 'normal';

/** BullMQ's largest priority (2^21 - 1): a clock past it dispatches in arrival order. */
export const BULLMQ_PRIORITY_LIMIT = 2_097_151;
/** The clocks restart only when nothing was placed for this long (see PLACE_LUA). */
export const RESET_QUIET_MS = 5000;

/** A job over its tenant's maxActive goes back to BullMQ's delayed set for this long. */
export const ADMISSION_RETRY_MS = 100;
/** The Retry-After of a QUARRY_ERR_TENANT_QUOTA. */
export const QUOTA_RETRY_AFTER_S = 1;

export interface TenantPolicy {
  readonly tenant: string;
  /** Share relative to other tenants (1-100). */
  readonly weight: number;
  /** Running at once across all workers; 0 = no limit. */
  readonly maxActive: number;
  /** Queued at once; 0 = no limit. */
  readonly maxQueued: number;
}

/** Fair dispatch runs only with API keys (tenants); one tenant keeps plain FIFO queues. */
export function fairnessEnabled(config: QuarryConfig): boolean {
  return config.apiKeys.length > 0;
}

/** The tenants named by the key list, each once, in key order (bounded metric labels). */
export function tenantPolicies(config: QuarryConfig): readonly TenantPolicy[] {
  const seen = new Map<string, TenantPolicy>();
  for (const k of config.apiKeys) {
    if (seen.has(k.tenant)) continue;
    seen.set(k.tenant, {
      tenant: k.tenant,
      weight: k.weight ?? 1,
      maxActive: k.maxActive ?? config.tenantMaxActive,
      maxQueued: k.maxQueued ?? config.tenantMaxQueued,
    });
  }
  return [...seen.values()];
}

export function tenantPolicy(config: QuarryConfig, tenant: string): TenantPolicy {
  return (
    tenantPolicies(config).find((p) => p.tenant === tenant) ?? {
      tenant,
      weight: 1,
      maxActive: config.tenantMaxActive,
      maxQueued: config.tenantMaxQueued,
    }
  );
}

// Start-time fair queuing on BullMQ's priorities (lower runs first, equal ones in arrival order).
// Each (tenant, class) lane has a clock; the queue's clock `v` is where dispatch is (the start of
// the last job a worker took). A job starts at max(v, its lane's clock) and moves the lane on by
// 1/weight, so a tenant with n jobs queued holds n/weight places ahead and a newcomer lands at
// `v`: behind at most one job of each other tenant with the same start. A job also moves its
// tenant's lower classes' lanes on (interactive charges normal and batch; normal charges batch),
// so a class jumps ahead only within its own tenant. When the queue holds nothing (wait,
// prioritized, delayed and active all empty) and nothing was placed for RESET_QUIET_MS, the
// clocks start again from 0 (keeping places far from the priority limit). The quiet time covers
// jobs placed but not yet added to BullMQ (a separate round trip): without it, a second tenant's
// first enqueue into an empty queue would wipe the lane of a job placed a moment before.
// KEYS: clock hash, wait, prioritized, delayed, active
// ARGV: tenant, class (1 interactive, 2 normal, 3 batch), step (1/weight), priority limit, quiet ms
const PLACE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('LLEN', KEYS[2]) == 0 and redis.call('ZCARD', KEYS[3]) == 0
  and redis.call('ZCARD', KEYS[4]) == 0 and redis.call('LLEN', KEYS[5]) == 0
  and now - tonumber(redis.call('HGET', KEYS[1], 'at') or '0') > tonumber(ARGV[5]) then
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'at', tostring(now))
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
local c = tonumber(ARGV[2])
local step = tonumber(ARGV[3])
local lane = ARGV[1] .. '|' .. c
local s = math.max(v, tonumber(redis.call('HGET', KEYS[1], lane) or '0'))
redis.call('HSET', KEYS[1], lane, tostring(s + step))
for k = c + 1, 3 do
  local l = ARGV[1] .. '|' .. k
  local lc = math.max(v, tonumber(redis.call('HGET', KEYS[1], l) or '0'))
  redis.call('HSET', KEYS[1], l, tostring(lc + step))
end
local p = math.floor(s) + 1
if p > tonumber(ARGV[4]) then p = tonumber(ARGV[4]) end
return p
`;

// A worker took a job: dispatch's clock moves to the job's start; the tenant's expired leases
// (a worker that died holding one) go; past maxActive the job is refused (0: the caller hands
// it back delayed), else it holds a lease until it ends (or leaseMs at most) and leaves the
// queued set. A job that holds a lease already (taken again after a stall) is always admitted.
// KEYS: clock hash, queued set, active set; ARGV: jobId, priority, now, leaseMs, maxActive
const ADMIT_LUA = `
local p = tonumber(ARGV[2])
if p > 0 then
  local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
  if p - 1 > v then redis.call('HSET', KEYS[1], 'v', tostring(p - 1)) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[3])
local max = tonumber(ARGV[5])
if max > 0 and not redis.call('ZSCORE', KEYS[3], ARGV[1]) and redis.call('ZCARD', KEYS[3]) >= max then
  return 0
end
redis.call('ZADD', KEYS[3], tonumber(ARGV[3]) + tonumber(ARGV[4]), ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
`;

/** The BullMQ priority of a new job of `tenant` in `queue` (see PLACE_LUA). */
export async function placeJob(
  redis: Redis,
  keys: KeyScheme,
  queue: QueueName,
  policy: TenantPolicy,
  priority: PriorityClass,
): Promise<number> {
  const placed = await redis.eval(PLACE_LUA, 5, ...placeArgs(keys, queue, policy, priority));
  return Number(placed);
}

/**
 * placeJob() for several new jobs of one tenant, in order, in one round trip: each gets the
 * place it would get enqueued alone after the ones before it. Answers per job its priority, or
 * the error Redis answered for it.
 */
export async function placeJobs(
  redis: Redis,
  keys: KeyScheme,
  queue: QueueName,
  policy: TenantPolicy,
  priorities: readonly PriorityClass[],
): Promise<(number | Error)[]> {
  if (priorities.length === 0) return [];
  const pipeline = redis.pipeline();
  for (const priority of priorities) pipeline.eval(PLACE_LUA, 5, ...placeArgs(keys, queue, policy, priority));
  const replies = (await pipeline.exec()) ?? [];
  return priorities.map((_, i) => {
    const [error, placed] = replies[i] ?? [new Error('no reply from Redis'), null];
    return error ?? Number(placed);
  });
}

function placeArgs(
  keys: KeyScheme,
  queue: QueueName,
  policy: TenantPolicy,
  priority: PriorityClass,
): string[] {
  return [
    keys.fairClock(queue),
    keys.bullKey(queue, 'wait'),
    keys.bullKey(queue, 'prioritized'),
    keys.bullKey(queue, 'delayed'),
    keys.bullKey(queue, 'active'),
    policy.tenant,
    String(PRIORITY_CLASSES.indexOf(priority) + 1),
    String(1 / policy.weight),
    String(BULLMQ_PRIORITY_LIMIT),
    String(RESET_QUIET_MS),
  ];
}

/** True when the job may run now (see ADMIT_LUA). */
export async function admitJob(
  redis: Redis,
  keys: KeyScheme,
  queue: QueueName,
  job: { id: string; priority: number },
  policy: TenantPolicy,
  leaseMs: number,
): Promise<boolean> {
  const admitted = await redis.eval(
    ADMIT_LUA,
    3,
    keys.fairClock(queue),
    keys.fairQueued,
    keys.fairActive,
    job.id,
    String(job.priority),
    String(Date.now()),
    String(leaseMs),
    String(policy.maxActive),
  );
  return admitted === 1;
}

/** A job's attempt ended (or the job did): its lease goes. */
export async function releaseJob(redis: Redis, keys: KeyScheme, jobId: string): Promise<void> {
  await redis.zrem(keys.fairActive, jobId);
}

/** A tenant's queued and running counts, as the gauges and the usage route show them. */
export async function tenantUsage(
  redis: Redis,
  keys: KeyScheme,
): Promise<{ queued: number; active: number }> {
  const [queued, active] = await Promise.all([
    redis.scard(keys.fairQueued),
    redis.zcount(keys.fairActive, Date.now(), '+inf'),
  ]);
  return { queued, active };
}
