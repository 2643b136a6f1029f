// The engine contract: DuckDB, Polars and the JS engine (small inline data) each compile a normalized AggregationSpec and must
// return the same rows in the same order (docs/AGGREGATION.md defines the semantics; the TS
// reference in test/reference is the oracle).
import type { AggregationSpec, EngineName, ResultColumn } from '../../shared/aggregation.ts';
import type { ColumnInfo, FileFormat } from '../../shared/datasets.ts';
import { QuarryError } from '../../shared/errors.ts';

export type EngineSource =
  /** Inline records: a JSON array of objects (canonical JSON) written to `file`; types known. */
  | { readonly kind: 'inline'; readonly file: string; readonly columns: readonly ColumnInfo[] }
  /** A dataset file under the data root (absolute, already resolved and checked). */
  | { readonly kind: 'file'; readonly file: string; readonly format: FileFormat };

/**
 * Inline records already parsed, not spooled: only the JS engine (js.ts) reads them, which the
 * worker chooses for small inline datasets (choose.ts); DuckDB and Polars read files.
 */
export interface RecordsSource {
  readonly kind: 'records';
  readonly records: readonly Record<string, unknown>[];
  readonly columns: readonly ColumnInfo[];
}

/** The source as a file, or QUARRY_ERR_ENGINE: parsed records reach the JS engine only. */
export function spooledSource(source: EngineSource | RecordsSource, engine: string): EngineSource {
  if (source.kind === 'records') {
    throw new QuarryError(
      'QUARRY_ERR_ENGINE',
      `the ${engine} engine reads files; these records were not spooled`,
    );
  }
  return source;
}

export interface EngineInput {
  readonly spec: AggregationSpec;
  readonly source: EngineSource | RecordsSource;
  /** Row cap for the result (QUARRY_MAX_RESULT_ROWS); exceeding it is QUARRY_ERR_RESULT_TOO_LARGE. */
  readonly maxRows: number;
  /** Aborting stops the computation; the run rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

export interface EngineOutput {
  readonly columns: readonly ResultColumn[];
  /** Plain JSON values: numbers (never bigint), strings, booleans, null. */
  readonly rows: readonly Record<string, unknown>[];
  /** Rows before `offset` and `limit` (after `having` and `top`). */
  readonly totalRows: number;
}

export interface AggregationEngine {
  readonly name: EngineName;
  run(input: EngineInput): Promise<EngineOutput>;
  /** Idempotent. */
  close(): Promise<void>;
}
