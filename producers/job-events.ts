// One pub/sub subscription per process to the job events channel, fanned out to in-process
// listeners by job id. Waiters (SDK wait, HTTP ?wait=, SSE) share it instead of each holding a
// Redis connection or polling.

import { QuarryError } from '../shared/errors.ts';
import type { KeyScheme } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import type { Redis } from '../shared/redis.ts';
import { closeRedis } from '../shared/redis.ts';
import { isFinalState, type JobEvent, type JobStatus, type StatusStore } from '../shared/status.ts';

export type JobEventListener = (event: JobEvent) => void;

export class JobEvents {
  readonly #subscriber: Redis;
  readonly #channel: string;
  readonly #logger: Logger;
  readonly #listeners = new Map<string, Set<JobEventListener>>();
  readonly #resyncs = new Set<() => void>();
  #ready: Promise<void> | undefined;

  /** Takes ownership of `subscriber` (a dedicated connection: it enters subscribe mode). */
  constructor(subscriber: Redis, keys: KeyScheme, logger: Logger) {
    this.#subscriber = subscriber;
    this.#channel = keys.eventsChannel;
    this.#logger = logger;
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.#channel) this.#dispatch(message);
    });
    // After a reconnect, changes published meanwhile are lost. ioredis re-subscribes right after
    // 'ready'; a PING sent after that is answered once the subscription is back, and then every
    // waiter re-reads its record.
    subscriber.on('ready', () => {
      if (this.#ready === undefined) return;
      setImmediate(() => {
        subscriber.ping().then(
          () => {
            for (const resync of [...this.#resyncs]) resync();
          },
          () => undefined,
        );
      });
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

  /** Calls `resync` after each reconnect (events may have been missed); returns the off switch. */
  onResync(resync: () => void): () => void {
    this.#resyncs.add(resync);
    return () => this.#resyncs.delete(resync);
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

/**
 * Resolves with a job's final status (completed, failed or cancelled); rejects with
 * QUARRY_ERR_WAIT_TIMEOUT after `timeoutMs`, QUARRY_ERR_JOB_NOT_FOUND for an unknown job.
 */
export function waitForFinal(
  events: JobEvents,
  statuses: StatusStore,
  jobId: string,
  options: { timeoutMs: number; onEvent?: (event: JobEvent) => void },
): Promise<JobStatus | JobEvent> {
  const { timeoutMs } = options;
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (settle: () => void) => {
      if (done) return;
      done = true;
      off();
      clearTimeout(timer);
      settle();
    };
    const offEvents = events.on(jobId, (event) => {
      options.onEvent?.(event);
      if (isFinalState(event.state)) finish(() => resolve(event));
    });
    // Read again after a reconnect of the subscription, which may have missed the change; a
    // failed re-read is not the job's failure (the timeout still bounds the wait).
    const offResync = events.onResync(() => check(true));
    const off = () => {
      offEvents();
      offResync();
    };
    const timer = setTimeout(
      () =>
        finish(() =>
          reject(
            new QuarryError('QUARRY_ERR_WAIT_TIMEOUT', `job ${jobId} did not finish within ${timeoutMs} ms`),
          ),
        ),
      timeoutMs,
    );
    // Listening first, then reading the record: a change between the two is not missed.
    // The state first: the whole record is read only once it is final.
    function check(quietly: boolean): void {
      const notFound = () =>
        finish(() => reject(new QuarryError('QUARRY_ERR_JOB_NOT_FOUND', `no job ${jobId}`)));
      statuses
        .state(jobId)
        .then((state) => {
          if (state === null) return notFound();
          if (!isFinalState(state) || done) return;
          return statuses.get(jobId).then((status) => {
            if (status === null) notFound();
            // Enqueued again in between: its events will follow.
            else if (isFinalState(status.state)) finish(() => resolve(status));
          });
        })
        .then(
          () => undefined,
          (error: unknown) => {
            if (!quietly) finish(() => reject(error));
          },
        );
    }
    check(false);
  });
}

/** A job's status, then each of its events, until the final state. */
export async function* watchJob(
  events: JobEvents,
  statuses: StatusStore,
  jobId: string,
  options: { signal?: AbortSignal } = {},
): AsyncGenerator<JobEvent | JobStatus> {
  const queue: JobEvent[] = [];
  let wake: (() => void) | undefined;
  const offEvents = events.on(jobId, (event) => {
    queue.push(event);
    wake?.();
  });
  // After a reconnect, the record tells what the lost events would have: a final state ends it.
  const offResync = events.onResync(() => {
    statuses.get(jobId).then(
      (status) => {
        if (status !== null && isFinalState(status.state)) {
          queue.push(status);
          wake?.();
        }
      },
      () => undefined,
    );
  });
  const off = () => {
    offEvents();
    offResync();
  };
  const onAbort = () => wake?.();
  options.signal?.addEventListener('abort', onAbort);
  try {
    const status = await statuses.get(jobId);
    if (status === null) throw new QuarryError('QUARRY_ERR_JOB_NOT_FOUND', `no job ${jobId}`);
    yield status;
    if (isFinalState(status.state)) return;
    while (!options.signal?.aborted) {
      const event = queue.shift();
      if (event === undefined) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
        continue;
      }
      yield event;
      if (isFinalState(event.state)) return;
    }
  } finally {
    off();
    options.signal?.removeEventListener('abort', onAbort);
  }
}
