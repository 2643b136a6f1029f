// Attacks on client input that once broke Quarry (issue "Trust", item 7), replayed through the
// HTTP API against a real worker, both engines and real Redis. Each answers a 4xx with a code
// naming the field, or the TS reference's result; never a 5xx, never a retried failed job.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Queue } from 'bullmq';
import { type AggregationSpecInput, addressAggregation, parseAggregation } from '../../shared/aggregation.ts';
import type { InlineRecord } from '../../shared/datasets.ts';
import { QUEUE_NAMES } from '../../shared/keys.ts';
import { schedulerId } from '../../shared/schedules.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';
import { referenceAggregate } from '../reference/aggregate.ts';
import { assertSameResult } from '../reference/compare.ts';

const ENGINES = ['duckdb', 'polars'] as const;
const LIMITS = { maxInlineBytes: 1024 * 1024, maxResultRows: 10_000 };

/** Polls until `check` returns a value (an observed change in Redis) or the deadline passes. */
async function until<T>(check: () => Promise<T | undefined>, deadlineMs: number, what: string): Promise<T> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`${what} within ${deadlineMs} ms`);
}

describe('attacks: client input', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let queue: Queue;
  before(async () => {
    redis = await startRedis();
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url } });
    queue = new Queue(QUEUE_NAMES.aggregate, { connection: { url: redis.url }, prefix: sys.config.prefix });
  });
  after(async () => {
    await queue?.close();
    await sys?.close();
    await redis?.stop();
  });

  /** Runs the spec on one engine through the API: the reference's rows, computed in one attempt. */
  async function expectReferenceResult(spec: AggregationSpecInput, engine: string): Promise<void> {
    const body = JSON.stringify({ ...spec, engine });
    const res = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations?wait=20000',
      payload: body,
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(res.statusCode, 200, `${engine}: ${res.body.slice(0, 400)}`);
    // The reference reads what the engines read: the canonical JSON of the request as sent.
    const addressed = addressAggregation(parseAggregation(JSON.parse(body), LIMITS));
    assert.ok(addressed.spec.dataset.kind === 'inline');
    const records = JSON.parse(addressed.inlineJson!) as InlineRecord[];
    const expected = referenceAggregate(addressed.spec, records, addressed.spec.dataset.columns);
    const envelope = JSON.parse(res.body);
    assertSameResult(envelope, expected, engine);
    // Keys exactly as named: JSON.parse makes "__proto__" an own key, so a lost one shows here.
    for (const row of envelope.rows) {
      assert.deepEqual(Object.keys(row), Object.keys(expected.rows[0] ?? row), `${engine}: row keys`);
    }
    const status = await sys.app.inject({ method: 'GET', url: `/v1/jobs/agg-${envelope.resultKey}` });
    assert.equal(status.json().attempts, 1, `${engine}: computed in one attempt`);
  }

  const numbers = { records: [{ n: 1 }, { n: -7 }, { n: 9_007_199_254_740_991 }, { n: 12 }] };
  for (const [label, value, was] of [
    ['1e19', 1e19, 'was a DuckDB bind error: 5xx, retried'],
    ['-1e19', -1e19, 'was a DuckDB bind error: 5xx, retried'],
    ['2^53+1', 2 ** 53 + 1, 'JSON reads it as 2^53, a double'],
    ['1e308', 1e308, 'was a DuckDB bind error: 5xx, retried'],
  ] as const) {
    test(`integer filter value ${label}: every comparison answers the reference's rows (${was})`, async () => {
      for (const engine of ENGINES) {
        for (const op of ['eq', 'ne', 'gt', 'gte', 'lt', 'lte'] as const) {
          await expectReferenceResult(
            {
              dataset: numbers,
              filters: [{ column: 'n', op, value }],
              metrics: [{ op: 'count' }, { op: 'sum', column: 'n' }],
            },
            engine,
          );
        }
        await expectReferenceResult(
          {
            dataset: numbers,
            filters: [
              { column: 'n', op: 'in', value: [value, 1, 12] },
              { column: 'n', op: 'between', value: value < 0 ? [value, 100] : [-100, value] },
            ],
            metrics: [{ op: 'count' }, { op: 'max', column: 'n' }],
          },
          engine,
        );
      }
    });
  }

  test('a filter value beyond a double (1e400 in the JSON text): 400 naming filters.0.value', async () => {
    const res = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations',
      payload:
        '{"dataset":{"records":[{"n":1}]},"filters":[{"column":"n","op":"gt","value":1e400}],"metrics":[{"op":"count"}]}',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.json().error.code, 'QUARRY_ERR_VALIDATION');
    assert.equal(res.json().error.field, 'filters.0.value');
  });

  test('integer sums past 2^53 and past 2^63: both engines near the exact sum (Polars wrapped to a negative)', async () => {
    const max = Number.MAX_SAFE_INTEGER;
    const records = [
      // 1025 × (2^53 − 1) is past 2^63: an Int64 sum wraps.
      ...Array.from({ length: 1025 }, () => ({ g: 'past-2^63', x: max })),
      // 500 × (2^53 − 1) is past 2^53 but not 2^62: the exact sum, rounded once, as DuckDB's.
      ...Array.from({ length: 500 }, () => ({ g: 'past-2^53', x: max })),
      { g: 'small', x: 1 },
      { g: 'small', x: 2 },
    ];
    const exact = (n: number) => Number(BigInt(n) * BigInt(max));
    for (const engine of ENGINES) {
      const res = await sys.app.inject({
        method: 'POST',
        url: '/v1/aggregations?wait=20000',
        payload: JSON.stringify({
          dataset: { records },
          groupBy: ['g'],
          metrics: [{ op: 'sum', column: 'x' }],
          orderBy: [{ column: 'sum_x', direction: 'desc' }],
          engine,
        }),
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.statusCode, 200, res.body);
      const rows = JSON.parse(res.body).rows as { g: string; sum_x: number }[];
      assert.deepEqual(
        rows.map((r) => r.g),
        ['past-2^63', 'past-2^53', 'small'],
        `${engine}: ${JSON.stringify(rows)}`,
      );
      const [over, past, small] = rows;
      // Past 2^63 a sum of doubles may differ from the rounded exact one in its last places.
      assert.ok(Math.abs(over!.sum_x / exact(1025) - 1) < 1e-14, `${engine}: ${over!.sum_x}`);
      assert.equal(past!.sum_x, exact(500), engine);
      assert.equal(small!.sum_x, 3, engine);
    }
  });

  test('float bins of −3..3 in steps of 0.01: both engines put each value where floor(x / width) · width does (Polars used a reciprocal)', async () => {
    const records = Array.from({ length: 601 }, (_, i) => ({ x: Math.round((-3 + i * 0.01) * 100) / 100 }));
    for (const bin of [0.1, 0.2, 0.05, 0.7]) {
      const spec: AggregationSpecInput = {
        dataset: { records },
        groupBy: [{ column: 'x', bin, as: 'b' }],
        metrics: [{ op: 'count' }, { op: 'min', column: 'x' }],
        orderBy: [{ column: 'b', direction: 'asc' }],
        limit: 1000,
      };
      for (const engine of ENGINES) await expectReferenceResult(spec, engine);
    }
  });

  test('a metric named with a control character: 400 naming metrics.0.as, as for every other name', async () => {
    for (const as of ['a\nb', '\t', '\u0000']) {
      const res = await sys.app.inject({
        method: 'POST',
        url: '/v1/aggregations',
        payload: JSON.stringify({ dataset: { records: [{ x: 1 }] }, metrics: [{ op: 'count', as }] }),
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.statusCode, 400, `${JSON.stringify(as)}: ${res.body}`);
      assert.equal(res.json().error.field, 'metrics.0.as');
    }
  });

  test('zone names the tz database dropped (US/Pacific-New, SystemV/EST5): 400 naming tz (Polars failed with a 5xx-class engine error)', async () => {
    for (const tz of ['US/Pacific-New', 'Canada/East-Saskatchewan', 'SystemV/EST5']) {
      const res = await sys.app.inject({
        method: 'POST',
        url: '/v1/aggregations',
        payload: JSON.stringify({
          dataset: { records: [{ t: '2024-03-10T12:00:00Z' }] },
          groupBy: [{ column: 't', bucket: 'day', tz }],
          metrics: [{ op: 'count' }],
        }),
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.statusCode, 400, `${tz}: ${res.body}`);
      assert.equal(res.json().error.field, 'groupBy.0.tz', tz);
    }
  });

  test('inline columns `a` and `A`: both engines keep them apart (was a DuckDB binder error, 5xx, retried)', async () => {
    const spec: AggregationSpecInput = {
      dataset: {
        records: [
          { a: 1, A: 'x' },
          { a: 2, A: 'y' },
          { a: 3, A: 'x' },
        ],
      },
      filters: [{ column: 'a', op: 'gt', value: 1 }],
      groupBy: ['A'],
      metrics: [
        { op: 'sum', column: 'a', as: 'a' },
        { op: 'count', as: 'N' },
        { op: 'min', column: 'a', as: 'n' },
      ],
    };
    for (const engine of ENGINES) await expectReferenceResult(spec, engine);
  });

  test('metric names and group columns `__proto__`, `constructor`, `toString`: rows carry each (DuckDB lost __proto__)', async () => {
    // JSON text: a `{ __proto__: … }` literal would set a prototype instead of a key.
    const records = JSON.parse(
      '[{"__proto__":"p","constructor":1,"toString":"t"},{"__proto__":"q","constructor":2,"toString":"t"},{"__proto__":"p","constructor":3,"toString":"u"}]',
    );
    const spec: AggregationSpecInput = {
      dataset: { records },
      groupBy: ['__proto__', 'constructor'],
      metrics: [
        { op: 'count', as: 'toString' },
        { op: 'max', column: 'toString', as: 'hasOwnProperty' },
      ],
    };
    for (const engine of ENGINES) await expectReferenceResult(spec, engine);
    const metricsNamed: AggregationSpecInput = {
      dataset: { records },
      groupBy: ['toString'],
      metrics: [
        { op: 'sum', column: 'constructor', as: '__proto__' },
        { op: 'count', as: 'constructor' },
        { op: 'count_distinct', column: '__proto__', as: 'valueOf' },
      ],
      orderBy: [{ column: '__proto__', direction: 'desc' }],
    };
    for (const engine of ENGINES) await expectReferenceResult(metricsNamed, engine);
  });

  const hourly = { dataset: { records: [{ v: 1 }] }, metrics: [{ op: 'count' }] };

  test('a new schedule with a bad tz: 400 naming tz, and nothing stored (was a 500 and a half-written schedule)', async () => {
    const res = await sys.app.inject({
      method: 'PUT',
      url: '/v1/schedules/badtz',
      payload: { spec: hourly, cron: '0 * * * *', tz: 'Not/AZone' },
    });
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.json().error.code, 'QUARRY_ERR_VALIDATION');
    assert.equal(res.json().error.field, 'tz');
    assert.equal((await sys.app.inject({ method: 'GET', url: '/v1/schedules/badtz' })).statusCode, 404);
    const list = await sys.app.inject({ method: 'GET', url: '/v1/schedules' });
    assert.deepEqual(list.json().schedules, [], 'no half-written schedule is listed');
    assert.equal(await queue.getJobScheduler(schedulerId(undefined, 'badtz')), undefined);
  });

  test('replacing a schedule with a bad tz: 400 naming tz; the old one unchanged and still running', async () => {
    // Every second, in Paris: the schedule's runs show it keeps running after the failed replacement.
    const put = await sys.app.inject({
      method: 'PUT',
      url: '/v1/schedules/paris',
      payload: { spec: hourly, cron: '* * * * * *', tz: 'Europe/Paris' },
    });
    assert.equal(put.statusCode, 200, put.body);
    const before = await sys.app.inject({ method: 'GET', url: '/v1/schedules/paris' });
    const schedulerBefore = await queue.getJobScheduler(schedulerId(undefined, 'paris'));
    assert.equal(schedulerBefore?.tz, 'Europe/Paris');

    for (const tz of ['Mars/Olympus', '', 'Europe/Paris\u0000']) {
      const res = await sys.app.inject({
        method: 'PUT',
        url: '/v1/schedules/paris',
        payload: { spec: { ...hourly, metrics: [{ op: 'count', as: 'n' }] }, cron: '0 0 * * *', tz },
      });
      assert.equal(res.statusCode, 400, `${JSON.stringify(tz)}: ${res.body}`);
      assert.equal(res.json().error.field, 'tz', res.body);
    }

    const stored = await sys.app.inject({ method: 'GET', url: '/v1/schedules/paris' });
    const { next: _n1, resultKey: _r1, refreshedAt: _t1, ...was } = before.json();
    const { next: _n2, resultKey: _r2, refreshedAt: _t2, ...is } = stored.json();
    assert.deepEqual(is, was, 'the stored record is as it was');
    assert.deepEqual(is, { name: 'paris', everyMs: null, cron: '* * * * * *', tz: 'Europe/Paris' });
    const schedulerAfter = await queue.getJobScheduler(schedulerId(undefined, 'paris'));
    assert.equal(schedulerAfter?.pattern, '* * * * * *');
    assert.equal(schedulerAfter?.tz, 'Europe/Paris');
    assert.deepEqual(
      schedulerAfter?.template?.data,
      schedulerBefore?.template?.data,
      'the old spec still runs',
    );

    // Still running: a refresh lands after the failed replacement.
    const failedAt = Date.now();
    await until(
      async () => {
        const info = (await sys.app.inject({ method: 'GET', url: '/v1/schedules/paris' })).json();
        return info.refreshedAt !== null && Date.parse(info.refreshedAt) > failedAt ? info : undefined;
      },
      15_000,
      'a run of the old schedule after the failed replacement',
    );
    assert.equal((await sys.app.inject({ method: 'DELETE', url: '/v1/schedules/paris' })).statusCode, 204);
  });

  test('a cron pattern with no next run, and a tz spelled in another case', async () => {
    const never = await sys.app.inject({
      method: 'PUT',
      url: '/v1/schedules/never',
      payload: { spec: hourly, cron: '0 0 30 2 *' },
    });
    assert.equal(never.statusCode, 400, never.body);
    assert.equal(never.json().error.field, 'cron');
    assert.equal((await sys.app.inject({ method: 'GET', url: '/v1/schedules/never' })).statusCode, 404);

    const lower = await sys.app.inject({
      method: 'PUT',
      url: '/v1/schedules/lower',
      payload: { spec: hourly, cron: '0 6 * * *', tz: 'europe/paris' },
    });
    assert.equal(lower.statusCode, 200, lower.body);
    assert.equal(lower.json().tz, 'Europe/Paris', 'stored in its canonical spelling');
    assert.notEqual(lower.json().next, null, 'the next run is known');
    assert.equal((await sys.app.inject({ method: 'DELETE', url: '/v1/schedules/lower' })).statusCode, 204);
  });
});
