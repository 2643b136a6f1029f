// Attacks on "acknowledged means durable" (Quarry issue "Trust", item 2): a queue Redis at
// maxmemory (noeviction) used to answer 500s and to lose a job it had acknowledged with 202.
// Now every enqueue is a 202 (kept until it completes) or a 503 QUARRY_ERR_REDIS_REFUSED with
// Retry-After that leaves nothing behind; and records left queued without a BullMQ job (deleted
// behind Quarry's back) are put back in the queue by the workers' reconciler, or failed with
// QUARRY_ERR_JOB_ORPHANED when their inline data is gone.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { QuarryError } from '../../shared/errors.ts';
import { QUEUE_NAMES } from '../../shared/keys.ts';
import { silentLogger } from '../../shared/logger.ts';
import { startWorker } from '../../workers/worker.ts';
import { fillToMaxmemory, type RedisServer, startRedis, usedMemory } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const FAST_RECOVERY = {
  QUARRY_RECONCILE_INTERVAL_MS: '300',
  QUARRY_LOCK_DURATION_MS: '2000',
  QUARRY_STALLED_INTERVAL_MS: '1000',
  QUARRY_JOB_BACKOFF_MS: '100',
  QUARRY_MAX_STALLED_COUNT: '5',
};

/** Fills the server to its maxmemory with padding keys; returns their names. */
const fill = (admin: Redis) => fillToMaxmemory(admin, 256 * 1024);

const spec = (seed: number, rows = 3) => ({
  dataset: { records: Array.from({ length: rows }, (_, i) => ({ g: `k${i % 3}`, x: seed * 1000 + i })) },
  groupBy: ['g'],
  metrics: [{ op: 'sum', column: 'x' }],
});

/** A spec whose inline data (~300 KB) is larger than the room left below maxmemory. */
const bigSpec = (seed: number) => ({
  dataset: {
    records: Array.from({ length: 3000 }, (_, i) => ({
      g: `k${i % 3}`,
      x: seed * 10_000 + i,
      pad: 'y'.repeat(80),
    })),
  },
  groupBy: ['g'],
  metrics: [{ op: 'count' }],
});

describe('attack: the queue Redis is full (maxmemory, noeviction)', () => {
  let queueRedis: RedisServer;
  let cacheRedis: RedisServer;
  let sys: TestSystem;
  let admin: Redis;
  before(async () => {
    [queueRedis, cacheRedis] = await Promise.all([startRedis(), startRedis()]);
    sys = await startSystem({
      env: {
        QUARRY_QUEUE_REDIS_URL: queueRedis.url,
        QUARRY_CACHE_REDIS_URL: cacheRedis.url,
        ...FAST_RECOVERY,
      },
    });
    admin = new Redis(queueRedis.url);
  });
  after(async () => {
    admin?.disconnect();
    await sys?.close();
    await Promise.all([queueRedis?.stop(), cacheRedis?.stop()]);
  });

  test('every enqueue answers 202/handle or 503 QUARRY_ERR_REDIS_REFUSED with Retry-After (never 500); every 202 completes once memory is freed; a 503 leaves no record and no inline data', async () => {
    const pads = await fill(admin);
    // Room below maxmemory, measured now (client buffers count in used_memory too).
    const room = async (bytes: number) =>
      admin.config('SET', 'maxmemory', String((await usedMemory(admin)) + bytes));
    const accepted: string[] = [];
    const refused: string[] = [];
    let seed = 0;
    const viaHttp = async (payload: unknown, url = '/v1/aggregations') => {
      const res = await sys.app.inject({ method: 'POST', url, payload: payload as object });
      assert.ok(
        res.statusCode === 202 || res.statusCode === 503,
        `202 or 503, got ${res.statusCode} ${res.body}`,
      );
      if (res.statusCode === 503) {
        assert.equal(res.json().error.code, 'QUARRY_ERR_REDIS_REFUSED', res.body);
        assert.ok(Number(res.headers['retry-after']) >= 1, 'Retry-After is set');
        return 'refused';
      }
      return 'accepted';
    };
    const burst = async (make: (seed: number) => object, n: number) => {
      const work: Promise<void>[] = [];
      for (let i = 0; i < n; i++) {
        const s = seed++;
        const input = make(s);
        work.push(
          (async () => {
            const { jobId } = await sys.client.address(input);
            const outcome = await viaHttp(input);
            (outcome === 'accepted' ? accepted : refused).push(jobId);
          })(),
        );
        const sdkInput = make(seed++);
        work.push(
          (async () => {
            const { jobId } = await sys.client.address(sdkInput);
            try {
              await sys.client.aggregate(sdkInput);
              accepted.push(jobId);
            } catch (error) {
              assert.ok(error instanceof QuarryError, `a QuarryError, got ${error}`);
              assert.equal(error.code, 'QUARRY_ERR_REDIS_REFUSED');
              assert.equal(error.retryAfterS, 1);
              refused.push(jobId);
            }
          })(),
        );
      }
      await Promise.all(work);
    };

    // Full: the atomic enqueue is refused at its first write.
    await burst((s) => spec(s), 10);
    const index = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/full',
      payload: { documents: [{ id: '1', t: 'red' }], idField: 'id', fields: ['t'] },
    });
    assert.equal(index.statusCode, 503, index.body);
    assert.equal(index.json().error.code, 'QUARRY_ERR_REDIS_REFUSED');
    assert.equal(accepted.length, 0, 'nothing is acknowledged by a full Redis');

    // Some room, less than one big job's data: its record and data fit, then BullMQ's add is
    // refused and the enqueue takes back what it wrote.
    await room(64 * 1024);
    for (let i = 0; i < 4; i++) await burst(bigSpec, 1);
    assert.equal(accepted.length, 0, 'a job whose add was refused is not acknowledged');
    // More room: small jobs are acknowledged until memory runs out again, then refused; the
    // worker starts on the acknowledged ones while their writes may be refused too.
    await room(256 * 1024);
    const refusedBefore = refused.length;
    for (let round = 0; round < 200 && refused.length === refusedBefore; round++) {
      await burst((s) => spec(s), 5);
    }
    assert.ok(accepted.length > 0, 'enqueues were acknowledged while there was room');
    assert.ok(refused.length > refusedBefore, 'then refused once memory ran out again');

    await admin.config('SET', 'maxmemory', '0');
    await admin.del(...pads);
    for (const jobId of accepted) {
      const final = await sys.client.waitForJob(jobId, { timeoutMs: 30_000 });
      assert.equal(final.state, 'completed', `acknowledged ${jobId} completed`);
    }
    const keys = sys.client.keys;
    for (const jobId of refused) {
      assert.equal(await admin.exists(keys.inlineData(jobId)), 0, `no inline data left for refused ${jobId}`);
      assert.equal(await sys.client.status(jobId), null, `no record left for refused ${jobId}`);
    }
    assert.equal(await admin.zcard(keys.liveJobs), 0, 'no live record left behind');
  });
});

describe('attack: a status record is left queued without its BullMQ job', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let admin: Redis;
  let queue: Queue;
  before(async () => {
    redis = await startRedis();
    // No worker yet: the job is taken from BullMQ before any worker can see it.
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url, ...FAST_RECOVERY }, worker: false });
    admin = new Redis(redis.url);
    queue = new Queue(QUEUE_NAMES.aggregate, { connection: admin, prefix: sys.config.prefix });
  });
  after(async () => {
    await queue?.close();
    admin?.disconnect();
    await sys?.close();
    await redis?.stop();
  });

  test('the reconciler enqueues it again and it completes; one whose inline data is gone ends failed with QUARRY_ERR_JOB_ORPHANED', async () => {
    const lost = await sys.client.aggregate(spec(1));
    const dataless = await sys.client.aggregate(spec(2));
    for (const job of [lost, dataless]) {
      assert.equal(await queue.remove(job.jobId), 1, 'the BullMQ job is deleted behind Quarry');
      assert.equal((await sys.client.status(job.jobId))?.state, 'queued');
    }
    await admin.del(sys.client.keys.inlineData(dataless.jobId));

    const worker = await startWorker(sys.config, silentLogger());
    try {
      await worker.ready;
      const result = await lost.wait({ timeoutMs: 20_000 });
      assert.deepEqual(
        result.rows.map((r) => r.sum_x),
        [1000 + 0, 1000 + 1, 1000 + 2],
        'the re-enqueued job computed its own data',
      );
      await assert.rejects(
        dataless.wait({ timeoutMs: 20_000 }),
        (e: unknown) => e instanceof QuarryError && e.code === 'QUARRY_ERR_JOB_ORPHANED',
      );
      const status = await sys.client.status(dataless.jobId);
      assert.equal(status?.state, 'failed');
      assert.equal(status?.error?.code, 'QUARRY_ERR_JOB_ORPHANED');
      assert.equal(await admin.zcard(sys.client.keys.liveJobs), 0, 'both left the live set');
    } finally {
      await worker.close();
    }
  });
});
