// Attacks on POST /v1/aggregations/batch and client.aggregateMany: hostile items among good ones
// (each refused alone, naming its field, the rest enqueued), batches past the bounds, one spec
// repeated across a batch and across concurrent batches (one job, one run), two tenants sending
// the same batch at once (two tenants' jobs, no result crossing), and a queue Redis at maxmemory
// mid-batch: an item is 202 only when its record, inline data and BullMQ job are all stored (and
// it then completes), else 503 QUARRY_ERR_REDIS_REFUSED leaving nothing; Redis gone: every item 503.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { QUEUE_NAMES } from '../../shared/keys.ts';
import { silentLogger } from '../../shared/logger.ts';
import { startWorker } from '../../workers/worker.ts';
import { fillToMaxmemory, type RedisServer, startRedis, usedMemory } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

type Item = { status: number; cache?: string; retryAfterS?: number; body: Record<string, unknown> };
const errorOf = (item: Item) => item.body.error as { code: string; field?: string; message: string };

const spec = (tag: string, i: number, rows = 3) => ({
  dataset: { records: Array.from({ length: rows }, (_, r) => ({ g: `k${r % 3}`, x: i * 1000 + r, tag })) },
  groupBy: ['g'],
  metrics: [{ op: 'sum', column: 'x' }],
});

const keyOf = (tenant: string) => ({
  key: `batch-attack-${tenant}-0123456789ab`,
  tenant,
  scopes: ['enqueue', 'read'],
});

describe('attack: hostile batches', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let admin: Redis;
  const A = keyOf('A');
  const B = keyOf('B');
  before(async () => {
    redis = await startRedis();
    sys = await startSystem({
      env: {
        QUARRY_QUEUE_REDIS_URL: redis.url,
        QUARRY_API_KEYS: JSON.stringify([A, B]),
        QUARRY_MAX_BATCH_ITEMS: '200',
        QUARRY_MAX_INLINE_BYTES: '4096',
        QUARRY_MAX_BODY_BYTES: String(256 * 1024),
      },
    });
    admin = new Redis(redis.url);
  });
  after(async () => {
    admin?.disconnect();
    await sys?.close();
    await redis?.stop();
  });

  const post = (apiKey: string, payload: unknown) =>
    sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations/batch',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      payload: JSON.stringify(payload),
    });

  test('bad items are refused one by one, naming their field under the item; the good ones run', async () => {
    const hostile: [unknown, number, string, string][] = [
      [5, 400, 'QUARRY_ERR_VALIDATION', 'items.1'],
      [null, 400, 'QUARRY_ERR_VALIDATION', 'items.2'],
      [[spec('h', 1)], 400, 'QUARRY_ERR_VALIDATION', 'items.3'],
      [{ ...spec('h', 2), tenant: 'B' }, 400, 'QUARRY_ERR_VALIDATION', 'items.4.tenant'],
      [
        { ...spec('h', 3), dataset: { path: '../../etc/passwd.csv' } },
        404,
        'QUARRY_ERR_DATASET_NOT_FOUND',
        'items.5.dataset.path',
      ],
      [spec('h', 4, 200), 413, 'QUARRY_ERR_DATASET_TOO_LARGE', 'items.6.dataset.records'],
      [
        { ...spec('h', 5), metrics: [{ op: 'sum', column: 'nope' }] },
        400,
        'QUARRY_ERR_SPEC_UNKNOWN_COLUMN',
        'items.7.metrics.0.column',
      ],
      [
        { ...spec('h', 6), __proto__: { x: 1 }, constructor: 1 },
        400,
        'QUARRY_ERR_VALIDATION',
        'items.8.constructor',
      ],
    ];
    const items = [spec('ok', 1), ...hostile.map(([item]) => item), spec('ok', 2)];
    const res = await post(A.key, { items });
    assert.equal(res.statusCode, 200, res.body);
    const answers = res.json().items as Item[];
    assert.equal(answers.length, items.length);
    for (const [n, [, status, code, field]] of hostile.entries()) {
      const answer = answers[n + 1]!;
      assert.equal(answer.status, status, `item ${n + 1}: ${JSON.stringify(answer)}`);
      assert.equal(errorOf(answer).code, code, JSON.stringify(answer));
      assert.equal(errorOf(answer).field, field, JSON.stringify(answer));
    }
    for (const n of [0, items.length - 1]) {
      assert.equal(answers[n]!.status, 202, JSON.stringify(answers[n]));
      const final = await sys.client
        .forTenant('A')
        .waitForJob(answers[n]!.body.jobId as string, { timeoutMs: 20_000 });
      assert.equal(final.state, 'completed');
    }
  });

  test('past the bounds: more items than QUARRY_MAX_BATCH_ITEMS is a 400 naming items, a body past QUARRY_MAX_BODY_BYTES a 413; nothing is enqueued', async () => {
    const before = await admin.keys(`${sys.config.prefix}:t:A:job:*`);
    const many = await post(A.key, { items: Array.from({ length: 201 }, (_, i) => spec('many', i)) });
    assert.equal(many.statusCode, 400, many.body.slice(0, 300));
    assert.equal(many.json().error.field, 'items');
    const big = await post(A.key, { items: Array.from({ length: 150 }, (_, i) => spec('big', i, 60)) });
    assert.equal(big.statusCode, 413, big.body.slice(0, 300));
    assert.equal(big.json().error.code, 'QUARRY_ERR_BODY_TOO_LARGE');
    assert.deepEqual((await admin.keys(`${sys.config.prefix}:t:A:job:*`)).sort(), before.sort());
  });

  test('one spec repeated in a batch and across concurrent batches is one job that runs once', async () => {
    const sub = new Redis(redis.url);
    const starts: string[] = [];
    sub.on('message', (_channel, message) => {
      const e = JSON.parse(message) as { jobId: string; state: string; progress: { phase: string } };
      if (e.state === 'active' && e.progress.phase === 'load') starts.push(e.jobId);
    });
    await sub.subscribe(sys.client.forTenant('B').keys.eventsChannel);
    try {
      const same = spec('dup', 7, 50);
      const items = Array.from({ length: 100 }, (_, i) => (i % 10 === 3 ? spec('other', i) : same));
      const answers = (
        await Promise.all([post(B.key, { items }), post(B.key, { items }), post(B.key, { items })])
      ).map((res) => res.json().items as Item[]);
      const { jobId } = await sys.client.forTenant('B').address(same);
      for (const batch of answers) {
        for (const [n, item] of batch.entries()) {
          if (n % 10 === 3) continue;
          // A hit is possible if the job finished before a later batch read the cache.
          assert.ok(item.status === 202 || item.status === 200, JSON.stringify(item));
          if (item.status === 202) assert.equal(item.body.jobId, jobId);
        }
      }
      await sys.client.forTenant('B').waitForJob(jobId, { timeoutMs: 20_000 });
      const others = new Set(answers[0]!.filter((_, n) => n % 10 === 3).map((i) => i.body.jobId as string));
      for (const id of others) await sys.client.forTenant('B').waitForJob(id, { timeoutMs: 20_000 });
      assert.equal(starts.filter((id) => id === jobId).length, 1, 'the repeated spec ran once');
      assert.equal(new Set(starts).size, starts.length, 'no job ran twice');
    } finally {
      sub.disconnect();
    }
  });

  test('two tenants sending the same batch at once get their own jobs; a result never crosses tenants', async () => {
    const items = Array.from({ length: 10 }, (_, i) => spec('mixed', i));
    const [a, b] = await Promise.all([post(A.key, { items }), post(B.key, { items })]);
    const ia = a.json().items as Item[];
    const ib = b.json().items as Item[];
    for (let n = 0; n < items.length; n++) {
      assert.equal(ia[n]!.status, 202);
      assert.equal(ib[n]!.status, 202);
      assert.notEqual(ia[n]!.body.jobId, ib[n]!.body.jobId);
      assert.notEqual(ia[n]!.body.resultKey, ib[n]!.body.resultKey);
      await sys.client.forTenant('A').waitForJob(ia[n]!.body.jobId as string, { timeoutMs: 20_000 });
    }
    // A's results are cached; B's batch of the same specs is not answered from them.
    const again = await post(B.key, { items: [items[0], spec('mixed', 99)] });
    const [first] = again.json().items as Item[];
    assert.ok(
      first!.status === 202 || first!.body.resultKey === ib[0]!.body.resultKey,
      JSON.stringify(first),
    );
    const aHit = ((await post(A.key, { items: [items[0]] })).json().items as Item[])[0]!;
    assert.equal(aHit.status, 200);
    assert.equal(aHit.body.resultKey, ia[0]!.body.resultKey);
  });
});

describe('attack: the queue Redis fails mid-batch', () => {
  let queueRedis: RedisServer;
  let cacheRedis: RedisServer;
  let sys: TestSystem;
  let admin: Redis;
  before(async () => {
    [queueRedis, cacheRedis] = await Promise.all([startRedis(), startRedis()]);
    // No worker: what each answer claims is checked in Redis before anything runs.
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

  test('at maxmemory an item is 202 only when stored whole (then it completes), else 503 leaving nothing', async () => {
    const pads = await fillToMaxmemory(admin, 256 * 1024);
    const accepted: string[] = [];
    const refused: string[] = [];
    let mixed = 0;
    let seed = 0;
    const keys = sys.client.keys;
    const bull = (jobId: string) => admin.exists(`${sys.config.prefix}:${QUEUE_NAMES.aggregate}:${jobId}`);
    // Room for a few of a batch's jobs, a little more each round: batches cut anywhere.
    for (let round = 0; round < 24; round++) {
      await admin.config('SET', 'maxmemory', String((await usedMemory(admin)) + round * 6 * 1024));
      const items = Array.from({ length: 12 }, () => spec('full', seed++, 20));
      const viaSdk = round % 2 === 1;
      const answers: { ok: boolean; jobId: string }[] = [];
      if (viaSdk) {
        for (const [n, item] of (await sys.client.aggregateMany(items)).entries()) {
          const { jobId } = await sys.client.address(items[n]);
          if (!item.ok)
            assert.equal(
              (item.error as { code?: string }).code,
              'QUARRY_ERR_REDIS_REFUSED',
              String(item.error),
            );
          answers.push({ ok: item.ok, jobId });
        }
      } else {
        const res = await sys.app.inject({
          method: 'POST',
          url: '/v1/aggregations/batch',
          payload: { items },
        });
        assert.equal(res.statusCode, 200, res.body);
        for (const item of res.json().items as Item[]) {
          assert.ok(item.status === 202 || item.status === 503, JSON.stringify(item));
          if (item.status === 503) {
            assert.equal(errorOf(item).code, 'QUARRY_ERR_REDIS_REFUSED');
            assert.equal(item.retryAfterS, 1);
          }
          answers.push({ ok: item.status === 202, jobId: (item.body.jobId as string) ?? '' });
        }
        for (const [n, a] of answers.entries())
          if (!a.ok) a.jobId = (await sys.client.address(items[n])).jobId;
      }
      for (const { ok, jobId } of answers) {
        if (ok) {
          assert.equal(
            (await sys.client.status(jobId))?.state,
            'queued',
            `acknowledged ${jobId} has its record`,
          );
          assert.equal(await admin.exists(keys.inlineData(jobId)), 1, `acknowledged ${jobId} has its data`);
          assert.equal(await bull(jobId), 1, `acknowledged ${jobId} has its BullMQ job`);
          accepted.push(jobId);
        } else {
          assert.equal(await sys.client.status(jobId), null, `no record left for refused ${jobId}`);
          assert.equal(
            await admin.exists(keys.inlineData(jobId)),
            0,
            `no inline data left for refused ${jobId}`,
          );
          assert.equal(await bull(jobId), 0, `no BullMQ job for refused ${jobId}`);
          refused.push(jobId);
        }
      }
      if (answers.some((a) => a.ok) && answers.some((a) => !a.ok)) mixed++;
    }
    assert.ok(refused.length > 0, 'some items were refused');
    assert.ok(accepted.length > 0, 'some items were stored');
    assert.ok(mixed > 0, 'some batches were cut by the fault: part stored, part refused');

    await admin.config('SET', 'maxmemory', '0');
    await admin.del(...pads);
    const worker = await startWorker(sys.config, silentLogger());
    try {
      await worker.ready;
      for (const jobId of accepted) {
        const final = await sys.client.waitForJob(jobId, { timeoutMs: 30_000 });
        assert.equal(final.state, 'completed', `acknowledged ${jobId} completed`);
      }
    } finally {
      await worker.close();
    }
  });

  test('with the queue Redis gone every item is a 503 (never a 202, never a 500)', async () => {
    await queueRedis.stop();
    const res = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations/batch',
      payload: { items: [spec('gone', 1), spec('gone', 2), { nope: 1 }] },
    });
    assert.equal(res.statusCode, 200, res.body);
    const items = res.json().items as Item[];
    assert.deepEqual(
      items.map((i) => [i.status, errorOf(i).code]),
      [
        [503, 'QUARRY_ERR_REDIS_UNAVAILABLE'],
        [503, 'QUARRY_ERR_REDIS_UNAVAILABLE'],
        [400, 'QUARRY_ERR_VALIDATION'],
      ],
    );
  });
});
