// The Polars engine: the AggregationEngine contract over a pool of worker threads that hold
// nodejs-polars (polars-thread.ts), so that its synchronous readers and eager calls never block
// the event loop. The plan itself is compiled in polars-plan.ts, inside the threads.
import type { ColumnInfo } from '../../shared/datasets.ts';
import type { Logger } from '../../shared/logger.ts';
import type { AggregationEngine, EngineInput, EngineOutput } from './engine.ts';
import { PolarsPool } from './polars-pool.ts';
import type { FileSource } from './polars-protocol.ts';

export type { FileSource } from './polars-protocol.ts';

export interface PolarsEngineOptions {
  /**
   * Polars' compute threads (POLARS_MAX_THREADS). Polars keeps one thread pool per process and
   * reads this once, when it first computes: it applies only if nothing in this process ran Polars
   * before, and an operator's POLARS_MAX_THREADS wins. Default: Polars' own (all cores).
   */
  threads?: number;
  /** Worker threads that run plans, i.e. jobs computed at once. Default 2. */
  poolSize?: number;
  /** JS heap limit of each Polars thread, in MB (`resourceLimits.maxOldGenerationSizeMb`). */
  heapMb?: number;
  logger?: Logger;
}

export interface PolarsEngine extends AggregationEngine {
  /** The columns of a file and their types, read off the main thread. */
  fileColumns(source: FileSource): Promise<ColumnInfo[]>;
  /** Starts the worker threads now instead of on the first job (each costs 130-250 ms). */
  warmup(): Promise<void>;
  /** Fails running jobs and stops the threads at once. Idempotent. */
  destroy(): Promise<void>;
}

export function createPolarsEngine(options: PolarsEngineOptions = {}): PolarsEngine {
  if (options.threads !== undefined) {
    // The native library reads the process environment, so it is set here, in the main thread
    // (a worker's process.env is a private copy that native code never sees).
    process.env.POLARS_MAX_THREADS ??= String(options.threads);
  }
  const pool = new PolarsPool({
    ...(options.poolSize === undefined ? {} : { size: options.poolSize }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.heapMb === undefined ? {} : { resourceLimits: { maxOldGenerationSizeMb: options.heapMb } }),
  });
  return {
    name: 'polars',
    // An AbortSignal cannot cross to a thread: the pool watches it here instead.
    run: ({ signal, ...input }: EngineInput): Promise<EngineOutput> =>
      pool.run({ kind: 'run', input }, signal),
    fileColumns: (source) => pool.run({ kind: 'columns', source }),
    warmup: () => pool.warmup(),
    close: () => pool.close(),
    destroy: () => pool.destroy(),
  };
}

/**
 * The columns of a file as Polars reads them. Give an engine to reuse its threads; without one,
 * a thread is started for this call alone (130-250 ms).
 */
export async function polarsFileColumns(source: FileSource, engine?: PolarsEngine): Promise<ColumnInfo[]> {
  if (engine !== undefined) return engine.fileColumns(source);
  const pool = new PolarsPool({ size: 1 });
  try {
    return await pool.run({ kind: 'columns', source });
  } finally {
    await pool.destroy();
  }
}
