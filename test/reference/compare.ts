// Compares an engine's result with the reference's: the same columns (names and types), the same
// rows in the same order; values of float columns equal within a relative tolerance (float sums
// depend on summation order, interpolation formulas differ in the last bit), every other value
// exactly.
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import type { ResultColumn } from '../../shared/aggregation.ts';

/** |a − b| ≤ 1e-9 · max(|a|, |b|) for values of float columns. */
export const RELATIVE_TOLERANCE = 1e-9;

export interface ComparableResult {
  readonly columns: readonly ResultColumn[];
  readonly rows: readonly Record<string, unknown>[];
  readonly totalRows?: number;
}

export function assertSameResult(actual: ComparableResult, expected: ComparableResult, message = ''): void {
  const at = message ? `${message}: ` : '';
  assert.deepEqual(actual.columns, expected.columns, `${at}columns`);
  assert.equal(actual.rows.length, expected.rows.length, `${at}row count`);
  if (expected.totalRows !== undefined) assert.equal(actual.totalRows, expected.totalRows, `${at}totalRows`);
  const floats = new Set(expected.columns.filter((c) => c.type === 'float').map((c) => c.name));
  for (let i = 0; i < expected.rows.length; i++) {
    const a = actual.rows[i]!;
    const e = expected.rows[i]!;
    assert.deepEqual(Object.keys(a), Object.keys(e), `${at}row ${i} keys`);
    for (const key of Object.keys(e)) {
      const x = a[key];
      const y = e[key];
      const same =
        floats.has(key) && typeof x === 'number' && typeof y === 'number'
          ? closeEnough(x, y)
          : isDeepStrictEqual(x, y);
      if (!same) {
        assert.fail(
          `${at}row ${i} column ${JSON.stringify(key)}: ${x} vs ${y} expected (row ${JSON.stringify(a)} vs ${JSON.stringify(e)})`,
        );
      }
    }
  }
}

export function closeEnough(x: number, y: number): boolean {
  // An infinity (or NaN) is close only to itself: the relative bound below, infinite too, took any
  // number for close to ±Infinity (a second pair of eyes, 2026-12-07).
  if (!Number.isFinite(x) || !Number.isFinite(y)) return Object.is(x, y);
  return x === y || Math.abs(x - y) <= RELATIVE_TOLERANCE * Math.max(Math.abs(x), Math.abs(y));
}
