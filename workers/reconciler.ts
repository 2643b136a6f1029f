// The reconciler: finds jobs whose status record says queued/active while BullMQ no longer
// holds them, and puts them back in the queue (or fails them, QUARRY_ERR_JOB_ORPHANED, when
// their inline data is gone). That happens when a write was refused at the wrong moment: an
// enqueue whose BullMQ add failed and whose rollback failed too, a process that died between
// the two steps, a worker whose final attempt could not record how it ended (BullMQ dropped the
// job, the record stayed `active`).
//
// It reads only the live-jobs sorted set (keys.liveJobs: every queued/active record, scored by
// when it was last looked at), never SCANs. One worker at a time runs it: each round takes a
// lock for one interval (SET NX PX, not released, so the fleet reconciles at most once per
// interval). A round looks at the members not looked at for an interval, oldest first, at most
// BATCH of them, and stamps the healthy ones, so every live record is checked about once per
// interval whatever the backlog. Everything it does is idempotent: adding a job id BullMQ
// already holds is a no-op, and a record that ended meanwhile is left as it is.
import { randomBytes } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { QuarryConfig } from '../shared/config.ts';
import { fairnessEnabled, placeJob, tenantPolicy } from '../shared/fairness.ts';
import { jobOptions } from '../shared/job-options.ts';
import { keyScheme, parseLiveMember, QUEUE_NAMES, type QueueName } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import type { CacheConnection, Redis } from '../shared/redis.ts';
import { isFinalState } from '../shared/status.ts';
import { jobScope } from './job-scope.ts';

const BATCH = 500;

export interface ReconcilerDeps {
  config: QuarryConfig;
  queueRedis: Redis;
  /** Where results live: a lost job whose result exists needs no data to complete. */
  cacheRedis: CacheConnection;
  /** Queues to put lost jobs back into (connections of the worker's own). */
  queues: Record<QueueName, Queue>;
  logger: Logger;
}

/** What one round did (logged; tests read outcomes from status records, not from this). */
export interface ReconcileRound {
  checked: number;
  requeued: number;
  orphaned: number;
  dropped: number;
}

type Verdict = 'healthy' | 'requeued' | 'orphaned' | 'dropped';

export class Reconciler {
  readonly #d: ReconcilerDeps;
  readonly #token = randomBytes(8).toString('hex');
  readonly #keys;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #closed = false;

  constructor(deps: ReconcilerDeps) {
    this.#d = deps;
    this.#keys = keyScheme(deps.config.prefix);
  }

  start(): void {
    if (this.#closed || this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      // One round at a time in this process; a slow Redis makes rounds late, never piled up.
      this.#round ??= this.round()
        .then((r) => {
          if (r !== null && r.requeued + r.orphaned > 0) {
            this.#d.logger.warn(r, 'reconciled jobs left without a queue entry');
          }
        })
        .catch((err: unknown) => this.#d.logger.warn({ err }, 'reconciliation round failed'))
        .finally(() => {
          this.#round = undefined;
        });
    }, this.#d.config.reconcileIntervalMs);
  }

  /** One round, if this worker gets the lock; null when another worker has this interval. */
  async round(): Promise<ReconcileRound | null> {
    const { queueRedis, config } = this.#d;
    const interval = config.reconcileIntervalMs;
    const locked = await queueRedis.set(this.#keys.reconcileLock, this.#token, 'PX', interval, 'NX');
    if (locked === null) return null;
    const members = await queueRedis.zrangebyscore(
      this.#keys.liveJobs,
      '-inf',
      Date.now() - interval,
      'LIMIT',
      0,
      BATCH,
    );
    const verdicts = await Promise.all(members.map((m) => this.#check(m)));
    const count = (v: Verdict) => verdicts.filter((x) => x === v).length;
    return {
      checked: members.length,
      requeued: count('requeued'),
      orphaned: count('orphaned'),
      dropped: count('dropped'),
    };
  }

  async #check(member: string): Promise<Verdict> {
    const { config, queueRedis, cacheRedis, queues, logger } = this.#d;
    const live = this.#keys.liveJobs;
    const parsed = parseLiveMember(member);
    if (parsed === null) {
      await queueRedis.zrem(live, member);
      return 'dropped';
    }
    const { tenant, jobId } = parsed;
    const scope = jobScope(config, queueRedis, tenant);
    const record = await scope.status.live(jobId);
    // Expired (TTL) or ended without leaving the set: nothing to watch any more.
    if (record.state === null || isFinalState(record.state)) {
      await queueRedis.zrem(live, member);
      return 'dropped';
    }
    const queue: QueueName = record.type === 'index' ? QUEUE_NAMES.index : QUEUE_NAMES.aggregate;
    const [held, owned] = await Promise.all([
      queueRedis.exists(this.#keys.bullJob(queue, jobId)),
      record.owner === null ? 0 : queueRedis.exists(this.#keys.bullJob(QUEUE_NAMES.aggregate, record.owner)),
    ]);
    if (held === 1 || owned === 1) {
      await queueRedis.zadd(live, 'XX', Date.now(), member);
      return 'healthy';
    }
    const log = logger.child({ jobId, tenant, state: record.state });
    const payload = parsePayload(record.payload);
    let gone: string | undefined;
    if (payload === undefined) gone = 'its record holds no payload to enqueue again';
    else if (needsInlineData(payload) && (await queueRedis.exists(scope.keys.inlineData(jobId))) === 0) {
      const resultKey = (payload as { resultKey?: unknown }).resultKey;
      const computed =
        typeof resultKey === 'string' && (await cacheRedis.exists(scope.keys.result(resultKey))) === 1;
      // A result that exists completes the job without its data (the worker reuses it).
      if (!computed) gone = 'its inline data is gone';
    }
    if (gone !== undefined) {
      const message = `the job was lost from the queue and cannot run again: ${gone}`;
      await scope.status.endIfLive(jobId, 'failed', { code: 'QUARRY_ERR_JOB_ORPHANED', message });
      await queueRedis.del(scope.keys.inlineData(jobId));
      log.warn({ reason: gone }, 'failed a job lost from the queue');
      return 'orphaned';
    }
    const options = jobOptions(config, jobId);
    // With tenants, a job put back takes a new place in its tenant's lane (shared/fairness.ts).
    if (tenant !== undefined && fairnessEnabled(config)) {
      const policy = tenantPolicy(config, tenant);
      options.priority = await placeJob(queueRedis, scope.keys, queue, policy, record.priority);
    }
    await queues[queue].add(queue, payload, options);
    await queueRedis.zadd(live, 'XX', Date.now(), member);
    log.warn('enqueued again a job lost from the queue');
    return 'requeued';
  }

  /** Stops the timer and waits for a running round; safe to call twice. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#round;
  }
}

function parsePayload(text: string | null): object | undefined {
  if (text === null) return undefined;
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === 'object' && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the job reads inline data (aggregations: spec.dataset; index builds: source). */
function needsInlineData(payload: object): boolean {
  const p = payload as { spec?: { dataset?: { kind?: unknown } }; source?: { kind?: unknown } };
  return p.spec?.dataset?.kind === 'inline' || p.source?.kind === 'inline';
}
