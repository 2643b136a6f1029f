// Webhooks: the contract. A tenant registers named webhooks (`PUT /v1/webhooks/:name`
// {url, events, secret}); each final state of a job and each index version going live becomes
// one delivery per webhook that asked for its event type (webhook-outbox.ts,
// webhook-deliveries.ts): a POST of a JSON event signed with the webhook's secret:
//   x-quarry-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
// Definitions live in one hash per tenant (`<prefix>:webhooks`, name -> JSON) in the queue Redis;
// the secret is stored (it must be, to sign) but never answered back in full.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { validationError } from './aggregation.ts';
import { QuarryError } from './errors.ts';
import type { KeyScheme } from './keys.ts';
import type { Redis } from './redis.ts';
import { MAX_WEBHOOK_URL_LENGTH } from './webhook-target.ts';
import { parseWith } from './zod-messages.ts';

export const WEBHOOK_EVENT_TYPES = ['job.completed', 'job.failed', 'job.cancelled', 'index.live'] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

export const WEBHOOK_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** Webhooks one tenant may have. */
export const MAX_WEBHOOKS = 20;
export const SIGNATURE_HEADER = 'x-quarry-signature';
export const DELIVERY_HEADER = 'x-quarry-delivery';

export const WebhookRequestSchema = z.strictObject({
  url: z.string().min(1).max(MAX_WEBHOOK_URL_LENGTH),
  events: z
    .array(z.enum(WEBHOOK_EVENT_TYPES))
    .min(1)
    .max(WEBHOOK_EVENT_TYPES.length)
    .refine((events) => new Set(events).size === events.length, 'events must be distinct'),
  secret: z.string().min(16, 'at least 16 characters').max(256),
});
export type WebhookRequest = z.output<typeof WebhookRequestSchema>;

/** What is stored per webhook (`id` is drawn once: a deleted and re-created webhook is another). */
export interface WebhookDefinition extends WebhookRequest {
  readonly id: string;
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** What the API and SDK answer: the secret only by its last four characters. */
export interface WebhookInfo {
  readonly name: string;
  readonly url: string;
  readonly events: readonly WebhookEventType[];
  readonly secretHint: string;
  readonly createdAt: string;
  readonly updatedAt: string;
}

/** The JSON body of a delivery; every member present, `null` for none. */
export interface WebhookEvent {
  readonly id: string;
  readonly type: WebhookEventType;
  readonly jobId: string | null;
  readonly state: string | null;
  readonly resultKey: string | null;
  readonly error: { readonly code: string; readonly message: string; readonly field?: string } | null;
  readonly collection: string | null;
  readonly version: number | null;
  /** ISO 8601: when the change happened. */
  readonly at: string;
}

export function checkWebhookName(name: unknown): string {
  if (typeof name !== 'string' || !WEBHOOK_NAME_PATTERN.test(name)) {
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'name: 1-64 letters, digits, - or _', { field: 'name' });
  }
  return name;
}

export function parseWebhookRequest(input: unknown): WebhookRequest {
  const parsed = parseWith(WebhookRequestSchema, input);
  if (!parsed.success) throw validationError(parsed.error);
  return parsed.data;
}

export function webhookInfo(name: string, d: WebhookDefinition): WebhookInfo {
  return {
    name,
    url: d.url,
    events: d.events,
    secretHint: `…${d.secret.slice(-4)}`,
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
  };
}

/** The signature header's value for `body` signed at `tSeconds`. */
export function signWebhook(secret: string, body: string, tSeconds: number): string {
  const v1 = createHmac('sha256', secret).update(`${tSeconds}.${body}`).digest('hex');
  return `t=${tSeconds},v1=${v1}`;
}

/**
 * A receiver's check (what README shows in ten lines): a `v1` of the header matches the HMAC of
 * `<t>.<body>` and t is within `toleranceS` of now. Several `v1=` entries pass when any matches
 * (as clients/python/quarry/webhooks.py allows, for a secret being rotated).
 */
export function verifyWebhook(
  secret: string,
  header: string | undefined,
  body: string,
  toleranceS = 300,
  nowS = Math.floor(Date.now() / 1000),
): boolean {
  let t: number | undefined;
  const candidates: Buffer[] = [];
  for (const part of (header ?? '').split(',')) {
    const [key, value = ''] = part.trim().split('=', 2);
    if (key === 't' && /^\d+$/.test(value)) t = Number(value);
    else if (key === 'v1' && /^[0-9a-f]{64}$/.test(value)) candidates.push(Buffer.from(value, 'hex'));
  }
  if (t === undefined || candidates.length === 0 || Math.abs(nowS - t) > toleranceS) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  return candidates.some((c) => timingSafeEqual(c, expected));
}

// KEYS[1] the tenant's webhooks; ARGV: name, max webhooks, request JSON, a fresh id, now (ISO).
// Returns the stored definition, or nil when a new one would pass the limit.
const PUT_LUA = `
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if not prev and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[2]) then return false end
local d = cjson.decode(ARGV[3])
if prev then
  local p = cjson.decode(prev)
  d.id = p.id
  d.createdAt = p.createdAt
else
  d.id = ARGV[4]
  d.createdAt = ARGV[5]
end
d.updatedAt = ARGV[5]
local text = cjson.encode(d)
redis.call('HSET', KEYS[1], ARGV[1], text)
return text
`;

/** The tenant's webhook definitions in the queue Redis. */
export class WebhookStore {
  readonly #redis: Redis;
  readonly #keys: KeyScheme;

  constructor(redis: Redis, keys: KeyScheme) {
    this.#redis = redis;
    this.#keys = keys;
  }

  /**
   * Creates or replaces a webhook (the request already checked); returns what is stored. One
   * script: the limit is checked and the webhook's id and createdAt kept in the same step, so two
   * PUTs at once can neither pass the limit nor give one webhook two ids.
   */
  async put(name: string, request: WebhookRequest, nowMs = Date.now()): Promise<WebhookDefinition> {
    const stored = (await this.#redis.eval(
      PUT_LUA,
      1,
      this.#keys.webhooks,
      name,
      String(MAX_WEBHOOKS),
      JSON.stringify(request),
      randomBytes(8).toString('hex'),
      new Date(nowMs).toISOString(),
    )) as string | null;
    if (stored === null) {
      throw new QuarryError('QUARRY_ERR_WEBHOOK_LIMIT', `a tenant may have at most ${MAX_WEBHOOKS} webhooks`);
    }
    return JSON.parse(stored) as WebhookDefinition;
  }

  async get(name: string): Promise<WebhookDefinition | null> {
    const text = await this.#redis.hget(this.#keys.webhooks, name);
    return text === null ? null : (JSON.parse(text) as WebhookDefinition);
  }

  /** Every webhook by name, sorted. */
  async list(): Promise<{ name: string; definition: WebhookDefinition }[]> {
    const all = await this.#redis.hgetall(this.#keys.webhooks);
    return Object.keys(all)
      .sort()
      .map((name) => ({ name, definition: JSON.parse(all[name]!) as WebhookDefinition }));
  }

  /** Removes a webhook and its log; its pending deliveries are dropped when their turn comes. */
  async delete(name: string): Promise<boolean> {
    const [[, removed]] = (await this.#redis
      .multi()
      .hdel(this.#keys.webhooks, name)
      .del(this.#keys.webhookLog(name))
      .exec()) as [[Error | null, number], [Error | null, number]];
    return removed === 1;
  }
}
