// Reading DuckDB's results: values column by column, one chunk at a time, timestamps as Dates
// rounded down to their millisecond, and the first line of DuckDB's error messages.
import {
  type DuckDBMaterializedResult,
  DuckDBTimestampNanosecondsValue,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  type DuckDBValueConverter,
  type JS,
  JSDuckDBValueConverter,
} from '@duckdb/node-api';
import { QuarryError } from '../../shared/errors.ts';

/** The first line of an error's message (DuckDB's run long). */
export function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
}

/** Floor division of bigints (`/` truncates toward zero). */
function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

const MAX_DATE_MS = 8_640_000_000_000_000n;

/** A Date at `ms`; QUARRY_ERR_RESULT_OVERFLOW past a Date's range (±8.64e15 ms). */
function dateOf(ms: bigint): Date {
  if (ms > MAX_DATE_MS || ms < -MAX_DATE_MS) {
    throw new QuarryError(
      'QUARRY_ERR_RESULT_OVERFLOW',
      `a timestamp (${ms} ms) is beyond what a JavaScript Date holds`,
    );
  }
  return new Date(Number(ms));
}

/**
 * The node-api's converter, but sub-millisecond timestamps before 1970 round down, to the
 * millisecond they fall in: it divides microseconds toward zero, so 1969-12-31 23:59:59.9995 read
 * as 1970-01-01 00:00:00.000 and 1960-06-01 12:00:00.000001 as 12:00:00.001 (a parity probe).
 */
const valueConverter: DuckDBValueConverter<JS> = (value, type, converter) => {
  if (value instanceof DuckDBTimestampValue || value instanceof DuckDBTimestampTZValue)
    return dateOf(floorDiv(value.micros, 1000n));
  if (value instanceof DuckDBTimestampNanosecondsValue) return dateOf(floorDiv(value.nanos, 1_000_000n));
  return JSDuckDBValueConverter(value, type, converter);
};

/**
 * A result's values column by column (positional), converted one chunk (2,048 rows) at a time
 * with a turn of the event loop between chunks, so a large result never blocks BullMQ's lock
 * renewal for long. Plain JSON values come from shapeRows (result-rows.ts).
 */
export async function resultColumns(result: DuckDBMaterializedResult): Promise<unknown[][]> {
  const columns: unknown[][] = result.columnTypes().map(() => []);
  for (let c = 0; c < result.chunkCount; c++) {
    if (c > 0) await new Promise((resolve) => setImmediate(resolve));
    const chunk = result.getChunk(c).convertColumns(valueConverter);
    for (let k = 0; k < columns.length; k++) {
      const target = columns[k]!;
      for (const v of chunk[k]!) target.push(v);
    }
  }
  return columns;
}
