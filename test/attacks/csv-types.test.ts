// A CSV whose first fraction comes late (a second pair of eyes, 2026-12-07): DuckDB inferred the
// column's type from its default sample (~20k rows) and rounded the later 1.5 to 2, a silently
// wrong sum; Polars read it right. Then 30 hostile CSVs (a probe, 2026-12-07): the engines' own
// inference gave 13 of them different types or values (dates, leading zeros, spaces, `inf`,
// integers past int64, booleans in capitals, the delimiter). Both now read every field as text
// and type a column by one rule over all its values (workers/engines/csv-types.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type AggregationSpec, parseAggregation } from '../../shared/aggregation.ts';
import { createDuckDBEngine } from '../../workers/engines/duckdb.ts';
import type { AggregationEngine } from '../../workers/engines/engine.ts';
import { createPolarsEngine } from '../../workers/engines/polars.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

/** A file's text, and the type and sorted group keys of its column `x` (null last) in both engines. */
const HOSTILE: Record<
  string,
  { text: string; type: string; values: unknown[] } | { text: string; code: string }
> = {
  date: { text: 'x,n\n2024-01-01,1\n2024-01-02,2\n', type: 'date', values: ['2024-01-01', '2024-01-02'] },
  naiveDatetime: {
    text: 'x,n\n2024-01-01 10:00:00,1\n2024-01-02 11:00:00,2\n',
    type: 'string',
    values: ['2024-01-01 10:00:00', '2024-01-02 11:00:00'],
  },
  instants: {
    text: 'x,n\n2024-01-01T10:00:00Z,1\n2024-01-02T11:00:00+02:00,2\n',
    type: 'timestamp',
    values: ['2024-01-01T10:00:00.000Z', '2024-01-02T09:00:00.000Z'],
  },
  impossibleDate: {
    text: 'x,n\n2024-02-30,1\n2024-01-02,2\n',
    type: 'string',
    values: ['2024-01-02', '2024-02-30'],
  },
  timeOfDay: { text: 'x,n\n10:00:00,1\n11:00:00,2\n', type: 'string', values: ['10:00:00', '11:00:00'] },
  leadingSpace: { text: 'x,n\n 1,1\n2,2\n', type: 'string', values: [' 1', '2'] },
  trailingSpace: { text: 'x,n\n1 ,1\n2,2\n', type: 'string', values: ['1 ', '2'] },
  leadingZero: { text: 'x,n\n007,1\n010,2\n', type: 'string', values: ['007', '010'] },
  plusSign: { text: 'x,n\n+5,1\n2,2\n', type: 'string', values: ['+5', '2'] },
  hex: { text: 'x,n\n0x10,1\n2,2\n', type: 'string', values: ['0x10', '2'] },
  quotedEmpty: { text: 'x,n\n"",1\na,2\n', type: 'string', values: ['', 'a'] },
  emptyIsNull: { text: 'x,n\n,1\n3,2\n', type: 'integer', values: [3, null] },
  allEmpty: { text: 'x,n\n,1\n,2\n', type: 'string', values: [null] },
  quotedNumbers: { text: 'x,n\n"5",1\n"6",2\n', type: 'integer', values: [5, 6] },
  pastInt64: { text: 'x,n\n99999999999999999999,1\n1,2\n', type: 'float', values: [1, 1e20] },
  exponent: { text: 'x,n\n1e3,1\n2.5,2\n', type: 'float', values: [2.5, 1000] },
  infinity: { text: 'x,n\ninf,1\n2.5,2\n', type: 'string', values: ['2.5', 'inf'] },
  nan: { text: 'x,n\nNaN,1\n2.5,2\n', type: 'string', values: ['2.5', 'NaN'] },
  thousands: { text: 'x,n\n"1,000",1\n2,2\n', type: 'string', values: ['1,000', '2'] },
  decimalComma: { text: 'x,n\n"1,5",1\n"2,5",2\n', type: 'string', values: ['1,5', '2,5'] },
  booleans: { text: 'x,n\nTrue,1\nFALSE,2\n', type: 'boolean', values: [false, true] },
  naText: { text: 'x,n\nNA,1\n2,2\n', type: 'string', values: ['2', 'NA'] },
  nullText: { text: 'x,n\nNULL,1\n2,2\n', type: 'string', values: ['2', 'NULL'] },
  crlf: { text: 'x,n\r\n1,1\r\n2,2\r\n', type: 'integer', values: [1, 2] },
  onlyHeader: { text: 'x,n\n', type: 'string', values: [] },
  // The delimiter is a comma: a semicolon or tab file is one column named by its whole header.
  semicolons: { text: 'x;n\n1;1\n2;2\n', code: 'QUARRY_ERR_SPEC_UNKNOWN_COLUMN' },
  tabs: { text: 'x\tn\n1\t1\n2\t2\n', code: 'QUARRY_ERR_SPEC_UNKNOWN_COLUMN' },
  ragged: { text: 'x,n\n1,2,3\n4,5\n', code: 'QUARRY_ERR_DATASET_UNREADABLE' },
};

describe('attacks: CSV column types', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let dataDir: string;

  before(async () => {
    redis = await startRedis();
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-csv-types-'));
    writeFileSync(path.join(dataDir, 'late.csv'), `x,g\n${'1,a\n'.repeat(30_000)}1.5,b\n2.7,b\n`);
    writeFileSync(path.join(dataDir, 'times.csv'), 'at,n\n12:30:00,1\n12:30:00,2\n08:05:09,3\n');
    writeFileSync(
      path.join(dataDir, 'times.ndjson'),
      '{"at":"12:30:00","n":1}\n{"at":"12:30:00","n":2}\n{"at":"08:05:09","n":3}\n',
    );
    // Past both samples (csv-types.ts: 100,000 rows in DuckDB, 10,000 tested in JS for Polars),
    // so the whole-file pass decides: a late fraction, and a late word in a date column.
    writeFileSync(
      path.join(dataDir, 'late-large.csv'),
      `x,d,g\n${'1,2024-01-01,a\n'.repeat(100_010)}1.5,soon,b\n`,
    );
    writeFileSync(path.join(dataDir, 'repeats.csv'), 'x,x,g\n1,10,a\n2,20,a\n');
    writeFileSync(path.join(dataDir, 'semicolons.csv'), 'x;g\n1;a\n');
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_DATA_DIR: dataDir } });
  });
  after(async () => {
    await sys?.close();
    await redis?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  for (const engine of ['duckdb', 'polars'] as const) {
    test(`${engine}: a fraction after 30,000 integers makes the column float, and the sum exact`, async () => {
      const res = await sys.app.inject({
        method: 'POST',
        url: '/v1/aggregations?wait=30000',
        payload: JSON.stringify({
          dataset: { path: 'late.csv' },
          groupBy: ['g'],
          metrics: [
            { op: 'sum', column: 'x' },
            { op: 'max', column: 'x' },
          ],
          orderBy: [{ column: 'g', direction: 'asc' }],
          engine,
        }),
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.statusCode, 200, res.body);
      const envelope = JSON.parse(res.body) as { rows: { g: string; sum_x: number; max_x: number }[] };
      assert.deepEqual(envelope.rows, [
        { g: 'a', sum_x: 30_000, max_x: 1 },
        { g: 'b', sum_x: 4.2, max_x: 2.7 },
      ]);
    });
  }

  test('hostile CSVs: one type and the same values in DuckDB and Polars', async () => {
    const engines: [string, AggregationEngine][] = [
      ['duckdb', await createDuckDBEngine({ threads: 1, dataDir, spoolDir: dataDir })],
      ['polars', createPolarsEngine({ poolSize: 1 })],
    ];
    const parsed = parseAggregation(
      {
        dataset: { records: [] },
        groupBy: ['x'],
        metrics: [{ op: 'count' }],
        orderBy: [{ column: 'x', direction: 'asc' }],
      },
      { maxInlineBytes: 1e6, maxResultRows: 100 },
    );
    const spec: AggregationSpec = { ...parsed.spec, dataset: { kind: 'inline', rows: 0, columns: [] } };
    try {
      for (const [name, expected] of Object.entries(HOSTILE)) {
        const file = path.join(dataDir, `hostile-${name}.csv`);
        writeFileSync(file, expected.text);
        for (const [engine, run] of engines) {
          const out = run.run({ spec, source: { kind: 'file', file, format: 'csv' }, maxRows: 100 });
          if ('code' in expected) {
            await assert.rejects(out, { code: expected.code }, `${name} in ${engine}`);
            continue;
          }
          const { columns, rows } = await out;
          assert.deepEqual(
            { type: columns[0]?.type, values: rows.map((r) => r.x) },
            { type: expected.type, values: expected.values },
            `${name} in ${engine}`,
          );
        }
      }
    } finally {
      for (const [, engine] of engines) await engine.close();
    }
  });

  for (const engine of ['duckdb', 'polars'] as const) {
    test(`${engine}: past the samples, the whole file decides (a late fraction, a late word)`, async () => {
      const res = await sys.app.inject({
        method: 'POST',
        url: '/v1/aggregations?wait=30000',
        payload: JSON.stringify({
          dataset: { path: 'late-large.csv' },
          groupBy: ['g'],
          metrics: [
            { op: 'sum', column: 'x' },
            { op: 'max', column: 'd' },
          ],
          orderBy: [{ column: 'g', direction: 'asc' }],
          engine,
        }),
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.statusCode, 200, res.body);
      const envelope = JSON.parse(res.body) as { columns: { name: string; type: string }[]; rows: unknown[] };
      assert.deepEqual(envelope.rows, [
        { g: 'a', sum_x: 100_010, max_d: '2024-01-01' },
        { g: 'b', sum_x: 1.5, max_d: 'soon' },
      ]);
      assert.equal(envelope.columns.find((c) => c.name === 'max_d')?.type, 'string');
    });
  }

  // A repeated header name: DuckDB named the second copy `x_1`, Polars `x_duplicated_0`, so a
  // spec naming either worked in one engine only. Only the header's own names are accepted (at
  // submit, 400), the first copy answering for the repeated one; a semicolon file is one column.
  test('a repeated CSV header name: the header names only, the first copy, in both engines', async () => {
    const post = (file: string, column: string, engine: string) =>
      sys.app.inject({
        method: 'POST',
        url: '/v1/aggregations?wait=30000',
        payload: JSON.stringify({
          dataset: { path: file },
          groupBy: ['g'],
          metrics: [{ op: 'sum', column }],
          engine,
        }),
        headers: { 'content-type': 'application/json' },
      });
    for (const engine of ['duckdb', 'polars']) {
      const first = await post('repeats.csv', 'x', engine);
      assert.equal(first.statusCode, 200, `${engine}: ${first.body}`);
      assert.deepEqual((JSON.parse(first.body) as { rows: unknown[] }).rows, [{ g: 'a', sum_x: 3 }]);
      for (const [file, column, field] of [
        ['repeats.csv', 'x_1', 'metrics.0.column'],
        ['repeats.csv', 'x_duplicated_0', 'metrics.0.column'],
        ['semicolons.csv', 'x', 'groupBy.0'], // its one column is "x;g"
      ]) {
        const res = await post(file!, column!, engine);
        assert.equal(res.statusCode, 400, `${engine} ${file} ${column}: ${res.body}`);
        const { error } = JSON.parse(res.body) as { error: { code: string; field: string } };
        assert.deepEqual([error.code, error.field], ['QUARRY_ERR_SPEC_UNKNOWN_COLUMN', field]);
      }
    }
  });

  for (const file of ['times.csv', 'times.ndjson']) {
    test(`${file}: time-of-day values are their text in both engines (DuckDB gave microseconds)`, async () => {
      const rowsOf = async (engine: string) => {
        const res = await sys.app.inject({
          method: 'POST',
          url: '/v1/aggregations?wait=30000',
          payload: JSON.stringify({
            dataset: { path: file },
            groupBy: ['at'],
            metrics: [
              { op: 'sum', column: 'n' },
              { op: 'max', column: 'at', as: 'latest' },
            ],
            orderBy: [{ column: 'at', direction: 'asc' }],
            engine,
          }),
          headers: { 'content-type': 'application/json' },
        });
        assert.equal(res.statusCode, 200, `${engine}: ${res.body}`);
        return (JSON.parse(res.body) as { rows: unknown[] }).rows;
      };
      const expected = [
        { at: '08:05:09', sum_n: 3, latest: '08:05:09' },
        { at: '12:30:00', sum_n: 3, latest: '12:30:00' },
      ];
      assert.deepEqual(await rowsOf('duckdb'), expected);
      assert.deepEqual(await rowsOf('polars'), expected);
    });
  }
});
