// The logical plan (shared/plan.ts): what a spec resolves to before any engine sees it, and the
// result keys of existing specs, which the plan and the registry must not move.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { addressAggregation, parseAggregation } from '../../shared/aggregation.ts';
import { isQuarryError } from '../../shared/errors.ts';
import { buildPlan } from '../../shared/plan.ts';

const limits = { maxInlineBytes: 1e6, maxResultRows: 100 };

function planOf(spec: Record<string, unknown>, maxRows = 100) {
  const parsed = parseAggregation(spec, limits);
  assert.ok(parsed.dataset.kind === 'inline');
  return buildPlan(parsed.spec, parsed.dataset.data.columns, maxRows);
}

const records = [
  { g: 'a', h: 1, x: 1.5, n: null, t: 'u' },
  { g: 'b', h: 2, x: 2, n: null, t: 'v' },
];

describe('plan', () => {
  test('sort keys: orderBy, then each group key once, ascending', () => {
    const plan = planOf({
      dataset: { records },
      groupBy: ['g', 'h'],
      metrics: [{ op: 'count' }],
      orderBy: [
        { column: 'h', direction: 'desc' },
        { column: 'count', direction: 'asc' },
      ],
    });
    assert.deepEqual(plan.sort, [
      { index: 1, descending: true },
      { index: 2, descending: false },
      { index: 0, descending: false },
    ]);
  });

  test('fetch: the limit, or one row more than the cap', () => {
    assert.equal(planOf({ dataset: { records }, metrics: [{ op: 'count' }], limit: 3 }).fetch, 3);
    assert.equal(planOf({ dataset: { records }, metrics: [{ op: 'count' }] }, 10).fetch, 11);
    assert.equal(planOf({ dataset: { records }, metrics: [{ op: 'count' }], limit: 50 }, 10).fetch, 11);
  });

  test('filters on an all-null column fold to constants; true conditions drop out of an AND', () => {
    const keepNone = planOf({
      dataset: { records },
      filters: [
        { column: 'x', op: 'gt', value: 0 },
        { column: 'n', op: 'eq', value: 1 },
      ],
      metrics: [{ op: 'count' }],
    });
    assert.deepEqual(keepNone.where, { kind: 'const', value: false });
    const keepAll = planOf({
      dataset: { records },
      filters: [
        { column: 'n', op: 'is_null' },
        { column: 'x', op: 'gt', value: 0 },
      ],
      metrics: [{ op: 'count' }],
    });
    assert.deepEqual(keepAll.where, {
      kind: 'compare',
      column: { name: 'x', type: 'float' },
      op: 'gt',
      value: 0,
    });
  });

  test('outputs are named and typed; only the columns used are read', () => {
    const plan = planOf({
      dataset: { records },
      groupBy: ['g'],
      metrics: [
        { op: 'sum', column: 'h' },
        { op: 'max', column: 't' },
        { op: 'quantile', column: 'h', q: 0.5 },
      ],
    });
    assert.deepEqual(plan.outputs, [
      { name: 'g', type: 'string' },
      { name: 'sum_h', type: 'integer' },
      { name: 'max_t', type: 'string' },
      { name: 'p50_h', type: 'float' },
    ]);
    assert.deepEqual(
      plan.columns.map((c) => c.name),
      ['g', 'h', 't'],
    );
  });

  test('a missing column and a value of the wrong type name their field', () => {
    const fieldOf = (spec: Record<string, unknown>) => {
      try {
        planOf(spec);
      } catch (error) {
        assert.ok(isQuarryError(error));
        return [error.code, error.field];
      }
      assert.fail('expected an error');
    };
    assert.deepEqual(fieldOf({ dataset: { records }, metrics: [{ op: 'sum', column: 'zz' }] }), [
      'QUARRY_ERR_SPEC_UNKNOWN_COLUMN',
      'metrics.0.column',
    ]);
    assert.deepEqual(
      fieldOf({
        dataset: { records },
        filters: [{ column: 'g', op: 'eq', value: 1 }],
        metrics: [{ op: 'count' }],
      }),
      ['QUARRY_ERR_SPEC_TYPE', 'filters.0.value'],
    );
    assert.deepEqual(fieldOf({ dataset: { records }, metrics: [{ op: 'avg', column: 't' }] }), [
      'QUARRY_ERR_SPEC_TYPE',
      'metrics.0.column',
    ]);
  });
});

describe('result keys of existing specs', () => {
  // Computed on main before the plan and the registry existed: they must never move.
  test('are pinned', () => {
    const key = (s: unknown) => addressAggregation(parseAggregation(s, limits)).resultKey;
    assert.equal(
      key({
        dataset: {
          records: [
            { g: 'a', x: 1 },
            { g: 'b', x: 2.5 },
          ],
        },
        filters: [
          { column: 'x', op: 'gt', value: 0 },
          { column: 'g', op: 'in', value: ['a', 'b'] },
        ],
        groupBy: ['g'],
        metrics: [
          { op: 'count' },
          { op: 'quantile', column: 'x', q: 0.95 },
          { op: 'sum', column: 'x', as: 's' },
        ],
        orderBy: [{ column: 'count', direction: 'desc' }],
        limit: 5,
      }),
      'dbd594ecc73cee4b708a2afd568bd649',
    );
    assert.equal(
      key({ dataset: { records: [{ g: 'a', x: 1 }] }, metrics: [{ op: 'avg', column: 'x' }] }),
      'ad30c324e36234e5a6845550b28b5ca8',
    );
  });
});
