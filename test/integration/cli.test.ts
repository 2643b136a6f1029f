// The CLI explains itself (Quarry issue "Operators", item 6), tested as an operator meets it: in
// a subprocess against real redis-servers and a real worker. Each test is one thing an operator
// found: the exit code and the one line on stderr are what scripts and people read.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliEnv, lines, runCli } from '../helpers/cli.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const SPEC = {
  dataset: {
    records: [
      { g: 'a', v: 1 },
      { g: 'b', v: 2 },
    ],
  },
  groupBy: ['g'],
  metrics: [{ op: 'count' }],
};

describe('CLI explains itself', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let idle: TestSystem; // no worker: its jobs stay queued until cancelled
  let dir: string;
  let env: Record<string, string>;

  before(async () => {
    redis = await startRedis();
    dir = mkdtempSync(path.join(os.tmpdir(), 'quarry-cli-'));
    writeFileSync(path.join(dir, 'spec.json'), JSON.stringify(SPEC));
    writeFileSync(path.join(dir, 'broken.parquet'), 'PAR1 this is not parquet PAR1');
    writeFileSync(
      path.join(dir, 'broken.json'),
      JSON.stringify({ dataset: { path: 'broken.parquet' }, metrics: [{ op: 'count' }] }),
    );
    const common = { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_DATA_DIR: dir, QUARRY_JOB_BACKOFF_MS: '50' };
    sys = await startSystem({ env: common });
    idle = await startSystem({ env: common, worker: false });
    env = cliEnv(sys.config);
  });
  after(async () => {
    await sys?.close();
    await idle?.close();
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a missing spec file exits 2 with one line naming the file, not 1 with a stack', async () => {
    const run = await runCli(['aggregate', path.join(dir, 'nope.json')], env);
    assert.equal(run.code, 2);
    assert.deepEqual(lines(run.stderr), [
      `quarry: cannot read "${path.join(dir, 'nope.json')}": no such file`,
    ]);
  });

  test('a spec that is not JSON, or is a directory, exits 2 with one line', async () => {
    const notJson = await runCli(['aggregate', '-'], env, '{"dataset":');
    assert.equal(notJson.code, 2);
    assert.equal(lines(notJson.stderr).length, 1, notJson.stderr);
    assert.match(notJson.stderr, /^quarry: stdin is not valid JSON/);
    const directory = await runCli(['aggregate', dir], env);
    assert.equal(directory.code, 2);
    assert.match(directory.stderr, /it is a directory/);
  });

  test('a Redis that does not answer exits 3 naming the URL tried, with the password masked', async () => {
    const run = await runCli(['status', 'agg-0000000000000000'], {
      ...env,
      QUARRY_QUEUE_REDIS_URL: 'redis://:s3cret-pw@127.0.0.1:1',
      QUARRY_CACHE_REDIS_URL: 'redis://:s3cret-pw@127.0.0.1:1',
    });
    assert.equal(run.code, 3);
    assert.deepEqual(lines(run.stderr), [
      'QUARRY_ERR_REDIS_UNAVAILABLE: Redis at redis://:***@127.0.0.1:1 (queue and cache) did not answer within 3 s',
    ]);
    assert.doesNotMatch(run.stderr + run.stdout, /s3cret/);
  });

  test('only the cache Redis down: exit 3 naming the cache role and its URL', async () => {
    const run = await runCli(['status', 'agg-0000000000000000'], {
      ...env,
      QUARRY_CACHE_REDIS_URL: 'redis://127.0.0.1:1',
    });
    assert.equal(run.code, 3);
    assert.deepEqual(lines(run.stderr), [
      'QUARRY_ERR_REDIS_UNAVAILABLE: the cache Redis at redis://127.0.0.1:1 did not answer within 3 s',
    ]);
  });

  test('a bad cron is one sentence naming the field cron, not zod text; exit 2', async () => {
    const run = await runCli(['schedule', 'add', 'daily', path.join(dir, 'spec.json'), '--cron', 'bad'], env);
    assert.equal(run.code, 2);
    const [line, ...rest] = lines(run.stderr);
    assert.deepEqual(rest, []);
    assert.match(line!, /^QUARRY_ERR_VALIDATION: cron "bad" is not a cron pattern \(/);
    assert.doesNotMatch(line!, /Too small|Invalid input|expected string/);
    const short = await runCli(
      ['schedule', 'add', 'daily', path.join(dir, 'spec.json'), '--cron', '* *'],
      env,
    );
    assert.equal(short.code, 2);
    assert.match(short.stderr, /^QUARRY_ERR_VALIDATION: cron "\* \*" is not a cron pattern/);
  });

  test('a spec with a missing or mistyped field is one sentence naming the field; exit 2', async () => {
    const missing = await runCli(
      ['aggregate', '-'],
      env,
      JSON.stringify({ ...SPEC, metrics: [{ op: 'sum' }] }),
    );
    assert.equal(missing.code, 2);
    assert.deepEqual(lines(missing.stderr), [
      'QUARRY_ERR_VALIDATION: metrics.0.column is required (a string)',
    ]);
    const wrong = await runCli(['aggregate', '-'], env, JSON.stringify({ ...SPEC, limit: 2.5 }));
    assert.deepEqual(lines(wrong.stderr), ['QUARRY_ERR_VALIDATION: limit must be a whole number, not 2.5']);
    const unknown = await runCli(['aggregate', '-'], env, JSON.stringify({ ...SPEC, grupBy: ['g'] }));
    assert.deepEqual(lines(unknown.stderr), ['QUARRY_ERR_VALIDATION: grupBy is not a known field']);
  });

  test('a failed job is shown as failed with its code, never as "done 100%"', async () => {
    const waited = await runCli(['aggregate', path.join(dir, 'broken.json'), '--wait'], env);
    assert.equal(waited.code, 1, waited.stderr);
    const last = lines(waited.stderr).at(-1)!;
    assert.match(last, /^job agg-[0-9a-f]{32} failed · QUARRY_ERR_[A-Z_]+: /);
    const jobId = /job (agg-[0-9a-f]{32})/.exec(last)![1]!;
    const status = await runCli(['status', jobId], env);
    assert.equal(status.code, 0);
    assert.match(status.stdout, /state\s+failed · QUARRY_ERR_[A-Z_]+: /);
    assert.doesNotMatch(status.stdout, /100%/);
    const watched = await runCli(['watch', jobId], env);
    assert.equal(watched.code, 1);
    assert.match(watched.stdout, /failed · QUARRY_ERR_/);
    assert.doesNotMatch(watched.stdout, /100%/);
  });

  test('cancel of a queued job says cancelled; status then shows cancelled with its code', async () => {
    const handle = await idle.client.aggregate({ ...SPEC, limit: 7 });
    const idleEnv = cliEnv(idle.config);
    const cancel = await runCli(['cancel', handle.jobId], idleEnv);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.equal(cancel.stdout.trim(), `job ${handle.jobId} cancelled`);
    const status = await runCli(['status', handle.jobId], idleEnv);
    assert.match(status.stdout, /state\s+cancelled · QUARRY_ERR_JOB_CANCELLED: /);
    assert.doesNotMatch(status.stdout, /100%/);
    const again = await runCli(['cancel', handle.jobId], idleEnv);
    assert.equal(again.code, 0);
    assert.equal(again.stdout.trim(), `job ${handle.jobId} already cancelled; nothing to cancel`);
  });

  test('cancel of a completed job says so and exits 0', async () => {
    const handle = await sys.client.aggregate({ ...SPEC, limit: 3 });
    await handle.wait({ timeoutMs: 20_000 });
    const run = await runCli(['cancel', handle.jobId], env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), `job ${handle.jobId} already completed; nothing to cancel`);
    assert.equal((await sys.client.status(handle.jobId))?.state, 'completed');
  });

  test('status, cancel and watch agree on an unknown id: the same line and exit 2', async () => {
    const id = 'agg-00000000000000000000000000000000';
    const runs = await Promise.all(
      ['status', 'cancel', 'watch'].map((command) => runCli([command, id], env)),
    );
    for (const run of runs) {
      assert.equal(run.code, 2);
      assert.deepEqual(lines(run.stderr), [
        `QUARRY_ERR_JOB_NOT_FOUND: no job ${id} (never existed, or its record expired)`,
      ]);
    }
  });

  test('jobs lists the history as a table, a failed job with its code; retry runs a cancelled job again', async () => {
    const failed = await sys.client.aggregate({
      dataset: { path: 'broken.parquet' },
      metrics: [{ op: 'sum', column: 'v' }],
    });
    await sys.client.waitForJob(failed.jobId, { timeoutMs: 20_000 });
    const table = await runCli(['jobs', '--state', 'failed'], env);
    assert.equal(table.code, 0, table.stderr);
    const [header, rule, ...rows] = lines(table.stdout);
    assert.match(header!, /^id\s+type\s+state\s+created\s+duration$/);
    assert.match(rule!, /^-+/);
    const row = rows.find((r) => r.startsWith(failed.jobId));
    assert.ok(row, table.stdout);
    assert.match(row, /aggregate\s+failed QUARRY_ERR_[A-Z_]+\s+\d{4}-\d{2}-\d{2}T\S+\s+\d/);
    for (const r of rows) assert.match(r, /\sfailed QUARRY_ERR_/, 'only failed jobs');
    const completed = await sys.client.aggregate({ ...SPEC, limit: 5 });
    await completed.wait({ timeoutMs: 20_000 });
    const json = await runCli(['jobs', '--json', '--limit', '1'], env);
    assert.equal(json.code, 0, json.stderr);
    const page = JSON.parse(json.stdout) as { jobs: { jobId: string }[]; nextCursor: string | null };
    assert.equal(page.jobs.length, 1);
    assert.equal(typeof page.nextCursor, 'string', 'more than one job: a cursor');
    const bad = await runCli(['jobs', '--state', 'broken'], env);
    assert.equal(bad.code, 2);
    assert.match(lines(bad.stderr)[0]!, /^QUARRY_ERR_VALIDATION: state /);

    const notRetryable = await runCli(['retry', completed.jobId], env);
    assert.equal(notRetryable.code, 2);
    assert.match(lines(notRetryable.stderr)[0]!, /^QUARRY_ERR_JOB_NOT_RETRYABLE: job agg-\S+ is completed/);
    const unknown = await runCli(['retry', 'agg-00000000000000000000000000000000'], env);
    assert.equal(unknown.code, 2);
    assert.match(lines(unknown.stderr)[0]!, /^QUARRY_ERR_JOB_NOT_FOUND: /);
    const again = await runCli(['retry', failed.jobId, '--wait'], env);
    assert.equal(again.code, 1, 'the broken file fails again');
    assert.match(lines(again.stdout)[0]!, new RegExp(`^job ${failed.jobId} failed · QUARRY_ERR_`));

    const idleEnv = cliEnv(idle.config);
    const queued = await idle.client.aggregate({ ...SPEC, limit: 9 });
    await idle.client.cancel(queued.jobId);
    const retried = await runCli(['retry', queued.jobId], idleEnv);
    assert.equal(retried.code, 0, retried.stderr);
    assert.equal(retried.stdout.trim(), `job ${queued.jobId} queued again`);
    assert.equal((await idle.client.status(queued.jobId))?.state, 'queued');
  });
});
