// Batched enqueues (client.aggregateMany, POST /v1/aggregations/batch) against a real Redis and
// a real worker, held to what a single enqueue does: the same result keys and results, a cached
// result answered without a job, identical specs (in the batch, or in flight) sharing one job
// that runs once, a bad spec answered alone while the rest run, the tenant's maxQueued per item
// (429), fair places (BullMQ priorities) as single enqueues get them, tenant scoping and scopes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { QuarryClient } from '../../producers/client.ts';
import { QUEUE_NAMES } from '../../shared/keys.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const spec = (tag: string, i: number) => ({
  dataset: { records: [{ g: 'a', x: i }, { g: 'b', x: i + 1 }, { g: 'a', x: 2 }, { tag }] },
  groupBy: ['g'],
  metrics: [{ op: 'sum', column: 'x' }, { op: 'count' }],
  orderBy: [{ column: 'g' }],
});
const badSpec = { dataset: { records: [{ x: 1 }] }, metrics: [{ op: 'sum' }] };

const key = (tenant: string, scopes = ['enqueue', 'read']) => ({
  key: `batch-key-${tenant}-${scopes.join('-')}-0123456789`,
  tenant,
  scopes,
});

/** Counts, per job id, how many times a worker started it (every tenant's events). */
async function countStarts(
  url: string,
  prefix: string,
): Promise<{ starts: Map<string, number>; close(): void }> {
  const sub = new Redis(url);
  const starts = new Map<string, number>();
  sub.on('pmessage', (_p, _channel, message) => {
    const e = JSON.parse(message) as { jobId: string; state: string; progress: { phase: string } };
    if (e.state === 'active' && e.progress.phase === 'load')
      starts.set(e.jobId, (starts.get(e.jobId) ?? 0) + 1);
  });
  await sub.psubscribe(`${prefix}:*events`);
  return { starts, close: () => sub.disconnect() };
}

describe('batched enqueues', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let client: QuarryClient;
  before(async () => {
    redis = await startRedis();
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_MAX_BATCH_ITEMS: '20' } });
    client = sys.client;
  });
  after(async () => {
    await sys?.close();
    await redis?.stop();
  });

  test('aggregateMany: each spec gets the result key and result a single aggregate gets; a bad spec fails alone; duplicates run once', async () => {
    const watch = await countStarts(redis.url, sys.config.prefix);
    try {
      const specs = [spec('m', 1), badSpec, spec('m', 2), spec('m', 1), spec('m', 3), spec('m', 1)];
      // More specs than QUARRY_MAX_BATCH_ITEMS: chunks of 2 cross the duplicates' positions.
      const items = await client.aggregateMany(specs, { chunkSize: 2 });
      assert.equal(items.length, specs.length);
      const bad = items[1]!;
      assert.ok(!bad.ok, 'the bad spec fails');
      assert.equal((bad.error as { code?: string }).code, 'QUARRY_ERR_VALIDATION');
      assert.equal((bad.error as { field?: string }).field, 'metrics.0.column');
      const handles = items.flatMap((item) => (item.ok ? [item.handle] : []));
      assert.equal(handles.length, 5);
      const texts = specs.map((s) => JSON.stringify(s));
      for (const [n, item] of items.entries()) {
        if (!item.ok) continue;
        assert.equal(item.handle.resultKey, (await client.address(specs[n])).resultKey, `item ${n}'s key`);
        // A first occurrence is enqueued; a repeat in a later chunk joins that job, or is a cache
        // hit when the job already finished (the JS engine computes these in under a millisecond).
        if (texts.indexOf(texts[n]!) === n) assert.equal(item.handle.cached, false, `item ${n}`);
      }
      const [one, , two, oneAgain] = items.map((i) => (i.ok ? i.handle : undefined));
      assert.ok(
        oneAgain!.cached || oneAgain!.jobId === one!.jobId,
        'identical specs share one job (or its result) across chunks',
      );
      const envelopes = await Promise.all(handles.map((h) => h.wait({ timeoutMs: 20_000 })));
      // The same results a single aggregate answers (from the cache now: nothing is queued).
      for (const [n, envelope] of envelopes.entries()) {
        const single = await client.aggregate(specs[[0, 2, 3, 4, 5][n]!]);
        assert.equal(single.cached, true);
        assert.deepEqual(envelope.rows, (await single.wait()).rows);
      }
      assert.deepEqual(envelopes[0]!.rows, [
        { g: 'a', sum_x: 3, count: 2 },
        { g: 'b', sum_x: 2, count: 1 },
        { g: null, sum_x: null, count: 1 },
      ]);
      assert.equal(two!.resultKey !== one!.resultKey, true);
      // Three distinct jobs, each started once.
      assert.deepEqual(
        [...new Set(handles.filter((h) => !h.cached).map((h) => h.jobId))].map((id) => watch.starts.get(id)),
        [1, 1, 1],
      );
      // Cached now: answered without a job.
      const again = await client.aggregateMany([spec('m', 2), spec('m', 3)]);
      assert.deepEqual(
        again.map((i) => i.ok && i.handle.cached),
        [true, true],
      );
    } finally {
      watch.close();
    }
  });

  test('POST /v1/aggregations/batch answers each item as POST /v1/aggregations would, in order', async () => {
    const cachedSpec = spec('h', 1);
    const single = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations?wait=20000',
      payload: cachedSpec,
    });
    assert.equal(single.statusCode, 200, single.body);
    const fresh = spec('h', 2);
    const res = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations/batch',
      payload: { items: [fresh, cachedSpec, badSpec, fresh, { ...fresh, orderBy: 'g' }] },
    });
    assert.equal(res.statusCode, 200, res.body);
    const { items } = res.json() as {
      items: { status: number; cache?: string; body: Record<string, unknown> }[];
    };
    assert.equal(items.length, 5);
    const { jobId, resultKey } = await client.address(fresh);
    assert.deepEqual(items[0], {
      status: 202,
      cache: 'miss',
      body: {
        jobId,
        resultKey,
        status: 'queued',
        links: { status: `/v1/jobs/${jobId}`, result: `/v1/results/${resultKey}` },
      },
    });
    // The cached envelope, byte for byte what the single route answered.
    assert.equal(items[1]!.status, 200);
    assert.equal(items[1]!.cache, 'hit');
    assert.deepEqual(items[1]!.body, single.json());
    assert.equal(items[2]!.status, 400);
    assert.deepEqual(items[2]!.body, {
      error: {
        code: 'QUARRY_ERR_VALIDATION',
        message: 'metrics.0.column is required (a string)',
        field: 'items.2.metrics.0.column',
      },
    });
    assert.deepEqual(items[3], items[0], 'a duplicate joins the first');
    assert.equal(items[4]!.status, 400);
    assert.equal((items[4]!.body.error as { field: string }).field, 'items.4.orderBy');
    // What the single route says about the same bad spec (apart from the item prefix).
    const alone = await sys.app.inject({ method: 'POST', url: '/v1/aggregations', payload: badSpec });
    assert.equal(alone.statusCode, 400);
    assert.equal(alone.json().error.message, (items[2]!.body.error as { message: string }).message);
    // The queued job completes: polling its result works as for a single enqueue.
    await client.waitForJob(jobId, { timeoutMs: 20_000 });
    const result = await sys.app.inject({ method: 'GET', url: `/v1/results/${resultKey}` });
    assert.equal(result.statusCode, 200);
  });

  test('the batch itself: items required, 1 to QUARRY_MAX_BATCH_ITEMS, nothing else in the body; 400 naming the field', async () => {
    const post = (payload: unknown) =>
      sys.app.inject({
        method: 'POST',
        url: '/v1/aggregations/batch',
        headers: { 'content-type': 'application/json' },
        payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
      });
    const cases: [unknown, string][] = [
      [{}, 'items'],
      [{ items: {} }, 'items'],
      [{ items: [] }, 'items'],
      [{ items: Array.from({ length: 21 }, (_, i) => spec('o', i)) }, 'items'],
      [{ items: [spec('o', 1)], wait: 100 }, 'wait'],
      [[spec('o', 1)], 'body'],
    ];
    for (const [payload, field] of cases) {
      const res = await post(payload);
      assert.equal(res.statusCode, 400, `${JSON.stringify(payload).slice(0, 60)}: ${res.body}`);
      assert.equal(res.json().error.code, 'QUARRY_ERR_VALIDATION');
      assert.equal(res.json().error.field, field, res.body);
    }
    const notJson = await post('{"items": [');
    assert.equal(notJson.statusCode, 400);
    assert.equal(notJson.json().error.code, 'QUARRY_ERR_BODY_INVALID_JSON');
    const query = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations/batch?wait=10',
      payload: { items: [spec('o', 1)] },
    });
    assert.equal(query.statusCode, 400);
    assert.equal(query.json().error.field, 'wait');
    // Exactly the bound is fine.
    const full = await post({ items: Array.from({ length: 20 }, (_, i) => spec('o', i)) });
    assert.equal(full.statusCode, 200, full.body);
    assert.equal(full.json().items.length, 20);
  });
});

describe('batched enqueues with tenants', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  const A = key('A');
  const B = key('B');
  const reader = key('A', ['read']);
  const Q = { ...key('Q'), maxQueued: 3 };
  const C = key('C');
  const D = key('D');
  before(async () => {
    redis = await startRedis();
    // No worker: jobs stay queued, so quotas, places and joins can be read.
    sys = await startSystem({
      env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_API_KEYS: JSON.stringify([A, B, reader, Q, C, D]) },
      worker: false,
    });
  });
  after(async () => {
    await sys?.close();
    await redis?.stop();
  });

  const batch = (apiKey: string, items: unknown[]) =>
    sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations/batch',
      headers: { authorization: `Bearer ${apiKey}` },
      payload: { items },
    });

  test("tenant scoping and scopes are the single route's", async () => {
    const items = [spec('t', 1), spec('t', 2)];
    const [a, b] = await Promise.all([batch(A.key, items), batch(B.key, items)]);
    const ids = (res: typeof a) =>
      (res.json().items as { body: { jobId: string } }[]).map((i) => i.body.jobId);
    assert.equal(a.statusCode, 200, a.body);
    assert.equal(b.statusCode, 200, b.body);
    for (const [n, id] of ids(a).entries()) {
      assert.equal(id, (await sys.client.forTenant('A').address(items[n])).jobId);
      assert.notEqual(id, ids(b)[n], "identical specs of two tenants are two tenants' jobs");
      const other = await sys.app.inject({
        method: 'GET',
        url: `/v1/jobs/${id}`,
        headers: { authorization: `Bearer ${B.key}` },
      });
      assert.equal(other.statusCode, 404, "B does not see A's job");
      assert.equal((await sys.client.forTenant('A').status(id))?.state, 'queued');
    }
    const denied = await batch(reader.key, items);
    assert.equal(denied.statusCode, 403);
    assert.equal(denied.json().error.code, 'QUARRY_ERR_FORBIDDEN');
    const anonymous = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations/batch',
      payload: { items },
    });
    assert.equal(anonymous.statusCode, 401);
  });

  test("past the tenant's maxQueued an item is a 429 QUARRY_ERR_TENANT_QUOTA and writes nothing; a duplicate of a queued job joins it", async () => {
    const items = [1, 2, 3, 4, 1, 5].map((i) => spec('q', i));
    const res = await batch(Q.key, items);
    assert.equal(res.statusCode, 200, res.body);
    const answers = res.json().items as {
      status: number;
      retryAfterS?: number;
      body: { jobId?: string; error?: { code: string } };
    }[];
    assert.deepEqual(
      answers.map((i) => i.status),
      [202, 202, 202, 429, 202, 429],
    );
    for (const n of [3, 5]) {
      assert.equal(answers[n]!.body.error?.code, 'QUARRY_ERR_TENANT_QUOTA');
      assert.equal(answers[n]!.retryAfterS, 1);
      const { jobId } = await sys.client.forTenant('Q').address(items[n]);
      assert.equal(await sys.client.forTenant('Q').status(jobId), null, 'nothing written for a refused item');
    }
    assert.equal(answers[4]!.body.jobId, answers[0]!.body.jobId);
    assert.deepEqual(await sys.client.forTenant('Q').usage(), { queued: 3, active: 0 });
    // A job already queued is joined by a later batch (not a new job: no quota needed).
    const later = await sys.client.forTenant('Q').aggregateMany([items[1], spec('q', 6)]);
    assert.ok(later[0]!.ok && later[0]!.handle.jobId === answers[1]!.body.jobId);
    assert.ok(!later[1]!.ok && (later[1]!.error as { code?: string }).code === 'QUARRY_ERR_TENANT_QUOTA');
  });

  test('each new job gets its fair place, as single enqueues of the same jobs would', async () => {
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queue = new Queue(QUEUE_NAMES.aggregate, { connection, prefix: sys.config.prefix });
    try {
      const viaBatch = await sys.client
        .forTenant('C')
        .aggregateMany([spec('p', 1), { ...spec('p', 2), priority: 'interactive' }, spec('p', 3)]);
      const priorities = async (items: typeof viaBatch) =>
        Promise.all(
          items.map(async (i) => (i.ok ? (await queue.getJob(i.handle.jobId))?.priority : undefined)),
        );
      const batchPlaces = await priorities(viaBatch);
      // The same three specs of another tenant new to the queue (which holds the jobs above, so
      // the clocks stand), one by one: the same places.
      const one = [];
      for (const s of [spec('p', 1), { ...spec('p', 2), priority: 'interactive' }, spec('p', 3)]) {
        one.push({ ok: true as const, handle: await sys.client.forTenant('D').aggregate(s) });
      }
      const singlePlaces = await priorities(one);
      assert.ok(
        batchPlaces.every((p) => typeof p === 'number' && p > 0),
        `placed: ${batchPlaces}`,
      );
      assert.deepEqual(batchPlaces, singlePlaces, 'the same places');
      assert.ok(batchPlaces[1]! < batchPlaces[2]!, 'the interactive job goes before the normal one after it');
    } finally {
      await queue.close();
      connection.disconnect();
    }
  });
});
