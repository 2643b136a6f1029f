// A spec error found only in the job (a file's column types are known once a worker reads it)
// reached the client with its code but no `field`, in the wait answer and in the job's status:
// the status record kept a code and a message only. It now keeps the field too (docs/KEYS.md).
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { makeFlightsDataDir } from '../helpers/flights.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

describe('attacks: the field of an error found in the job', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let dataDir: string;

  before(async () => {
    redis = await startRedis();
    dataDir = await makeFlightsDataDir();
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_DATA_DIR: dataDir } });
  });
  after(async () => {
    await sys?.close();
    await redis?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const spec = {
    dataset: { path: 'flights.parquet' },
    groupBy: ['origin'],
    metrics: [{ op: 'count' }, { op: 'sum', column: 'destination' }],
    engine: 'duckdb',
  };

  test('POST ?wait answers the job error with its field', async () => {
    const res = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations?wait=30000',
      payload: JSON.stringify(spec),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(res.statusCode, 400, res.body);
    const { error } = JSON.parse(res.body) as { error: { code: string; field?: string } };
    assert.equal(error.code, 'QUARRY_ERR_SPEC_TYPE');
    assert.equal(error.field, 'metrics.1.column', res.body);
  });

  test("the job's status and the SDK's wait carry the field", async () => {
    const handle = await sys.client.aggregate({ ...spec, engine: 'polars' });
    await assert.rejects(handle.wait({ timeoutMs: 30_000 }), {
      code: 'QUARRY_ERR_SPEC_TYPE',
      field: 'metrics.1.column',
    });
    const res = await sys.app.inject({ method: 'GET', url: `/v1/jobs/${handle.jobId}` });
    const status = JSON.parse(res.body) as { state: string; error: { code: string; field?: string } };
    assert.equal(status.state, 'failed');
    assert.deepEqual(
      { code: status.error.code, field: status.error.field },
      {
        code: 'QUARRY_ERR_SPEC_TYPE',
        field: 'metrics.1.column',
      },
    );
  });
});
