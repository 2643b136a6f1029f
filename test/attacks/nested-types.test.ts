// Columns whose type has no kind in Quarry (a probe, 2026-12-07): a Parquet file's lists, structs,
// times of day and binary columns, and an NDJSON file's objects and arrays. DuckDB read them as
// their text in its own notation (`[1, 2]`, `{'a': 1}`, `12:30:00`) and aggregated them; Polars
// refused them (QUARRY_ERR_SPEC_TYPE): the same spec answered in one engine and failed in the
// other. Now a spec naming one fails with QUARRY_ERR_SPEC_TYPE in both, and the file's other
// columns stay usable; an NDJSON column mixing strings with other kinds is text in both.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { type AggregationSpec, parseAggregation } from '../../shared/aggregation.ts';
import { QuarryError } from '../../shared/errors.ts';
import { createDuckDBEngine } from '../../workers/engines/duckdb.ts';
import type { AggregationEngine, EngineSource } from '../../workers/engines/engine.ts';
import { createPolarsEngine } from '../../workers/engines/polars.ts';

function specOf(body: Record<string, unknown>): AggregationSpec {
  const parsed = parseAggregation(
    { dataset: { records: [] }, ...body },
    { maxInlineBytes: 1e6, maxResultRows: 100 },
  );
  return { ...parsed.spec, dataset: { kind: 'inline', rows: 0, columns: [] } };
}

const byColumn = (column: string) =>
  specOf({ groupBy: [column], metrics: [{ op: 'count' }], orderBy: [{ column, direction: 'asc' }] });

describe('attacks: columns of types with no kind here', () => {
  let dataDir: string;
  let engines: [string, AggregationEngine][];

  before(async () => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-nested-'));
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    await connection.run(`COPY (
      SELECT [1, 2] AS l, {'a': 1} AS s, TIME '12:30:00' AS t, 'ab'::BLOB AS b, 'x' AS g, 1 AS n
      UNION ALL SELECT [3], {'a': 2}, TIME '08:00:00', 'cd'::BLOB, 'x', 2
      UNION ALL SELECT [3], {'a': 2}, TIME '08:00:00', 'cd'::BLOB, 'y', 3
    ) TO '${path.join(dataDir, 'nested.parquet')}' (FORMAT parquet)`);
    connection.closeSync();
    instance.closeSync();
    engines = [
      ['duckdb', await createDuckDBEngine({ threads: 1, dataDir, spoolDir: dataDir })],
      ['polars', createPolarsEngine({ poolSize: 1 })],
    ];
  });
  after(async () => {
    for (const [, engine] of engines ?? []) await engine.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function outcome(
    engine: AggregationEngine,
    source: EngineSource,
    spec: AggregationSpec,
  ): Promise<{ code: string; field: string | undefined } | { type: string; rows: readonly unknown[] }> {
    try {
      const out = await engine.run({ spec, source, maxRows: 100 });
      return { type: out.columns[0]!.type, rows: out.rows };
    } catch (error) {
      assert.ok(error instanceof QuarryError, String(error));
      return { code: error.code, field: error.field };
    }
  }

  test('Parquet lists, structs, times and binary: QUARRY_ERR_SPEC_TYPE in both engines; the other columns answer alike', async () => {
    const source: EngineSource = {
      kind: 'file',
      file: path.join(dataDir, 'nested.parquet'),
      format: 'parquet',
    };
    for (const column of ['l', 's', 't', 'b']) {
      for (const [name, engine] of engines) {
        assert.deepEqual(
          await outcome(engine, source, byColumn(column)),
          { code: 'QUARRY_ERR_SPEC_TYPE', field: 'groupBy.0' },
          `${name}, column ${column}`,
        );
      }
    }
    const usable = specOf({
      groupBy: ['g'],
      metrics: [{ op: 'sum', column: 'n' }],
      orderBy: [{ column: 'g', direction: 'asc' }],
    });
    for (const [name, engine] of engines) {
      assert.deepEqual(
        await outcome(engine, source, usable),
        {
          type: 'string',
          rows: [
            { g: 'x', sum_n: 3 },
            { g: 'y', sum_n: 3 },
          ],
        },
        name,
      );
    }
  });

  const NDJSON: Record<
    string,
    { lines: string[]; expected: { code: string } | { type: string; values: unknown[] } }
  > = {
    objects: {
      lines: ['{"x":{"a":1},"n":1}', '{"x":{"a":2},"n":2}'],
      expected: { code: 'QUARRY_ERR_SPEC_TYPE' },
    },
    arrays: { lines: ['{"x":[1,2],"n":1}', '{"x":[3],"n":2}'], expected: { code: 'QUARRY_ERR_SPEC_TYPE' } },
    numbersAndObjects: {
      lines: ['{"x":1,"n":1}', '{"x":{"a":1},"n":2}'],
      expected: { code: 'QUARRY_ERR_SPEC_TYPE' },
    },
    stringsAndNumbers: {
      lines: ['{"x":"1","n":1}', '{"x":2,"n":2}'],
      expected: { type: 'string', values: ['1', '2'] },
    },
    stringsAndBooleans: {
      lines: ['{"x":true,"n":1}', '{"x":"a","n":2}'],
      expected: { type: 'string', values: ['a', 'true'] },
    },
    stringsAndArrays: {
      lines: ['{"x":"a","n":1}', '{"x":[1],"n":2}'],
      expected: { type: 'string', values: ['[1]', 'a'] },
    },
  };

  for (const [name, { lines, expected }] of Object.entries(NDJSON)) {
    test(`NDJSON ${name}: ${'code' in expected ? expected.code : `${expected.type} values`} in both engines`, async () => {
      const file = path.join(dataDir, `${name}.ndjson`);
      writeFileSync(file, `${lines.join('\n')}\n`);
      const source: EngineSource = { kind: 'file', file, format: 'ndjson' };
      for (const [engineName, engine] of engines) {
        const got = await outcome(engine, source, byColumn('x'));
        if ('code' in expected)
          assert.deepEqual(got, { code: expected.code, field: 'groupBy.0' }, engineName);
        else {
          assert.ok('rows' in got, `${engineName}: ${JSON.stringify(got)}`);
          assert.deepEqual(
            { type: got.type, values: (got.rows as { x: unknown }[]).map((r) => r.x) },
            expected,
            engineName,
          );
        }
      }
    });
  }

  test('NDJSON booleans with numbers and no string: refused in both engines (Polars cannot read the file)', async () => {
    const file = path.join(dataDir, 'booleans-numbers.ndjson');
    writeFileSync(file, '{"x":true,"n":1}\n{"x":2,"n":2}\n');
    const source: EngineSource = { kind: 'file', file, format: 'ndjson' };
    const codes = [];
    for (const [, engine] of engines)
      codes.push(((await outcome(engine, source, byColumn('x'))) as { code: string }).code);
    assert.deepEqual(codes, ['QUARRY_ERR_SPEC_TYPE', 'QUARRY_ERR_DATASET_UNREADABLE']);
  });
});
