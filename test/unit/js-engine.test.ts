// The JS engine's contract beside the parity properties (test/integration/parity.test.ts): the
// row cap, cancellation, records that do not fit their declared columns, sources it refuses, and
// the spool file read like the parsed records. No Redis, no native engine: it is all in process.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { type AggregationSpecInput, addressAggregation, parseAggregation } from '../../shared/aggregation.ts';
import { QuarryError } from '../../shared/errors.ts';
import type { RecordsSource } from '../../workers/engines/engine.ts';
import { createJsEngine } from '../../workers/engines/js.ts';

const limits = { maxInlineBytes: 8 * 1024 * 1024, maxResultRows: 10_000 };
const engine = createJsEngine();
const dir = mkdtempSync(path.join(os.tmpdir(), 'quarry-js-engine-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function input(spec: AggregationSpecInput, maxRows = 1000, signal?: AbortSignal) {
  const addressed = addressAggregation(parseAggregation(spec, limits));
  if (addressed.spec.dataset.kind !== 'inline') throw new Error('inline specs only');
  const source: RecordsSource = {
    kind: 'records',
    records: JSON.parse(addressed.inlineJson!),
    columns: addressed.spec.dataset.columns,
  };
  return { spec: addressed.spec, source, maxRows, ...(signal === undefined ? {} : { signal }) };
}

const code = (c: string) => (e: unknown) => e instanceof QuarryError && e.code === c;

test('too many result rows fail with QUARRY_ERR_RESULT_TOO_LARGE; a limit under the cap passes', async () => {
  const records = Array.from({ length: 50 }, (_, i) => ({ k: i }));
  const spec = { dataset: { records }, groupBy: ['k'], metrics: [{ op: 'count' as const }] };
  await assert.rejects(engine.run(input(spec, 10)), code('QUARRY_ERR_RESULT_TOO_LARGE'));
  const page = await engine.run(input({ ...spec, limit: 10 }, 10));
  assert.equal(page.rows.length, 10);
  assert.equal(page.totalRows, 50);
});

test('an abort before or during a run rejects with the abort reason', async () => {
  for (const length of [20, 20_000]) {
    const records = Array.from({ length }, (_, i) => ({ k: i % 500, v: i }));
    const spec = { dataset: { records }, groupBy: ['k'], metrics: [{ op: 'median' as const, column: 'v' }] };
    const controller = new AbortController();
    const reason = new QuarryError('QUARRY_ERR_JOB_CANCELLED', 'stop');
    const running = engine.run(input(spec, 1000, controller.signal));
    controller.abort(reason);
    await assert.rejects(running, (e: unknown) => e === reason, `${length} records`);
  }
});

test('a value that does not fit its declared column is QUARRY_ERR_DATASET_UNREADABLE', async () => {
  const ok = input({ dataset: { records: [{ v: 1 }] }, metrics: [{ op: 'sum', column: 'v' }] });
  const forged = { ...ok, source: { ...ok.source, records: [{ v: 'one' }] } };
  await assert.rejects(engine.run(forged), code('QUARRY_ERR_DATASET_UNREADABLE'));
});

test('file datasets are refused; a spooled inline file gives the same answer as the records', async () => {
  const spec = {
    dataset: {
      records: [
        { g: 'a', t: '2024-03-10T01:30:00-08:00' },
        { g: 'b', t: null },
      ],
    },
    groupBy: ['g', { column: 't', bucket: 'day' as const, tz: 'America/Los_Angeles' }],
    metrics: [{ op: 'count' as const }, { op: 'max' as const, column: 't' }],
  };
  const parsed = input(spec);
  const file = path.join(dir, 'spool.json');
  writeFileSync(file, JSON.stringify(parsed.source.records));
  const fromFile = await engine.run({
    ...parsed,
    source: { kind: 'inline', file, columns: parsed.source.columns },
  });
  const fromRecords = await engine.run(parsed);
  assert.deepEqual(fromFile, fromRecords);
  assert.deepEqual(fromRecords.rows, [
    { g: 'a', t_day: '2024-03-10T00:00:00-08:00', count: 1, max_t: '2024-03-10T09:30:00.000Z' },
    { g: 'b', t_day: null, count: 1, max_t: null },
  ]);
  await assert.rejects(
    engine.run({ ...parsed, source: { kind: 'file', file, format: 'ndjson' } }),
    code('QUARRY_ERR_ENGINE'),
  );
});
