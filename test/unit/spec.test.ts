// Spec validation, default names, content addressing and config parsing (no Redis).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { addressAggregation, defaultMetricName, parseAggregation } from '../../shared/aggregation.ts';
import { loadConfig } from '../../shared/config.ts';
import { prepareInlineRecords } from '../../shared/datasets.ts';
import { QuarryError } from '../../shared/errors.ts';
import { canonicalJson, compareCodePoints } from '../../shared/hashing.ts';
import { outputColumns } from '../../shared/plan.ts';

const limits = { maxInlineBytes: 1_000_000, maxResultRows: 1000 };
const records = [
  { g: 'a', x: 1, y: 1.5, s: 'p', b: true },
  { g: 'b', x: 2, y: null, s: 'q', b: false },
];
const base = { dataset: { records }, groupBy: ['g'], metrics: [{ op: 'count' }] };

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof QuarryError, String(error));
    return error.field;
  }
  assert.fail('expected a QuarryError');
}

describe('spec validation', () => {
  test('accepts a full spec and fills defaults', () => {
    const parsed = parseAggregation(
      {
        ...base,
        filters: [{ column: 'x', op: 'between', value: [0, 5] }],
        metrics: [
          { op: 'quantile', column: 'x', q: 0.95 },
          { op: 'sum', column: 'y', as: 'total' },
        ],
        orderBy: [{ column: 'total' }],
        limit: 10,
      },
      limits,
    );
    assert.equal(parsed.spec.engine, 'auto');
    assert.deepEqual(parsed.spec.orderBy, [{ column: 'total', direction: 'asc' }]);
    assert.deepEqual(parsed.spec.metrics[0], {
      op: 'quantile',
      column: 'x',
      q: 0.95,
      method: 'linear',
      as: 'p95_x',
    });
  });

  test('names the field at fault', () => {
    const cases: [unknown, string][] = [
      [{ ...base, bogus: true }, 'bogus'],
      [{ ...base, dataset: { records, extra: 1 } }, 'dataset.extra'],
      [{ ...base, metrics: [{ op: 'sum' }] }, 'metrics.0.column'],
      [{ ...base, metrics: [{ op: 'quantile', column: 'x', q: 1.5 }] }, 'metrics.0.q'],
      [{ ...base, metrics: [{ op: 'quantile', column: 'x', q: 0.5, method: 'cubic' }] }, 'metrics.0.method'],
      [{ ...base, filters: [{ column: 'x', op: 'like', value: 'a' }] }, 'filters.0.op'],
      [{ ...base, filters: [{ column: 'x', op: 'eq', value: null }] }, 'filters.0.value'],
      [{ ...base, filters: [{ column: 'x', op: 'between', value: [1, 'z'] }] }, 'filters.0.value'],
      [{ ...base, groupBy: ['g', 'g'] }, 'groupBy.1'],
      [{ ...base, metrics: [{ op: 'count' }, { op: 'count' }] }, 'metrics.1'],
      [{ ...base, metrics: [{ op: 'count', as: 'g' }] }, 'metrics.0.as'],
      [{ ...base, limit: 0 }, 'limit'],
      [{ ...base, limit: 5000 }, 'limit'],
      [{ ...base, engine: 'spark' }, 'engine'],
      [{ ...base, dataset: { records: [{ a: [1] }] } }, 'dataset.records.0.a'],
      [{ ...base, dataset: { records: [1] } }, 'dataset.records.0'],
      [{ ...base, dataset: { records: [{ a: 1 }, { a: true }] } }, 'dataset.records.1.a'],
      [{ ...base, dataset: { records: [{ 'bad\u0000name': 1 }] } }, 'dataset.records.0'],
    ];
    for (const [spec, field] of cases)
      assert.equal(
        fieldOf(() => parseAggregation(spec, limits)),
        field,
        field,
      );
  });

  test('bounds inline data by its canonical size', () => {
    const big = Array.from({ length: 2000 }, (_, i) => ({ name: `row-${i}`, value: i }));
    assert.throws(
      () => prepareInlineRecords(big, 10_000),
      (e: unknown) => e instanceof QuarryError && e.code === 'QUARRY_ERR_DATASET_TOO_LARGE',
    );
  });

  test('types inline columns; integers and floats mix, others do not', () => {
    const data = prepareInlineRecords(
      [
        { a: 1, b: 'x' },
        { a: 2.5, c: null },
      ],
      1e6,
    );
    assert.deepEqual(data.columns, [
      { name: 'a', type: 'float' },
      { name: 'b', type: 'string' },
      { name: 'c', type: 'null' },
    ]);
    assert.equal(data.json, '[{"a":1,"b":"x"},{"a":2.5,"c":null}]');
  });
});

describe('names and types', () => {
  test('default metric names', () => {
    assert.equal(defaultMetricName({ op: 'count' }), 'count');
    assert.equal(defaultMetricName({ op: 'count', column: 'x' }), 'count_x');
    assert.equal(defaultMetricName({ op: 'count_distinct', column: 'x' }), 'count_distinct_x');
    assert.equal(defaultMetricName({ op: 'quantile', column: 'x', q: 0.95 }), 'p95_x');
    assert.equal(defaultMetricName({ op: 'quantile', column: 'x', q: 0.999 }), 'p99_9_x');
    assert.equal(defaultMetricName({ op: 'quantile', column: 'x', q: 0 }), 'p0_x');
  });

  test('output column types', () => {
    const parsed = parseAggregation(
      {
        ...base,
        metrics: [
          { op: 'sum', column: 'x' },
          { op: 'sum', column: 'y' },
          { op: 'avg', column: 'x' },
          { op: 'min', column: 's' },
          { op: 'quantile', column: 'x', q: 0.5, method: 'nearest_rank' },
          { op: 'quantile', column: 'x', q: 0.5, as: 'med' },
        ],
      },
      limits,
    );
    assert.ok(parsed.dataset.kind === 'inline');
    assert.deepEqual(
      outputColumns(parsed.spec, parsed.dataset.data.columns).map((c) => c.type),
      ['string', 'integer', 'float', 'float', 'string', 'integer', 'float'],
    );
  });
});

describe('content addressing', () => {
  const key = (s: unknown) => addressAggregation(parseAggregation(s, limits)).resultKey;
  test('defaults written out or left implicit hash alike', () => {
    assert.equal(
      key({ ...base, metrics: [{ op: 'quantile', column: 'x', q: 0.5 }] }),
      key({
        ...base,
        engine: 'auto',
        filters: [],
        metrics: [{ method: 'linear', op: 'quantile', column: 'x', q: 0.5 }],
      }),
    );
  });
  test('data and spec changes change the key', () => {
    assert.notEqual(key(base), key({ ...base, dataset: { records: records.slice(0, 1) } }));
    assert.notEqual(key(base), key({ ...base, limit: 1 }));
    assert.notEqual(key(base), key({ ...base, engine: 'duckdb' }));
    assert.match(key(base), /^[0-9a-f]{32}$/);
  });
  test('canonical JSON sorts keys at every depth', () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null } }),
      '{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}',
    );
  });
  test('code point order puts astral characters after the BMP', () => {
    const sorted = ['\u{1F600}', '\uFFFD', 'z', 'A'].sort(compareCodePoints);
    assert.deepEqual(sorted, ['A', 'z', '\uFFFD', '\u{1F600}']);
  });
});

describe('config', () => {
  test('defaults, and the cache URL falls back to the queue URL', () => {
    const c = loadConfig({});
    assert.equal(c.queueRedisUrl, 'redis://127.0.0.1:6379');
    assert.equal(c.cacheRedisUrl, c.queueRedisUrl);
    assert.equal(c.cacheSharesQueue, true);
    assert.equal(c.prefix, 'quarry');
    assert.equal(c.apiPort, 3000);
    assert.ok(Object.isFrozen(c));
  });
  test('bad values name the variable', () => {
    assert.equal(
      fieldOf(() => loadConfig({ QUARRY_API_PORT: 'http' })),
      'QUARRY_API_PORT',
    );
    assert.equal(
      fieldOf(() => loadConfig({ QUARRY_PREFIX: 'a:b' })),
      'QUARRY_PREFIX',
    );
    assert.equal(
      fieldOf(() => loadConfig({ QUARRY_QUEUE_REDIS_URL: 'http://x' })),
      'QUARRY_QUEUE_REDIS_URL',
    );
  });
  test('HTTP limits: bounded by default; a headers timeout past the request timeout is refused', () => {
    const c = loadConfig({});
    assert.deepEqual(
      [c.httpRequestTimeoutMs, c.httpHeadersTimeoutMs, c.httpKeepAliveTimeoutMs],
      [30_000, 10_000, 5_000],
    );
    assert.equal(
      fieldOf(() =>
        loadConfig({ QUARRY_HTTP_REQUEST_TIMEOUT_MS: '1000', QUARRY_HTTP_HEADERS_TIMEOUT_MS: '2000' }),
      ),
      'QUARRY_HTTP_HEADERS_TIMEOUT_MS',
    );
    assert.equal(
      fieldOf(() => loadConfig({ QUARRY_HTTP_REQUEST_TIMEOUT_MS: '0' })),
      'QUARRY_HTTP_REQUEST_TIMEOUT_MS',
    );
  });
});
