// QUARRY_QUEUE_MIN_REPLICAS: an enqueue is acknowledged only once that many replicas of the queue
// Redis have its writes, so a failover to one of them loses no acknowledged job. Redis' WAIT
// counts the replicas that have every write of the connection it runs on, and blocks that
// connection meanwhile; so enqueues write on a connection of their own (producers/core.ts), and
// concurrent enqueues share WAITs instead of queueing one each behind the others: one WAIT runs at
// a time, and every enqueue that finished its writes while it ran waits for the next one. Once a
// WAIT comes back short, enqueues first ask the primary (INFO replication, on another connection)
// how many replicas it has in sync, and are refused before writing anything while it has too
// few: otherwise each would write, then wait the whole timeout behind the others' WAITs.
import { QuarryError } from '../shared/errors.ts';
import type { Redis } from '../shared/redis.ts';

export interface ReplicaWaitOptions {
  /** Replicas that must confirm; 0 makes wait() resolve at once. */
  readonly replicas: number;
  /** WAIT's own bound; an enqueue waits at most about twice this (one running WAIT, then its own). */
  readonly timeoutMs: number;
}

export class ReplicaWait {
  readonly #redis: Redis;
  readonly #probe: Redis;
  readonly #options: ReplicaWaitOptions;
  /** The last WAIT came back short (or failed): check() asks the primary before an enqueue writes. */
  #short = false;
  #probing: Promise<number | undefined> | undefined;
  /** The WAIT running now: it covers only writes that finished before it was sent. */
  #running: Promise<number> | undefined;
  /** The WAIT to send when the running one returns, shared by everyone who asked meanwhile. */
  #next: Promise<number> | undefined;

  /** `redis` runs the enqueues' writes and the WAITs; `probe`, a connection never blocked, INFO. */
  constructor(redis: Redis, probe: Redis, options: ReplicaWaitOptions) {
    this.#redis = redis;
    this.#probe = probe;
    this.#options = options;
  }

  /**
   * Before an enqueue writes: after a short WAIT, rejects with QUARRY_ERR_REDIS_NOT_REPLICATED
   * while the primary has fewer replicas in sync than asked for (nothing written yet).
   */
  async check(): Promise<void> {
    const { replicas } = this.#options;
    if (replicas === 0 || !this.#short) return;
    this.#probing ??= this.#onlineReplicas().finally(() => {
      this.#probing = undefined;
    });
    const online = await this.#probing;
    // Not a primary (a failover under way): the write itself will be refused, with its code.
    if (online === undefined || online >= replicas) return;
    throw new QuarryError(
      'QUARRY_ERR_REDIS_NOT_REPLICATED',
      `the queue Redis primary has ${online} of the ${replicas} replicas QUARRY_QUEUE_MIN_REPLICAS asks for: nothing was written`,
      { retryAfterS: 1 },
    );
  }

  /**
   * Replicas the primary has in sync: online, and acknowledged within the lag WAIT could wait
   * out (replicas acknowledge every second; a frozen one stays connected but its lag grows).
   * Undefined when the server is not a primary.
   */
  async #onlineReplicas(): Promise<number | undefined> {
    const info = await this.#probe.info('replication');
    if (!/^role:master\r?$/m.test(info)) return undefined;
    const maxLagS = Math.max(2, Math.ceil(this.#options.timeoutMs / 1000));
    let online = 0;
    for (const [, fields] of info.matchAll(/^slave\d+:(.*?)\r?$/gm)) {
      const lag = Number(/(?:^|,)lag=(\d+)/.exec(fields ?? '')?.[1]);
      if (/(?:^|,)state=online(?:,|$)/.test(fields ?? '') && lag <= maxLagS) online++;
    }
    return online;
  }

  /**
   * Resolves once `replicas` replicas have every write this connection finished before the call;
   * rejects with QUARRY_ERR_REDIS_NOT_REPLICATED when fewer confirm within the timeout (the
   * writes stay on the primary: they are not taken back), or with the Redis error.
   */
  async wait(): Promise<void> {
    const { replicas, timeoutMs } = this.#options;
    if (replicas === 0) return;
    let confirmed: number;
    try {
      confirmed = await this.#nextWait();
    } catch (error) {
      this.#short = true;
      throw error;
    }
    this.#short = confirmed < replicas;
    if (confirmed >= replicas) return;
    throw new QuarryError(
      'QUARRY_ERR_REDIS_NOT_REPLICATED',
      `${confirmed} of the ${replicas} replicas QUARRY_QUEUE_MIN_REPLICAS asks for confirmed the enqueue within ${timeoutMs} ms: not acknowledged, though the job may still run`,
      { retryAfterS: Math.max(1, Math.ceil(timeoutMs / 1000)) },
    );
  }

  #nextWait(): Promise<number> {
    if (this.#running === undefined) return this.#send();
    this.#next ??= this.#running
      .catch(() => 0)
      .then(() => {
        this.#next = undefined;
        return this.#send();
      });
    return this.#next;
  }

  #send(): Promise<number> {
    const sent = this.#redis.wait(this.#options.replicas, this.#options.timeoutMs) as Promise<number>;
    this.#running = sent;
    const clear = () => {
      if (this.#running === sent) this.#running = undefined;
    };
    sent.then(clear, clear);
    return sent;
  }
}
