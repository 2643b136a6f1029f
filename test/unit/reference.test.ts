// Hand-checked cases for the reference aggregation, one group per rule of docs/AGGREGATION.md.
// Every expected value here was worked out by hand, not produced by the code under test.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { defaultMetricName, type Filter, type Metric, type MetricOp } from '../../shared/aggregation.ts';
import type { ColumnInfo, Scalar } from '../../shared/datasets.ts';
import { nearestRank, quantile, type ReferenceSpec, referenceAggregate } from '../reference/aggregate.ts';

type MetricInput = {
  op: MetricOp;
  column?: string;
  q?: number;
  method?: 'linear' | 'nearest_rank';
  population?: true;
  filter?: Filter;
  of?: string;
  to?: string;
  as?: string;
};

function spec(s: {
  filters?: Filter[];
  groupBy?: string[];
  metrics: MetricInput[];
  orderBy?: { column: string; direction: 'asc' | 'desc' }[];
  limit?: number;
}): ReferenceSpec {
  const metrics: Metric[] = s.metrics.map((m) => ({
    ...m,
    ...(m.op === 'quantile' ? { method: m.method ?? 'linear' } : {}),
    as: m.as ?? defaultMetricName(m),
  }));
  return {
    filters: s.filters ?? [],
    groupBy: s.groupBy ?? [],
    metrics,
    orderBy: s.orderBy ?? [],
    ...(s.limit === undefined ? {} : { limit: s.limit }),
    engine: 'auto',
  };
}

// a: integers with a null and a missing key; s: strings with a null; b: booleans.
const records: Record<string, Scalar>[] = [
  { a: 1, s: 'x', b: true },
  { a: null, s: 'y', b: false },
  { a: 3, s: null, b: null },
  { s: 'z', b: true },
  { a: 5, s: 'x', b: false },
];
const columns: ColumnInfo[] = [
  { name: 'a', type: 'integer' },
  { name: 'b', type: 'boolean' },
  { name: 's', type: 'string' },
];

function countWhere(...filters: Filter[]): unknown {
  const out = referenceAggregate(spec({ filters, metrics: [{ op: 'count' }] }), records, columns);
  assert.equal(out.rows.length, 1);
  return out.rows[0]!.count;
}

describe('filters', () => {
  test('comparisons drop nulls and missing keys (three-valued logic)', () => {
    assert.equal(countWhere({ column: 'a', op: 'eq', value: 1 }), 1);
    assert.equal(countWhere({ column: 'a', op: 'ne', value: 1 }), 2); // 3 and 5; null and missing dropped
    assert.equal(countWhere({ column: 'a', op: 'gt', value: 1 }), 2);
    assert.equal(countWhere({ column: 'a', op: 'gte', value: 3 }), 2);
    assert.equal(countWhere({ column: 'a', op: 'lt', value: 3 }), 1);
    assert.equal(countWhere({ column: 'a', op: 'lte', value: 3 }), 2);
    assert.equal(countWhere({ column: 's', op: 'ne', value: 'x' }), 2); // y, z; the null s is dropped
  });

  test('in, between (inclusive, empty when reversed), is_null, not_null', () => {
    assert.equal(countWhere({ column: 'a', op: 'in', value: [1, 5, 7] }), 2);
    assert.equal(countWhere({ column: 'a', op: 'between', value: [1, 3] }), 2);
    assert.equal(countWhere({ column: 'a', op: 'between', value: [3, 1] }), 0);
    assert.equal(countWhere({ column: 'a', op: 'is_null' }), 2); // the null and the missing key
    assert.equal(countWhere({ column: 'a', op: 'not_null' }), 3);
  });

  test('filters are ANDed', () => {
    assert.equal(countWhere({ column: 'a', op: 'not_null' }, { column: 's', op: 'eq', value: 'x' }), 2);
    assert.equal(
      countWhere(
        { column: 'a', op: 'gt', value: 1 },
        { column: 's', op: 'eq', value: 'x' },
        { column: 'b', op: 'eq', value: false },
      ),
      1,
    );
  });

  test('strings compare by code point, booleans false < true', () => {
    const data = [{ t: 'z' }, { t: 'é' }, { t: '\uFFFD' }, { t: '😀' }, { t: 'Z' }];
    const cols: ColumnInfo[] = [{ name: 't', type: 'string' }];
    const count = (f: Filter) =>
      referenceAggregate(spec({ filters: [f], metrics: [{ op: 'count' }] }), data, cols).rows[0]!.count;
    // 'é' U+E9 and both non-ASCII strings sort after 'z' U+7A; 'Z' U+5A before.
    assert.equal(count({ column: 't', op: 'gt', value: 'z' }), 3);
    // U+1F600 is above U+FFFD although its UTF-16 lead surrogate (0xD83D) is below 0xFFFD.
    assert.equal(count({ column: 't', op: 'gt', value: '\uFFFD' }), 1);
    assert.equal(countWhere({ column: 'b', op: 'gt', value: false }), 2);
    assert.equal(countWhere({ column: 'b', op: 'lt', value: true }), 2);
  });
});

describe('grouping', () => {
  test('null is a group of its own; groups sort ascending with null last', () => {
    const out = referenceAggregate(
      spec({ groupBy: ['s'], metrics: [{ op: 'count' }, { op: 'sum', column: 'a' }] }),
      records,
      columns,
    );
    assert.deepEqual(out.rows, [
      { s: 'x', count: 2, sum_a: 6 },
      { s: 'y', count: 1, sum_a: null },
      { s: 'z', count: 1, sum_a: null },
      { s: null, count: 1, sum_a: 3 },
    ]);
    assert.deepEqual(out.columns, [
      { name: 's', type: 'string' },
      { name: 'count', type: 'integer' },
      { name: 'sum_a', type: 'integer' },
    ]);
  });

  test('a missing key groups with null; tuples group by every column', () => {
    const out = referenceAggregate(
      spec({ groupBy: ['a', 'b'], metrics: [{ op: 'count' }] }),
      records,
      columns,
    );
    assert.deepEqual(out.rows, [
      { a: 1, b: true, count: 1 },
      { a: 3, b: null, count: 1 },
      { a: 5, b: false, count: 1 },
      { a: null, b: false, count: 1 },
      { a: null, b: true, count: 1 },
    ]);
  });

  test('no groupBy over no rows: one row, count 0 and the others null', () => {
    const all = spec({
      filters: [{ column: 'a', op: 'gt', value: 100 }],
      metrics: [
        { op: 'count' },
        { op: 'count', column: 'a' },
        { op: 'count_distinct', column: 's' },
        { op: 'sum', column: 'a' },
        { op: 'avg', column: 'a' },
        { op: 'min', column: 's' },
        { op: 'max', column: 'b' },
        { op: 'quantile', column: 'a', q: 0.5, method: 'nearest_rank' },
      ],
    });
    const expected = [
      {
        count: 0,
        count_a: 0,
        count_distinct_s: 0,
        sum_a: null,
        avg_a: null,
        min_s: null,
        max_b: null,
        p50_a: null,
      },
    ];
    assert.deepEqual(referenceAggregate(all, records, columns).rows, expected);
    assert.deepEqual(referenceAggregate(all, [], columns).rows, expected);
  });

  test('groupBy over no rows: no rows', () => {
    assert.deepEqual(
      referenceAggregate(spec({ groupBy: ['s'], metrics: [{ op: 'count' }] }), [], columns).rows,
      [],
    );
  });
});

describe('metrics', () => {
  test('median, sample and population variance and stddev, a metric filter, ratios', () => {
    // a over the non-null values 1, 3, 5: mean 3, squared deviations 4 + 0 + 4 = 8.
    const out = referenceAggregate(
      spec({
        metrics: [
          { op: 'median', column: 'a' },
          { op: 'variance', column: 'a' },
          { op: 'variance', column: 'a', population: true },
          { op: 'stddev', column: 'a' },
          { op: 'count', filter: { column: 'b', op: 'eq', value: true }, as: 'yes' },
          { op: 'sum', column: 'a', filter: { column: 'b', op: 'eq', value: false }, as: 'no_sum' },
          { op: 'count' },
          { op: 'ratio', of: 'yes', to: 'count' },
          { op: 'count', filter: { column: 'a', op: 'gt', value: 100 }, as: 'none' },
          { op: 'ratio', of: 'yes', to: 'none', as: 'by_zero' },
        ],
      }),
      records,
      columns,
    );
    assert.deepEqual(out.rows, [
      {
        median_a: 3,
        variance_a: 4,
        variance_pop_a: 8 / 3,
        stddev_a: 2,
        yes: 2,
        no_sum: 5, // rows with b false: a null and a 5
        count: 5,
        yes_per_count: 0.4,
        none: 0,
        by_zero: null,
      },
    ]);
  });

  test('count(col), sum, avg, min, max, count_distinct skip nulls', () => {
    const out = referenceAggregate(
      spec({
        metrics: [
          { op: 'count' },
          { op: 'count', column: 'a' },
          { op: 'sum', column: 'a' },
          { op: 'avg', column: 'a' },
          { op: 'min', column: 'a' },
          { op: 'max', column: 's' },
          { op: 'min', column: 'b' },
          { op: 'max', column: 'b' },
          { op: 'count_distinct', column: 's' },
          { op: 'count_distinct', column: 'b' },
        ],
      }),
      records,
      columns,
    );
    assert.deepEqual(out.rows, [
      {
        count: 5,
        count_a: 3,
        sum_a: 9,
        avg_a: 3,
        min_a: 1,
        max_s: 'z',
        min_b: false,
        max_b: true,
        count_distinct_s: 3,
        count_distinct_b: 2,
      },
    ]);
    assert.deepEqual(
      out.columns.map((c) => c.type),
      [
        'integer',
        'integer',
        'integer',
        'float',
        'integer',
        'string',
        'boolean',
        'boolean',
        'integer',
        'integer',
      ],
    );
  });

  test('min and max of strings by code point', () => {
    const data = [{ t: 'a' }, { t: '😀' }, { t: '\uFFFD' }, { t: null }];
    const cols: ColumnInfo[] = [{ name: 't', type: 'string' }];
    const out = referenceAggregate(
      spec({
        metrics: [
          { op: 'min', column: 't' },
          { op: 'max', column: 't' },
        ],
      }),
      data,
      cols,
    );
    assert.deepEqual(out.rows, [{ min_t: 'a', max_t: '😀' }]);
  });

  test('avg and sum of floats; sum of an all-null column is null', () => {
    const data = [
      { f: 0.5, g: null },
      { f: null, g: null },
      { f: 2.25, g: null },
    ];
    const cols: ColumnInfo[] = [
      { name: 'f', type: 'float' },
      { name: 'g', type: 'null' },
    ];
    const out = referenceAggregate(
      spec({
        metrics: [
          { op: 'sum', column: 'f' },
          { op: 'avg', column: 'f' },
          { op: 'sum', column: 'g' },
          { op: 'max', column: 'g' },
        ],
      }),
      data,
      cols,
    );
    assert.deepEqual(out.rows, [{ sum_f: 2.75, avg_f: 1.375, sum_g: null, max_g: null }]);
    assert.deepEqual(
      out.columns.map((c) => c.type),
      ['float', 'float', 'float', 'null'],
    );
  });
});

describe('quantiles', () => {
  const x = [4, null, 1, 3, 2]; // non-null sorted: 1 2 3 4

  test('linear interpolates at h = (n-1)q', () => {
    assert.equal(quantile([4, 1, 3, 2], 0, 'linear'), 1);
    assert.equal(quantile([4, 1, 3, 2], 1, 'linear'), 4);
    assert.equal(quantile([4, 1, 3, 2], 0.5, 'linear'), 2.5); // h 1.5
    assert.equal(quantile([4, 1, 3, 2], 0.25, 'linear'), 1.75); // h 0.75
    assert.equal(quantile([10, 30], 0.5, 'linear'), 20);
    assert.equal(quantile([7], 0.3, 'linear'), 7);
    assert.equal(quantile([], 0.3, 'linear'), null);
  });

  test('nearest_rank picks x[max(0, ceil(qn) - 1)]', () => {
    assert.equal(quantile([4, 1, 3, 2], 0, 'nearest_rank'), 1);
    assert.equal(quantile([4, 1, 3, 2], 1, 'nearest_rank'), 4);
    assert.equal(quantile([4, 1, 3, 2], 0.25, 'nearest_rank'), 1); // qn = 1 exactly
    assert.equal(quantile([4, 1, 3, 2], 0.26, 'nearest_rank'), 2); // qn = 1.04
    assert.equal(quantile([4, 1, 3, 2], 0.5, 'nearest_rank'), 2);
    assert.equal(quantile([4, 1, 3, 2], 0.75, 'nearest_rank'), 3);
    assert.equal(quantile([4, 1, 3, 2], 0.76, 'nearest_rank'), 4);
    assert.equal(quantile([7], 0, 'nearest_rank'), 7);
    assert.equal(quantile([], 0.5, 'nearest_rank'), null);
  });

  test('nearest_rank computes qn in decimal, not binary floating point', () => {
    // 0.1 * 30 is 3.0000000000000004 in doubles; the rank is 3, so the value is 3, not 4.
    const oneTo30 = Array.from({ length: 30 }, (_, i) => i + 1);
    assert.equal(quantile(oneTo30, 0.1, 'nearest_rank'), 3);
    assert.equal(nearestRank(0.07, 100), 7);
    assert.equal(nearestRank(0.95, 20), 19);
    assert.equal(nearestRank(0.951, 20), 20);
  });

  test('quantile metrics skip nulls and carry their result types', () => {
    const data = x.map((v) => ({ v }));
    const out = referenceAggregate(
      spec({
        metrics: [
          { op: 'quantile', column: 'v', q: 0.5 },
          { op: 'quantile', column: 'v', q: 0.5, method: 'nearest_rank', as: 'median_rank' },
          { op: 'quantile', column: 'v', q: 0.999 },
        ],
      }),
      data,
      [{ name: 'v', type: 'integer' }],
    );
    // 0.999: h = 2.997, 3 + 0.997 * 1.
    assert.deepEqual(out.rows, [{ p50_v: 2.5, median_rank: 2, p99_9_v: 3 + 0.997 }]);
    assert.deepEqual(out.columns, [
      { name: 'p50_v', type: 'float' },
      { name: 'median_rank', type: 'integer' },
      { name: 'p99_9_v', type: 'float' },
    ]);
  });
});

describe('ordering and limit', () => {
  const data = [
    { g: 'c', v: 5 },
    { g: 'b', v: null },
    { g: 'a', v: 5 },
    { g: 'd', v: 7 },
    { g: null, v: 1 },
    { g: 'e', v: 1 },
  ];
  const cols: ColumnInfo[] = [
    { name: 'g', type: 'string' },
    { name: 'v', type: 'integer' },
  ];
  const byMax = (direction: 'asc' | 'desc', limit?: number) =>
    referenceAggregate(
      spec({
        groupBy: ['g'],
        metrics: [{ op: 'max', column: 'v' }],
        orderBy: [{ column: 'max_v', direction }],
        ...(limit === undefined ? {} : { limit }),
      }),
      data,
      cols,
    ).rows.map((r) => r.g);

  test('desc: nulls last, ties broken by groupBy ascending (null group last)', () => {
    assert.deepEqual(byMax('desc'), ['d', 'a', 'c', 'e', null, 'b']);
  });

  test('asc: nulls last too', () => {
    assert.deepEqual(byMax('asc'), ['e', null, 'a', 'c', 'd', 'b']);
  });

  test('limit applies after ordering', () => {
    assert.deepEqual(byMax('desc', 2), ['d', 'a']);
    assert.deepEqual(byMax('asc', 1), ['e']);
  });

  test('ordering by a groupBy column desc, strings by code point', () => {
    const rows = referenceAggregate(
      spec({ groupBy: ['t'], metrics: [{ op: 'count' }], orderBy: [{ column: 't', direction: 'desc' }] }),
      [{ t: 'z' }, { t: '😀' }, { t: '\uFFFD' }, { t: null }, { t: 'Z' }],
      [{ name: 't', type: 'string' }],
    ).rows.map((r) => r.t);
    assert.deepEqual(rows, ['😀', '\uFFFD', 'z', 'Z', null]);
  });

  test('a later groupBy column breaks ties of the first', () => {
    const rows = referenceAggregate(
      spec({ groupBy: ['k', 'j'], metrics: [{ op: 'count' }] }),
      [
        { k: 2, j: 'b' },
        { k: 1, j: 'b' },
        { k: 2, j: 'a' },
        { k: 1, j: null },
      ],
      [
        { name: 'j', type: 'string' },
        { name: 'k', type: 'integer' },
      ],
    ).rows.map((r) => [r.k, r.j]);
    assert.deepEqual(rows, [
      [1, 'b'],
      [1, null],
      [2, 'a'],
      [2, 'b'],
    ]);
  });
});
