// Attacks on "bounded time everywhere" (Quarry issue "Trust", item 5, Redis): a SIGSTOPped
// Redis keeps its TCP connections open and never answers, so requests used to wait as long as
// the freeze (4.99 s for a 5 s stop). Every non-blocking connection now has a command timeout
// (QUARRY_REDIS_COMMAND_TIMEOUT_MS, 1 s by default, used here): every route that needs the
// frozen Redis answers 503 QUARRY_ERR_REDIS_REFUSED with Retry-After in about a second, routes
// that do not need it keep answering, and after SIGCONT everything recovers by itself.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { QuarryError } from '../../shared/errors.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const BOUND_MS = 1500;

interface Probe {
  readonly method: 'GET' | 'POST';
  readonly url: string;
  readonly payload?: object;
}

const spec = (seed: number, rows = 3) => ({
  dataset: { records: Array.from({ length: rows }, (_, i) => ({ g: `k${i % 7}`, x: seed + i, s: `v${i}` })) },
  groupBy: ['g'],
  metrics: [
    { op: 'sum', column: 'x' },
    { op: 'count_distinct', column: 's' },
  ],
});

describe('attack: a frozen Redis (SIGSTOP)', () => {
  let queueRedis: RedisServer;
  let cacheRedis: RedisServer;
  let sys: TestSystem;
  const frozen = new Set<RedisServer>();
  const freeze = (server: RedisServer) => {
    process.kill(server.process.pid!, 'SIGSTOP');
    frozen.add(server);
    // Without a command timeout the probes would wait forever: thaw after 5 s so they answer
    // late and the test fails on the time bound instead of hanging.
    setTimeout(() => frozen.has(server) && thaw(server), 5000).unref();
  };
  const thaw = (server: RedisServer) => {
    process.kill(server.process.pid!, 'SIGCONT');
    frozen.delete(server);
  };

  before(async () => {
    [queueRedis, cacheRedis] = await Promise.all([startRedis(), startRedis()]);
    sys = await startSystem({
      env: { QUARRY_QUEUE_REDIS_URL: queueRedis.url, QUARRY_CACHE_REDIS_URL: cacheRedis.url },
    });
    const built = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/frozen?wait=20000',
      payload: { documents: [{ id: 'a', t: 'red fox' }], idField: 'id', fields: ['t'] },
    });
    assert.equal(built.statusCode, 200, built.body);
  });
  after(async () => {
    for (const server of frozen) thaw(server);
    await sys?.close();
    await Promise.all([queueRedis?.stop(), cacheRedis?.stop()]);
  });

  /** Sends the probes at once; each must be a 503 REDIS_REFUSED with Retry-After within the bound. */
  async function expectRefusedQuickly(probes: Probe[]): Promise<void> {
    await Promise.all(
      probes.map(async (probe) => {
        const t0 = performance.now();
        const res = await sys.app.inject({
          method: probe.method,
          url: probe.url,
          ...(probe.payload ? { payload: probe.payload } : {}),
        });
        const ms = performance.now() - t0;
        const what = `${probe.method} ${probe.url}`;
        assert.ok(ms < BOUND_MS, `${what} answered in ${Math.round(ms)} ms, not within ${BOUND_MS} ms`);
        assert.equal(res.statusCode, 503, `${what}: ${res.body}`);
        assert.equal(res.json().error.code, 'QUARRY_ERR_REDIS_REFUSED', what);
        assert.ok(Number(res.headers['retry-after']) >= 1, `${what} has Retry-After`);
      }),
    );
  }

  test('queue Redis frozen: job and enqueue routes answer 503 with Retry-After within 1.5 s, searches, index info and results keep answering; after SIGCONT the job enqueued before the freeze completes', async () => {
    // Big enough that the worker is still on it when the queue Redis stops.
    const before = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations',
      payload: spec(1, 20_000),
    });
    assert.equal(before.statusCode, 202, before.body);
    const { jobId } = before.json();
    freeze(queueRedis);
    const frozenAt = Date.now();
    try {
      await expectRefusedQuickly([
        { method: 'GET', url: `/v1/jobs/${jobId}` },
        { method: 'POST', url: '/v1/aggregations', payload: spec(2) },
        {
          method: 'POST',
          url: '/v1/indexes/frozen',
          payload: { documents: [{ id: 'b', t: 'blue' }], idField: 'id', fields: ['t'] },
        },
      ]);
      const t0 = performance.now();
      await assert.rejects(
        sys.client.status(jobId),
        (e: unknown) => e instanceof QuarryError && e.code === 'QUARRY_ERR_REDIS_REFUSED',
      );
      assert.ok(performance.now() - t0 < BOUND_MS, 'the SDK gives up as quickly');
      const search = await sys.app.inject({ method: 'GET', url: '/v1/indexes/frozen/search?q=fox' });
      assert.equal(search.statusCode, 200, 'loaded indexes need no Redis');
      // Index info answers from what this process serves, like search (they never disagree).
      const info = await sys.app.inject({ method: 'GET', url: '/v1/indexes/frozen' });
      assert.equal(info.statusCode, 200, `index info of a loaded collection needs no Redis: ${info.body}`);
      assert.equal(info.json().version, search.json().version, 'info and search agree on the version');
      const result = await sys.app.inject({ method: 'GET', url: `/v1/results/${'0'.repeat(32)}` });
      assert.equal(result.statusCode, 404, 'results live in the cache Redis, which still answers');
    } finally {
      thaw(queueRedis);
    }
    const final = await sys.client.waitForJob(jobId, { timeoutMs: 30_000 });
    assert.equal(final.state, 'completed', 'the job enqueued before the freeze completed');
    const status = await sys.client.status(jobId);
    assert.ok(Date.parse(status!.finishedAt!) > frozenAt, 'it finished after the freeze, not before');
    const fresh = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations?wait=20000',
      payload: spec(3),
    });
    assert.equal(fresh.statusCode, 200, `workers and API resumed: ${fresh.body}`);
  });

  test('cache Redis frozen: enqueues and result reads answer 503 with Retry-After within 1.5 s, job status keeps answering; after SIGCONT everything computes again', async () => {
    const known = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations?wait=20000',
      payload: spec(4),
    });
    assert.equal(known.statusCode, 200, known.body);
    const jobId = `agg-${known.json().resultKey}`;
    freeze(cacheRedis);
    try {
      await expectRefusedQuickly([
        { method: 'POST', url: '/v1/aggregations', payload: spec(5) },
        // A key the API's in-process cache has never seen: the read goes to the cache Redis.
        { method: 'GET', url: `/v1/results/${'f'.repeat(32)}` },
      ]);
      const status = await sys.app.inject({ method: 'GET', url: `/v1/jobs/${jobId}` });
      assert.equal(status.statusCode, 200, 'status records live in the queue Redis');
    } finally {
      thaw(cacheRedis);
    }
    const again = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations?wait=20000',
      payload: spec(5),
    });
    assert.equal(again.statusCode, 200, `recovered: ${again.body}`);
  });
});
