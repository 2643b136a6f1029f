// The one step after an engine ran a plan: it caps the row count, converts values to plain JSON
// (bigints to numbers, dates and timestamps to their documented strings, undefined to null) and
// names the columns, which engines return by position. Rows are built a slice at a time with a
// turn of the event loop between slices, so a large result never blocks lock renewal for long.
import { QuarryError } from '../../shared/errors.ts';
import type { AggregationPlan } from '../../shared/plan.ts';

/** Rows converted between two turns of the event loop. */
const SLICE_ROWS = 2_048;

/**
 * `columns[k][i]` is output k of row i, as the engine returned it. Throws
 * QUARRY_ERR_RESULT_TOO_LARGE when there are more than plan.maxRows rows.
 */
export async function shapeRows(
  plan: AggregationPlan,
  columns: readonly (readonly unknown[])[],
  height: number,
): Promise<Record<string, unknown>[]> {
  if (height > plan.maxRows) {
    throw new QuarryError(
      'QUARRY_ERR_RESULT_TOO_LARGE',
      `the result has more than ${plan.maxRows} rows (QUARRY_MAX_RESULT_ROWS); add a limit or group more coarsely`,
    );
  }
  const outputs = plan.outputs;
  const rows: Record<string, unknown>[] = new Array(height);
  for (let start = 0; start < height; start += SLICE_ROWS) {
    if (start > 0) await new Promise((resolve) => setImmediate(resolve));
    const end = Math.min(height, start + SLICE_ROWS);
    for (let i = start; i < end; i++) rows[i] = {};
    for (let k = 0; k < outputs.length; k++) {
      const { name, type } = outputs[k]!;
      const values = columns[k]!;
      for (let i = start; i < end; i++) {
        const v = jsonValue(values[i], type);
        // Assigning "__proto__" would set the prototype and lose the value.
        if (name === '__proto__') {
          Object.defineProperty(rows[i]!, name, {
            value: v,
            enumerable: true,
            writable: true,
            configurable: true,
          });
        } else rows[i]![name] = v;
      }
    }
  }
  return rows;
}

function jsonValue(v: unknown, type: string): unknown {
  if (v === undefined) return null;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof Date) return type === 'date' ? v.toISOString().slice(0, 10) : v.toISOString();
  return v;
}
