// `quarry aggregate --batch`: NDJSON specs from a file or stdin, in a subprocess against a real
// redis-server and worker. One JSON line per spec in input order (a bad line answered alone,
// the rest queued), the summary on stderr, and the exit code the CLI's table gives.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliEnv, lines, runCli } from '../helpers/cli.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const spec = (i: number) => ({
  dataset: {
    records: [
      { g: 'a', v: i },
      { g: 'b', v: 2 },
    ],
  },
  groupBy: ['g'],
  metrics: [{ op: 'sum', column: 'v' }],
});

describe('quarry aggregate --batch', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let dir: string;
  let env: Record<string, string>;
  before(async () => {
    redis = await startRedis();
    dir = mkdtempSync(path.join(os.tmpdir(), 'quarry-cli-batch-'));
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_DATA_DIR: dir } });
    env = cliEnv(sys.config);
  });
  after(async () => {
    await sys?.close();
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('every line is enqueued and answered in order; all good: exit 0', async () => {
    const file = path.join(dir, 'good.ndjson');
    writeFileSync(file, `${[1, 2, 1].map((i) => JSON.stringify(spec(i))).join('\n')}\n\n`);
    const run = await runCli(['aggregate', '--batch', file], env);
    assert.equal(run.code, 0, run.stderr);
    const answers = lines(run.stdout).map((l) => JSON.parse(l));
    assert.deepEqual(
      answers.map((a) => a.line),
      [1, 2, 3],
    );
    for (const [n, i] of [1, 2, 1].entries()) {
      const { jobId, resultKey } = await sys.client.address(spec(i));
      assert.deepEqual(answers[n], { line: n + 1, jobId, resultKey, cached: false });
    }
    assert.deepEqual(lines(run.stderr), ['3 specs: 3 queued · 0 cached · 0 refused']);
    await sys.client.waitForJob(answers[0].jobId, { timeoutMs: 20_000 });
    await sys.client.waitForJob(answers[1].jobId, { timeoutMs: 20_000 });
    // From stdin, now cached.
    const again = await runCli(['aggregate', '--batch', '-'], env, `${JSON.stringify(spec(2))}\n`);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(JSON.parse(lines(again.stdout)[0]!).cached, true);
  });

  test('a bad line (not JSON, or an invalid spec) is answered alone, the rest are queued; exit 2', async () => {
    const input = [
      JSON.stringify(spec(10)),
      '{"dataset": ',
      JSON.stringify({ ...spec(11), metrics: [{ op: 'sum' }] }),
    ];
    const run = await runCli(['aggregate', '--batch', '-'], env, input.join('\n'));
    assert.equal(run.code, 2, run.stderr);
    const [good, notJson, invalid] = lines(run.stdout).map((l) => JSON.parse(l));
    assert.equal(good.jobId, (await sys.client.address(spec(10))).jobId);
    assert.equal(notJson.line, 2);
    assert.equal(notJson.error.code, 'QUARRY_ERR_BODY_INVALID_JSON');
    assert.equal(invalid.line, 3);
    assert.equal(invalid.error.code, 'QUARRY_ERR_VALIDATION');
    assert.equal(invalid.error.field, 'metrics.0.column');
    assert.deepEqual(lines(run.stderr), ['3 specs: 1 queued · 0 cached · 2 refused']);
    const final = await sys.client.waitForJob(good.jobId, { timeoutMs: 20_000 });
    assert.equal(final.state, 'completed');
  });

  test('a missing file, an empty input, or --batch with --wait: one line, exit 2', async () => {
    const missing = await runCli(['aggregate', '--batch', path.join(dir, 'nope.ndjson')], env);
    assert.equal(missing.code, 2);
    assert.match(lines(missing.stderr)[0]!, /cannot read ".*nope\.ndjson": no such file/);
    const empty = await runCli(['aggregate', '--batch', '-'], env, '\n\n');
    assert.equal(empty.code, 2);
    assert.deepEqual(lines(empty.stderr), ['quarry: stdin holds no spec']);
    const wait = await runCli(['aggregate', '--batch', '--wait', '-'], env, JSON.stringify(spec(1)));
    assert.equal(wait.code, 2);
    assert.match(lines(wait.stderr)[0]!, /--batch enqueues only/);
  });
});
