// Webhook deliveries in the queue Redis: one hash per delivery (its body, fixed when it is
// created, so every retry sends the same id and bytes), a log per webhook (bounded to
// QUARRY_WEBHOOK_LOG_SIZE), and one sorted set of deliveries due, shared by all tenants, scored by
// their next attempt. Attempts are claimed by moving a delivery's score one lease ahead in one
// script, so of several deliverers exactly one makes each attempt; one that dies mid-attempt
// leaves the delivery to be claimed again when the lease ends (at least once).
import { createHash } from 'node:crypto';
import { keyScheme, liveMember, parseLiveMember } from './keys.ts';
import type { Redis } from './redis.ts';
import { OUTBOX_GROUP, type OutboxEntry } from './webhook-outbox.ts';
import type { WebhookDefinition, WebhookEvent, WebhookEventType } from './webhooks.ts';

export type DeliveryStatus = 'pending' | 'delivered' | 'failed' | 'dropped';

/** A delivery as the API answers it (GET /v1/webhooks/:name/deliveries). */
export interface DeliveryInfo {
  readonly id: string;
  readonly webhook: string;
  readonly type: string;
  readonly jobId: string | null;
  readonly status: DeliveryStatus;
  readonly attempts: number;
  readonly createdAt: string;
  /** When the next attempt is due (pending only). */
  readonly nextAttemptAt: string | null;
  /** After this, no further attempt is made. */
  readonly giveUpAt: string;
  readonly lastAttemptAt: string | null;
  /** The HTTP status of the last answer, null when there was none (timeout, refused). */
  readonly lastStatus: number | null;
  /** The head of the last answer's body (at most RESPONSE_EXCERPT_BYTES). */
  readonly lastBody: string | null;
  /** Why the last attempt failed, when it did. */
  readonly lastError: string | null;
  readonly deliveredAt: string | null;
}

/** What an attempt needs: the record's body and which webhook (by id) it was made for. */
export interface DueDelivery {
  readonly member: string;
  readonly tenant: string | undefined;
  readonly id: string;
  readonly webhook: string;
  readonly hookId: string;
  readonly body: string;
  readonly attempt: number;
  readonly createdAtMs: number;
  readonly giveUpAtMs: number;
}

/** How much of a receiver's answer is kept. */
export const RESPONSE_EXCERPT_BYTES = 1024;

// KEYS: outbox, due, then per delivery its record and its webhook's log.
// ARGV: entry id, group, count, now, record ttlS, log size, giveUpAt, record key prefix of the
//       tenant (`…:webhook-delivery:`), then per delivery: member, id, webhook, hookId, type,
//       jobId, body. A record that exists already (the entry was dispatched before a crash) is
//       left as it is. The entry is acknowledged and removed in the same script.
const DISPATCH_LUA = `
local n = tonumber(ARGV[3])
for i = 0, n - 1 do
  local rec = KEYS[3 + 2 * i]
  local log = KEYS[4 + 2 * i]
  local a = 9 + 7 * i
  if redis.call('EXISTS', rec) == 0 then
    redis.call('HSET', rec, 'webhook', ARGV[a + 2], 'hookId', ARGV[a + 3], 'type', ARGV[a + 4],
      'jobId', ARGV[a + 5], 'body', ARGV[a + 6], 'status', 'pending', 'attempts', '0',
      'createdAt', ARGV[4], 'nextAt', ARGV[4], 'giveUpAt', ARGV[7], 'lastAt', '', 'lastStatus', '',
      'lastBody', '', 'lastError', '', 'deliveredAt', '')
    redis.call('EXPIRE', rec, ARGV[5])
    redis.call('ZADD', log, ARGV[4], ARGV[a + 1])
    redis.call('ZADD', KEYS[2], ARGV[4], ARGV[a])
    local size = redis.call('ZCARD', log)
    local keep = tonumber(ARGV[6])
    if size > keep then
      for _, old in ipairs(redis.call('ZRANGE', log, 0, size - keep - 1)) do
        local key = ARGV[8] .. old
        if redis.call('HGET', key, 'status') ~= 'pending' then redis.call('DEL', key) end
        redis.call('ZREM', log, old)
      end
    end
  end
end
redis.call('XACK', KEYS[1], ARGV[2], ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
return n
`;

// KEYS: due. ARGV: now, leaseMs, limit. Takes the deliveries due and pushes each one lease ahead.
const CLAIM_LUA = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), m) end
return due
`;

// KEYS: record, due. ARGV: member, attempt, outcome (delivered|retry|failed|dropped), nextAt, now,
// lastStatus, lastBody, lastError, ttlS. Only the attempt that holds the claim settles it.
const SETTLE_LUA = `
if redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[2] then return 0 end
local outcome = ARGV[3]
local status = outcome == 'retry' and 'pending' or outcome
redis.call('HSET', KEYS[1], 'status', status, 'lastAt', ARGV[5], 'lastStatus', ARGV[6],
  'lastBody', ARGV[7], 'lastError', ARGV[8], 'nextAt', outcome == 'retry' and ARGV[4] or '')
if outcome == 'delivered' then redis.call('HSET', KEYS[1], 'deliveredAt', ARGV[5]) end
if outcome == 'retry' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[9])
return 1
`;

/** A delivery's id: the same for the same event and webhook, so a repeated dispatch is a no-op. */
export function deliveryId(entryId: string, tenant: string | undefined, hookId: string): string {
  return `whd_${createHash('sha256')
    .update(`${entryId}\n${tenant ?? ''}\n${hookId}`)
    .digest('hex')
    .slice(0, 24)}`;
}

/** The delivery body for an outbox entry. */
export function eventBody(id: string, e: OutboxEntry): WebhookEvent {
  const at = Number(e.at);
  return {
    id,
    type: e.type as WebhookEventType,
    jobId: e.jobId || null,
    state: e.state || null,
    resultKey: e.resultKey || null,
    error: e.errorCode
      ? { code: e.errorCode, message: e.errorMessage, ...(e.errorField ? { field: e.errorField } : {}) }
      : null,
    collection: e.collection || null,
    version: e.version ? Number(e.version) : null,
    at: new Date(Number.isFinite(at) && at > 0 ? at : Date.now()).toISOString(),
  };
}

const iso = (ms: string | undefined) => (ms ? new Date(Number(ms)).toISOString() : null);

export class DeliveryStore {
  readonly #redis: Redis;
  readonly #prefix: string;
  /** How long a record is kept after its last change. */
  readonly #ttlS: number;

  constructor(redis: Redis, prefix: string, options: { retryForS: number }) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#ttlS = options.retryForS + 7 * 86400;
  }

  /**
   * Turns one outbox entry into a delivery per webhook of `hooks` that takes its type, and
   * acknowledges the entry, in one script. Returns the deliveries created (or found).
   */
  async dispatch(
    entry: OutboxEntry,
    hooks: readonly { name: string; definition: WebhookDefinition }[],
    options: { nowMs: number; retryForS: number; logSize: number },
  ): Promise<number> {
    const keys = keyScheme(this.#prefix, entry.tenant);
    const matching = hooks.filter((h) => h.definition.events.includes(entry.type as WebhookEventType));
    const recordKeys: string[] = [];
    const args: string[] = [];
    for (const { name, definition } of matching) {
      const id = deliveryId(entry.id, entry.tenant, definition.id);
      recordKeys.push(keys.webhookDelivery(id), keys.webhookLog(name));
      args.push(
        liveMember(entry.tenant, id),
        id,
        name,
        definition.id,
        entry.type,
        entry.jobId,
        JSON.stringify(eventBody(id, entry)),
      );
    }
    const now = options.nowMs;
    await this.#redis.eval(
      DISPATCH_LUA,
      2 + recordKeys.length,
      keys.webhookOutbox,
      keys.webhookDue,
      ...recordKeys,
      entry.id,
      OUTBOX_GROUP,
      String(matching.length),
      String(now),
      String(this.#ttlS),
      String(options.logSize),
      String(now + options.retryForS * 1000),
      keys.webhookDelivery(''),
      ...args,
    );
    return matching.length;
  }

  /** Claims up to `limit` due deliveries for one attempt each (see CLAIM_LUA). */
  async claim(nowMs: number, leaseMs: number, limit: number): Promise<string[]> {
    const due = keyScheme(this.#prefix).webhookDue;
    return (await this.#redis.eval(
      CLAIM_LUA,
      1,
      due,
      String(nowMs),
      String(leaseMs),
      String(limit),
    )) as string[];
  }

  /**
   * Counts the attempt a claim allows and reads what it sends; null when the record is gone
   * (expired, or trimmed from its log): the claim is then dropped.
   */
  async begin(member: string): Promise<DueDelivery | null> {
    const parsed = parseDeliveryMember(member);
    const due = keyScheme(this.#prefix).webhookDue;
    if (parsed === null) {
      await this.#redis.zrem(due, member);
      return null;
    }
    const key = keyScheme(this.#prefix, parsed.tenant).webhookDelivery(parsed.id);
    const h = await this.#redis.hgetall(key);
    if (h.status !== 'pending' || h.body === undefined) {
      await this.#redis.zrem(due, member);
      return null;
    }
    const attempt = await this.#redis.hincrby(key, 'attempts', 1);
    return {
      member,
      tenant: parsed.tenant,
      id: parsed.id,
      webhook: h.webhook ?? '',
      hookId: h.hookId ?? '',
      body: h.body,
      attempt,
      createdAtMs: Number(h.createdAt),
      giveUpAtMs: Number(h.giveUpAt),
    };
  }

  /** Records an attempt's outcome (only the attempt `d.attempt` may; false when it may not). */
  async settle(
    d: DueDelivery,
    outcome: { kind: 'delivered' | 'retry' | 'failed' | 'dropped'; nextAtMs?: number },
    answer: { status: number | null; body: string | null; error: string | null },
    nowMs = Date.now(),
  ): Promise<boolean> {
    const keys = keyScheme(this.#prefix, d.tenant);
    const done = await this.#redis.eval(
      SETTLE_LUA,
      2,
      keys.webhookDelivery(d.id),
      keys.webhookDue,
      d.member,
      String(d.attempt),
      outcome.kind,
      String(outcome.nextAtMs ?? ''),
      String(nowMs),
      answer.status === null ? '' : String(answer.status),
      answer.body ?? '',
      answer.error ?? '',
      String(this.#ttlS),
    );
    return done === 1;
  }

  /** The newest `limit` deliveries of a tenant's webhook, newest first. */
  async list(tenant: string | undefined, webhook: string, limit: number): Promise<DeliveryInfo[]> {
    const keys = keyScheme(this.#prefix, tenant);
    const ids = await this.#redis.zrevrange(keys.webhookLog(webhook), 0, limit - 1);
    if (ids.length === 0) return [];
    const pipeline = this.#redis.pipeline();
    for (const id of ids) pipeline.hgetall(keys.webhookDelivery(id));
    const rows = (await pipeline.exec()) ?? [];
    const out: DeliveryInfo[] = [];
    ids.forEach((id, i) => {
      const [error, h] = rows[i] as [Error | null, Record<string, string>];
      if (error === null && h.status !== undefined) out.push(deliveryInfo(id, h));
    });
    return out;
  }
}

function deliveryInfo(id: string, h: Record<string, string>): DeliveryInfo {
  return {
    id,
    webhook: h.webhook ?? '',
    type: h.type ?? '',
    jobId: h.jobId || null,
    status: h.status as DeliveryStatus,
    attempts: Number(h.attempts ?? 0),
    createdAt: iso(h.createdAt)!,
    nextAttemptAt: h.status === 'pending' ? iso(h.nextAt) : null,
    giveUpAt: iso(h.giveUpAt)!,
    lastAttemptAt: iso(h.lastAt),
    lastStatus: h.lastStatus ? Number(h.lastStatus) : null,
    lastBody: h.lastBody || null,
    lastError: h.lastError || null,
    deliveredAt: iso(h.deliveredAt),
  };
}

/** A due member: `<tenant>/<deliveryId>` (the live-member shape, with a delivery id). */
function parseDeliveryMember(member: string): { tenant: string | undefined; id: string } | null {
  const slash = member.indexOf('/');
  if (slash < 0) return null;
  const id = member.slice(slash + 1);
  if (!/^whd_[0-9a-f]{24}$/.test(id)) return null;
  // The tenant part is checked as parseLiveMember checks it, with a stand-in job id.
  const tenant = parseLiveMember(`${member.slice(0, slash)}/agg-00000000`);
  return tenant === null ? null : { tenant: tenant.tenant, id };
}
