// SQL compilation: identifiers quoted, every value a bound parameter, nothing from the spec
// spliced into the SQL text.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAggregation } from '../../shared/aggregation.ts';
import { buildPlan } from '../../shared/plan.ts';
import { quoteIdent } from '../../workers/engines/duckdb-params.ts';
import { compileAggregation } from '../../workers/engines/duckdb-sql.ts';

const evil = 'x"; DROP TABLE t; --';
const evilValue = "'; COPY (SELECT 1) TO '/tmp/pwn.csv'; --";

test('quoteIdent doubles quotes', () => {
  assert.equal(quoteIdent('a"b'), '"a""b"');
});

test('hostile names and values never reach the SQL text unquoted', () => {
  const records = [{ [evil]: 'v', n: 1 }];
  const parsed = parseAggregation(
    {
      dataset: { records },
      filters: [
        { column: evil, op: 'eq', value: evilValue },
        { column: 'n', op: 'in', value: [1, 2, 3] },
        { column: 'n', op: 'between', value: [0, 9] },
        { column: evil, op: 'not_null' },
      ],
      groupBy: [evil],
      metrics: [
        { op: 'count', as: `c${evil}` },
        { op: 'quantile', column: 'n', q: 0.25 },
      ],
      orderBy: [{ column: `c${evil}`, direction: 'desc' }],
      limit: 7,
    },
    { maxInlineBytes: 1e6, maxResultRows: 100 },
  );
  assert.ok(parsed.dataset.kind === 'inline');
  const columns = parsed.dataset.data.columns;
  const { sql, params } = compileAggregation(buildPlan(parsed.spec, columns, 100), {
    kind: 'inline',
    file: '/spool/x.json',
    columns,
  });
  assert.ok(!sql.includes(evilValue), 'values are parameters');
  assert.ok(!sql.includes('/spool/x.json'), 'the path is a parameter');
  assert.ok(!sql.includes(evil), 'the raw identifier never appears');
  assert.ok(sql.includes(quoteIdent(evil)), 'the identifier appears quoted');
  assert.ok(sql.includes('NULLS LAST'));
  assert.deepEqual(params.slice(2), [0.25, evilValue, 1, 2, 3, 0, 9, 7, 0]);
  assert.equal(params[0], '/spool/x.json');
});

test('filters on an all-null column compile to constants', () => {
  const parsed = parseAggregation(
    {
      dataset: { records: [{ a: null, b: 1 }] },
      filters: [{ column: 'a', op: 'gt', value: 3 }],
      metrics: [{ op: 'count' }],
    },
    { maxInlineBytes: 1e6, maxResultRows: 100 },
  );
  assert.ok(parsed.dataset.kind === 'inline');
  const columns = parsed.dataset.data.columns;
  const { sql } = compileAggregation(buildPlan(parsed.spec, columns, 9), {
    kind: 'inline',
    file: 'f',
    columns,
  });
  assert.match(sql, /WHERE \(false\)/);
});
