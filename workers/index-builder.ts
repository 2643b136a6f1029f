// Index builds on kept worker threads. A fresh thread costs 130-250 ms to start (modules)
// and builds with a cold JIT (a 10k-document build: ~700 ms cold, ~230 ms warm), so a worker
// process keeps up to `size` build threads alive between jobs. One build per thread at a time;
// aborting a build terminates its thread (nothing else can stop a synchronous build).
import type { ResourceLimits, Worker } from 'node:worker_threads';
import { isErrorCode, QuarryError } from '../shared/errors.ts';
import type { BuildOptions } from '../shared/search/build.ts';
import type { ExtensionOptions } from '../shared/search/extension.ts';
import { startModuleThread } from '../shared/ts-runtime.ts';
import type { BuildInput, BuildThreadReply, BuildThreadRequest } from './index-build-thread.ts';

const ENTRY_URL = new URL(
  import.meta.url.endsWith('.ts') ? './index-build-thread-entry.ts' : './index-build-thread-entry.js',
  import.meta.url,
);

function startThread(resourceLimits: ResourceLimits | undefined): Worker {
  return startModuleThread(ENTRY_URL, resourceLimits === undefined ? {} : { resourceLimits });
}

export interface IndexBuilderOptions {
  /** Threads kept warm (builds at once). Default 1. */
  size?: number;
  resourceLimits?: ResourceLimits;
}

export class IndexBuilder {
  readonly #size: number;
  readonly #resourceLimits: ResourceLimits | undefined;
  readonly #idle: Worker[] = [];
  readonly #busy = new Set<Worker>();
  #closed = false;

  constructor(options: IndexBuilderOptions = {}) {
    this.#size = Math.max(1, options.size ?? 1);
    this.#resourceLimits = options.resourceLimits;
  }

  /** Builds on a warm thread; the documents (a JSON array) are transferred when an ArrayBuffer. */
  build(
    input: BuildInput,
    options: BuildOptions & ExtensionOptions & { signal?: AbortSignal },
  ): Promise<Uint8Array<ArrayBuffer>> {
    if (this.#closed)
      return Promise.reject(new QuarryError('QUARRY_ERR_ENGINE', 'the index builder is closed'));
    const { signal, ...buildOptions } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const worker = this.#idle.pop() ?? startThread(this.#resourceLimits);
    this.#busy.add(worker);
    const request: BuildThreadRequest = { documents: input, options: buildOptions };
    return new Promise((resolve, reject) => {
      let settled = false;
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        signal?.removeEventListener('abort', onAbort);
        this.#busy.delete(worker);
      };
      const finish = (keep: boolean, settle: () => void) => {
        if (settled) return;
        settled = true;
        cleanup();
        if (keep && !this.#closed && this.#idle.length < this.#size) {
          worker.unref();
          this.#idle.push(worker);
        } else void worker.terminate();
        settle();
      };
      const onMessage = (reply: BuildThreadReply) =>
        finish(true, () => {
          if (reply.ok) resolve(reply.bytes);
          else {
            const code = isErrorCode(reply.code) ? reply.code : 'QUARRY_ERR_INTERNAL';
            reject(
              new QuarryError(code, reply.message, reply.field === undefined ? {} : { field: reply.field }),
            );
          }
        });
      const onError = (cause: Error) =>
        finish(false, () =>
          reject(
            new QuarryError('QUARRY_ERR_INTERNAL', `index build thread failed: ${cause.message}`, { cause }),
          ),
        );
      const onExit = (code: number) =>
        finish(false, () =>
          reject(new QuarryError('QUARRY_ERR_INTERNAL', `index build thread exited with code ${code}`)),
        );
      const onAbort = () => finish(false, () => reject(signal!.reason));
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      signal?.addEventListener('abort', onAbort, { once: true });
      worker.ref();
      worker.postMessage(request, input instanceof ArrayBuffer ? [input] : []);
    });
  }

  /** Starts the threads now (loading modules) instead of on the first build. */
  async warmup(): Promise<void> {
    const tiny = JSON.stringify([{ id: 'w', text: 'warm up' }]);
    await Promise.all(
      Array.from({ length: this.#size - this.#idle.length }, () =>
        this.build(tiny, { idField: 'id', fields: ['text'] }),
      ),
    );
  }

  /** Stops every thread; running builds fail. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#idle.splice(0), ...this.#busy].map((w) => w.terminate()));
  }
}
