// Cancellation and hard timeouts: a queued job is removed at once; a running one is stopped by
// interrupting DuckDB; a job past its type's timeout fails with QUARRY_ERR_JOB_TIMEOUT. None
// leaves a result behind, and the same spec computes normally afterwards.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { QuarryError } from '../../shared/errors.ts';
import { slowFlightsSpec, VEGA_DATA_DIR } from '../helpers/flights.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem } from '../helpers/system.ts';

const slowSpec = slowFlightsSpec;

describe('cancellation and timeouts', () => {
  let redis: RedisServer;
  let raw: Redis;
  before(async () => {
    redis = await startRedis();
    raw = new Redis(redis.url);
  });
  after(async () => {
    raw?.disconnect();
    await redis?.stop();
  });

  test('a queued job is cancelled at once and can be submitted again', async () => {
    const idle = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url }, worker: false });
    const prefix = idle.config.prefix;
    try {
      const spec = { dataset: { records: [{ a: 1 }, { a: 2 }] }, metrics: [{ op: 'sum', column: 'a' }] };
      const handle = await idle.client.aggregate(spec);
      const waiting = handle.wait({ timeoutMs: 10_000 }).then(
        () => null,
        (e: unknown) => e,
      );
      const res = await idle.app.inject({ method: 'DELETE', url: `/v1/jobs/${handle.jobId}` });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().state, 'cancelled');
      assert.equal(res.json().error.code, 'QUARRY_ERR_JOB_CANCELLED');
      const error = await waiting;
      assert.ok(error instanceof QuarryError && error.code === 'QUARRY_ERR_JOB_CANCELLED', String(error));
      assert.equal(await raw.exists(`${prefix}:aggregate:${handle.jobId}`), 0, 'the BullMQ job is gone');
      // Kept (QUARRY_RETRY_DATA_TTL_S) so the cancelled job can be retried.
      const dataTtl = await raw.ttl(`${prefix}:data:${handle.jobId}`);
      assert.ok(
        dataTtl > 0 && dataTtl <= idle.config.retryDataTtlS,
        `its inline data is kept: ttl ${dataTtl}`,
      );
      const again = await idle.client.aggregate(spec);
      assert.equal(again.jobId, handle.jobId);
      assert.equal((await idle.client.status(again.jobId))?.state, 'queued');
      assert.equal(
        await raw.exists(`${prefix}:cancel:${handle.jobId}`),
        0,
        'a new submission clears the cancellation',
      );
      const unknown = await idle.app.inject({
        method: 'DELETE',
        url: '/v1/jobs/agg-00000000000000000000000000000000',
      });
      assert.equal(unknown.statusCode, 404);
    } finally {
      await idle.close();
    }
  });

  test('a running job is interrupted, ends cancelled, and stores nothing', async () => {
    const sys = await startSystem({
      env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_DATA_DIR: VEGA_DATA_DIR },
    });
    try {
      const handle = await sys.client.aggregate(slowSpec(5));
      const started = new Promise<void>((resolve) => {
        void handle
          .wait({ timeoutMs: 30_000, onEvent: (e) => e.state === 'active' && resolve() })
          .catch(() => undefined);
      });
      await started;
      const status = await sys.client.cancel(handle.jobId);
      assert.equal(status.state, 'cancelled');
      assert.equal(status.error?.code, 'QUARRY_ERR_JOB_CANCELLED');
      assert.equal(await sys.client.resultBytes(handle.resultKey), null);
      assert.equal(
        (await sys.client.cancel(handle.jobId)).state,
        'cancelled',
        'cancelling twice is harmless',
      );
    } finally {
      await sys.close();
    }
  });

  test('a job past its hard timeout fails with QUARRY_ERR_JOB_TIMEOUT and stores nothing', async () => {
    const sys = await startSystem({
      env: {
        QUARRY_QUEUE_REDIS_URL: redis.url,
        QUARRY_DATA_DIR: VEGA_DATA_DIR,
        QUARRY_AGGREGATE_TIMEOUT_MS: '300',
      },
    });
    try {
      const handle = await sys.client.aggregate(slowSpec(6));
      await assert.rejects(
        handle.wait({ timeoutMs: 30_000 }),
        (e: unknown) => e instanceof QuarryError && e.code === 'QUARRY_ERR_JOB_TIMEOUT',
      );
      const status = await sys.client.status(handle.jobId);
      assert.equal(status?.state, 'failed');
      assert.equal(status?.attempts, 1, 'a timeout is not retried');
      assert.equal(await sys.client.resultBytes(handle.resultKey), null);
    } finally {
      await sys.close();
    }
  });
});
