// engine: "auto" follows the measured crossovers of workers/engines/choose.ts: the JS engine for
// inline records up to its bound, a lower bound when a bucket needs a zone's wall times.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressAggregation, parseAggregation } from '../../shared/aggregation.ts';
import { chooseEngine, JS_ENGINE_MAX_ROWS, JS_ENGINE_MAX_ZONED_ROWS } from '../../workers/engines/choose.ts';

const limits = { maxInlineBytes: 64 * 1024 * 1024, maxResultRows: 10_000 };
const records = (n: number) =>
  Array.from({ length: n }, (_, i) => ({
    t: new Date(Date.UTC(2024, 0, 1) + i * 60_000).toISOString(),
    g: i % 7,
  }));

function chosen(n: number, groupBy: unknown[], engine?: string): string {
  const parsed = parseAggregation(
    { dataset: { records: records(n) }, groupBy, metrics: [{ op: 'count' }], ...(engine ? { engine } : {}) },
    limits,
  );
  return chooseEngine(addressAggregation(parsed).spec);
}

test('auto: the JS engine up to its bounds, DuckDB past them; a named engine is kept', () => {
  const zoned = [{ column: 't', bucket: 'day', tz: 'America/Los_Angeles' }];
  assert.ok(JS_ENGINE_MAX_ZONED_ROWS < JS_ENGINE_MAX_ROWS);
  assert.equal(chosen(JS_ENGINE_MAX_ZONED_ROWS, zoned), 'js');
  assert.equal(chosen(JS_ENGINE_MAX_ZONED_ROWS + 1, zoned), 'duckdb');
  // UTC buckets and plain keys need no zone readings: the wider bound.
  assert.equal(chosen(JS_ENGINE_MAX_ZONED_ROWS + 1, [{ column: 't', bucket: 'day' }]), 'js');
  assert.equal(chosen(JS_ENGINE_MAX_ROWS, ['g']), 'js');
  assert.equal(chosen(JS_ENGINE_MAX_ROWS + 1, ['g']), 'duckdb');
  assert.equal(chosen(10, zoned, 'polars'), 'polars');
});
