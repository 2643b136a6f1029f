// The DuckDB engine on real DuckDB: hostile identifiers and values are data, not SQL; file
// access is confined to the data root; the row cap is enforced.
import assert from 'node:assert/strict';
import { mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { addressAggregation, parseAggregation } from '../../shared/aggregation.ts';
import { resolveDataFile } from '../../shared/datasets.ts';
import { QuarryError } from '../../shared/errors.ts';
import { createDuckDBEngine } from '../../workers/engines/duckdb.ts';
import type { AggregationEngine } from '../../workers/engines/engine.ts';

let engine: AggregationEngine;
let dataDir: string;
let spoolDir: string;
const limits = { maxInlineBytes: 1e6, maxResultRows: 1000 };

before(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-data-'));
  spoolDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-spool-'));
  engine = await createDuckDBEngine({ dataDir, spoolDir, threads: 1 });
});
after(() => engine.close());

async function runInline(spec: unknown, maxRows = 1000, signal?: AbortSignal) {
  const addressed = addressAggregation(parseAggregation(spec, limits));
  const file = path.join(spoolDir, `${addressed.resultKey}.json`);
  writeFileSync(file, addressed.inlineJson!);
  assert.ok(addressed.spec.dataset.kind === 'inline');
  return engine.run({
    spec: addressed.spec,
    source: { kind: 'inline', file, columns: addressed.spec.dataset.columns },
    maxRows,
    ...(signal ? { signal } : {}),
  });
}

test('hostile column names and values are plain data', async () => {
  const evil = `x"; DROP TABLE t; SELECT '`;
  const value = "'); COPY (SELECT 42) TO '/tmp/quarry-pwn.csv'; --";
  const out = await runInline({
    dataset: {
      records: [
        { [evil]: value, n: 1 },
        { [evil]: 'other', n: 2 },
        { [evil]: value, n: 3 },
      ],
    },
    filters: [{ column: evil, op: 'eq', value }],
    groupBy: [evil],
    metrics: [{ op: 'sum', column: 'n', as: `${evil} total` }],
  });
  assert.deepEqual(out.rows, [{ [evil]: value, [`${evil} total`]: 4 }]);
});

test('SQL null semantics: ne drops nulls, null is a group of its own, empty input gives one row', async () => {
  const records = [
    { g: null, v: 1 },
    { g: 'a', v: null },
    { g: 'a', v: 3 },
    { g: null, v: 5 },
  ];
  const ne = await runInline({
    dataset: { records },
    filters: [{ column: 'v', op: 'ne', value: 3 }],
    metrics: [{ op: 'count' }],
  });
  assert.deepEqual(ne.rows, [{ count: 2 }]);
  const grouped = await runInline({
    dataset: { records },
    groupBy: ['g'],
    metrics: [{ op: 'count' }, { op: 'count', column: 'v' }, { op: 'avg', column: 'v' }],
  });
  assert.deepEqual(grouped.rows, [
    { g: 'a', count: 2, count_v: 1, avg_v: 3 },
    { g: null, count: 2, count_v: 2, avg_v: 3 },
  ]);
  const empty = await runInline({
    dataset: { records },
    filters: [{ column: 'v', op: 'gt', value: 100 }],
    metrics: [{ op: 'count' }, { op: 'max', column: 'v' }],
  });
  assert.deepEqual(empty.rows, [{ count: 0, max_v: null }]);
});

test('too many result rows fail with QUARRY_ERR_RESULT_TOO_LARGE', async () => {
  const records = Array.from({ length: 50 }, (_, i) => ({ k: i }));
  await assert.rejects(
    runInline({ dataset: { records }, groupBy: ['k'], metrics: [{ op: 'count' }] }, 10),
    (e: unknown) => e instanceof QuarryError && e.code === 'QUARRY_ERR_RESULT_TOO_LARGE',
  );
});

test('paths outside the data root are refused, by Quarry and by DuckDB', async () => {
  const outside = mkdtempSync(path.join(os.tmpdir(), 'quarry-outside-'));
  writeFileSync(path.join(outside, 'secret.csv'), 'a\n1\n');
  symlinkSync(path.join(outside, 'secret.csv'), path.join(dataDir, 'link.csv'));
  for (const rel of ['../secret.csv', 'link.csv', '/etc/passwd']) {
    await assert.rejects(resolveDataFile(dataDir, rel), (e: unknown) => e instanceof QuarryError, rel);
  }
  // Even handed an absolute path outside the root, DuckDB itself refuses to open it.
  const parsed = parseAggregation({ dataset: { path: 'x.csv' }, metrics: [{ op: 'count' }] }, limits);
  await assert.rejects(
    engine.run({
      spec: { ...parsed.spec, dataset: { kind: 'file', path: 'x.csv', format: 'csv', size: 0, mtimeMs: 0 } },
      source: { kind: 'file', file: path.join(outside, 'secret.csv'), format: 'csv' },
      maxRows: 10,
    }),
    (e: unknown) => e instanceof QuarryError && e.code === 'QUARRY_ERR_DATASET_UNREADABLE',
  );
});

test('aborting a running query rejects with the abort reason', async () => {
  const records = Array.from({ length: 20_000 }, (_, i) => ({ k: i % 5000, v: i }));
  const controller = new AbortController();
  const reason = new QuarryError('QUARRY_ERR_JOB_CANCELLED', 'stop');
  const running = runInline(
    { dataset: { records }, groupBy: ['k'], metrics: [{ op: 'quantile', column: 'v', q: 0.5 }], limit: 3 },
    1000,
    controller.signal,
  );
  controller.abort(reason);
  await assert.rejects(running, (e: unknown) => e === reason);
});

test('one spec shape over new data, values and value types: each run answers for its own, pooled and prepared, aborts and failures between them', async () => {
  // The same SQL text every time (one shape); the file, the column types and the filter value's
  // type (BIGINT for 2, DOUBLE for 2.5) change from run to run.
  const runOne = (i: number, signal?: AbortSignal) => {
    const float = i % 2 === 1;
    const records = Array.from({ length: 20 }, (_, k) => ({ g: `g${k % 3}`, v: float ? k + 0.25 : k + i }));
    const min = float ? 2.5 : 2;
    const expected = new Map<string, number>();
    for (const r of records) if (r.v > min) expected.set(r.g, (expected.get(r.g) ?? 0) + r.v);
    const out = runInline(
      {
        dataset: { records },
        filters: [{ column: 'v', op: 'gt', value: min }],
        groupBy: ['g'],
        metrics: [{ op: 'sum', column: 'v', as: 'total' }],
        orderBy: [{ column: 'g', direction: 'asc' }],
      },
      1000,
      signal,
    );
    return { out, expected: [...expected].sort().map(([g, total]) => ({ g, total })) };
  };
  for (let round = 0; round < 3; round++) {
    const runs = Array.from({ length: 6 }, (_, i) => runOne(round * 6 + i));
    for (const { out, expected } of runs) assert.deepEqual((await out).rows, expected);
    // An aborted run and a failing one leave nothing behind for the next runs.
    const controller = new AbortController();
    const aborted = runOne(1, controller.signal).out;
    controller.abort(new QuarryError('QUARRY_ERR_JOB_CANCELLED', 'stop'));
    await assert.rejects(aborted);
    await assert.rejects(
      runInline({
        dataset: { records: [{ g: 'a', v: 'not a number' }] },
        groupBy: ['g'],
        metrics: [{ op: 'sum', column: 'v' }],
      }),
    );
  }
});
