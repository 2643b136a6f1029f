// Filter trees, text ops and having: what the parser accepts, the field each refusal names, and
// how the plan resolves timestamps written with an offset.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseAggregation } from '../../shared/aggregation.ts';
import type { ColumnInfo } from '../../shared/datasets.ts';
import { isQuarryError } from '../../shared/errors.ts';
import { MAX_FILTER_DEPTH } from '../../shared/filter-tree.ts';
import { buildPlan } from '../../shared/plan.ts';

const limits = { maxInlineBytes: 1e6, maxResultRows: 100 };
const records = [{ g: 'a', n: 1 }];

function refusal(spec: Record<string, unknown>, columns?: ColumnInfo[]): [string, string | undefined] {
  try {
    const parsed = parseAggregation({ dataset: { records }, metrics: [{ op: 'count' }], ...spec }, limits);
    assert.ok(parsed.dataset.kind === 'inline');
    buildPlan(parsed.spec, columns ?? parsed.dataset.data.columns, 100);
  } catch (error) {
    assert.ok(isQuarryError(error), String(error));
    return [error.code, error.field];
  }
  assert.fail('expected a refusal');
}

function nested(depth: number): unknown {
  let f: unknown = { column: 'n', op: 'gt', value: 0 };
  for (let i = 0; i < depth; i++) f = i % 2 === 0 ? { not: f } : { and: [f] };
  return f;
}

describe('filter trees', () => {
  test('nesting up to the bound is accepted, one level more is refused naming the node', () => {
    parseAggregation(
      { dataset: { records }, filters: [nested(MAX_FILTER_DEPTH)], metrics: [{ op: 'count' }] },
      limits,
    );
    const [code, field] = refusal({ filters: [nested(MAX_FILTER_DEPTH + 1)] });
    assert.equal(code, 'QUARRY_ERR_VALIDATION');
    assert.match(field!, /^filters\.0(\.(not|and\.0))+$/);
    assert.equal(field!.split('.').filter((p) => p === 'not' || p === 'and').length, MAX_FILTER_DEPTH);
  });

  test('a deep tree far past the bound is refused without walking it all', () => {
    const [code] = refusal({ filters: [nested(100_000)] });
    assert.equal(code, 'QUARRY_ERR_VALIDATION');
  });

  test('errors name the field inside the tree', () => {
    assert.deepEqual(
      refusal({
        filters: [
          {
            or: [
              { column: 'n', op: 'gt', value: 0 },
              { column: 'n', op: 'gt' },
            ],
          },
        ],
      }),
      ['QUARRY_ERR_VALIDATION', 'filters.0.or.1.value'],
    );
    assert.deepEqual(refusal({ filters: [{ not: { column: 'n', op: 'like', value: 'x' } }] }), [
      'QUARRY_ERR_VALIDATION',
      'filters.0.not.op',
    ]);
    assert.deepEqual(refusal({ filters: [{ and: [], x: 1 }] }), ['QUARRY_ERR_VALIDATION', 'filters.0.x']);
    assert.deepEqual(refusal({ filters: [{ or: [] }] }), ['QUARRY_ERR_VALIDATION', 'filters.0.or']);
    assert.deepEqual(refusal({ filters: [{ and: [{ column: 'zz', op: 'is_null' }] }] }), [
      'QUARRY_ERR_SPEC_UNKNOWN_COLUMN',
      'filters.0.and.0.column',
    ]);
  });

  test('text ops need a string column and a string value', () => {
    assert.deepEqual(refusal({ filters: [{ column: 'n', op: 'contains', value: '1' }] }), [
      'QUARRY_ERR_SPEC_TYPE',
      'filters.0.op',
    ]);
    assert.deepEqual(refusal({ filters: [{ column: 'g', op: 'starts_with', value: 1 }] }), [
      'QUARRY_ERR_VALIDATION',
      'filters.0.value',
    ]);
    assert.deepEqual(
      refusal({ filters: [{ column: 'g', op: 'ends_with', value: 'a', ignoreCase: 'yes' }] }),
      ['QUARRY_ERR_VALIDATION', 'filters.0.ignoreCase'],
    );
  });

  test('having names output columns only', () => {
    assert.deepEqual(refusal({ groupBy: ['g'], having: [{ column: 'n', op: 'gt', value: 1 }] }), [
      'QUARRY_ERR_VALIDATION',
      'having.0.column',
    ]);
    assert.deepEqual(
      refusal({ groupBy: ['g'], having: [{ or: [{ column: 'count', op: 'gt', value: 'x' }] }] }),
      ['QUARRY_ERR_SPEC_TYPE', 'having.0.or.0.value'],
    );
  });
});

describe('timestamps in filters', () => {
  const columns: ColumnInfo[] = [{ name: 't', type: 'timestamp' }];
  const plannedValue = (value: string) => {
    const parsed = parseAggregation(
      { dataset: { records }, filters: [{ column: 't', op: 'gte', value }], metrics: [{ op: 'count' }] },
      limits,
    );
    const where = buildPlan(parsed.spec, columns, 10).where;
    assert.ok(where.kind === 'compare');
    return where.value;
  };
  test('ISO 8601 with an offset or Z is the UTC instant; without one it is UTC', () => {
    assert.equal(plannedValue('2024-03-10T01:30:00-08:00'), '2024-03-10T09:30:00.000000');
    assert.equal(plannedValue('2024-03-10T01:30:00.25+05:30'), '2024-03-09T20:00:00.250000');
    assert.equal(plannedValue('2024-03-10T01:30:00Z'), '2024-03-10T01:30:00.000000');
    assert.equal(plannedValue('2024-03-10'), '2024-03-10T00:00:00.000000');
    assert.equal(plannedValue('0050-01-01T00:00'), '0050-01-01T00:00:00.000000');
  });
  test('anything else is a 400 naming the value', () => {
    for (const bad of ['2024-02-30', '2024-03-10T25:00', '2024-03-10T01:00+24:00', 'yesterday', '2024-3-1']) {
      assert.deepEqual(refusal({ filters: [{ column: 't', op: 'gte', value: bad }] }, columns), [
        'QUARRY_ERR_SPEC_TYPE',
        'filters.0.value',
      ]);
    }
  });
});

describe('metrics: ratio, a metric filter, stddev and variance', () => {
  test('a ratio names other metrics by output name; anything else is refused naming the field', () => {
    assert.deepEqual(refusal({ metrics: [{ op: 'count' }, { op: 'ratio', of: 'count', to: 'nope' }] }), [
      'QUARRY_ERR_VALIDATION',
      'metrics.1.to',
    ]);
    assert.deepEqual(
      refusal({ groupBy: ['g'], metrics: [{ op: 'count' }, { op: 'ratio', of: 'g', to: 'count' }] }),
      ['QUARRY_ERR_VALIDATION', 'metrics.1.of'],
    );
    assert.deepEqual(
      refusal({
        metrics: [
          { op: 'count' },
          { op: 'ratio', of: 'count', to: 'count', as: 'r' },
          { op: 'ratio', of: 'r', to: 'count' },
        ],
      }),
      ['QUARRY_ERR_VALIDATION', 'metrics.2.of'],
    );
    assert.deepEqual(
      refusal({
        metrics: [
          { op: 'max', column: 'g' },
          { op: 'ratio', of: 'max_g', to: 'max_g' },
        ],
      }),
      ['QUARRY_ERR_SPEC_TYPE', 'metrics.1.of'],
    );
    assert.deepEqual(
      refusal({
        metrics: [
          { op: 'count' },
          { op: 'ratio', of: 'count', to: 'count', filter: { column: 'n', op: 'is_null' } },
        ],
      }),
      ['QUARRY_ERR_VALIDATION', 'metrics.1.filter'],
    );
  });

  test('a metric filter is a filter tree over source columns', () => {
    assert.deepEqual(
      refusal({ metrics: [{ op: 'count', filter: { not: { column: 'zz', op: 'is_null' } } }] }),
      ['QUARRY_ERR_SPEC_UNKNOWN_COLUMN', 'metrics.0.filter.not.column'],
    );
    assert.deepEqual(refusal({ metrics: [{ op: 'stddev', column: 'g' }] }), [
      'QUARRY_ERR_SPEC_TYPE',
      'metrics.0.column',
    ]);
    assert.deepEqual(refusal({ metrics: [{ op: 'variance', column: 'n', population: 1 }] }), [
      'QUARRY_ERR_VALIDATION',
      'metrics.0.population',
    ]);
  });

  test('default names', () => {
    const parsed = parseAggregation(
      {
        dataset: { records },
        metrics: [
          { op: 'count', filter: { column: 'n', op: 'gt', value: 0 } },
          { op: 'stddev', column: 'n' },
          { op: 'stddev', column: 'n', population: true },
          { op: 'variance', column: 'n', population: false },
          { op: 'median', column: 'n' },
          { op: 'ratio', of: 'count', to: 'median_n' },
        ],
      },
      limits,
    );
    assert.deepEqual(
      parsed.spec.metrics.map((m) => m.as),
      ['count', 'stddev_n', 'stddev_pop_n', 'variance_n', 'median_n', 'count_per_median_n'],
    );
    // population: false is the default and is not written into the normalized spec (or its key).
    assert.equal('population' in parsed.spec.metrics[3]!, false);
  });
});

describe('time buckets and bins', () => {
  const withTime = [{ g: 'a', n: 1, t: '2024-03-10T01:30:00-08:00' }];
  const refuse = (groupBy: unknown[]) => {
    try {
      const parsed = parseAggregation(
        { dataset: { records: withTime }, groupBy, metrics: [{ op: 'count' }] },
        limits,
      );
      assert.ok(parsed.dataset.kind === 'inline');
      buildPlan(parsed.spec, parsed.dataset.data.columns, 100);
    } catch (error) {
      assert.ok(isQuarryError(error), String(error));
      return [error.code, error.field];
    }
    assert.fail('expected a refusal');
  };
  test('inline RFC 3339 strings with an offset or Z are a timestamp column', () => {
    const parsed = parseAggregation({ dataset: { records: withTime }, metrics: [{ op: 'count' }] }, limits);
    assert.ok(parsed.dataset.kind === 'inline');
    assert.deepEqual(
      parsed.dataset.data.columns.find((c) => c.name === 't'),
      { name: 't', type: 'timestamp' },
    );
    const local = parseAggregation(
      { dataset: { records: [{ t: '2024-03-10T01:30:00' }] }, metrics: [{ op: 'count' }] },
      limits,
    );
    assert.ok(local.dataset.kind === 'inline');
    assert.equal(local.dataset.data.columns[0]!.type, 'string', 'without an offset it is a string');
  });
  test('an unknown zone, a bucket of a number, a bin of a string, an unknown bucket are 400s naming the field', () => {
    assert.deepEqual(refuse([{ column: 't', bucket: 'day', tz: 'Mars/Olympus' }]), [
      'QUARRY_ERR_VALIDATION',
      'groupBy.0.tz',
    ]);
    assert.deepEqual(refuse([{ column: 't', bucket: 'day', tz: 'america/new_york' }]), [
      'QUARRY_ERR_VALIDATION',
      'groupBy.0.tz',
    ]);
    assert.deepEqual(refuse(['g', { column: 'n', bucket: 'day' }]), [
      'QUARRY_ERR_SPEC_TYPE',
      'groupBy.1.column',
    ]);
    assert.deepEqual(refuse([{ column: 'g', bin: 5 }]), ['QUARRY_ERR_SPEC_TYPE', 'groupBy.0.column']);
    assert.deepEqual(refuse([{ column: 't', bucket: 'fortnight' }]), [
      'QUARRY_ERR_VALIDATION',
      'groupBy.0.bucket',
    ]);
    assert.deepEqual(refuse([{ column: 'n', bin: 0 }]), ['QUARRY_ERR_VALIDATION', 'groupBy.0.bin']);
    assert.deepEqual(
      refuse([
        { column: 't', bucket: 'day' },
        { column: 't', bucket: 'day' },
      ]),
      ['QUARRY_ERR_VALIDATION', 'groupBy.1.as'],
    );
  });
  test('normalized keys: tz UTC and the default name filled in; plain columns stay strings', () => {
    const parsed = parseAggregation(
      {
        dataset: { records: withTime },
        groupBy: ['g', { column: 't', bucket: 'day' }, { column: 'n', bin: 10 }],
        metrics: [{ op: 'count' }],
      },
      limits,
    );
    assert.deepEqual(parsed.spec.groupBy, [
      'g',
      { column: 't', bucket: 'day', tz: 'UTC', as: 't_day' },
      { column: 'n', bin: 10, as: 'n_bin' },
    ]);
  });
});

describe('top, offset', () => {
  test('top.per names group keys by output name; bad values name the field', () => {
    assert.deepEqual(refusal({ groupBy: ['g'], top: { per: ['n'], limit: 2 } }), [
      'QUARRY_ERR_VALIDATION',
      'top.per.0',
    ]);
    assert.deepEqual(refusal({ groupBy: ['g'], top: { per: ['count'], limit: 2 } }), [
      'QUARRY_ERR_VALIDATION',
      'top.per.0',
    ]);
    assert.deepEqual(refusal({ groupBy: ['g'], top: { per: ['g', 'g'], limit: 2 } }), [
      'QUARRY_ERR_VALIDATION',
      'top.per.1',
    ]);
    assert.deepEqual(refusal({ groupBy: ['g'], top: { per: ['g'], limit: 0 } }), [
      'QUARRY_ERR_VALIDATION',
      'top.limit',
    ]);
    assert.deepEqual(refusal({ offset: -1 }), ['QUARRY_ERR_VALIDATION', 'offset']);
    assert.deepEqual(refusal({ offset: 1.5 }), ['QUARRY_ERR_VALIDATION', 'offset']);
  });
  test('a bucket is named in top.per by its output name; offset 0 is not written into the spec', () => {
    const parsed = parseAggregation(
      {
        dataset: { records: [{ g: 'a', t: '2024-03-10T01:30:00-08:00' }] },
        groupBy: [{ column: 't', bucket: 'day', as: 'day' }, 'g'],
        metrics: [{ op: 'count' }],
        top: { per: ['day'], limit: 3 },
        offset: 0,
      },
      limits,
    );
    assert.deepEqual(parsed.spec.top, { per: ['day'], limit: 3 });
    assert.equal('offset' in parsed.spec, false);
  });
});
