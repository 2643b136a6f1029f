// Webhooks, as the SDK offers them (`client.webhooks`): register (or replace) a named webhook,
// read, list and delete them, and read a webhook's delivery log. The URL is checked against the
// SSRF rules (shared/webhook-target.ts) when it is registered; workers check it again before
// every attempt (workers/webhook-deliverer.ts).
import type { QuarryConfig } from '../shared/config.ts';
import type { KeyScheme } from '../shared/keys.ts';
import type { Redis } from '../shared/redis.ts';
import { type DeliveryInfo, DeliveryStore } from '../shared/webhook-deliveries.ts';
import { checkWebhookTarget, WebhookAllowList } from '../shared/webhook-target.ts';
import {
  checkWebhookName,
  parseWebhookRequest,
  type WebhookInfo,
  type WebhookRequest,
  WebhookStore,
  webhookInfo,
} from '../shared/webhooks.ts';

export interface WebhooksDeps {
  readonly config: QuarryConfig;
  readonly keys: KeyScheme;
  readonly tenant: string | undefined;
  readonly queueRedis: Redis;
  /** Maps a Redis failure to Quarry's error (the client's own). */
  rethrowRedis(error: unknown): never;
}

/** Deliveries a log answers at most. */
export const MAX_DELIVERIES_LISTED = 1000;

export class Webhooks {
  readonly #d: WebhooksDeps;
  readonly #store: WebhookStore;
  readonly #deliveries: DeliveryStore;
  readonly #allow: WebhookAllowList;

  constructor(deps: WebhooksDeps) {
    this.#d = deps;
    this.#store = new WebhookStore(deps.queueRedis, deps.keys);
    this.#deliveries = new DeliveryStore(deps.queueRedis, deps.config.prefix, {
      retryForS: deps.config.webhookRetryForS,
    });
    this.#allow = new WebhookAllowList(deps.config.webhookAllow);
  }

  /**
   * Creates or replaces the webhook `name`: `{url, events, secret}` validated whole (a 400 naming
   * the field), the URL's host resolved and refused when it is private, loopback or link-local
   * and QUARRY_WEBHOOK_ALLOW does not list it. A replaced webhook keeps its pending deliveries,
   * which go to the new URL, signed with the new secret.
   */
  async put(name: string, request: WebhookRequest | unknown): Promise<WebhookInfo> {
    checkWebhookName(name);
    const r = parseWebhookRequest(request);
    await checkWebhookTarget(r.url, this.#allow, this.#d.config.webhookTimeoutMs);
    const stored = await this.#store.put(name, r).catch(this.#d.rethrowRedis);
    return webhookInfo(name, stored);
  }

  async get(name: string): Promise<WebhookInfo | null> {
    checkWebhookName(name);
    const d = await this.#store.get(name).catch(this.#d.rethrowRedis);
    return d === null ? null : webhookInfo(name, d);
  }

  async list(): Promise<WebhookInfo[]> {
    const all = await this.#store.list().catch(this.#d.rethrowRedis);
    return all.map(({ name, definition }) => webhookInfo(name, definition));
  }

  /** Removes the webhook and its log; false when there was none. Pending deliveries are dropped. */
  async delete(name: string): Promise<boolean> {
    checkWebhookName(name);
    return this.#store.delete(name).catch(this.#d.rethrowRedis);
  }

  /** The webhook's newest deliveries (at most `limit`, default 50), newest first; null for no webhook. */
  async deliveries(name: string, options: { limit?: number } = {}): Promise<DeliveryInfo[] | null> {
    checkWebhookName(name);
    const limit = Math.min(MAX_DELIVERIES_LISTED, Math.max(1, Math.floor(options.limit ?? 50)));
    if ((await this.#store.get(name).catch(this.#d.rethrowRedis)) === null) return null;
    return this.#deliveries.list(this.#d.tenant, name, limit).catch(this.#d.rethrowRedis);
  }
}
