// The webhook outbox: a Redis stream in the queue Redis (`<prefix>:webhook-outbox`, shared by
// all tenants) that the scripts ending a job (status.ts) and switching an index version live
// (index-store.ts) append to, in the same script as the change, when the tenant has webhooks.
// So an event is durable exactly when the state change is: a crash right after it loses
// nothing, and no event exists for a change Redis refused. A deliverer (workers/
// webhook-deliverer.ts) reads it through a consumer group and turns each entry into one
// delivery per matching webhook (shared/webhook-deliveries.ts).
import type { WebhookEventType } from './webhooks.ts';

/** Entries kept at most (approximately) while no deliverer reads them: the stream stays bounded. */
export const OUTBOX_MAX_ENTRIES = 100_000;

/** The consumer group every deliverer reads the outbox through. */
export const OUTBOX_GROUP = 'deliver';

// outbox_job(outbox, webhooks, status key, jobId, liveMember): the job's final record as an
// event, read from the hash the script just wrote. outbox_index(outbox, webhooks, tenant, jobId,
// collection, version): a version that went live. Nothing is written for a tenant without webhooks.
export const OUTBOX_LUA = `
local function outbox_add(outbox, fields)
  redis.call('XADD', outbox, 'MAXLEN', '~', '${OUTBOX_MAX_ENTRIES}', '*', unpack(fields))
end
local function outbox_job(outbox, hooks, key, jobId, member)
  if redis.call('EXISTS', hooks) == 0 then return end
  local h = redis.call('HMGET', key, 'state', 'resultKey', 'errorCode', 'errorMessage', 'collection',
    'version', 'finishedAt', 'errorField')
  local tenant = string.match(member, '^([^/]*)/') or ''
  outbox_add(outbox, { 'tenant', tenant, 'type', 'job.' .. (h[1] or ''), 'jobId', jobId,
    'state', h[1] or '', 'resultKey', h[2] or '', 'errorCode', h[3] or '', 'errorMessage', h[4] or '',
    'errorField', h[8] or '', 'collection', h[5] or '', 'version', h[6] or '', 'at', h[7] or '' })
end
local function outbox_index(outbox, hooks, tenant, jobId, collection, version)
  if redis.call('EXISTS', hooks) == 0 then return end
  local t = redis.call('TIME')
  local at = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  outbox_add(outbox, { 'tenant', tenant, 'type', 'index.live', 'jobId', jobId, 'state', '',
    'resultKey', '', 'errorCode', '', 'errorMessage', '', 'errorField', '', 'collection', collection,
    'version', version, 'at', at })
end
`;

/** One outbox entry, as the scripts above write it ('' for none). */
export interface OutboxEntry {
  readonly id: string;
  readonly tenant: string | undefined;
  readonly type: WebhookEventType | string;
  readonly jobId: string;
  readonly state: string;
  readonly resultKey: string;
  readonly errorCode: string;
  readonly errorMessage: string;
  /** The request field the error names, or ''. */
  readonly errorField: string;
  readonly collection: string;
  readonly version: string;
  /** Epoch ms of the change. */
  readonly at: string;
}

/** An XREADGROUP / XAUTOCLAIM entry ([id, [field, value, …]]) as an OutboxEntry. */
export function parseOutboxEntry(id: string, flat: readonly string[]): OutboxEntry {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i]!] = flat[i + 1]!;
  return {
    id,
    tenant: f.tenant ? f.tenant : undefined,
    type: f.type ?? '',
    jobId: f.jobId ?? '',
    state: f.state ?? '',
    resultKey: f.resultKey ?? '',
    errorCode: f.errorCode ?? '',
    errorMessage: f.errorMessage ?? '',
    errorField: f.errorField ?? '',
    collection: f.collection ?? '',
    version: f.version ?? '',
    at: f.at ?? '',
  };
}
