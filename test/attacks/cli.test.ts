// Attacks on the CLI's and the schedule request's input found by operators (issue "Operators",
// items 6 and 7), each against real processes: a real Redis, the API app, the CLI in a subprocess.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cliEnv, lines, runCli } from '../helpers/cli.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const SPEC = { dataset: { records: [{ v: 1 }] }, metrics: [{ op: 'count' }] };

describe('attacks: CLI and schedule input', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  before(async () => {
    redis = await startRedis();
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url }, worker: false });
  });
  after(async () => {
    await sys?.close();
    await redis?.stop();
  });

  test('a cron of two fields ("* *", which cron-parser would run every second) is a 400 naming cron, and nothing is scheduled', async () => {
    const res = await sys.app.inject({
      method: 'PUT',
      url: '/v1/schedules/fast',
      payload: { spec: SPEC, cron: '* *' },
    });
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.json().error.field, 'cron');
    assert.match(res.json().error.message, /has 2 fields, not 5 or 6/);
    assert.equal((await sys.app.inject({ method: 'GET', url: '/v1/schedules/fast' })).statusCode, 404);
  });

  test('an unknown time zone is a 400 naming tz, not a schedule registered on a zone that does not exist', async () => {
    const res = await sys.app.inject({
      method: 'PUT',
      url: '/v1/schedules/tz',
      payload: { spec: SPEC, cron: '0 6 * * *', tz: 'Mars/Olympus_Mons' },
    });
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.json().error.field, 'tz');
    assert.equal((await sys.app.inject({ method: 'GET', url: '/v1/schedules/tz' })).statusCode, 404);
  });

  test('a Redis URL with a user and password: the CLI names the server but prints neither secret', async () => {
    const run = await runCli(['result', '0'.repeat(32)], {
      ...cliEnv(sys.config),
      QUARRY_QUEUE_REDIS_URL: 'redis://ops:hunter2-secret@127.0.0.1:1/0',
      QUARRY_CACHE_REDIS_URL: 'redis://127.0.0.1:1',
    });
    assert.equal(run.code, 3);
    assert.deepEqual(lines(run.stderr), [
      'QUARRY_ERR_REDIS_UNAVAILABLE: the queue Redis at redis://ops:***@127.0.0.1:1/0 and the cache Redis at redis://127.0.0.1:1 did not answer within 3 s',
    ]);
    assert.doesNotMatch(run.stdout + run.stderr, /hunter2/);
  });
});
