// The one-line descriptions a status record keeps for people (shared/job-description.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { addressAggregation, parseAggregation } from '../../shared/aggregation.ts';
import { parseIndexRequest } from '../../shared/indexing.ts';
import { describeAggregation, describeIndex, MAX_DESCRIPTION_CHARS } from '../../shared/job-description.ts';
import { testConfig } from '../helpers/system.ts';

const limits = { maxInlineBytes: 1_000_000, maxResultRows: 1000 };
const records = [
  { g: 'a', x: 1, t: 'p' },
  { g: 'b', x: 2, t: 'q' },
];
const describeSpec = (spec: unknown) =>
  describeAggregation(addressAggregation(parseAggregation(spec, limits)).spec);

describe('job descriptions', () => {
  test('an aggregation: keys, metrics, conditions, order, top, page and engine', () => {
    const d = describeSpec({
      dataset: { records },
      groupBy: ['g'],
      filters: [
        {
          or: [
            { column: 'x', op: 'gt', value: 0 },
            { column: 't', op: 'eq', value: 'p' },
          ],
        },
      ],
      metrics: [
        { op: 'count' },
        { op: 'sum', column: 'x', filter: { column: 't', op: 'eq', value: 'q' } },
        { op: 'quantile', column: 'x', q: 0.9 },
      ],
      having: [{ column: 'count', op: 'gt', value: 0 }],
      orderBy: [{ column: 'count', direction: 'desc' }],
      limit: 10,
      offset: 5,
      engine: 'polars',
    });
    assert.equal(
      d.summary,
      'by g · count(*), sum(x) if 1 cond., quantile(x, q 0.9) · where 2 conditions · having 1 condition · order by count desc · limit 10 · offset 5 · on polars',
    );
    assert.equal(d.dataset, 'inline: 2 rows, 3 columns');
    assert.equal(
      describeSpec({ dataset: { records }, metrics: [{ op: 'count' }] }).summary,
      'all rows · count(*)',
    );
  });

  test('long lists are cut to a bounded line', () => {
    const wide = Object.fromEntries(
      Array.from({ length: 40 }, (_, i) => [`column_with_a_long_name_${i}`, i]),
    );
    const d = describeSpec({
      dataset: { records: [wide] },
      metrics: Object.keys(wide).map((column) => ({ op: 'sum', column })),
    });
    assert.ok(d.summary.length <= MAX_DESCRIPTION_CHARS, d.summary);
    assert.match(d.summary, /and 34 more$/);
  });

  test('an index build: its fields and source', () => {
    const config = testConfig({});
    const parsed = parseIndexRequest(
      'docs',
      {
        documents: [{ id: '1', title: 'a', body: 'b' }],
        idField: 'id',
        fields: ['title', 'body'],
        boosts: { title: 2 },
      },
      config,
    );
    assert.equal(describeIndex(parsed.job).summary, 'index title, body · id id · boost title ×2');
    assert.equal(describeIndex(parsed.job).dataset, 'inline: 1 document');
  });
});
