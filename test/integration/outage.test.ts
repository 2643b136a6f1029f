// The queue Redis goes away and comes back (AOF on, restarted on its data): while it is down,
// POSTs answer 503 with Retry-After at once, /readyz says so, searches keep answering from
// loaded indexes, and a waiting SDK client fails after its timeout; afterwards the API and the
// worker reconnect on their own and acknowledged jobs are still there.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createQuarry } from '../../producers/client.ts';
import { QuarryError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logger.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const AOF = ['--appendonly', 'yes', '--appendfsync', 'always'];

/** Polls until `check` is true or the deadline passes (a condition, not a fixed sleep). */
async function until(check: () => Promise<boolean>, deadlineMs: number, what: string): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`${what} within ${deadlineMs} ms`);
}

describe('queue Redis outage', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  before(async () => {
    redis = await startRedis(AOF);
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url } });
  });
  after(async () => {
    await sys?.close();
    await redis?.stop();
  });

  test('503 at once while down, searches still answer, everything reconnects, nothing acknowledged is lost', async () => {
    const docs = {
      documents: [
        { id: 'a', t: 'red fox' },
        { id: 'b', t: 'blue fox' },
      ],
      idField: 'id',
      fields: ['t'],
    };
    const built = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/foxes?wait=20000',
      payload: docs,
    });
    assert.equal(built.statusCode, 200, built.body);
    // An acknowledged job: its status record must survive the restart (AOF).
    const acked = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations?wait=20000',
      payload: { dataset: { records: [{ x: 1 }, { x: 2 }] }, metrics: [{ op: 'sum', column: 'x' }] },
    });
    assert.equal(acked.statusCode, 200);
    const jobId = `agg-${acked.json().resultKey}`;

    const { port, dir } = redis;
    await redis.stop({ keepData: true, signal: 'SIGTERM' });

    const t0 = performance.now();
    const down = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations',
      payload: { dataset: { records: [{ x: 3 }] }, metrics: [{ op: 'sum', column: 'x' }] },
    });
    assert.ok(performance.now() - t0 < 1000, 'no hanging request');
    assert.equal(down.statusCode, 503, down.body);
    assert.equal(down.json().error.code, 'QUARRY_ERR_REDIS_UNAVAILABLE');
    assert.ok(Number(down.headers['retry-after']) >= 1);
    const ready = await sys.app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 503);
    assert.equal(ready.json().redis.queue, false);
    const search = await sys.app.inject({ method: 'GET', url: '/v1/indexes/foxes/search?q=fox' });
    assert.equal(search.statusCode, 200, 'loaded indexes keep answering');
    assert.equal(search.json().hits.length, 2);

    // A waiting SDK client gives up after its timeout with a clear code.
    const waiting = createQuarry({ config: sys.config, logger: silentLogger(), redisTimeoutMs: 300 });
    try {
      await assert.rejects(
        waiting.aggregate({ dataset: { records: [{ x: 4 }] }, metrics: [{ op: 'count' }] }),
        (e: unknown) => e instanceof QuarryError && e.code === 'QUARRY_ERR_REDIS_UNAVAILABLE',
      );
    } finally {
      waiting.disconnectNow();
    }

    redis = await startRedis(AOF, port, dir);
    await until(
      async () => (await sys.app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200,
      10_000,
      'API ready again',
    );
    const status = await sys.app.inject({ method: 'GET', url: `/v1/jobs/${jobId}` });
    assert.equal(status.statusCode, 200, 'the acknowledged job survived the restart');
    assert.equal(status.json().state, 'completed');
    const after = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations?wait=20000',
      payload: { dataset: { records: [{ x: 5 }, { x: 6 }] }, metrics: [{ op: 'sum', column: 'x' }] },
    });
    assert.equal(after.statusCode, 200, 'the worker reconnected and computes again');
    assert.deepEqual(after.json().rows, [{ sum_x: 11 }]);
  });
});
