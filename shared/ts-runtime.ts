// How this process runs its TypeScript sources, and how the processes and threads it starts will.
// Node 24 (and 22.18+) strips types itself: nothing is loaded and `node api/main.ts` just runs,
// which is what the production image does. Node 20 cannot, and runs them under tsx (a
// devDependency), which must then be named to every child process and registered in every thread.
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** True when this Node runs `.ts` files by itself (`process.features.typescript` is set). */
export const nativeTypeStripping: boolean =
  typeof (process.features as { typescript?: unknown }).typescript === 'string';

/** Node options a child process needs to run a `.ts` entrypoint on this same Node. */
export function tsExecArgv(): string[] {
  return nativeTypeStripping ? [] : ['--import', 'tsx'];
}

/**
 * A worker thread on a `.ts` (or compiled `.js`) entry module. Node 20 does not apply the
 * parent's `--import tsx` hooks to a thread's entry (ERR_UNKNOWN_FILE_EXTENSION), so there a
 * plain-JS bootstrap registers tsx first, then imports the entry.
 */
export function startModuleThread(entry: URL, options: WorkerOptions = {}): Worker {
  if (nativeTypeStripping || !entry.pathname.endsWith('.ts')) return new Worker(entry, options);
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}
