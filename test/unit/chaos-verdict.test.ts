// The chaos run's verdict rule (scripts/chaos-verdict.ts): a job survives QUARRY_MAX_STALLED_COUNT
// kills of the worker holding it; a QUARRY_ERR_JOB_STALLED failure is expected only past that.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { judgeJob, survives } from '../../scripts/chaos-verdict.ts';

const stalled = { state: 'failed' as const, error: { code: 'QUARRY_ERR_JOB_STALLED', message: 'died' } };

test('survives: up to maxStalledCount kills, not one more', () => {
  assert.equal(survives(0, 0), true);
  assert.equal(survives(1, 0), false);
  assert.equal(survives(5, 5), true);
  assert.equal(survives(6, 5), false);
});

test('seed 200846: STALLED after 3 kills is lost when 5 are allowed, expected when 2 are', () => {
  assert.equal(judgeJob(stalled, 3, 5), 'lost');
  assert.equal(judgeJob(stalled, 3, 2), 'expected-stalled');
  assert.equal(judgeJob(stalled, 2, 2), 'lost');
});

test('only a STALLED failure is excused; other failures, cancels and unfinished jobs are lost', () => {
  const engine = { state: 'failed' as const, error: { code: 'QUARRY_ERR_ENGINE', message: 'x' } };
  assert.equal(judgeJob(engine, 9, 0), 'lost');
  assert.equal(judgeJob({ state: 'cancelled', error: null }, 9, 0), 'lost');
  assert.equal(judgeJob({ state: 'active', error: null }, 9, 0), 'lost');
  assert.equal(judgeJob(undefined, 9, 0), 'lost');
  assert.equal(judgeJob({ state: 'completed', error: null }, 9, 0), 'completed');
});
