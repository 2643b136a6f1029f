// Row comparison for engine results: same rows, same order, same columns; floats equal within
// a relative tolerance (engines sum in different orders), everything else exactly.
import assert from 'node:assert/strict';

export const FLOAT_TOLERANCE = 1e-9;

export function assertRowsClose(
  actual: readonly Record<string, unknown>[],
  expected: readonly Record<string, unknown>[],
  message = '',
): void {
  assert.equal(actual.length, expected.length, `${message} row count`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    assert.deepEqual(Object.keys(a), Object.keys(e), `${message} row ${i} columns`);
    for (const key of Object.keys(e)) {
      const x = a[key];
      const y = e[key];
      if (typeof x === 'number' && typeof y === 'number' && !Number.isInteger(y)) {
        const scale = Math.max(Math.abs(x), Math.abs(y), 1e-300);
        assert.ok(Math.abs(x - y) / scale <= FLOAT_TOLERANCE, `${message} row ${i} ${key}: ${x} vs ${y}`);
      } else {
        assert.deepEqual(x, y, `${message} row ${i} ${key}`);
      }
    }
  }
}
