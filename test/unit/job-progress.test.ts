// Coalesced progress (workers/job-progress.ts): nothing is written before the attempt has run
// the delay, then the latest report at most once per delay, and nothing after stop(). Timers and
// the clock are node:test's mock timers, so the test runs in no time and never sleeps.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, mock, test } from 'node:test';
import type { JobProgress } from '../../shared/status.ts';
import { coalescedProgress } from '../../workers/job-progress.ts';

beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'] }));
afterEach(() => mock.timers.reset());

const phase = (name: string, percent: number): JobProgress => ({ phase: name, percent });

test('an attempt that ends within the delay writes no progress at all', () => {
  const written: JobProgress[] = [];
  const progress = coalescedProgress(async (p) => void written.push(p), 250);
  progress.report(phase('compute', 10));
  mock.timers.tick(100);
  progress.report(phase('store', 90));
  mock.timers.tick(100);
  progress.stop();
  mock.timers.tick(1000);
  assert.deepEqual(written, []);
});

test('a longer attempt writes its latest phase after the delay, then at most once per delay', () => {
  const written: JobProgress[] = [];
  const progress = coalescedProgress(async (p) => void written.push(p), 250);
  progress.report(phase('compute', 10));
  mock.timers.tick(249);
  assert.deepEqual(written, []);
  progress.report(phase('compute', 20));
  mock.timers.tick(1);
  assert.deepEqual(written, [phase('compute', 20)], 'the latest report, at the delay');
  progress.report(phase('compute', 30));
  progress.report(phase('compute', 40));
  mock.timers.tick(200);
  assert.equal(written.length, 1, 'not again within the delay');
  mock.timers.tick(50);
  assert.deepEqual(written.at(-1), phase('compute', 40));
  assert.equal(written.length, 2);
  mock.timers.tick(5000);
  assert.equal(written.length, 2, 'nothing without a new report');
  progress.report(phase('store', 90));
  progress.stop();
  progress.stop();
  mock.timers.tick(5000);
  assert.equal(written.length, 2, 'nothing after stop');
});
