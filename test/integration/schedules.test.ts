// Scheduled aggregations: a spec registered under a name refreshes on its interval through
// BullMQ job schedulers, recomputes when its file changes, and keeps an alias pointing at the
// newest result; schedules are listed and removed through the API.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

/** Polls until `check` returns a value or the deadline passes. */
async function until<T>(check: () => Promise<T | undefined>, deadlineMs: number, what: string): Promise<T> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`${what} within ${deadlineMs} ms`);
}

describe('scheduled aggregations', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let dataDir: string;
  before(async () => {
    redis = await startRedis();
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-sched-'));
    writeFileSync(path.join(dataDir, 'sales.csv'), 'region,amount\nnorth,10\nsouth,5\nnorth,7\n');
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_DATA_DIR: dataDir } });
  });
  after(async () => {
    await sys?.close();
    await redis?.stop();
  });

  test('an interval schedule keeps its alias on the newest result; list and remove', async () => {
    const spec = {
      dataset: { path: 'sales.csv' },
      groupBy: ['region'],
      metrics: [{ op: 'sum', column: 'amount' }],
    };
    const put = await sys.app.inject({
      method: 'PUT',
      url: '/v1/schedules/sales',
      payload: { spec, everyMs: 1000 },
    });
    assert.equal(put.statusCode, 200, put.body);
    assert.equal(put.json().everyMs, 1000);

    const first = await until(
      async () => {
        const res = await sys.app.inject({ method: 'GET', url: '/v1/aliases/sales' });
        return res.statusCode === 200 ? res : undefined;
      },
      15_000,
      'the first refresh',
    );
    assert.deepEqual(first.json().rows, [
      { region: 'north', sum_amount: 17 },
      { region: 'south', sum_amount: 5 },
    ]);
    const firstKey = first.headers['x-quarry-result-key'];

    appendFileSync(path.join(dataDir, 'sales.csv'), 'south,100\n');
    const second = await until(
      async () => {
        const res = await sys.app.inject({ method: 'GET', url: '/v1/aliases/sales' });
        return res.statusCode === 200 && res.headers['x-quarry-result-key'] !== firstKey ? res : undefined;
      },
      15_000,
      'a refresh after the file changed',
    );
    assert.deepEqual(second.json().rows, [
      { region: 'north', sum_amount: 17 },
      { region: 'south', sum_amount: 105 },
    ]);
    const job = await sys.app.inject({
      method: 'GET',
      url: `/v1/jobs/agg-${second.headers['x-quarry-result-key']}`,
    });
    assert.equal(job.json().state, 'completed', 'a scheduled run has a status record like any job');

    const list = await sys.app.inject({ method: 'GET', url: '/v1/schedules' });
    assert.deepEqual(
      list.json().schedules.map((s: { name: string }) => s.name),
      ['sales'],
    );
    assert.equal(list.json().schedules[0].resultKey, second.headers['x-quarry-result-key']);

    assert.equal((await sys.app.inject({ method: 'DELETE', url: '/v1/schedules/sales' })).statusCode, 204);
    assert.equal((await sys.app.inject({ method: 'GET', url: '/v1/schedules/sales' })).statusCode, 404);
    assert.equal((await sys.app.inject({ method: 'DELETE', url: '/v1/schedules/sales' })).statusCode, 404);
    assert.equal((await sys.app.inject({ method: 'GET', url: '/v1/aliases/sales' })).statusCode, 404);
  });

  test('bad schedules are refused at registration, naming the field', async () => {
    const spec = { dataset: { path: 'sales.csv' }, metrics: [{ op: 'count' }] };
    const cases: [object, string][] = [
      [{ spec, everyMs: 10 }, 'everyMs'],
      [{ spec }, 'everyMs'],
      [{ spec, everyMs: 5000, cron: '* * * * *' }, 'cron'],
      [{ spec, cron: 'not a cron pattern' }, 'cron'],
      [{ spec: { ...spec, dataset: { path: 'missing.csv' } }, everyMs: 5000 }, 'dataset.path'],
      [{ spec: { ...spec, metrics: [] }, everyMs: 5000 }, 'metrics'],
    ];
    for (const [payload, field] of cases) {
      const res = await sys.app.inject({ method: 'PUT', url: '/v1/schedules/bad', payload });
      assert.ok(res.statusCode === 400 || res.statusCode === 404, `${field}: ${res.statusCode} ${res.body}`);
      assert.equal(res.json().error.field, field, res.body);
    }
    assert.equal(
      (
        await sys.app.inject({
          method: 'PUT',
          url: '/v1/schedules/bad%20name',
          payload: { spec, everyMs: 5000 },
        })
      ).statusCode,
      400,
    );
  });
});
