// The parity suites' comparison of an engine's result with the reference's (test/reference/compare.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { closeEnough } from '../reference/compare.ts';

describe('the parity comparison', () => {
  test('floats within 1e-9 relative are close; an infinity only to itself (it took any number)', () => {
    assert.equal(closeEnough(1, 1 + 1e-12), true);
    assert.equal(closeEnough(0.1 + 0.2, 0.3), true);
    assert.equal(closeEnough(1, 1.001), false);
    assert.equal(closeEnough(Number.POSITIVE_INFINITY, 5), false);
    assert.equal(closeEnough(5, Number.NEGATIVE_INFINITY), false);
    assert.equal(closeEnough(Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY), false);
    assert.equal(closeEnough(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY), true);
    assert.equal(closeEnough(Number.NaN, 1), false);
  });
});
