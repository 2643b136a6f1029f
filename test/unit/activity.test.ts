// The activity histogram read back: percentiles from bucket counts, reported as the bucket's
// upper bound 10^(i/8) ms, with expectations written out by hand (not derived from the code).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  BUCKET_COUNT,
  bucketUpperMs,
  histogramPercentiles,
  toActivityMinute,
} from '../../shared/activity.ts';

const counts = (entries: Record<number, number>) =>
  Array.from({ length: BUCKET_COUNT }, (_, i) => entries[i] ?? 0);

describe('activity histogram', () => {
  test('bucket bounds are powers of 10^(1/8) ms', () => {
    assert.equal(bucketUpperMs(0), 1);
    assert.equal(bucketUpperMs(8), 10);
    assert.equal(bucketUpperMs(16), 100);
    assert.equal(bucketUpperMs(4), 3.16);
    assert.equal(bucketUpperMs(24), 1000);
  });

  test('percentiles fall in the bucket holding their rank', () => {
    // 90 runs of at most 10 ms, 9 of at most 100 ms, 1 of at most 1 s.
    assert.deepEqual(histogramPercentiles(counts({ 8: 90, 16: 9, 24: 1 })), { p50: 10, p95: 100, p99: 100 });
    assert.deepEqual(histogramPercentiles(counts({ 8: 98, 24: 2 })), { p50: 10, p95: 10, p99: 1000 });
    assert.deepEqual(histogramPercentiles(counts({ 12: 1 })), { p50: 31.62, p95: 31.62, p99: 31.62 });
    assert.equal(histogramPercentiles(counts({})), null);
  });

  test('a minute hash becomes the answer; one with nothing ended is left out', () => {
    const minute = 29_000_000;
    assert.deepEqual(toActivityMinute(minute, { completed: '3', cancelled: '1', runs: '3', b8: '3' }), {
      minute: new Date(minute * 60_000).toISOString(),
      completed: 3,
      failed: 0,
      cancelled: 1,
      runMs: { p50: 10, p95: 10, p99: 10 },
    });
    assert.deepEqual(toActivityMinute(minute, { cancelled: '2' })?.runMs, null, 'cancelled before running');
    assert.equal(toActivityMinute(minute, {}), null);
  });
});
