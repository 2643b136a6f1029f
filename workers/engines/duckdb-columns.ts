// The DuckDB engine's reading of a file's columns before a plan (workers/engines/duckdb.ts runs
// it): DuckDB's own types mapped to Quarry's kinds, the types with no kind here (which a spec may
// not name), the columns read as their text, a CSV's columns typed by their values
// (csv-types.ts), and NDJSON strings that are all instants read as timestamps.
import type { DuckDBMaterializedResult } from '@duckdb/node-api';
import type { ColumnInfo, ColumnType } from '../../shared/datasets.ts';
import { QuarryError } from '../../shared/errors.ts';
import {
  CSV_SAMPLE_ROWS,
  type CsvCheck,
  type CsvMeasure,
  csvTypes,
  fileChecks,
  sampleChecks,
} from './csv-types.ts';
import type { CompiledQuery, SqlValue } from './duckdb-params.ts';
import { csvTypesQuery, describeQuery, ndjsonTypesQuery, type TextColumn } from './duckdb-source.ts';
import { firstLine, resultColumns } from './duckdb-values.ts';
import type { EngineSource } from './engine.ts';

/** Runs one statement on the engine's connections (duckdb.ts's pool). */
export type Query = (sql: string, params: SqlValue[]) => Promise<DuckDBMaterializedResult>;

/** A file's columns, typed, those read as their text (TextColumn), and those of a type with no
 * kind here (name -> DuckDB's type), which a spec cannot use. */
export async function columnsOf(
  source: EngineSource,
  query: Query,
): Promise<{
  columns: readonly ColumnInfo[];
  texts: readonly TextColumn[];
  unusable?: ReadonlyMap<string, string>;
}> {
  if (source.kind === 'inline') return { columns: source.columns, texts: [] };
  const { sql, params } = describeQuery(source);
  let result: DuckDBMaterializedResult;
  try {
    result = await query(sql, params);
  } catch (cause) {
    throw new QuarryError(
      'QUARRY_ERR_DATASET_UNREADABLE',
      `dataset: DuckDB cannot read the file as ${source.format}: ${firstLine(cause)}`,
      { field: 'dataset.path', cause },
    );
  }
  const names = result.columnNames();
  const values = await resultColumns(result);
  const [name, described] = [values[names.indexOf('column_name')]!, values[names.indexOf('column_type')]!];
  const unusable = new Map<string, string>();
  const type: string[] = [];
  const columns: ColumnInfo[] = [];
  name.forEach((n, i) => {
    const duckType = String(described[i]);
    if (hasNoKind(duckType, source.format)) unusable.set(String(n), duckType);
    else {
      columns.push({ name: String(n), type: columnTypeOf(duckType) });
      type.push(duckType);
    }
  });
  const texts = columns.flatMap((c, i): TextColumn[] => {
    const duckType = type[i]!.toUpperCase();
    return c.type === 'string' && duckType !== 'VARCHAR' ? [{ name: c.name, json: duckType === 'JSON' }] : [];
  });
  if (source.format === 'csv') return { columns: await csvColumns(query, source, columns), texts };
  if (source.format !== 'ndjson') return { columns, texts, unusable };
  // NDJSON strings that are all instants are a timestamp column, and a column of nulls only
  // (DuckDB's JSON type) a null column, as in inline records.
  const strings = columns.filter((c, i) => c.type === 'string' && String(type[i]) === 'VARCHAR');
  const jsons = texts.filter((t) => t.json);
  if (strings.length === 0 && jsons.length === 0) return { columns, texts, unusable };
  const check = ndjsonTypesQuery(
    source,
    strings.map((c) => c.name),
    jsons.map((t) => t.name),
  );
  const flags = await typingQuery(query, check, 'ndjson');
  const instants = new Set(strings.filter((_, k) => flags[k]?.[0] === true).map((c) => c.name));
  const flag = (k: number, which: 0 | 1) => flags[strings.length + 2 * k + which]?.[0] === true;
  const empty = new Set(jsons.filter((_, k) => !flag(k, 0)).map((t) => t.name));
  // A mix of kinds with a string among them is text, each value's JSON text, as Polars reads it;
  // without one (numbers with booleans or objects, objects with arrays) Polars reads no column of
  // any use (a struct, or not the file at all): it cannot be used here either.
  for (const [k, t] of jsons.entries()) {
    if (flag(k, 0) && !flag(k, 1)) unusable.set(t.name, 'JSON (a mix of kinds without strings)');
  }
  const typed = (c: ColumnInfo): ColumnInfo =>
    instants.has(c.name)
      ? { name: c.name, type: 'timestamp' }
      : empty.has(c.name)
        ? { name: c.name, type: 'null' }
        : c;
  return {
    columns: columns.filter((c) => !unusable.has(c.name)).map(typed),
    texts: texts.filter((t) => !empty.has(t.name) && !unusable.has(t.name)),
    unusable,
  };
}

/** A query measuring a file's columns before a plan; a failure is the file's (UNREADABLE). */
async function typingQuery(query: Query, check: CompiledQuery, format: string): Promise<unknown[][]> {
  try {
    return await resultColumns(await query(check.sql, check.params));
  } catch (cause) {
    throw new QuarryError(
      'QUARRY_ERR_DATASET_UNREADABLE',
      `dataset: DuckDB cannot read the file as ${format}: ${firstLine(cause)}`,
      { field: 'dataset.path', cause },
    );
  }
}

/**
 * A CSV's columns (all read as text) typed by the values they hold (csv-types.ts): a sample
 * pass, and a pass over the whole file only when the sample did not cover it.
 */
async function csvColumns(
  query: Query,
  source: EngineSource & { kind: 'file' },
  text: readonly ColumnInfo[],
) {
  const sample = sampleChecks(text.map((c) => c.name));
  const first = await measureCsv(query, source, sample, CSV_SAMPLE_ROWS);
  let types: ColumnType[];
  if (first.rows < CSV_SAMPLE_ROWS) types = csvTypes(sample, first.measured);
  else {
    const checks = fileChecks(sample, first.measured);
    const withKinds = checks.filter((c) => c.kinds.length > 0);
    types = csvTypes(
      checks,
      withKinds.length === 0 ? [] : (await measureCsv(query, source, withKinds)).measured,
    );
  }
  return text.map((c, k) => ({ name: c.name, type: types[k]! }));
}

async function measureCsv(
  query: Query,
  source: EngineSource & { kind: 'file' },
  checks: readonly CsvCheck[],
  rows?: number,
): Promise<{ measured: CsvMeasure[]; rows: number }> {
  const flags = await typingQuery(query, csvTypesQuery(source, checks, rows), 'csv');
  let at = 0;
  const next = () => flags[at++]?.[0] === true;
  const measured = checks.map((c) => ({ values: next(), kinds: c.kinds.map(next) }));
  return { measured, rows: Number(flags[at]?.[0] ?? 0) };
}

/**
 * The DuckDB types of Parquet and NDJSON columns that have no kind here (docs/AGGREGATION.md,
 * "Files"): lists and arrays, structs, maps, unions, and in Parquet times of day, binary, bits,
 * intervals, UUIDs.
 * A spec naming one fails with QUARRY_ERR_SPEC_TYPE, as in Polars, which reads them as List,
 * Struct, Time, Binary and the like (DuckDB alone would read them as their text, in its own
 * notation: `[1, 2]`, `{'a': 1}`). A mix of JSON kinds (DuckDB's JSON type) stays text, as Polars
 * reads a column mixing strings with other values.
 */
export function hasNoKind(duckType: string, format: 'parquet' | 'csv' | 'ndjson'): boolean {
  const t = duckType.toUpperCase();
  if (/\[\d*\]$/.test(t) || /^(STRUCT|MAP|UNION)\s*\(/.test(t)) return true;
  // In NDJSON any other such type is DuckDB's reading of JSON strings (`12:30:00` as a TIME, a
  // UUID): strings, as Polars reads them, and read as their text (TextColumn).
  return (
    format === 'parquet' &&
    /^(TIME|TIMETZ|TIME WITH TIME ZONE|TIME_NS|BLOB|BYTEA|BIT|BITSTRING|INTERVAL|UUID)$/.test(t)
  );
}

export function columnTypeOf(duckType: string): ColumnType {
  const t = duckType.toUpperCase();
  if (/^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT)$/.test(t)) {
    return 'integer';
  }
  if (/^(FLOAT|DOUBLE|REAL|DECIMAL)/.test(t)) return 'float';
  if (t === 'BOOLEAN') return 'boolean';
  if (t === 'DATE') return 'date';
  if (t.startsWith('TIMESTAMP')) return 'timestamp';
  return 'string';
}
