// Hostile input, fuzzed with fast-check: arbitrary and mutated bodies on every route, odd query
// strings and ids, Content-Type lies, malformed and deeply nested JSON, huge values, NaN and
// Infinity, unicode edge cases, path traversal and symlinks, and raw payloads written straight
// into the queues by a plain BullMQ producer. Every case must be a 4xx with a code or a failed
// job with a code: no 5xx, no crashed worker, memory back near its baseline afterwards.
import assert from 'node:assert/strict';
import { mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Queue, QueueEvents } from 'bullmq';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const validSpec = {
  dataset: {
    records: [
      { g: 'a', v: 1 },
      { g: 'b', v: 2.5 },
      { g: 'a', v: null },
    ],
  },
  filters: [{ column: 'v', op: 'gte', value: 0 }],
  groupBy: ['g'],
  metrics: [{ op: 'count' }, { op: 'quantile', column: 'v', q: 0.5 }],
  orderBy: [{ column: 'count', direction: 'desc' }],
  limit: 10,
};
const validIndex = { documents: [{ id: '1', t: 'hello' }], idField: 'id', fields: ['t'], store: ['t'] };

/** Replaces the value at a random path of `base` with `replacement`. */
function mutate(base: unknown, pathChoice: number[], replacement: unknown): unknown {
  if (pathChoice.length === 0 || base === null || typeof base !== 'object') return replacement;
  const keys = Object.keys(base);
  if (keys.length === 0) return replacement;
  const key = keys[pathChoice[0]! % keys.length]!;
  const copy: Record<string, unknown> = Array.isArray(base) ? ([...base] as never) : { ...base };
  copy[key] = mutate((base as Record<string, unknown>)[key], pathChoice.slice(1), replacement);
  return copy;
}

const nasty = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.constantFrom(
    '',
    '\u0000',
    '\ud800',
    '"; DROP TABLE x; --',
    "'); COPY (SELECT 1) TO '/tmp/x'; --",
    '../../../../etc/passwd',
    '/etc/passwd',
    '__proto__',
    'constructor',
    'x'.repeat(70_000),
    -1,
    0,
    1e308,
    -0,
    2 ** 53 + 1,
    null,
    [],
    {},
    { __proto__: { polluted: true } },
  ),
);

describe('hostile input', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let raw: Redis;
  let dataDir: string;
  before(async () => {
    redis = await startRedis();
    raw = new Redis(redis.url);
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-fuzz-'));
    writeFileSync(path.join(dataDir, 'ok.csv'), 'g,v\na,1\nb,2\n');
    const outside = mkdtempSync(path.join(os.tmpdir(), 'quarry-outside-'));
    writeFileSync(path.join(outside, 'secret.csv'), 'g,v\nx,1\n');
    symlinkSync(path.join(outside, 'secret.csv'), path.join(dataDir, 'link.csv'));
    symlinkSync(outside, path.join(dataDir, 'dirlink'));
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_DATA_DIR: dataDir } });
  });
  after(async () => {
    await sys?.close();
    raw?.disconnect();
    await redis?.stop();
  });

  const no5xx = (res: { statusCode: number; body: string }, what: string) => {
    assert.ok(res.statusCode < 500, `${what}: ${res.statusCode} ${res.body.slice(0, 300)}`);
    if (res.statusCode >= 400) assert.match(JSON.parse(res.body).error.code, /^QUARRY_ERR_[A-Z_]+$/, what);
  };

  test('mutated and arbitrary bodies on every route: never a 5xx', async () => {
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.nat(20), { maxLength: 5 }),
        nasty,
        fc.constantFrom('agg', 'index', 'schedule', 'raw'),
        async (where, value, route) => {
          const base =
            route === 'index'
              ? validIndex
              : route === 'schedule'
                ? { spec: validSpec, everyMs: 60_000 }
                : validSpec;
          const body = route === 'raw' ? value : mutate(base, where, value);
          const url =
            route === 'agg' || route === 'raw'
              ? '/v1/aggregations?wait=5000'
              : route === 'index'
                ? '/v1/indexes/fuzz?wait=5000'
                : '/v1/schedules/fuzz';
          const res = await sys.app.inject({
            method: route === 'schedule' ? 'PUT' : 'POST',
            url,
            payload: JSON.stringify(body) ?? 'null',
            headers: { 'content-type': 'application/json' },
          });
          no5xx(res, `${route} ${JSON.stringify(body)?.slice(0, 200)}`);
        },
      ),
      { numRuns: 250 },
    );
    await sys.client.schedules.remove('fuzz').catch(() => undefined);
    gc();
    const grown = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(grown < 64 * 1024 * 1024, `heap grew by ${Math.round(grown / 1e6)} MB`);
  });

  test('odd query strings, ids and methods: 4xx with a code', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 300 }), fc.string({ maxLength: 40 }), async (text, id) => {
        const q = encodeURIComponent(text);
        const e = encodeURIComponent(id);
        for (const [method, url] of [
          ['GET', `/v1/indexes/fuzz/search?q=${q}&k=${e}&mode=${e}&prefix=${e}`],
          ['GET', `/v1/indexes/${e}/search?q=${q}`],
          ['GET', `/v1/jobs/${e}`],
          ['DELETE', `/v1/jobs/${e}`],
          ['GET', `/v1/jobs/${e}/events`],
          ['GET', `/v1/results/${e}`],
          ['GET', `/v1/indexes/${e}`],
          ['GET', `/v1/aliases/${e}`],
          ['POST', `/v1/aggregations?wait=${q}`],
        ] as const) {
          const res = await sys.app.inject({
            method,
            url,
            ...(method === 'POST' ? { payload: validSpec } : {}),
          });
          no5xx(res, `${method} ${url}`);
        }
      }),
      { numRuns: 60 },
    );
  });

  test('content-type lies, broken and deeply nested JSON, huge values, NaN and Infinity', async () => {
    const cases: [string, string | Buffer, number][] = [
      ['text/plain', JSON.stringify(validSpec), 415],
      ['application/xml', '<spec/>', 415],
      ['application/json', '{"dataset": [', 400],
      ['application/json', '', 400],
      ['application/json', '\u0000\u0001', 400],
      ['application/json', `${'['.repeat(200_000)}${']'.repeat(200_000)}`, 400],
      ['application/json', `{"dataset":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`, 400],
      ['application/json', JSON.stringify(validSpec).replace('"limit":10', '"limit":1e400'), 400],
      ['application/json', '{"dataset":{"records":[{"v":1e999}]},"metrics":[{"op":"count"}]}', 400],
      ['application/json', '{"dataset":{"records":[{"v":NaN}]},"metrics":[{"op":"count"}]}', 400],
      ['application/json', Buffer.from([0xff, 0xfe, 0x00, 0x7b]), 400],
      ['application/json', JSON.stringify({ ...validSpec, groupBy: ['x'.repeat(1_000_000)] }), 400],
      ['application/json', Buffer.alloc(17 * 1024 * 1024, 0x20), 413],
    ];
    for (const [type, payload, status] of cases) {
      const res = await sys.app.inject({
        method: 'POST',
        url: '/v1/aggregations',
        payload,
        headers: { 'content-type': type },
      });
      assert.equal(
        res.statusCode,
        status,
        `${type} ${String(payload).slice(0, 60)}: ${res.body.slice(0, 200)}`,
      );
      assert.match(res.json().error.code, /^QUARRY_ERR_/);
    }
  });

  test('paths out of the data root, through .., absolute paths and symlinks, are refused', async () => {
    for (const p of [
      '../x.csv',
      '/etc/passwd',
      'link.csv',
      'dirlink/secret.csv',
      'ok.csv/../../x.csv',
      'a\u0000.csv',
      '.',
    ]) {
      const res = await sys.app.inject({
        method: 'POST',
        url: '/v1/aggregations',
        payload: { dataset: { path: p, format: 'csv' }, metrics: [{ op: 'count' }] },
      });
      assert.ok(res.statusCode === 400 || res.statusCode === 404, `${p}: ${res.statusCode} ${res.body}`);
      assert.match(res.json().error.code, /QUARRY_ERR_DATASET_(PATH|NOT_FOUND)/, p);
    }
  });

  test('raw payloads written into the queues fail with a code; the worker lives on', async () => {
    const prefix = sys.config.prefix;
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queues = {
      aggregate: new Queue('aggregate', { connection, prefix }),
      index: new Queue('index', { connection, prefix }),
    };
    const events = {
      aggregate: new QueueEvents('aggregate', { connection: { url: redis.url }, prefix }),
      index: new QueueEvents('index', { connection: { url: redis.url }, prefix }),
    };
    await Promise.all(Object.values(events).map((e) => e.waitUntilReady()));
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('aggregate', 'index') as fc.Arbitrary<'aggregate' | 'index'>,
          fc.constantFrom('aggregate', 'index', 'refresh', 'x'),
          fc.oneof(
            nasty,
            fc.array(fc.nat(20), { maxLength: 4 }).chain((where) =>
              nasty.map((v) =>
                mutate(
                  {
                    v: 1,
                    resultKey: '0'.repeat(32),
                    spec: {
                      dataset: { kind: 'file', path: '../../etc/passwd', format: 'csv', size: 1, mtimeMs: 1 },
                      filters: [],
                      groupBy: [],
                      metrics: [{ op: 'count', as: 'count' }],
                      orderBy: [],
                      engine: 'duckdb',
                    },
                  },
                  where,
                  v,
                ),
              ),
            ),
          ),
          async (queueName, jobName, data) => {
            const job = await queues[queueName].add(jobName, data, { attempts: 3 });
            const outcome = await job.waitUntilFinished(events[queueName]).then(
              () => 'completed',
              (e: Error) => e.message,
            );
            assert.notEqual(
              outcome,
              'completed',
              `a hostile payload completed: ${JSON.stringify(data)?.slice(0, 200)}`,
            );
            assert.match(outcome, /^QUARRY_ERR_[A-Z_]+:/, `failed without a code: ${outcome}`);
            const stored = await queues[queueName].getJob(job.id!);
            assert.equal(stored?.attemptsMade, 1, 'bad input is not retried');
          },
        ),
        { numRuns: 80 },
      );
    } finally {
      await Promise.all(Object.values(events).map((e) => e.close()));
      await Promise.all(Object.values(queues).map((q) => q.close()));
      connection.disconnect();
    }
    const ok = await (
      await sys.client.aggregate({ dataset: { records: [{ x: 7 }] }, metrics: [{ op: 'sum', column: 'x' }] })
    ).wait({
      timeoutMs: 10_000,
    });
    assert.deepEqual(ok.rows, [{ sum_x: 7 }], 'the worker still computes after the fuzzing');
  });
});
