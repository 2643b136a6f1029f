// Attacks on a job's end: an attempt that starts after the job ended. BullMQ delivers such an
// attempt when it never recorded a job's end (the worker's completion reached Quarry's record,
// then Redis restarted or the lock was lost before BullMQ's own move), and an attempt whose start
// script reaches Redis late (a reconnecting connection replaying it) runs after a newer attempt
// finished. Such an attempt once made the finished record `active` again: a completed record
// holds no payload, so when that attempt was cut off, the reconciler could only fail the job as
// QUARRY_ERR_JOB_ORPHANED (seen once in the chaos test: an acknowledged job lost). Here BullMQ
// really delivers the job again (the same id and data added back to the queue) to a real worker.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { jobOptions } from '../../shared/job-options.ts';
import { keyScheme, QUEUE_NAMES } from '../../shared/keys.ts';
import { silentLogger } from '../../shared/logger.ts';
import { StatusStore } from '../../shared/status.ts';
import { startWorker } from '../../workers/worker.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const spec = (v: number) => ({
  dataset: {
    records: [
      { g: 'a', v },
      { g: 'b', v: v + 1 },
    ],
  },
  groupBy: ['g'],
  metrics: [{ op: 'sum', column: 'v' }],
});

describe('attack: an attempt that starts after its job ended', () => {
  let queueRedis: RedisServer;
  let cacheRedis: RedisServer;
  let sys: TestSystem;
  let admin: Redis;
  let cacheAdmin: Redis;
  let subscriber: Redis;
  let queue: Queue;
  /** Every record the job's events published, in order. */
  const events: { jobId: string; state: string }[] = [];
  before(async () => {
    [queueRedis, cacheRedis] = await Promise.all([startRedis(), startRedis()]);
    sys = await startSystem({
      env: { QUARRY_QUEUE_REDIS_URL: queueRedis.url, QUARRY_CACHE_REDIS_URL: cacheRedis.url },
      worker: false,
    });
    admin = new Redis(queueRedis.url);
    cacheAdmin = new Redis(cacheRedis.url);
    subscriber = new Redis(queueRedis.url);
    subscriber.on('message', (_channel, message) => {
      const e = JSON.parse(message) as { jobId: string; state: string };
      events.push({ jobId: e.jobId, state: e.state });
    });
    await subscriber.subscribe(keyScheme(sys.config.prefix).eventsChannel);
    queue = new Queue(QUEUE_NAMES.aggregate, { connection: admin, prefix: sys.config.prefix });
  });
  after(async () => {
    await queue?.close();
    subscriber?.disconnect();
    cacheAdmin?.disconnect();
    admin?.disconnect();
    await sys?.close();
    await Promise.all([queueRedis?.stop(), cacheRedis?.stop()]);
  });

  /** Enqueues with no worker running and returns the job's id and the data BullMQ holds for it. */
  const enqueue = async (v: number) => {
    const handle = await sys.client.aggregate(spec(v));
    const job = await queue.getJob(handle.jobId);
    assert.ok(job, 'BullMQ holds the job');
    return { handle, data: job.data as object };
  };

  /** Runs a worker until BullMQ holds none of `jobIds` any more. */
  const runWorkerUntilDrained = async (jobIds: string[]) => {
    const worker = await startWorker(sys.config, silentLogger());
    try {
      await worker.ready;
      const deadline = Date.now() + 20_000;
      for (const id of jobIds) {
        while ((await admin.exists(sys.client.keys.bullJob('aggregate', id))) === 1) {
          assert.ok(Date.now() < deadline, `BullMQ still holds ${id}`);
          await new Promise((r) => setTimeout(r, 25));
        }
      }
    } finally {
      await worker.close();
    }
  };

  test('a completed job delivered again stays completed, is never published active, and its result stays', async () => {
    const kept = await enqueue(10);
    const evicted = await enqueue(20);
    await runWorkerUntilDrained([kept.handle.jobId, evicted.handle.jobId]);
    const records = await Promise.all(
      [kept, evicted].map(({ handle }) => admin.hgetall(sys.client.keys.status(handle.jobId))),
    );
    for (const r of records) assert.equal(r.state, 'completed');
    for (const r of records) assert.equal(r.payload, undefined, 'a completed record drops its payload');
    // One result evicted from the cache (an allkeys-lru cache does that): the late attempt finds
    // neither the result nor the inline data (deleted on completion).
    await cacheAdmin.del(keyScheme(sys.config.prefix).result(evicted.handle.resultKey));
    events.length = 0;

    for (const { handle, data } of [kept, evicted]) {
      await queue.add(QUEUE_NAMES.aggregate, data, jobOptions(sys.config, handle.jobId));
    }
    await runWorkerUntilDrained([kept.handle.jobId, evicted.handle.jobId]);

    for (const [i, { handle }] of [kept, evicted].entries()) {
      const now = await admin.hgetall(sys.client.keys.status(handle.jobId));
      assert.deepEqual(now, records[i], `${handle.jobId}: the record is exactly as it ended`);
      const status = await sys.client.status(handle.jobId);
      assert.equal(status?.state, 'completed');
    }
    assert.deepEqual(events, [], 'nothing was published: no record went active again');
    const result = await sys.client.result(kept.handle.resultKey);
    assert.ok(result, 'the kept result is still served');
  });

  test('a cancelled job delivered again stays cancelled with its own message', async () => {
    const { handle, data } = await enqueue(30);
    await sys.client.cancel(handle.jobId);
    const cancelled = await admin.hgetall(sys.client.keys.status(handle.jobId));
    assert.equal(cancelled.state, 'cancelled');
    events.length = 0;
    await queue.add(QUEUE_NAMES.aggregate, data, jobOptions(sys.config, handle.jobId));
    await runWorkerUntilDrained([handle.jobId]);
    assert.deepEqual(await admin.hgetall(sys.client.keys.status(handle.jobId)), cancelled);
    assert.deepEqual(events, []);
  });

  test("a late attempt's writes leave an ended record as it is: no retry's queued, no progress, no other end", async () => {
    const { handle } = await enqueue(40);
    await runWorkerUntilDrained([handle.jobId]);
    const keys = keyScheme(sys.config.prefix);
    const ended = await admin.hgetall(keys.status(handle.jobId));
    assert.equal(ended.state, 'completed');
    const status = new StatusStore(admin, keys, 60);
    await status.failed(handle.jobId, { code: 'QUARRY_ERR_ENGINE', message: 'late' }, false);
    await status.failed(handle.jobId, { code: 'QUARRY_ERR_ENGINE', message: 'late' }, true);
    await status.progress(handle.jobId, { phase: 'compute', percent: 50 });
    await status.completed(handle.jobId, 'another-key');
    assert.deepEqual(await admin.hgetall(keys.status(handle.jobId)), ended);
    const start = await status.active(handle.jobId, 2, true);
    assert.equal(start.ended, 'completed');
    assert.deepEqual(await admin.hgetall(keys.status(handle.jobId)), ended);
    // A progress write for a record that is gone (expired) does not create a stub.
    await status.progress('agg-gone', { phase: 'compute', percent: 50 });
    assert.equal(await admin.exists(keys.status('agg-gone')), 0);
  });
});
