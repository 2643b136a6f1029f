// The webhook deliverer, run in every worker process: it reads the outbox (a consumer group, so
// each entry is dispatched by one process; an entry a dead process had read is taken over after
// claimIdleMs), turns entries into deliveries, and makes the attempts that are due (claimed in
// Redis, one process per attempt). Everything it knows lives in the queue Redis, so a restart
// of any process loses nothing: an attempt cut short is claimed again when its lease ends.
// Retries: the first after QUARRY_WEBHOOK_FIRST_RETRY_MS (times 0.5-1, jitter), each next one
// doubling up to an hour, until QUARRY_WEBHOOK_RETRY_FOR_S after the event; then `failed`.
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { QuarryConfig } from '../shared/config.ts';
import { keyScheme } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import type { WorkerMetrics } from '../shared/metrics.ts';
import type { Redis } from '../shared/redis.ts';
import { DeliveryStore, type DueDelivery } from '../shared/webhook-deliveries.ts';
import { OUTBOX_GROUP, parseOutboxEntry } from '../shared/webhook-outbox.ts';
import { checkWebhookTarget, WebhookAllowList } from '../shared/webhook-target.ts';
import { DELIVERY_HEADER, SIGNATURE_HEADER, signWebhook, WebhookStore } from '../shared/webhooks.ts';
import { type PostAnswer, postWebhook } from './webhook-post.ts';

export interface WebhookDelivererOptions {
  readonly config: QuarryConfig;
  /** The queue Redis (a non-blocking connection). */
  readonly redis: Redis;
  readonly logger: Logger;
  /** Counts each attempt's outcome (quarry_webhook_attempts_total), when given. */
  readonly metrics?: Pick<WorkerMetrics, 'webhookAttempts'>;
  /**
   * How often an idle deliverer looks at the outbox and the due deliveries. Default 100 ms. A
   * round that found a full batch, and every attempt that ends, starts the next round at once.
   */
  readonly pollMs?: number;
  /** Attempts in flight at once in this process. Default 16. */
  readonly concurrency?: number;
  /** An outbox entry read by a process that died is dispatched by another after this. Default 10 s. */
  readonly claimIdleMs?: number;
  /** How long close() lets attempts in flight finish before it cuts them short. Default 2 s. */
  readonly closeWaitMs?: number;
}

const MAX_BACKOFF_MS = 3_600_000;
/** Outbox entries read per round. */
const OUTBOX_BATCH = 100;
/** The longest pause between rounds while they fail. */
const MAX_ERROR_DELAY_MS = 5000;

/** The delay before attempt `failed + 1`, after `failed` failed attempts. */
export function retryDelayMs(firstRetryMs: number, failed: number, random = Math.random()): number {
  const base = Math.min(MAX_BACKOFF_MS, firstRetryMs * 2 ** Math.max(0, failed - 1));
  return Math.round(base * (0.5 + 0.5 * random));
}

export class WebhookDeliverer {
  readonly #o: Required<Omit<WebhookDelivererOptions, 'metrics'>> & Pick<WebhookDelivererOptions, 'metrics'>;
  readonly #deliveries: DeliveryStore;
  readonly #allow: WebhookAllowList;
  readonly #consumer = `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  readonly #inflight = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<void> | undefined;
  #groupReady = false;
  #lastAutoclaim = 0;
  #stopped = false;
  /** Rounds failed in a row (Redis away): the next round waits longer. */
  #failures = 0;
  /** An attempt ended while a round ran: run another right after it. */
  #again = false;
  #closing: Promise<void> | undefined;

  constructor(options: WebhookDelivererOptions) {
    this.#o = { pollMs: 100, concurrency: 16, claimIdleMs: 10_000, closeWaitMs: 2000, ...options };
    this.#deliveries = new DeliveryStore(options.redis, options.config.prefix, {
      retryForS: options.config.webhookRetryForS,
    });
    this.#allow = new WebhookAllowList(options.config.webhookAllow);
  }

  start(): void {
    if (this.#stopped || this.#timer !== undefined) return;
    this.#schedule(0);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#tick = this.#runOnce().then(
        (busy) => {
          this.#failures = 0;
          const again = busy || this.#again;
          this.#again = false;
          this.#tick = undefined;
          this.#schedule(again ? 0 : this.#o.pollMs);
        },
        (err: unknown) => {
          // A Redis that is away or refusing: said once per streak, and asked less often.
          if (this.#failures === 0) this.#o.logger.warn({ err }, 'webhook deliverer: a round failed');
          this.#failures += 1;
          this.#again = false;
          this.#tick = undefined;
          this.#schedule(Math.min(MAX_ERROR_DELAY_MS, this.#o.pollMs * 2 ** this.#failures));
        },
      );
    }, delayMs);
  }

  /** Starts the next round now (or right after the one running): an attempt freed a slot. */
  #wake(): void {
    if (this.#stopped || this.#failures > 0) return;
    if (this.#tick !== undefined) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#schedule(0);
  }

  /**
   * One round: dispatch what the outbox holds, then start the attempts that are due. True when
   * it found a full batch of either (more may be waiting).
   */
  async #runOnce(): Promise<boolean> {
    const dispatched = await this.#dispatchOutbox();
    const started = await this.#startDue();
    return dispatched >= OUTBOX_BATCH || started.full;
  }

  async #ensureGroup(): Promise<void> {
    if (this.#groupReady) return;
    const outbox = keyScheme(this.#o.config.prefix).webhookOutbox;
    try {
      // From the start of the stream: entries written before any deliverer ran are delivered too.
      await this.#o.redis.xgroup('CREATE', outbox, OUTBOX_GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).startsWith('BUSYGROUP')) throw err;
    }
    this.#groupReady = true;
  }

  /** Dispatches up to OUTBOX_BATCH new entries (and any a dead deliverer left); how many it read. */
  async #dispatchOutbox(): Promise<number> {
    await this.#ensureGroup();
    const { redis, config, claimIdleMs } = this.#o;
    const outbox = keyScheme(config.prefix).webhookOutbox;
    let entries: [string, string[]][] = [];
    try {
      const read = (await redis.xreadgroup(
        'GROUP',
        OUTBOX_GROUP,
        this.#consumer,
        'COUNT',
        OUTBOX_BATCH,
        'STREAMS',
        outbox,
        '>',
      )) as [string, [string, string[]][]][] | null;
      entries = read?.[0]?.[1] ?? [];
      if (Date.now() - this.#lastAutoclaim >= claimIdleMs) {
        this.#lastAutoclaim = Date.now();
        const claimed = (await redis.xautoclaim(
          outbox,
          OUTBOX_GROUP,
          this.#consumer,
          claimIdleMs,
          '0-0',
          'COUNT',
          OUTBOX_BATCH,
        )) as [string, ([string, string[]] | null)[]];
        for (const e of claimed[1]) if (e !== null) entries.push(e);
      }
    } catch (err) {
      // The stream (and with it the group) was removed, e.g. a flushed Redis: make it again.
      if (String((err as Error).message).startsWith('NOGROUP')) this.#groupReady = false;
      throw err;
    }
    for (const [id, fields] of entries) {
      const entry = parseOutboxEntry(id, fields);
      const hooks = await new WebhookStore(redis, keyScheme(config.prefix, entry.tenant)).list();
      const created = await this.#deliveries.dispatch(entry, hooks, {
        nowMs: Date.now(),
        retryForS: config.webhookRetryForS,
        logSize: config.webhookLogSize,
      });
      if (created > 0) {
        this.#o.logger.debug(
          { event: entry.type, jobId: entry.jobId, deliveries: created },
          'webhook event dispatched',
        );
      }
    }
    return entries.length;
  }

  async #startDue(): Promise<{ full: boolean }> {
    const free = this.#o.concurrency - this.#inflight.size;
    if (free <= 0 || this.#stopped) return { full: false };
    const { webhookTimeoutMs } = this.#o.config;
    // A lease covers the name lookup and the POST, each bounded by the timeout, and some slack.
    const leaseMs = 2 * webhookTimeoutMs + 5000;
    const claimed = await this.#deliveries.claim(Date.now(), leaseMs, free);
    for (const member of claimed) {
      const attempt = this.#attempt(member)
        .catch((err: unknown) =>
          this.#o.logger.warn({ err, delivery: member }, 'webhook attempt failed to record'),
        )
        .finally(() => {
          this.#inflight.delete(attempt);
          this.#wake();
        });
      this.#inflight.add(attempt);
    }
    return { full: claimed.length === free };
  }

  async #attempt(member: string): Promise<void> {
    const { redis, config, logger } = this.#o;
    const d = await this.#deliveries.begin(member);
    if (d === null) return;
    const definition = await new WebhookStore(redis, keyScheme(config.prefix, d.tenant)).get(d.webhook);
    if (definition === null || definition.id !== d.hookId) {
      await this.#deliveries.settle(
        d,
        { kind: 'dropped' },
        { status: null, body: null, error: 'the webhook was deleted' },
      );
      this.#o.metrics?.webhookAttempts.inc({ outcome: 'dropped' });
      return;
    }
    const answer = await this.#post(d, definition.url, definition.secret);
    if (this.#abort.signal.aborted && !answer.ok) return; // cut short by close(): the lease brings it back
    const now = Date.now();
    if (answer.ok) {
      await this.#deliveries.settle(d, { kind: 'delivered' }, answer, now);
      this.#o.metrics?.webhookAttempts.inc({ outcome: 'delivered' });
      logger.debug({ delivery: d.id, webhook: d.webhook, attempt: d.attempt }, 'webhook delivered');
      return;
    }
    const nextAtMs = now + retryDelayMs(config.webhookFirstRetryMs, d.attempt);
    const kind = nextAtMs > d.giveUpAtMs ? 'failed' : 'retry';
    await this.#deliveries.settle(d, { kind, nextAtMs }, answer, now);
    this.#o.metrics?.webhookAttempts.inc({ outcome: kind });
    logger.info(
      {
        delivery: d.id,
        webhook: d.webhook,
        attempt: d.attempt,
        status: answer.status,
        error: answer.error,
        kind,
      },
      kind === 'retry' ? 'webhook attempt failed: retrying' : 'webhook delivery given up',
    );
  }

  async #post(d: DueDelivery, url: string, secret: string): Promise<PostAnswer> {
    const { webhookTimeoutMs } = this.#o.config;
    let target: Awaited<ReturnType<typeof checkWebhookTarget>>;
    try {
      // Checked again at every attempt: the name may resolve elsewhere by now.
      target = await checkWebhookTarget(url, this.#allow, webhookTimeoutMs);
    } catch (err) {
      return { ok: false, status: null, body: null, error: (err as Error).message };
    }
    return postWebhook({
      target,
      body: d.body,
      timeoutMs: webhookTimeoutMs,
      signal: this.#abort.signal,
      headers: {
        [SIGNATURE_HEADER]: signWebhook(secret, d.body, Math.floor(Date.now() / 1000)),
        [DELIVERY_HEADER]: d.id,
      },
    });
  }

  /** Stops; attempts in flight get closeWaitMs to finish, then are cut short. Safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stopped = true;
      clearTimeout(this.#timer);
      await this.#tick;
      let timer: NodeJS.Timeout | undefined;
      const wait = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#o.closeWaitMs);
      });
      await Promise.race([Promise.allSettled([...this.#inflight]), wait]);
      clearTimeout(timer);
      this.#abort.abort();
      await Promise.allSettled([...this.#inflight]);
    })();
    return this.#closing;
  }
}
