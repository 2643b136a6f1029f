// Index builds on kept worker threads. A fresh thread costs 130-250 ms to start (modules)
// and builds with a cold JIT (a 10k-document build takes longer cold than warm), so a worker
// process keeps up to `size` groups of build threads alive between jobs. A group builds one index
// at a time: its primary thread alone, or with its helper on half of the documents
// (shared/search/build-parallel.ts) when they are large enough. Aborting a build terminates its
// threads (nothing else can stop a synchronous build).
import os from 'node:os';
import { MessageChannel, type ResourceLimits, type Worker } from 'node:worker_threads';
import { isErrorCode, QuarryError } from '../shared/errors.ts';
import type { BuildOptions } from '../shared/search/build.ts';
import { PARALLEL_MIN_BYTES } from '../shared/search/build-parallel.ts';
import type { ExtensionOptions } from '../shared/search/extension.ts';
import { startModuleThread } from '../shared/ts-runtime.ts';
import type {
  BuildInput,
  BuildThreadReply,
  BuildThreadRequest,
  HelperRequest,
  UpdateInput,
} from './index-build-thread.ts';

const ENTRY_URL = new URL(
  import.meta.url.endsWith('.ts') ? './index-build-thread-entry.ts' : './index-build-thread-entry.js',
  import.meta.url,
);

function startThread(resourceLimits: ResourceLimits | undefined): Worker {
  const worker = startModuleThread(ENTRY_URL, resourceLimits === undefined ? {} : { resourceLimits });
  // A thread fails outside a build too: the helper of a group whose build ran on the primary
  // alone, or an idle thread, can run out of its heap limit while it loads. Its error must not
  // become the process's uncaught exception; a build's own listeners report what happens during
  // it, and the thread's exit drops its group (#forget).
  worker.on('error', () => {});
  return worker;
}

/** The JSON bytes a build reads, as far as known before the thread has them: an update's kept
 * documents are compressed (brotli), which text compresses at least twofold. */
function sourceBytes(input: ArrayBuffer | UpdateInput): number {
  return input instanceof ArrayBuffer ? input.byteLength : input.stored.byteLength * 2;
}

function transferOf(input: BuildInput | UpdateInput): ArrayBuffer[] {
  if (typeof input === 'string') return [];
  if (input instanceof ArrayBuffer) return [input];
  return input.index === undefined ? [input.stored] : [input.stored, input.index];
}

/** An update from its base's index analyzes only the changed documents: one thread does it. */
function splits(input: BuildInput | UpdateInput): boolean {
  if (typeof input === 'string') return false;
  if (input instanceof ArrayBuffer) return input.byteLength >= PARALLEL_MIN_BYTES;
  return input.index === undefined && sourceBytes(input) >= PARALLEL_MIN_BYTES;
}

export interface IndexBuilderOptions {
  /** Thread groups kept warm (builds at once). Default 1. */
  size?: number;
  /** Threads one build may use, 1 or 2. Default 2 on a host with 2 or more cores, else 1. */
  threadsPerBuild?: number;
  resourceLimits?: ResourceLimits;
}

/** [primary, helper?] */
type Group = Worker[];

export class IndexBuilder {
  readonly #size: number;
  readonly #threads: number;
  readonly #resourceLimits: ResourceLimits | undefined;
  readonly #idle: Group[] = [];
  readonly #busy = new Set<Group>();
  #closed = false;
  /** Builds started on one thread and on two (what the tests and metrics read). */
  readonly started = { single: 0, parallel: 0 };
  /** Updates built from their base's index, and from their documents (a base that cannot be). */
  readonly updates = { fromIndex: 0, fromDocuments: 0 };

  constructor(options: IndexBuilderOptions = {}) {
    this.#size = Math.max(1, options.size ?? 1);
    this.#threads = Math.min(
      2,
      Math.max(1, options.threadsPerBuild ?? Math.min(2, os.availableParallelism())),
    );
    this.#resourceLimits = options.resourceLimits;
  }

  /** Builds on warm threads; the documents (a JSON array) are transferred when an ArrayBuffer. */
  async build(
    input: BuildInput | UpdateInput,
    options: BuildOptions & ExtensionOptions & { signal?: AbortSignal },
  ): Promise<Uint8Array<ArrayBuffer>> {
    return (await this.#run(input, options)).bytes;
  }

  /**
   * build(), also answering the documents projected onto `keep` (brotli-compressed JSON,
   * shared/index-documents.ts), as a version keeps them for document updates.
   */
  async buildKeeping(
    input: BuildInput | UpdateInput,
    options: BuildOptions & ExtensionOptions & { signal?: AbortSignal },
    keep: readonly string[],
  ): Promise<{ bytes: Uint8Array<ArrayBuffer>; documents: Uint8Array<ArrayBuffer> }> {
    const built = await this.#run(input, options, keep);
    if (built.documents === undefined) throw new QuarryError('QUARRY_ERR_INTERNAL', 'no documents came back');
    return { bytes: built.bytes, documents: built.documents };
  }

  #run(
    input: BuildInput | UpdateInput,
    options: BuildOptions & ExtensionOptions & { signal?: AbortSignal },
    keep?: readonly string[],
  ): Promise<{ bytes: Uint8Array<ArrayBuffer>; documents?: Uint8Array<ArrayBuffer> }> {
    if (this.#closed)
      return Promise.reject(new QuarryError('QUARRY_ERR_ENGINE', 'the index builder is closed'));
    const { signal, ...buildOptions } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const group = this.#idle.pop() ?? this.#startGroup();
    this.#busy.add(group);
    const parallel = group.length > 1 && splits(input);
    const working = parallel ? group : group.slice(0, 1);
    this.started[parallel ? 'parallel' : 'single']++;
    return new Promise((resolve, reject) => {
      let settled = false;
      let result: { bytes: Uint8Array<ArrayBuffer>; documents?: Uint8Array<ArrayBuffer> } | undefined;
      let pending = working.length;
      const listeners = working.map((worker, i) => {
        const onMessage = (reply: BuildThreadReply) => {
          pending--;
          if (!reply.ok) {
            const code = isErrorCode(reply.code) ? reply.code : 'QUARRY_ERR_INTERNAL';
            // The primary's error is the build's; a helper's own failure only happens outside a build.
            const error = new QuarryError(
              code,
              reply.message,
              reply.field === undefined ? {} : { field: reply.field },
            );
            finish(i === 0, () => reject(error));
            return;
          }
          if ('bytes' in reply) {
            if (typeof input === 'object' && !(input instanceof ArrayBuffer))
              this.updates[reply.fromIndex === true ? 'fromIndex' : 'fromDocuments']++;
            result =
              reply.documents === undefined
                ? { bytes: reply.bytes }
                : { bytes: reply.bytes, documents: reply.documents };
          }
          // Answer once every thread of the build is done, so the group goes back idle as a whole.
          if (pending === 0) finish(true, () => (result === undefined ? reject(missing()) : resolve(result)));
        };
        const onError = (cause: Error) =>
          finish(false, () =>
            reject(
              new QuarryError('QUARRY_ERR_INTERNAL', `index build thread failed: ${cause.message}`, {
                cause,
              }),
            ),
          );
        const onExit = (code: number) =>
          finish(false, () =>
            reject(new QuarryError('QUARRY_ERR_INTERNAL', `index build thread exited with code ${code}`)),
          );
        worker.on('message', onMessage);
        worker.on('error', onError);
        worker.on('exit', onExit);
        return { worker, onMessage, onError, onExit };
      });
      const missing = () => new QuarryError('QUARRY_ERR_INTERNAL', 'index build thread sent no index');
      const cleanup = () => {
        for (const { worker, onMessage, onError, onExit } of listeners) {
          worker.off('message', onMessage);
          worker.off('error', onError);
          worker.off('exit', onExit);
        }
        signal?.removeEventListener('abort', onAbort);
        this.#busy.delete(group);
      };
      const finish = (keep: boolean, settle: () => void) => {
        if (settled) return;
        settled = true;
        cleanup();
        if (keep && pending === 0 && !this.#closed && this.#idle.length < this.#size) {
          for (const worker of group) worker.unref();
          this.#idle.push(group);
        } else if (keep && pending > 0 && !this.#closed) {
          // The primary failed while its helper still works: take the group back once it is done.
          this.#whenDone(group, working.slice(1));
        } else for (const worker of group) void worker.terminate();
        settle();
      };
      const onAbort = () => finish(false, () => reject(signal!.reason));
      signal?.addEventListener('abort', onAbort, { once: true });
      for (const worker of working) worker.ref();
      const request: BuildThreadRequest = {
        documents: input,
        options: buildOptions,
        ...(keep === undefined ? {} : { keep }),
      };
      if (parallel) {
        const { port1, port2 } = new MessageChannel();
        working[1]!.postMessage({ port: port2 } satisfies HelperRequest, [port2]);
        working[0]!.postMessage({ ...request, helper: port1 }, [...transferOf(input), port1]);
      } else working[0]!.postMessage(request, transferOf(input));
    });
  }

  #startGroup(): Group {
    const group = Array.from({ length: this.#threads }, () => startThread(this.#resourceLimits));
    for (const worker of group) worker.once('exit', () => this.#forget(group));
    return group;
  }

  /** A thread of `group` exited: an idle group leaves the idle list, and its other threads stop. */
  #forget(group: Group): void {
    const at = this.#idle.indexOf(group);
    if (at >= 0) this.#idle.splice(at, 1);
    if (!this.#busy.has(group)) for (const worker of group) void worker.terminate();
  }

  /** Returns `group` to the idle list once `helpers` have answered (or terminates it). */
  #whenDone(group: Group, helpers: Worker[]): void {
    let left = helpers.length;
    const back = (ok: boolean) => {
      for (const w of helpers) {
        w.removeAllListeners('message');
        w.removeAllListeners('error');
        w.removeAllListeners('exit');
      }
      if (ok && !this.#closed && this.#idle.length < this.#size) {
        for (const worker of group) worker.unref();
        this.#idle.push(group);
      } else for (const worker of group) void worker.terminate();
    };
    for (const w of helpers) {
      w.once('message', (reply: BuildThreadReply) => {
        if (--left === 0) back(reply.ok);
      });
      w.once('error', () => back(false));
      w.once('exit', () => back(false));
    }
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
    await Promise.all([...this.#idle.splice(0), ...this.#busy].flat().map((w) => w.terminate()));
  }
}
