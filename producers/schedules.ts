// Scheduled aggregations, as the SDK offers them (`client.schedules`): register a spec under a
// name to refresh on an interval or a cron pattern (BullMQ job schedulers run the ticks; workers
// compute each run, see workers/aggregate-processor.ts), list, read, remove, and read the alias
// that points at the newest result.
import type { Queue } from 'bullmq';
import type { AddressedAggregation } from '../shared/aggregation.ts';
import type { QuarryConfig } from '../shared/config.ts';
import { QuarryError } from '../shared/errors.ts';
import { jobOptions } from '../shared/job-options.ts';
import type { KeyScheme } from '../shared/keys.ts';
import type { Redis } from '../shared/redis.ts';
import {
  checkScheduleName,
  parseScheduleRequest,
  type RefreshJobData,
  type ScheduleInfo,
  type ScheduleRequestInput,
  schedulerId,
} from '../shared/schedules.ts';

export interface SchedulesDeps {
  readonly config: QuarryConfig;
  readonly keys: KeyScheme;
  readonly tenant: string | undefined;
  readonly queueRedis: Redis;
  readonly aggregateQueue: Queue;
  /** Validates and addresses a spec (the client's own `address`). */
  address(spec: unknown): Promise<AddressedAggregation>;
  resultBytes(resultKey: string): Promise<Buffer | null>;
}

export class Schedules {
  readonly #d: SchedulesDeps;

  constructor(deps: SchedulesDeps) {
    this.#d = deps;
  }

  /**
   * Registers (or replaces) a scheduled aggregation: the spec is validated now, then refreshed
   * every `everyMs` (first run at once) or on a `cron` pattern; each run updates the alias.
   * The request is validated whole before anything is written; a write that fails leaves the
   * schedule as it was (record and BullMQ job scheduler), or absent if there was none.
   */
  async put(name: string, request: ScheduleRequestInput | unknown): Promise<ScheduleInfo> {
    const { config, keys, tenant, queueRedis, aggregateQueue } = this.#d;
    checkScheduleName(name);
    const r = parseScheduleRequest(request);
    if (typeof r.spec === 'object' && r.spec !== null && 'priority' in r.spec) {
      throw new QuarryError(
        'QUARRY_ERR_VALIDATION',
        'spec.priority: scheduled refreshes always run as batch (docs/FAIRNESS.md)',
        { field: 'spec.priority' },
      );
    }
    await this.#d.address(r.spec); // bad specs and missing files fail here, not at every tick
    const data: RefreshJobData = { v: 1, kind: 'refresh', name, spec: r.spec, ...(tenant ? { tenant } : {}) };
    const id = schedulerId(tenant, name);
    const previous = await aggregateQueue.getJobScheduler(id);
    // The scheduler first: if BullMQ refuses it, nothing of the new schedule exists yet.
    await aggregateQueue.upsertJobScheduler(
      id,
      r.everyMs !== undefined
        ? { every: r.everyMs, immediately: true }
        : { pattern: r.cron!, ...(r.tz ? { tz: r.tz } : {}) },
      {
        name: 'refresh',
        data,
        opts: jobOptions(config),
      },
    );
    try {
      await queueRedis
        .multi()
        .hset(keys.schedule(name), {
          everyMs: r.everyMs === undefined ? '' : String(r.everyMs),
          cron: r.cron ?? '',
          tz: r.tz ?? '',
          createdAt: String(Date.now()),
        })
        .sadd(keys.schedules, name)
        .exec();
    } catch (error) {
      await this.#restoreScheduler(id, previous).catch(() => undefined);
      throw error;
    }
    return (await this.get(name))!;
  }

  /** Puts back the scheduler a failed put replaced (or removes the one it created). */
  async #restoreScheduler(
    id: string,
    previous: Awaited<ReturnType<Queue['getJobScheduler']>>,
  ): Promise<void> {
    const queue = this.#d.aggregateQueue;
    if (!previous) {
      await queue.removeJobScheduler(id);
      return;
    }
    await queue.upsertJobScheduler(
      id,
      previous.every
        ? { every: Number(previous.every) }
        : { pattern: previous.pattern!, ...(previous.tz ? { tz: previous.tz } : {}) },
      { name: previous.name, ...(previous.template ?? {}) },
    );
  }

  async get(name: string): Promise<ScheduleInfo | null> {
    const { keys, tenant, queueRedis, aggregateQueue } = this.#d;
    checkScheduleName(name);
    const [h, alias, scheduler] = await Promise.all([
      queueRedis.hgetall(keys.schedule(name)),
      queueRedis.hgetall(keys.alias(name)),
      aggregateQueue.getJobScheduler(schedulerId(tenant, name)),
    ]);
    if (h.createdAt === undefined) return null;
    return {
      name,
      everyMs: h.everyMs ? Number(h.everyMs) : null,
      cron: h.cron || null,
      tz: h.tz || null,
      next: scheduler?.next ? new Date(scheduler.next).toISOString() : null,
      resultKey: alias.resultKey ?? null,
      refreshedAt: alias.refreshedAt ? new Date(Number(alias.refreshedAt)).toISOString() : null,
    };
  }

  async list(): Promise<ScheduleInfo[]> {
    const names = (await this.#d.queueRedis.smembers(this.#d.keys.schedules)).sort();
    const infos = await Promise.all(names.map((n) => this.get(n)));
    return infos.filter((i): i is ScheduleInfo => i !== null);
  }

  /** Stops a schedule and forgets it (its alias too); false when there was none. */
  async remove(name: string): Promise<boolean> {
    const { keys, tenant, queueRedis, aggregateQueue } = this.#d;
    checkScheduleName(name);
    await aggregateQueue.removeJobScheduler(schedulerId(tenant, name));
    const [[, removed]] = (await queueRedis
      .multi()
      .srem(keys.schedules, name)
      .del(keys.schedule(name), keys.alias(name))
      .exec()) as [[Error | null, number], [Error | null, number]];
    return removed === 1;
  }

  /** The newest result of a schedule, as stored bytes; null before the first run completes. */
  async alias(name: string): Promise<{ resultKey: string; bytes: Buffer } | null> {
    checkScheduleName(name);
    const resultKey = await this.#d.queueRedis.hget(this.#d.keys.alias(name), 'resultKey');
    if (resultKey === null) return null;
    const bytes = await this.#d.resultBytes(resultKey);
    return bytes === null ? null : { resultKey, bytes };
  }
}
