// One pub/sub subscription per process to the job events channel, fanned out to in-process
// listeners by job id. Waiters (SDK wait, HTTP ?wait=, SSE) share it instead of each holding a
// Redis connection or polling.
import type { KeyScheme } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import type { Redis } from '../shared/redis.ts';
import { closeRedis } from '../shared/redis.ts';
import type { JobEvent } from '../shared/status.ts';

export type JobEventListener = (event: JobEvent) => void;

export class JobEvents {
  readonly #subscriber: Redis;
  readonly #channel: string;
  readonly #logger: Logger;
  readonly #listeners = new Map<string, Set<JobEventListener>>();
  #ready: Promise<void> | undefined;

  /** Takes ownership of `subscriber` (a dedicated connection: it enters subscribe mode). */
  constructor(subscriber: Redis, keys: KeyScheme, logger: Logger) {
    this.#subscriber = subscriber;
    this.#channel = keys.eventsChannel;
    this.#logger = logger;
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.#channel) this.#dispatch(message);
    });
  }

  /** Resolves once the subscription is active; events published after that are seen. */
  ready(): Promise<void> {
    this.#ready ??= this.#subscriber.subscribe(this.#channel).then(() => undefined);
    return this.#ready;
  }

  /** Listens for one job's events; returns the function that stops listening. */
  on(jobId: string, listener: JobEventListener): () => void {
    let set = this.#listeners.get(jobId);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(jobId, set);
    }
    set.add(listener);
    return () => {
      const current = this.#listeners.get(jobId);
      if (current === undefined) return;
      current.delete(listener);
      if (current.size === 0) this.#listeners.delete(jobId);
    };
  }

  #dispatch(message: string): void {
    let event: JobEvent;
    try {
      event = JSON.parse(message) as JobEvent;
    } catch (error) {
      this.#logger.warn({ err: error }, 'ignoring a malformed job event');
      return;
    }
    const set = this.#listeners.get(event.jobId);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        listener(event);
      } catch (error) {
        this.#logger.error({ err: error, jobId: event.jobId }, 'a job event listener threw');
      }
    }
  }

  async close(): Promise<void> {
    this.#listeners.clear();
    await closeRedis(this.#subscriber);
  }
}
