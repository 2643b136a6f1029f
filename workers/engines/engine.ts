// The engine contract: DuckDB and Polars each compile a normalized AggregationSpec and must
// return the same rows in the same order (docs/AGGREGATION.md defines the semantics; the TS
// reference in test/reference is the oracle).
import type { AggregationSpec, EngineName, ResultColumn } from '../../shared/aggregation.ts';
import type { ColumnInfo, FileFormat } from '../../shared/datasets.ts';

export type EngineSource =
  /** Inline records: a JSON array of objects (canonical JSON) written to `file`; types known. */
  | { readonly kind: 'inline'; readonly file: string; readonly columns: readonly ColumnInfo[] }
  /** A dataset file under the data root (absolute, already resolved and checked). */
  | { readonly kind: 'file'; readonly file: string; readonly format: FileFormat };

export interface EngineInput {
  readonly spec: AggregationSpec;
  readonly source: EngineSource;
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
