// Results past the double range (a probe, 2026-12-07): a sum of two values near 1.8e308 was
// written as null, the answer for "no values", in every engine; DuckDB's variance of such values
// failed as QUARRY_ERR_ENGINE, which is retried as if it could pass. Both now fail the job at once
// with QUARRY_ERR_RESULT_OVERFLOW (docs/AGGREGATION.md, "Overflow").
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const HUGE = [
  { g: 'a', x: 1.7e308 },
  { g: 'a', x: 1.7e308 },
];

describe('attacks: results past the double range', () => {
  let redis: RedisServer;
  let sys: TestSystem;

  before(async () => {
    redis = await startRedis();
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url } });
  });
  after(async () => {
    await sys?.close();
    await redis?.stop();
  });

  const post = (metrics: unknown[], engine: string, records: unknown[] = HUGE) =>
    sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations?wait=30000',
      payload: JSON.stringify({ dataset: { records }, groupBy: ['g'], metrics, engine }),
      headers: { 'content-type': 'application/json' },
    });

  // auto: the JS engine, for records this few.
  for (const engine of ['auto', 'duckdb', 'polars']) {
    test(`${engine}: a sum past ±1.8e308 answers 422 QUARRY_ERR_RESULT_OVERFLOW, not a null sum`, async () => {
      const res = await post([{ op: 'sum', column: 'x' }], engine);
      assert.equal(res.statusCode, 422, res.body);
      const body = JSON.parse(res.body) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'QUARRY_ERR_RESULT_OVERFLOW');
      assert.match(body.error.message, /"sum_x"/);
    });
  }

  test('duckdb: a variance out of its range fails once, with the overflow code', async () => {
    const records = [
      { g: 'a', x: -1.7e308 },
      { g: 'a', x: 1.7e308 },
    ];
    const waited = await post([{ op: 'variance', column: 'x' }], 'duckdb', records);
    assert.equal(waited.statusCode, 422, waited.body);
    assert.equal(
      (JSON.parse(waited.body) as { error: { code: string } }).error.code,
      'QUARRY_ERR_RESULT_OVERFLOW',
    );
    // The same job again (same address): its record says one attempt, not a retry.
    const queued = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations',
      payload: JSON.stringify({
        dataset: { records },
        groupBy: ['g'],
        metrics: [{ op: 'variance', column: 'x' }],
        engine: 'duckdb',
      }),
      headers: { 'content-type': 'application/json' },
    });
    const { jobId } = JSON.parse(queued.body) as { jobId: string };
    const status = await sys.client.waitForJob(jobId, { timeoutMs: 30_000 });
    assert.equal(status.state, 'failed', JSON.stringify(status));
    assert.equal((status as { attempts?: number }).attempts, 1, JSON.stringify(status));
  });
});
