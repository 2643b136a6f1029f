// docs/AGGREGATION.md's op tables are the registry's (shared/aggregation-ops.ts): every op the
// schema accepts is documented with the default name and result type the code gives it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { filterOpsTable, metricOpsTable } from '../../shared/aggregation-ops.ts';

const doc = readFileSync(path.join(import.meta.dirname, '../../docs/AGGREGATION.md'), 'utf8');

/** The text between `<!-- name: ... -->` and `<!-- /name -->`. */
function section(name: string): string {
  const start = doc.indexOf(`<!-- ${name}:`);
  const end = doc.indexOf(`<!-- /${name} -->`);
  assert.ok(start >= 0 && end > start, `docs/AGGREGATION.md has a ${name} section`);
  return doc.slice(doc.indexOf('\n', start) + 1, end).trim();
}

test('the metric table of docs/AGGREGATION.md is the registry', () => {
  assert.equal(section('metric-ops'), metricOpsTable());
});

test('the filter table of docs/AGGREGATION.md is the registry', () => {
  assert.equal(section('filter-ops'), filterOpsTable());
});
