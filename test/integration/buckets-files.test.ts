// Time buckets over native file types: a Parquet DATE, a TIMESTAMP (UTC) and a TIMESTAMPTZ,
// bucketed in Los Angeles by DuckDB and Polars, against values worked out by hand; dates and
// timestamps past 2099 and a date whose midnight DST skips. And NDJSON,
// whose date- and time-like strings both engines read as strings (docs/AGGREGATION.md, "Files").
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { type AggregationSpec, parseAggregation } from '../../shared/aggregation.ts';
import { QuarryError } from '../../shared/errors.ts';
import { createDuckDBEngine } from '../../workers/engines/duckdb.ts';
import type { AggregationEngine } from '../../workers/engines/engine.ts';
import { createPolarsEngine } from '../../workers/engines/polars.ts';

let dir: string;
let file: string;
const engines: AggregationEngine[] = [];

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'quarry-buckets-'));
  file = path.join(dir, 'times.parquet');
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  await connection.run(`COPY (SELECT * FROM (VALUES
      (DATE '2024-03-10', TIMESTAMP '2024-03-10 08:30:00', TIMESTAMPTZ '2024-11-03 08:30:00+00', 1),
      (DATE '2024-03-11', TIMESTAMP '2024-03-10 09:30:00', TIMESTAMPTZ '2024-11-03 09:30:00+00', 2),
      (NULL, NULL, NULL, 3)
    ) t(day, ts, zoned, n)) TO '${file}' (FORMAT parquet)`);
  connection.closeSync();
  instance.closeSync();
  engines.push(createPolarsEngine({ poolSize: 1 }));
  engines.push(await createDuckDBEngine({ threads: 1, dataDir: dir, spoolDir: dir }));
});

after(async () => {
  for (const engine of engines) await engine.close();
  rmSync(dir, { recursive: true, force: true });
});

test('weeks of a date, hours of a timestamp and of a zoned timestamp, in Los Angeles', async () => {
  const parsed = parseAggregation(
    {
      dataset: { records: [] },
      filters: [{ column: 'ts', op: 'gte', value: '2024-03-10T00:00:00-08:00' }],
      groupBy: [
        { column: 'day', bucket: 'week', tz: 'America/Los_Angeles' },
        { column: 'ts', bucket: 'hour', tz: 'America/Los_Angeles' },
        { column: 'zoned', bucket: 'hour', tz: 'America/Los_Angeles' },
      ],
      metrics: [{ op: 'sum', column: 'n' }],
    },
    { maxInlineBytes: 1e6, maxResultRows: 100 },
  );
  const spec: AggregationSpec = { ...parsed.spec, dataset: { kind: 'inline', rows: 0, columns: [] } };
  for (const engine of engines) {
    const out = await engine.run({ spec, source: { kind: 'file', file, format: 'parquet' }, maxRows: 100 });
    assert.deepEqual(
      out.rows,
      [
        // 2024-03-10 is a Sunday: its ISO week began Monday the 4th (PST). 08:30Z is 00:30 PST.
        // 08:30Z on Nov 3 is 01:30 PDT, the first of that day's two 1 AMs.
        {
          day_week: '2024-03-04T00:00:00-08:00',
          ts_hour: '2024-03-10T00:00:00-08:00',
          zoned_hour: '2024-11-03T01:00:00-07:00',
          sum_n: 1,
        },
        // Monday the 11th starts a week (in PDT by then); 09:30Z Nov 3 is 01:30 PST, the second.
        {
          day_week: '2024-03-11T00:00:00-07:00',
          ts_hour: '2024-03-10T01:00:00-08:00',
          zoned_hour: '2024-11-03T01:00:00-08:00',
          sum_n: 2,
        },
      ],
      engine.name,
    );
  }
});

test('dates and timestamps from 2100 on, and a date whose midnight DST skips', async () => {
  const late = path.join(dir, 'late.parquet');
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  await connection.run(`COPY (SELECT * FROM (VALUES
      (DATE '2024-09-08', TIMESTAMP '2100-07-04 03:59:00', 1),
      (DATE '2100-07-04', TIMESTAMP '2100-07-04 04:00:00', 2)
    ) t(day, ts, n)) TO '${late}' (FORMAT parquet)`);
  connection.closeSync();
  instance.closeSync();
  const parsed = parseAggregation(
    {
      dataset: { records: [] },
      groupBy: [
        { column: 'day', bucket: 'day', tz: 'America/Santiago' },
        { column: 'day', bucket: 'hour', tz: 'America/New_York' },
        { column: 'day', bucket: 'week', tz: 'America/New_York', as: 'day_week' },
        { column: 'ts', bucket: 'day', tz: 'America/New_York' },
      ],
      metrics: [{ op: 'sum', column: 'n' }],
      orderBy: [{ column: 'sum_n', direction: 'asc' }],
    },
    { maxInlineBytes: 1e6, maxResultRows: 100 },
  );
  const spec: AggregationSpec = { ...parsed.spec, dataset: { kind: 'inline', rows: 0, columns: [] } };
  for (const engine of engines) {
    const out = await engine.run({
      spec,
      source: { kind: 'file', file: late, format: 'parquet' },
      maxRows: 100,
    });
    assert.deepEqual(
      out.rows,
      [
        // Santiago skips from 00:00 -04 to 01:00 -03 on 2024-09-08: the day starts at the end of
        // the gap. 03:59Z on 2100-07-04 is 23:59 EDT on the 3rd: New York keeps DST past 2099.
        {
          day_day: '2024-09-08T01:00:00-03:00',
          day_hour: '2024-09-08T00:00:00-04:00',
          day_week: '2024-09-02T00:00:00-04:00',
          ts_day: '2100-07-03T00:00:00-04:00',
          sum_n: 1,
        },
        // 2100-07-04 is a Sunday: its ISO week began on Monday the 28th of June.
        {
          day_day: '2100-07-04T00:00:00-04:00',
          day_hour: '2100-07-04T00:00:00-04:00',
          day_week: '2100-06-28T00:00:00-04:00',
          ts_day: '2100-07-04T00:00:00-04:00',
          sum_n: 2,
        },
      ],
      engine.name,
    );
  }
});

test('NDJSON: date- and time-like strings are strings in both engines', async () => {
  const ndjson = path.join(dir, 'times.ndjson');
  writeFileSync(
    ndjson,
    [
      '{"day":"2024-03-10","at":"2024-03-10 08:30:00","n":1}',
      '{"day":"2024-03-11","at":"2024-03-10 09:30:00","n":2}',
    ]
      .map((l) => `${l}\n`)
      .join(''),
  );
  const limits = { maxInlineBytes: 1e6, maxResultRows: 100 };
  const specOf = (input: object): AggregationSpec => ({
    ...parseAggregation({ dataset: { records: [] }, ...input }, limits).spec,
    dataset: { kind: 'inline', rows: 0, columns: [] },
  });
  const source = { kind: 'file' as const, file: ndjson, format: 'ndjson' as const };
  const grouped = specOf({
    groupBy: ['day'],
    metrics: [{ op: 'max', column: 'at' }],
    orderBy: [{ column: 'day', direction: 'asc' }],
  });
  const bucketed = specOf({ groupBy: [{ column: 'at', bucket: 'hour' }], metrics: [{ op: 'count' }] });
  for (const engine of engines) {
    const out = await engine.run({ spec: grouped, source, maxRows: 100 });
    assert.deepEqual(
      out.columns.map((c) => c.type),
      ['string', 'string'],
      engine.name,
    );
    assert.deepEqual(
      out.rows,
      [
        { day: '2024-03-10', max_at: '2024-03-10 08:30:00' },
        { day: '2024-03-11', max_at: '2024-03-10 09:30:00' },
      ],
      engine.name,
    );
    await assert.rejects(
      engine.run({ spec: bucketed, source, maxRows: 100 }),
      (e: unknown) => e instanceof QuarryError && e.code === 'QUARRY_ERR_SPEC_TYPE',
      `${engine.name}: a time bucket of a string column`,
    );
  }
});

test('NDJSON: a column of RFC 3339 instants (Z or an offset) is a timestamp column in both engines', async () => {
  const ndjson = path.join(dir, 'instants.ndjson');
  // `at`: instants only (one null, one key missing); `near`: one value has no offset; `feb`: one
  // value matches the form but is no date (2023 has no Feb 29). Both of those stay strings.
  writeFileSync(
    ndjson,
    [
      '{"at":"2024-11-03T08:30:00Z","near":"2024-11-03T08:30:00Z","feb":"2024-02-29T00:00:00Z","n":1}',
      '{"at":"2024-11-03T01:30:00-08:00","near":"2024-11-03T09:30:00","feb":"2023-02-29T00:00:00Z","n":2}',
      '{"at":"2024-11-03T15:00:00.250+05:30","near":null,"feb":null,"n":4}',
      '{"at":null,"near":null,"feb":null,"n":8}',
      '{"n":16}',
    ]
      .map((l) => `${l}\n`)
      .join(''),
  );
  const limits = { maxInlineBytes: 1e6, maxResultRows: 100 };
  const specOf = (input: object): AggregationSpec => ({
    ...parseAggregation({ dataset: { records: [] }, ...input }, limits).spec,
    dataset: { kind: 'inline', rows: 0, columns: [] },
  });
  const source = { kind: 'file' as const, file: ndjson, format: 'ndjson' as const };
  const bucketed = specOf({
    filters: [{ column: 'at', op: 'lt', value: '2024-11-03T09:30:00.250Z' }],
    groupBy: [{ column: 'at', bucket: 'hour', tz: 'America/Los_Angeles' }],
    metrics: [
      { op: 'sum', column: 'n' },
      { op: 'max', column: 'at' },
      { op: 'max', column: 'near' },
    ],
  });
  for (const engine of engines) {
    const out = await engine.run({ spec: bucketed, source, maxRows: 100 });
    assert.deepEqual(
      out.columns.map((c) => c.type),
      ['timestamp', 'integer', 'timestamp', 'string'],
      engine.name,
    );
    assert.deepEqual(
      out.rows,
      [
        // 08:30Z is 01:30 PDT, the first 1 AM of Nov 3; 01:30-08:00 (09:30Z) the second, in PST.
        // 15:00+05:30 is 09:30Z too, plus 250 ms: not below the filter's bound.
        {
          at_hour: '2024-11-03T01:00:00-07:00',
          sum_n: 1,
          max_at: '2024-11-03T08:30:00.000Z',
          max_near: '2024-11-03T08:30:00Z',
        },
        {
          at_hour: '2024-11-03T01:00:00-08:00',
          sum_n: 2,
          max_at: '2024-11-03T09:30:00.000Z',
          max_near: '2024-11-03T09:30:00',
        },
      ],
      engine.name,
    );
    for (const column of ['near', 'feb']) {
      await assert.rejects(
        engine.run({
          spec: specOf({ groupBy: [{ column, bucket: 'day' }], metrics: [{ op: 'count' }] }),
          source,
          maxRows: 100,
        }),
        (e: unknown) =>
          e instanceof QuarryError && e.code === 'QUARRY_ERR_SPEC_TYPE' && e.field === 'groupBy.0.column',
        `${engine.name}: a time bucket of ${column}, a string column`,
      );
    }
    await assert.rejects(
      engine.run({
        spec: specOf({ filters: [{ column: 'at', op: 'gt', value: 'soon' }], metrics: [{ op: 'count' }] }),
        source,
        maxRows: 100,
      }),
      (e: unknown) =>
        e instanceof QuarryError && e.code === 'QUARRY_ERR_SPEC_TYPE' && e.field === 'filters.0.value',
      `${engine.name}: a timestamp compared with a string that is no timestamp`,
    );
  }
});

// A parity probe: DuckDB's value converter divided microseconds toward zero, so a timestamp before
// 1970 with a part of a millisecond read as the next millisecond (1969-12-31 23:59:59.9995 as
// 1970-01-01 00:00:00.000); Polars rounds down, to the millisecond the instant falls in.
test('timestamps before 1970 with sub-millisecond parts read as their millisecond in both engines', async () => {
  const pre = path.join(dir, 'pre-1970.parquet');
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  await connection.run(`COPY (SELECT * FROM (VALUES
      (TIMESTAMP '1969-12-31 23:59:59.9995', 1),
      (TIMESTAMP '1960-06-01 12:00:00.000001', 2),
      (TIMESTAMP '1970-01-01 00:00:00.0005', 3)
    ) t(ts, n)) TO '${pre}' (FORMAT parquet)`);
  connection.closeSync();
  instance.closeSync();
  const parsed = parseAggregation(
    {
      dataset: { records: [] },
      groupBy: ['ts'],
      metrics: [
        { op: 'sum', column: 'n' },
        { op: 'min', column: 'ts', as: 'first' },
      ],
      orderBy: [{ column: 'ts', direction: 'asc' }],
    },
    { maxInlineBytes: 1e6, maxResultRows: 100 },
  );
  const spec: AggregationSpec = { ...parsed.spec, dataset: { kind: 'inline', rows: 0, columns: [] } };
  for (const engine of engines) {
    const out = await engine.run({
      spec,
      source: { kind: 'file', file: pre, format: 'parquet' },
      maxRows: 100,
    });
    assert.deepEqual(
      out.rows,
      [
        { ts: '1960-06-01T12:00:00.000Z', sum_n: 2, first: '1960-06-01T12:00:00.000Z' },
        { ts: '1969-12-31T23:59:59.999Z', sum_n: 1, first: '1969-12-31T23:59:59.999Z' },
        { ts: '1970-01-01T00:00:00.000Z', sum_n: 3, first: '1970-01-01T00:00:00.000Z' },
      ],
      engine.name,
    );
  }
});
