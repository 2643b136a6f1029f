// Attacks on "acknowledged means durable" for retries: a queue Redis at maxmemory (noeviction)
// refuses a retry with 503 QUARRY_ERR_REDIS_REFUSED and Retry-After, leaving the record, its
// history entry and the queue as they were; a BullMQ add that fails after the record was reset
// (EVALSHA denied by an ACL, so BullMQ's script never runs) is undone; once the fault is gone the
// same retry is a 202 and the job completes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { liveMember } from '../../shared/keys.ts';
import { silentLogger } from '../../shared/logger.ts';
import { startWorker } from '../../workers/worker.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const spec = (v: number) => ({
  dataset: { records: [{ g: 'a', v }] },
  groupBy: ['g'],
  metrics: [{ op: 'count' }],
});

describe('attack: retries against a Redis that refuses writes', () => {
  let queueRedis: RedisServer;
  let cacheRedis: RedisServer;
  let sys: TestSystem;
  let admin: Redis;
  before(async () => {
    [queueRedis, cacheRedis] = await Promise.all([startRedis(), startRedis()]);
    sys = await startSystem({
      env: { QUARRY_QUEUE_REDIS_URL: queueRedis.url, QUARRY_CACHE_REDIS_URL: cacheRedis.url },
      worker: false,
    });
    admin = new Redis(queueRedis.url);
  });
  after(async () => {
    admin?.disconnect();
    await sys?.close();
    await Promise.all([queueRedis?.stop(), cacheRedis?.stop()]);
  });

  /** What a refused or undone retry must leave exactly as it was. */
  const snapshot = async (jobId: string) => {
    const keys = sys.client.keys;
    return {
      record: await admin.hgetall(keys.status(jobId)),
      history: await admin.zscore(keys.history, jobId),
      historyAll: await admin.zscore(keys.historyAll, liveMember(undefined, jobId)),
      live: await admin.zscore(keys.liveJobs, liveMember(undefined, jobId)),
      bull: await admin.exists(keys.bullJob('aggregate', jobId)),
      data: await admin.exists(keys.inlineData(jobId)),
    };
  };

  test('at maxmemory a retry is a 503 with Retry-After and changes nothing; afterwards it is a 202', async () => {
    const handle = await sys.client.aggregate(spec(1));
    await sys.client.cancel(handle.jobId);
    const before = await snapshot(handle.jobId);
    assert.equal(before.record.state, 'cancelled');
    assert.equal(before.data, 1, 'the inline data is kept for a retry');

    // A limit of one byte is below any used memory, whatever idle clients' buffers free meanwhile
    // (a limit a few KB under used memory once let the retry through on a slower machine).
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await admin.config('SET', 'maxmemory', '1');
    try {
      const refused = await sys.app.inject({ method: 'POST', url: `/v1/jobs/${handle.jobId}/retry` });
      assert.equal(refused.statusCode, 503, refused.body);
      assert.equal(refused.json().error.code, 'QUARRY_ERR_REDIS_REFUSED');
      assert.ok(Number(refused.headers['retry-after']) >= 1);
      assert.deepEqual(await snapshot(handle.jobId), before, 'nothing half-written');
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }

    const accepted = await sys.app.inject({ method: 'POST', url: `/v1/jobs/${handle.jobId}/retry` });
    assert.equal(accepted.statusCode, 202, accepted.body);
    const worker = await startWorker(sys.config, silentLogger());
    try {
      await worker.ready;
      const done = await sys.client.waitForJob(handle.jobId, { timeoutMs: 20_000 });
      assert.equal(done.state, 'completed', JSON.stringify(done));
    } finally {
      await worker.close();
    }
  });

  test('a BullMQ add that fails after the reset is undone: the record is cancelled again, as before', async () => {
    const handle = await sys.client.aggregate(spec(2));
    await sys.client.cancel(handle.jobId);
    const before = await snapshot(handle.jobId);
    // BullMQ adds a job with EVALSHA; Quarry's own scripts use EVAL. Denying EVALSHA makes the add
    // fail before it writes anything, after the reset succeeded: the undo's case.
    await admin.acl('SETUSER', 'default', '-evalsha');
    try {
      const res = await sys.app.inject({ method: 'POST', url: `/v1/jobs/${handle.jobId}/retry` });
      assert.equal(res.statusCode, 500, res.body);
      assert.deepEqual(await snapshot(handle.jobId), before, 'the reset is taken back');
    } finally {
      await admin.acl('SETUSER', 'default', '+evalsha');
    }
    const res = await sys.app.inject({ method: 'POST', url: `/v1/jobs/${handle.jobId}/retry` });
    assert.equal(res.statusCode, 202, res.body);
    assert.equal((await sys.client.status(handle.jobId))?.state, 'queued');
  });
});
