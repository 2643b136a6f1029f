// The Polars engine on real Polars, held to the TS reference: flights-5k inline and as Parquet,
// CSV and NDJSON (written by DuckDB), filters of every op, SQL null semantics, file schemas,
// dates and timestamps, error codes, and Polars never loading on the main thread.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import {
  type AggregationSpec,
  type AggregationSpecInput,
  parseAggregation,
} from '../../shared/aggregation.ts';
import { type InlineRecord, prepareInlineRecords } from '../../shared/datasets.ts';
import { isQuarryError } from '../../shared/errors.ts';
import type { EngineSource } from '../../workers/engines/engine.ts';
import { createPolarsEngine, type PolarsEngine } from '../../workers/engines/polars.ts';
import { flightsSpec, loadFlights, makeFlightsDataDir } from '../helpers/flights.ts';
import { referenceAggregate } from '../reference/aggregate.ts';
import { assertSameResult } from '../reference/compare.ts';

type SpecBody = Omit<AggregationSpecInput, 'dataset'>;

const LIMITS = { maxInlineBytes: 64 * 1024 * 1024, maxResultRows: 100_000 };
const MAX_ROWS = 100_000;

/** The normalized spec, through the real parser (defaults, default names). */
function normalize(body: SpecBody): AggregationSpec {
  const parsed = parseAggregation({ ...body, dataset: { records: [] } }, LIMITS);
  return { ...parsed.spec, dataset: { kind: 'inline', rows: 0, columns: [] } };
}

// The benchmark spec, plus the exact discrete quantile beside the interpolated one.
const { dataset: _none, ...benchmarkSpec } = flightsSpec(null);
const FLIGHTS_SPEC: SpecBody = {
  ...benchmarkSpec,
  metrics: [
    ...benchmarkSpec.metrics,
    { op: 'quantile', column: 'delay', q: 0.95, method: 'nearest_rank', as: 'p95_rank_delay' },
  ],
};

let engine: PolarsEngine;
let dataDir: string;
let flights: InlineRecord[];
const sources = new Map<string, EngineSource>();
let flightsColumns: ReturnType<typeof prepareInlineRecords>['columns'];

function writeInline(dir: string, name: string, records: unknown[]): EngineSource {
  const data = prepareInlineRecords(records, LIMITS.maxInlineBytes);
  const file = path.join(dir, name);
  writeFileSync(file, data.json);
  return { kind: 'inline', file, columns: data.columns };
}

before(async () => {
  dataDir = await makeFlightsDataDir();
  flights = loadFlights();
  const inline = writeInline(dataDir, 'flights-inline.json', flights);
  assert.ok(inline.kind === 'inline');
  flightsColumns = inline.columns;
  sources.set('inline', inline);
  sources.set('parquet', { kind: 'file', file: path.join(dataDir, 'flights.parquet'), format: 'parquet' });
  sources.set('csv', { kind: 'file', file: path.join(dataDir, 'flights.csv'), format: 'csv' });
  sources.set('ndjson', { kind: 'file', file: path.join(dataDir, 'flights.ndjson'), format: 'ndjson' });
  engine = createPolarsEngine({ poolSize: 2 });
  await engine.warmup();
});

after(async () => {
  await engine.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Runs SQL on a throwaway DuckDB: test files with exactly the column types wanted. */
async function duckdb(sql: string): Promise<void> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    await connection.run(sql);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

async function checkFlights(body: SpecBody, sourceName: string): Promise<void> {
  const spec = normalize(body);
  const source = sources.get(sourceName)!;
  const out = await engine.run({ spec, source, maxRows: MAX_ROWS });
  // The reference computes with the file's column types (DuckDB wrote `delay` as DOUBLE to Parquet).
  const columns = source.kind === 'inline' ? flightsColumns : await engine.fileColumns(source);
  assertSameResult(out, referenceAggregate(spec, flights, columns), `${sourceName} ${JSON.stringify(body)}`);
}

describe('flights-5k against the reference', () => {
  for (const name of ['inline', 'parquet', 'csv', 'ndjson']) {
    test(`per-origin spec on ${name}`, async () => {
      await checkFlights(FLIGHTS_SPEC, name);
    });
  }

  const FILTERS: SpecBody['filters'][] = [
    [{ column: 'origin', op: 'eq', value: 'LAX' }],
    [{ column: 'origin', op: 'ne', value: 'LAX' }],
    [{ column: 'delay', op: 'gt', value: 30 }],
    [{ column: 'delay', op: 'gte', value: 0 }],
    [{ column: 'distance', op: 'lt', value: 500 }],
    [{ column: 'distance', op: 'lte', value: 500.5 }],
    [{ column: 'destination', op: 'in', value: ['SFO', 'LAX', 'ORD', 'nowhere'] }],
    [{ column: 'delay', op: 'in', value: [0, 1, 2.5, -5] }],
    [{ column: 'delay', op: 'between', value: [-10, 10] }],
    [{ column: 'delay', op: 'between', value: [10, -10] }],
    [{ column: 'origin', op: 'between', value: ['B', 'M'] }],
    [{ column: 'destination', op: 'gt', value: 'S' }],
    [{ column: 'delay', op: 'is_null' }],
    [{ column: 'delay', op: 'not_null' }],
    [
      { column: 'delay', op: 'gte', value: -5 },
      { column: 'distance', op: 'lt', value: 1000 },
      { column: 'destination', op: 'ne', value: 'LAX' },
    ],
  ];
  for (const name of ['inline', 'parquet']) {
    test(`filters of every op on ${name}`, async () => {
      for (const filters of FILTERS) await checkFlights({ ...FLIGHTS_SPEC, filters }, name);
    });
  }

  test('no groupBy, two groupBy columns, orderBy a metric ascending, no limit', async () => {
    await checkFlights({ metrics: FLIGHTS_SPEC.metrics }, 'inline');
    await checkFlights(
      { metrics: FLIGHTS_SPEC.metrics, filters: [{ column: 'delay', op: 'gt', value: 1e6 }] },
      'csv',
    );
    await checkFlights(
      {
        groupBy: ['origin', 'destination'],
        metrics: [
          { op: 'sum', column: 'delay' },
          { op: 'min', column: 'destination', as: 'first_dest' },
        ],
        orderBy: [{ column: 'sum_delay', direction: 'asc' }],
      },
      'ndjson',
    );
  });
});

describe('SQL semantics on small inline data', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'quarry-polars-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const records = [
    { g: 'a', v: 1, f: 0.5, b: true, s: 'x' },
    { g: 'a', v: null, f: 1.25, b: false },
    { g: null, v: 3, f: null, b: null, s: '😀' },
    { g: 'b', f: 2, s: '\uFFFD' },
    { g: 'b', v: 5, f: -1e300, b: true, s: 'é' },
    { g: null, v: -7, f: 1e300, s: 'Z', n: null },
  ];

  test('nulls, missing keys, an all-null column, empty groups', async () => {
    const source = writeInline(dir, 'small.json', records);
    assert.ok(source.kind === 'inline');
    const bodies: SpecBody[] = [
      {
        groupBy: ['g'],
        metrics: [
          { op: 'count' },
          { op: 'count', column: 'v' },
          { op: 'sum', column: 'v' },
          { op: 'avg', column: 'f' },
          { op: 'min', column: 's' },
          { op: 'max', column: 's' },
          { op: 'min', column: 'b' },
          { op: 'count_distinct', column: 'b' },
          { op: 'sum', column: 'n' },
          { op: 'max', column: 'n' },
          { op: 'quantile', column: 'v', q: 0.5, method: 'nearest_rank' },
          { op: 'quantile', column: 'f', q: 0.3 },
        ],
        orderBy: [{ column: 'sum_v', direction: 'desc' }],
      },
      { groupBy: ['b', 's'], metrics: [{ op: 'count' }], orderBy: [{ column: 's', direction: 'desc' }] },
      {
        filters: [{ column: 'v', op: 'ne', value: 1 }],
        metrics: [{ op: 'count' }, { op: 'sum', column: 'v' }],
      },
      { filters: [{ column: 'n', op: 'eq', value: 1 }], groupBy: ['g'], metrics: [{ op: 'count' }] },
      {
        filters: [{ column: 'n', op: 'is_null' }],
        metrics: [{ op: 'count' }, { op: 'count_distinct', column: 'n' }],
      },
      { filters: [{ column: 's', op: 'gt', value: 'z' }], groupBy: ['s'], metrics: [{ op: 'count' }] },
      { filters: [{ column: 'b', op: 'lt', value: true }], groupBy: ['g'], metrics: [{ op: 'count' }] },
    ];
    for (const body of bodies) {
      const spec = normalize(body);
      const out = await engine.run({ spec, source, maxRows: MAX_ROWS });
      assertSameResult(out, referenceAggregate(spec, records, source.columns), JSON.stringify(body));
    }
  });

  test('no groupBy over no rows: one row, count 0, the rest null; with groupBy: no rows', async () => {
    const source = writeInline(dir, 'empty.json', []);
    const body: SpecBody = {
      metrics: [
        { op: 'count' },
        { op: 'count_distinct', column: 'x' },
        { op: 'sum', column: 'x' },
        { op: 'quantile', column: 'x', q: 0.5, method: 'nearest_rank' },
      ],
    };
    // An empty array has no columns, so the spec names none that the source lacks: give one.
    const typed: EngineSource = {
      kind: 'inline',
      file: source.file,
      columns: [{ name: 'x', type: 'integer' }],
    };
    const one = await engine.run({ spec: normalize(body), source: typed, maxRows: MAX_ROWS });
    assert.deepEqual(one.rows, [{ count: 0, count_distinct_x: 0, sum_x: null, p50_x: null }]);
    const none = await engine.run({
      spec: normalize({ ...body, groupBy: ['x'] }),
      source: typed,
      maxRows: MAX_ROWS,
    });
    assert.deepEqual(none.rows, []);
  });

  test('column names that mean something to JavaScript or need quoting', async () => {
    const odd = 'ünï cødé "q"';
    const rows: InlineRecord[] = [
      { constructor: 'p', toString: 1, [odd]: 2.5 },
      { constructor: 'p', toString: 2, [odd]: null },
      { constructor: 'q', hasOwnProperty: 3 },
    ];
    const source = writeInline(dir, 'odd.json', rows);
    assert.ok(source.kind === 'inline');
    const spec = normalize({
      groupBy: ['constructor'],
      metrics: [
        { op: 'sum', column: 'toString' },
        { op: 'count', column: 'hasOwnProperty' },
        { op: 'avg', column: odd, as: 'valueOf' },
      ],
    });
    const out = await engine.run({ spec, source, maxRows: MAX_ROWS });
    assertSameResult(out, referenceAggregate(spec, rows, source.columns));
    assert.deepEqual(out.rows[1], {
      constructor: 'q',
      sum_toString: null,
      count_hasOwnProperty: 1,
      valueOf: null,
    });
  });

  test('a float after a hundred integers keeps its fraction', async () => {
    const rows: InlineRecord[] = Array.from({ length: 300 }, (_, i) => ({ x: i }));
    rows.push({ x: 0.5 });
    const source = writeInline(dir, 'late-float.json', rows);
    assert.ok(source.kind === 'inline');
    const out = await engine.run({
      spec: normalize({
        metrics: [
          { op: 'sum', column: 'x' },
          { op: 'max', column: 'x' },
        ],
      }),
      source,
      maxRows: MAX_ROWS,
    });
    assert.deepEqual(out.rows, [{ sum_x: 44850.5, max_x: 299 }]);
  });
});

describe('files', () => {
  test('fileColumns reads CSV and NDJSON types by inference', async () => {
    for (const name of ['csv', 'ndjson']) {
      const source = sources.get(name)!;
      assert.ok(source.kind === 'file');
      assert.deepEqual(
        await engine.fileColumns(source),
        [
          { name: 'date', type: 'string' },
          { name: 'delay', type: 'integer' },
          { name: 'distance', type: 'integer' },
          { name: 'origin', type: 'string' },
          { name: 'destination', type: 'string' },
        ],
        name,
      );
    }
  });

  test('fileColumns maps Parquet types; unusable ones are left out', async () => {
    const file = path.join(dataDir, 'types.parquet');
    await duckdb(`COPY (SELECT 1::TINYINT AS i8, 2::INTEGER AS i32, 3::UBIGINT AS u64, 1.5::FLOAT AS f32,
        2.5::DOUBLE AS f64, 3.25::DECIMAL(10, 2) AS dec, 'x' AS s, true AS flag, [1, 2] AS list,
        {'a': 1} AS struct) TO '${file}' (FORMAT parquet)`);
    const source: EngineSource = { kind: 'file', file, format: 'parquet' };
    assert.ok(source.kind === 'file');
    assert.deepEqual(await engine.fileColumns(source), [
      { name: 'i8', type: 'integer' },
      { name: 'i32', type: 'integer' },
      { name: 'u64', type: 'integer' },
      { name: 'f32', type: 'float' },
      { name: 'f64', type: 'float' },
      { name: 'dec', type: 'float' },
      { name: 's', type: 'string' },
      { name: 'flag', type: 'boolean' },
    ]);
    const out = await engine.run({
      spec: normalize({
        metrics: [
          { op: 'sum', column: 'i8' },
          { op: 'sum', column: 'u64' },
          { op: 'sum', column: 'f32' },
          { op: 'max', column: 'dec' },
        ],
      }),
      source,
      maxRows: MAX_ROWS,
    });
    assert.deepEqual(out.rows, [{ sum_i8: 1, sum_u64: 3, sum_f32: 1.5, max_dec: 3.25 }]);
  });

  test('dates and timestamps: filters take ISO strings, results are ISO strings', async () => {
    const file = path.join(dataDir, 'times.parquet');
    await duckdb(`COPY (SELECT * FROM (VALUES
        (DATE '2020-01-01', TIMESTAMP '2020-01-01 10:00:00.250', TIMESTAMPTZ '2020-01-01 12:00:00+02', 1),
        (DATE '2020-01-01', TIMESTAMP '2020-01-01 23:59:59', NULL, 2),
        (DATE '2021-06-30', NULL, TIMESTAMPTZ '2021-06-30 00:00:00+00', 3),
        (NULL, TIMESTAMP '1999-12-31 00:00:00', NULL, 4)
      ) t(day, ts, zoned, n)) TO '${file}' (FORMAT parquet)`);
    const source: EngineSource = { kind: 'file', file, format: 'parquet' };
    const columns = await engine.fileColumns(source);
    assert.deepEqual(columns, [
      { name: 'day', type: 'date' },
      { name: 'ts', type: 'timestamp' },
      { name: 'zoned', type: 'timestamp' },
      { name: 'n', type: 'integer' },
    ]);
    const out = await engine.run({
      spec: normalize({
        filters: [{ column: 'ts', op: 'lt', value: '2020-01-01T23:00:00Z' }],
        groupBy: ['day'],
        metrics: [{ op: 'max', column: 'ts' }, { op: 'min', column: 'zoned' }, { op: 'count' }],
      }),
      source,
      maxRows: MAX_ROWS,
    });
    assert.deepEqual(out.columns, [
      { name: 'day', type: 'date' },
      { name: 'max_ts', type: 'timestamp' },
      { name: 'min_zoned', type: 'timestamp' },
      { name: 'count', type: 'integer' },
    ]);
    assert.deepEqual(out.rows, [
      {
        day: '2020-01-01',
        max_ts: '2020-01-01T10:00:00.250Z',
        min_zoned: '2020-01-01T10:00:00.000Z',
        count: 1,
      },
      { day: null, max_ts: '1999-12-31T00:00:00.000Z', min_zoned: null, count: 1 },
    ]);
    const byDay = await engine.run({
      spec: normalize({
        filters: [{ column: 'day', op: 'in', value: ['2021-06-30', '2019-01-01'] }],
        metrics: [{ op: 'sum', column: 'n' }],
      }),
      source,
      maxRows: MAX_ROWS,
    });
    assert.deepEqual(byDay.rows, [{ sum_n: 3 }]);
    await assert.rejects(
      engine.run({
        spec: normalize({
          filters: [{ column: 'day', op: 'gt', value: '2020-02-30' }],
          metrics: [{ op: 'count' }],
        }),
        source,
        maxRows: MAX_ROWS,
      }),
      (e) => isQuarryError(e) && e.code === 'QUARRY_ERR_SPEC_TYPE' && e.field === 'filters.0.value',
    );
  });
});

describe('errors', () => {
  const code = (expected: string) => (e: unknown) => isQuarryError(e) && e.code === expected;

  test('a file Polars cannot read is QUARRY_ERR_DATASET_UNREADABLE', async () => {
    const spec = normalize({ metrics: [{ op: 'count' }] });
    const cases: [string, 'parquet' | 'csv' | 'ndjson', string][] = [
      ['bad.parquet', 'parquet', 'PAR1 this is not parquet at all'],
      ['bad.ndjson', 'ndjson', '{"a": 1}\n{"a": '],
    ];
    for (const [name, format, content] of cases) {
      const file = path.join(dataDir, name);
      writeFileSync(file, content);
      await assert.rejects(
        engine.run({ spec, source: { kind: 'file', file, format }, maxRows: MAX_ROWS }),
        code('QUARRY_ERR_DATASET_UNREADABLE'),
        name,
      );
      await assert.rejects(
        engine.fileColumns({ kind: 'file', file, format }),
        code('QUARRY_ERR_DATASET_UNREADABLE'),
      );
    }
  });

  test('more rows than maxRows is QUARRY_ERR_RESULT_TOO_LARGE; exactly maxRows is fine', async () => {
    const spec = normalize({ groupBy: ['origin'], metrics: [{ op: 'count' }] });
    const all = await engine.run({ spec, source: sources.get('parquet')!, maxRows: MAX_ROWS });
    assert.ok(all.rows.length > 5);
    await assert.rejects(
      engine.run({ spec, source: sources.get('parquet')!, maxRows: all.rows.length - 1 }),
      code('QUARRY_ERR_RESULT_TOO_LARGE'),
    );
    const exact = await engine.run({ spec, source: sources.get('inline')!, maxRows: all.rows.length });
    assert.equal(exact.rows.length, all.rows.length);
  });

  test('a column the file lacks is QUARRY_ERR_SPEC_UNKNOWN_COLUMN', async () => {
    await assert.rejects(
      engine.run({
        spec: normalize({ metrics: [{ op: 'sum', column: 'nope' }] }),
        source: sources.get('csv')!,
        maxRows: MAX_ROWS,
      }),
      (e) =>
        isQuarryError(e) && e.code === 'QUARRY_ERR_SPEC_UNKNOWN_COLUMN' && e.field === 'metrics.0.column',
    );
  });

  // A probe (2026-12-07): a list or struct column was left out, so a spec naming it read "the
  // dataset has no column", though the file has one.
  test('a column of a type Quarry cannot use is QUARRY_ERR_SPEC_TYPE naming its field and type', async () => {
    const file = path.join(dataDir, 'nested.ndjson');
    writeFileSync(file, '{"tags":["a","b"],"n":1}\n{"tags":["c"],"n":2}\n');
    const cases: [SpecBody, string][] = [
      [{ groupBy: ['tags'], metrics: [{ op: 'count' }] }, 'groupBy.0'],
      [{ metrics: [{ op: 'count_distinct', column: 'tags' }] }, 'metrics.0.column'],
    ];
    for (const [body, field] of cases) {
      await assert.rejects(
        engine.run({
          spec: normalize(body),
          source: { kind: 'file', file, format: 'ndjson' },
          maxRows: MAX_ROWS,
        }),
        (e) =>
          isQuarryError(e) &&
          e.code === 'QUARRY_ERR_SPEC_TYPE' &&
          e.field === field &&
          /List/.test(e.message),
      );
    }
  });

  test('close() is idempotent; later calls fail with QUARRY_ERR_ENGINE', async () => {
    const own = createPolarsEngine({ poolSize: 1 });
    const spec = normalize(FLIGHTS_SPEC);
    const running = own.run({ spec, source: sources.get('inline')!, maxRows: MAX_ROWS });
    await Promise.all([own.close(), own.close()]);
    assert.equal((await running).rows.length, 20); // accepted work finishes before the threads stop
    await assert.rejects(
      own.run({ spec, source: sources.get('inline')!, maxRows: MAX_ROWS }),
      code('QUARRY_ERR_ENGINE'),
    );
    await own.destroy();
  });
});

test('the main thread never loads nodejs-polars', () => {
  const loaded = Object.keys(createRequire(import.meta.url).cache).filter((p) => p.includes('nodejs-polars'));
  assert.deepEqual(loaded, []);
});
