// A small pool of Polars worker threads. Threads start on demand and are kept: starting one
// (modules + nodejs-polars) costs 130-250 ms, a 5k-row aggregation about 10 ms. Each thread runs one
// task at a time; Polars parallelizes a task itself on its process-wide thread pool.
import type { ResourceLimits, Worker } from 'node:worker_threads';
import { QuarryError } from '../../shared/errors.ts';
import { type Logger, silentLogger } from '../../shared/logger.ts';
import { startModuleThread } from '../../shared/ts-runtime.ts';
import {
  fromWireError,
  type TaskResults,
  type ThreadRequest,
  type ThreadResponse,
  type ThreadTask,
} from './polars-protocol.ts';

export interface PolarsPoolOptions {
  /** Worker threads at most. Default 2. */
  size?: number;
  /** Heap limits of each thread (JS heap only: Polars' own memory is native). */
  resourceLimits?: ResourceLimits;
  logger?: Logger;
}

interface Pending {
  readonly id: number;
  readonly task: ThreadTask;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

interface Slot {
  readonly worker: Worker;
  current: Pending | undefined;
}

// Run from source (this file is .ts) the thread entry is .ts too; compiled, both are .js.
const THREAD_URL = new URL(
  import.meta.url.endsWith('.ts') ? './polars-thread.ts' : './polars-thread.js',
  import.meta.url,
);

function startThread(resourceLimits: ResourceLimits | undefined): Worker {
  return startModuleThread(THREAD_URL, resourceLimits === undefined ? {} : { resourceLimits });
}

export class PolarsPool {
  readonly #size: number;
  readonly #resourceLimits: ResourceLimits | undefined;
  readonly #logger: Logger;
  readonly #slots = new Set<Slot>();
  readonly #queue: Pending[] = [];
  #nextId = 1;
  #closing: Promise<void> | undefined;
  #destroying: Promise<void> | undefined;
  #onIdle: (() => void) | undefined;

  constructor(options: PolarsPoolOptions = {}) {
    this.#size = Math.max(1, options.size ?? 2);
    this.#resourceLimits = options.resourceLimits;
    this.#logger = options.logger ?? silentLogger();
  }

  /**
   * Runs a task on a free thread. Aborting `signal` rejects with its reason: a queued task is
   * dropped, a running one's thread is terminated (Polars cannot be interrupted otherwise) and
   * replaced on demand.
   */
  run<T extends ThreadTask>(task: T, signal?: AbortSignal): Promise<TaskResults[T['kind']]> {
    if (this.#closing !== undefined || this.#destroying !== undefined) {
      return Promise.reject(new QuarryError('QUARRY_ERR_ENGINE', 'the Polars engine is closed'));
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const pending: Pending = {
        id: this.#nextId++,
        task,
        resolve: (value) => {
          signal?.removeEventListener('abort', onAbort);
          (resolve as (value: unknown) => void)(value);
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      const onAbort = () => this.#abort(pending, signal!.reason as Error);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(pending);
      this.#dispatch();
    });
  }

  #abort(pending: Pending, reason: Error): void {
    const queued = this.#queue.indexOf(pending);
    if (queued !== -1) {
      this.#queue.splice(queued, 1);
      pending.reject(reason);
      return;
    }
    for (const slot of this.#slots) {
      if (slot.current !== pending) continue;
      slot.current = undefined;
      pending.reject(reason);
      // The exit handler removes the slot; the next task gets a fresh thread.
      void slot.worker.terminate();
      return;
    }
  }

  /** Starts every thread and waits until each has loaded Polars. */
  async warmup(): Promise<void> {
    await Promise.all(Array.from({ length: this.#size }, () => this.run({ kind: 'ping' })));
  }

  /** Finishes the tasks already accepted, then stops the threads. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (!this.#idle()) await new Promise<void>((resolve) => (this.#onIdle = resolve));
      await this.#terminateAll();
    })();
    return this.#closing;
  }

  /** Fails every queued and running task and stops the threads now. Idempotent. */
  destroy(): Promise<void> {
    this.#destroying ??= (async () => {
      const error = () => new QuarryError('QUARRY_ERR_ENGINE', 'the Polars engine was destroyed');
      for (const pending of this.#queue.splice(0)) pending.reject(error());
      for (const slot of this.#slots) {
        slot.current?.reject(error());
        slot.current = undefined;
      }
      await this.#terminateAll();
      this.#onIdle?.();
    })();
    return this.#destroying;
  }

  #idle(): boolean {
    return this.#queue.length === 0 && [...this.#slots].every((s) => s.current === undefined);
  }

  #dispatch(): void {
    while (this.#queue.length > 0 && this.#destroying === undefined) {
      let slot = [...this.#slots].find((s) => s.current === undefined);
      if (slot === undefined) {
        if (this.#slots.size >= this.#size) return;
        slot = this.#spawn();
      }
      const pending = this.#queue.shift()!;
      slot.current = pending;
      slot.worker.ref(); // a running task keeps the process alive; an idle thread does not
      try {
        slot.worker.postMessage({ id: pending.id, task: pending.task } satisfies ThreadRequest);
      } catch (error) {
        slot.current = undefined;
        slot.worker.unref();
        pending.reject(
          new QuarryError('QUARRY_ERR_ENGINE', 'the task could not be sent to a Polars thread', {
            cause: error,
          }),
        );
      }
    }
    if (this.#idle()) this.#onIdle?.();
  }

  #spawn(): Slot {
    const started = performance.now();
    const slot: Slot = { worker: startThread(this.#resourceLimits), current: undefined };
    let first = true;
    slot.worker.on('message', (response: ThreadResponse) => {
      if (first) {
        first = false;
        this.#logger.debug(
          { startMs: Math.round(performance.now() - started) },
          'polars thread answered first task',
        );
      }
      this.#settle(slot, response);
    });
    slot.worker.on('error', (error) => {
      this.#logger.error({ err: error }, 'polars thread crashed');
      this.#fail(
        slot,
        new QuarryError('QUARRY_ERR_ENGINE', `a Polars thread crashed: ${error.message}`, { cause: error }),
      );
    });
    slot.worker.on('exit', (code) => {
      this.#slots.delete(slot);
      this.#fail(slot, new QuarryError('QUARRY_ERR_ENGINE', `a Polars thread exited (code ${code})`));
      this.#dispatch(); // queued tasks get a fresh thread
    });
    this.#slots.add(slot);
    return slot;
  }

  #settle(slot: Slot, response: ThreadResponse): void {
    const pending = slot.current;
    if (pending === undefined || pending.id !== response.id) return; // answered after destroy()
    slot.current = undefined;
    slot.worker.unref();
    if (response.ok) pending.resolve(response.value);
    else pending.reject(fromWireError(response.error));
    this.#dispatch();
  }

  #fail(slot: Slot, error: QuarryError): void {
    const pending = slot.current;
    slot.current = undefined;
    pending?.reject(error);
  }

  async #terminateAll(): Promise<void> {
    await Promise.all([...this.#slots].map((slot) => slot.worker.terminate()));
  }
}
