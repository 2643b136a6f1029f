// Builds a search index on a worker thread, so a large build never blocks the event loop that renews
// BullMQ job locks. Documents go in as one JSON string (copied once into the thread) or as an
// ArrayBuffer of UTF-8 JSON (transferred: the caller's buffer is detached); the index comes back
// transferred, not copied. One thread per build: thread start-up (~100 ms under tsx) is small next
// to the builds worth moving off the main thread.
import { type ResourceLimits, Worker } from 'node:worker_threads';
import { type ErrorCode, isErrorCode, QuarryError } from '../shared/errors.ts';
import type { BuildOptions } from '../shared/search/build.ts';

export interface BuildInThreadOptions extends BuildOptions {
  /** Heap and stack limits of the build thread; exceeding them rejects with QUARRY_ERR_INTERNAL. */
  resourceLimits?: ResourceLimits;
  /** Aborting terminates the thread and rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** A JSON array of documents, as a string or as UTF-8 bytes. */
export type BuildInput = string | ArrayBuffer;

export interface BuildThreadRequest {
  documents: BuildInput;
  options: BuildOptions;
}

export type BuildThreadReply =
  | { ok: true; bytes: Uint8Array<ArrayBuffer> }
  | { ok: false; code: ErrorCode; message: string; field: string | undefined };

// Under tsx this file is .ts and so is the entry; compiled, both are .js.
const ENTRY_URL = new URL(
  import.meta.url.endsWith('.ts') ? './index-build-thread-entry.ts' : './index-build-thread-entry.js',
  import.meta.url,
);

function startThread(workerData: BuildThreadRequest, options: BuildInThreadOptions): Worker {
  const transferList = workerData.documents instanceof ArrayBuffer ? [workerData.documents] : [];
  const base = { workerData, transferList, resourceLimits: options.resourceLimits ?? {} };
  if (!ENTRY_URL.pathname.endsWith('.ts')) return new Worker(ENTRY_URL, base);
  // Node 20 applies neither the parent's `--import tsx` nor an execArgv `--import` to a worker's entry
  // module (ERR_UNKNOWN_FILE_EXTENSION, checked under `node --import tsx` and the tsx CLI): a plain-JS
  // bootstrap registers tsx in the thread, then imports the entry.
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(ENTRY_URL.href)}); });`;
  return new Worker(bootstrap, { ...base, eval: true });
}

/** Runs buildIndex on a new worker thread; resolves with the index bytes (transferred from the thread). */
export function buildIndexInThread(
  input: BuildInput,
  options: BuildInThreadOptions,
): Promise<Uint8Array<ArrayBuffer>> {
  const { resourceLimits, signal, ...buildOptions } = options;
  if (typeof input !== 'string' && !(input instanceof ArrayBuffer)) {
    return Promise.reject(
      new QuarryError('QUARRY_ERR_VALIDATION', 'documents must be a JSON string or an ArrayBuffer', {
        field: 'documents',
      }),
    );
  }
  if (signal?.aborted) return Promise.reject(signal.reason);
  const worker = startThread(
    { documents: input, options: buildOptions },
    { ...buildOptions, resourceLimits },
  );
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      fn();
      void worker.terminate();
    };
    const onAbort = (): void => settle(() => reject(signal?.reason));
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.once('message', (reply: BuildThreadReply) => {
      settle(() => {
        if (reply.ok) resolve(reply.bytes);
        else {
          const code = isErrorCode(reply.code) ? reply.code : 'QUARRY_ERR_INTERNAL';
          reject(
            new QuarryError(code, reply.message, reply.field === undefined ? {} : { field: reply.field }),
          );
        }
      });
    });
    worker.once('error', (cause) => {
      settle(() =>
        reject(
          new QuarryError('QUARRY_ERR_INTERNAL', `index build thread failed: ${cause.message}`, { cause }),
        ),
      );
    });
    worker.once('exit', (code) => {
      settle(() =>
        reject(new QuarryError('QUARRY_ERR_INTERNAL', `index build thread exited with code ${code}`)),
      );
    });
  });
}
