// Attack on "bounded time everywhere" for a worker's own shutdown: close() used to wait for
// Redis replies with no bound. A frozen Redis (SIGSTOP), or a port answered by something that
// is not Redis (here an HTTP server, as when another service takes a dead Redis's port: it
// hung a CI run for 80 minutes), held close() forever, BullMQ's close(true) returned the same
// pending promise as close(), and the connections kept reconnecting. The SDK client's close()
// waited the same way on its subscriptions' QUIT. Now close() ends within its job deadline plus
// CLOSE_BUDGET_MS (5 s) and leaves no connection open.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { createQuarry } from '../../producers/client.ts';
import { QuarryError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logger.ts';
import { startWorker } from '../../workers/worker.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, testConfig } from '../helpers/system.ts';

const JOB_DEADLINE_MS = 300;

// Every ioredis connection this file opens (BullMQ's duplicates included), to check that each
// one ends after close(): one left reconnecting, or waiting on commands that never settle, kept
// the test process alive for good.
const opened = new Set<Redis>();
const connect = Redis.prototype.connect;
Redis.prototype.connect = function (this: Redis, ...args: Parameters<Redis['connect']>) {
  opened.add(this);
  return connect.apply(this, args);
};

async function allEnded(withinMs = 4000): Promise<void> {
  const end = Date.now() + withinMs;
  const live = () => [...opened].filter((r) => r.status !== 'end');
  while (live().length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  const left = live().map((r) => `${r.options.connectionName}: ${r.status}`);
  assert.deepEqual(left, [], 'every connection has ended');
  opened.clear();
}
/** The job deadline, the 5 s budget, and slack for a loaded machine. */
const BOUND_MS = JOB_DEADLINE_MS + 5000 + 2500;

async function timedClose(redis: RedisServer, breakIt: () => Promise<void>): Promise<number> {
  const worker = await startWorker(testConfig({ QUARRY_QUEUE_REDIS_URL: redis.url }), silentLogger());
  await worker.ready;
  await breakIt();
  const t0 = performance.now();
  await worker.close(JOB_DEADLINE_MS);
  const ms = performance.now() - t0;
  await allEnded();
  return ms;
}

describe('attack: a worker closes in bounded time whatever its Redis does', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  /** A Redis the test may SIGSTOP: thawed and stopped after the file. */
  const freezableRedis = async (): Promise<RedisServer> => {
    const redis = await startRedis();
    cleanups.push(async () => {
      process.kill(redis.process.pid!, 'SIGCONT');
      await redis.stop();
    });
    return redis;
  };

  test('a frozen Redis (SIGSTOP): close() ends by the deadline and its budget', async () => {
    const redis = await freezableRedis();
    const pid = redis.process.pid!;
    const ms = await timedClose(redis, async () => {
      process.kill(pid, 'SIGSTOP');
    });
    assert.ok(ms < BOUND_MS, `close() took ${Math.round(ms)} ms, over ${BOUND_MS}`);
  });

  test("a peer that is not Redis on the dead Redis's port: close() ends, nothing reconnects", async () => {
    const redis = await startRedis();
    const hits: number[] = [];
    const squatter = createServer((_req, res) => res.end('not redis'));
    // Node answers a request it cannot parse (RESP) with "HTTP/1.1 400": ioredis reads 'H'.
    squatter.on('connection', () => hits.push(Date.now()));
    cleanups.push(async () => {
      squatter.closeAllConnections();
      await new Promise((resolve) => squatter.close(resolve));
      await redis.stop();
    });
    const ms = await timedClose(redis, async () => {
      await redis.stop({ keepData: true });
      await new Promise<void>((resolve) => squatter.listen(redis.port, '127.0.0.1', resolve));
      // Let the worker's connections find the squatter.
      const start = hits.length;
      const end = Date.now() + 5000;
      while (hits.length === start && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      assert.ok(hits.length > start, 'the worker reconnected to the squatter');
    });
    assert.ok(ms < BOUND_MS, `close() took ${Math.round(ms)} ms, over ${BOUND_MS}`);
    // Longer than two of ioredis' reconnect delays (at most 2 s each, shared/redis.ts).
    const settled = hits.length;
    await new Promise((resolve) => setTimeout(resolve, 4500));
    assert.equal(hits.length, settled, 'no connection of the closed worker comes back');
  });

  test('an API, an SDK client with its subscriptions and a worker, on a frozen Redis: all close', async () => {
    const redis = await freezableRedis();
    const pid = redis.process.pid!;
    const sys = await startSystem({
      env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_SHUTDOWN_TIMEOUT_MS: String(JOB_DEADLINE_MS) },
    });
    // Opens the client's job-event subscription (the index registry's is open already).
    const answered = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations?wait=20000',
      payload: { dataset: { records: [{ x: 1 }] }, metrics: [{ op: 'sum', column: 'x' }] },
    });
    assert.equal(answered.statusCode, 200, answered.body);
    process.kill(pid, 'SIGSTOP');
    const t0 = performance.now();
    await sys.app.close();
    await sys.client.close();
    const clientMs = performance.now() - t0;
    await sys.worker?.close();
    const ms = performance.now() - t0;
    assert.ok(clientMs < 5000 + 2500, `the client's close() took ${Math.round(clientMs)} ms`);
    await allEnded();
    assert.ok(ms < BOUND_MS + 5000, `closing all took ${Math.round(ms)} ms`);
  });

  test("a peer that is not Redis on the queue Redis's port: 503 QUARRY_ERR_REDIS_UNAVAILABLE, then everything closes", async () => {
    const redis = await startRedis();
    const squatter = createServer((_req, res) => res.end('not redis'));
    cleanups.push(async () => {
      squatter.closeAllConnections();
      await new Promise((resolve) => squatter.close(resolve));
      await redis.stop();
    });
    const sys = await startSystem({
      env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_SHUTDOWN_TIMEOUT_MS: String(JOB_DEADLINE_MS) },
    });
    await redis.stop({ keepData: true });
    await new Promise<void>((resolve) => squatter.listen(redis.port, '127.0.0.1', resolve));
    // The SDK, with a fresh connection that meets the squatter first.
    const sdk = createQuarry({ config: sys.config, logger: silentLogger(), redisTimeoutMs: 2000 });
    try {
      await assert.rejects(
        sdk.aggregate({ dataset: { records: [{ x: 1 }] }, metrics: [{ op: 'count' }] }),
        (e: unknown) => e instanceof QuarryError && e.code === 'QUARRY_ERR_REDIS_UNAVAILABLE',
      );
    } finally {
      await sdk.close();
    }
    // The API: its answers are 503s with the code, never a 500.
    for (let i = 0; i < 5; i++) {
      const res = await sys.app.inject({
        method: 'POST',
        url: '/v1/aggregations',
        payload: { dataset: { records: [{ x: i }] }, metrics: [{ op: 'sum', column: 'x' }] },
      });
      assert.equal(res.statusCode, 503, res.body);
      assert.equal(res.json().error.code, 'QUARRY_ERR_REDIS_UNAVAILABLE');
      await new Promise((r) => setTimeout(r, 100));
    }
    await sys.close();
    await allEnded();
  });
});
