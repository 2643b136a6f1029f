// How DuckDB reads a source: the FROM clause for inline records (canonical JSON with the
// declared types), Parquet, CSV (all text, typed by csv-types.ts) and NDJSON, and the queries that
// describe a file and measure its columns' types before a plan is built.
import { type ColumnInfo, type ColumnType, INSTANT_PATTERN } from '../../shared/datasets.ts';
import { CSV_PATTERNS, type CsvCheck, type CsvKind } from './csv-types.ts';
import { type CompiledQuery, Params, quoteIdent } from './duckdb-params.ts';
import type { EngineSource } from './engine.ts';

const DUCK_TYPES: Record<ColumnType, string> = {
  integer: 'BIGINT',
  float: 'DOUBLE',
  string: 'VARCHAR',
  boolean: 'BOOLEAN',
  date: 'DATE',
  // Inline timestamps are RFC 3339 strings with an offset: read as instants, then made UTC
  // TIMESTAMPs (sourceSql), as file timestamps are.
  timestamp: 'TIMESTAMPTZ',
  // A column whose every value is null: DOUBLE suits numeric metrics, and the plan folds filters
  // on it to constants, so its type never meets a filter value.
  null: 'DOUBLE',
};

/**
 * Columns of a file read as text (CSV; NDJSON's instant strings), cast to their Quarry types
 * (csv-types.ts): `SELECT * REPLACE (...)` with these replaces them in place.
 */
function fromText(columns: readonly ColumnInfo[]): string {
  return columns.map((c) => `${FROM_TEXT[c.type](quoteIdent(c.name))} AS ${quoteIdent(c.name)}`).join(', ');
}

const FROM_TEXT: Record<ColumnType, (c: string) => string> = {
  // The session's TimeZone is UTC (duckdb.ts): the cast gives the UTC wall time.
  timestamp: (c) => `CAST(CAST(${c} AS TIMESTAMPTZ) AS TIMESTAMP)`,
  integer: (c) => `CAST(${c} AS BIGINT)`,
  float: (c) => `CAST(${c} AS DOUBLE)`,
  boolean: (c) => `(lower(${c}) = 'true')`,
  date: (c) => `CAST(${c} AS DATE)`,
  string: (c) => c,
  // An NDJSON column of nulls only (DuckDB reads it as JSON): numeric, as inline records' are.
  null: () => 'CAST(NULL AS DOUBLE)',
};

/** `CAST(name AS TIMESTAMP) AS name` for each, so `SELECT * REPLACE (...)` makes them UTC timestamps. */
function asInstants(names: readonly string[]): string {
  // The session's TimeZone is UTC (duckdb.ts): the cast gives the UTC wall time.
  return names
    .map((name) => `CAST(CAST(${quoteIdent(name)} AS TIMESTAMPTZ) AS TIMESTAMP) AS ${quoteIdent(name)}`)
    .join(', ');
}

/**
 * Columns of a file that DuckDB reads as a type Quarry has no kind for (TIME, LIST, STRUCT,
 * BLOB, INTERVAL, UUID, JSON, ...): the spec sees them as `string`, so they are read as their
 * text, as Polars reads such values (`12:30:00`, not microseconds; a JSON string unquoted).
 */
export interface TextColumn {
  readonly name: string;
  readonly json: boolean;
}

function asText(columns: readonly TextColumn[]): string {
  return columns
    .map(({ name, json }) => {
      const c = quoteIdent(name);
      return `${json ? `json_extract_string(${c}, '$')` : `CAST(${c} AS VARCHAR)`} AS ${c}`;
    })
    .join(', ');
}

/**
 * The FROM clause reading the source; `sourceSql` alone is used for DESCRIBE too. `typed`: file
 * columns read as text and cast to their type (every typed CSV column; NDJSON string columns
 * read as instants, which instantColumnsQuery found every value one); `texts`: columns read as
 * their text (TextColumn).
 */
export function sourceSql(
  source: EngineSource,
  params: Params,
  typed: readonly ColumnInfo[] = [],
  texts: readonly TextColumn[] = [],
): string {
  if (texts.length > 0) {
    const inner = sourceSql(source, params, typed);
    return `(SELECT * REPLACE (${asText(texts)}) FROM ${inner})`;
  }
  const file = params.add(source.file);
  if (source.kind === 'inline') {
    // fromEntries defines own properties: a column named "__proto__" stays a column.
    const columns: Record<string, string> = Object.fromEntries(
      source.columns.map((c) => [c.name, DUCK_TYPES[c.type]]),
    );
    if (source.columns.length === 0)
      return `(SELECT * FROM read_json(${file}, format = 'array') WHERE false)`;
    const read = `read_json(${file}, format = 'array', columns = ${params.add(columns)})`;
    const instants = source.columns.filter((c) => c.type === 'timestamp');
    if (instants.length === 0) return read;
    return `(SELECT * REPLACE (${asInstants(instants.map((c) => c.name))}) FROM ${read})`;
  }
  switch (source.format) {
    case 'parquet':
      return `read_parquet(${file})`;
    case 'csv': {
      // Every field as text, the dialect fixed; the types are Quarry's (csv-types.ts, csvTypesQuery).
      const read = `read_csv(${file}, all_varchar = true, header = true, delim = ',', quote = '"', escape = '"', allow_quoted_nulls = false)`;
      return typed.length === 0 ? read : `(SELECT * REPLACE (${fromText(typed)}) FROM ${read})`;
    }
    // Strings stay strings, as Polars reads them: DuckDB alone would turn date- and time-like
    // strings into DATE and TIMESTAMP, and the engines would disagree on the column's type.
    // Instant strings are then made timestamps by the same rule as inline records'.
    case 'ndjson': {
      const read = `read_json(${file}, format = 'newline_delimited', dateformat = 'NONE', timestampformat = 'NONE')`;
      return typed.length === 0 ? read : `(SELECT * REPLACE (${fromText(typed)}) FROM ${read})`;
    }
  }
}

/**
 * One scan measuring `checks` over a CSV read as text (csv-types.ts), over its first `rows` rows
 * when given: for each check a column `values` (any non-null), then one per kind, true when every
 * non-null value has it (and when there is none); last, the number of rows read.
 */
export function csvTypesQuery(
  source: EngineSource,
  checks: readonly CsvCheck[],
  rows?: number,
): CompiledQuery {
  const params = new Params();
  const read = sourceSql(source, params);
  const from = rows === undefined ? read : `(SELECT * FROM ${read} LIMIT ${params.add(rows)})`;
  const patterns = new Map<CsvKind, string>();
  // Each pattern a parameter once, only when used: DuckDB refuses a parameter the SQL lacks.
  const pattern = (kind: CsvKind) =>
    patterns.get(kind) ?? patterns.set(kind, params.add(CSV_PATTERNS[kind])).get(kind)!;
  const select = checks.flatMap((check) => {
    const c = quoteIdent(check.name);
    // CASE parses only the values the pattern admits; bool_and of no rows is null: true.
    const all = (test: string) => `coalesce(bool_and(${c} IS NULL OR ${test}), true)`;
    const parses = (kind: CsvKind, type: string, ok = (v: string) => `${v} IS NOT NULL`) =>
      `CASE WHEN regexp_full_match(${c}, ${pattern(kind)}) THEN ${ok(`TRY_CAST(${c} AS ${type})`)} ELSE false END`;
    const test = (kind: CsvKind) => {
      switch (kind) {
        case 'integer':
          return parses(kind, 'BIGINT');
        case 'number':
          return parses(kind, 'DOUBLE', (v) => `coalesce(isfinite(${v}), false)`);
        case 'boolean':
          return `regexp_full_match(${c}, ${pattern(kind)})`;
        case 'date':
          return parses(kind, 'DATE');
        case 'instant':
          return parses(kind, 'TIMESTAMPTZ');
      }
    };
    return [`count(${c}) > 0`, ...check.kinds.map((kind) => all(test(kind)))];
  });
  return { sql: `SELECT ${[...select, 'count(*)'].join(', ')} FROM ${from}`, params: params.values };
}

/**
 * One scan of an NDJSON file: for each of `strings` (its VARCHAR columns), true when every
 * non-null value is an RFC 3339 instant as inline records write them (isInstant: INSTANT_PATTERN,
 * then a real date), so that the column is a timestamp column; then for each of `jsons` (its JSON
 * columns: mixed kinds, or no value at all), two: true when it holds a non-null value, and true
 * when one of its values is a string.
 */
export function ndjsonTypesQuery(
  source: EngineSource,
  strings: readonly string[],
  jsons: readonly string[],
): CompiledQuery {
  const params = new Params();
  const from = sourceSql(source, params);
  const pattern = strings.length === 0 ? '' : params.add(INSTANT_PATTERN);
  const checks = strings.map((name) => {
    const col = quoteIdent(name);
    const instant = `regexp_full_match(${col}, ${pattern}) AND TRY_CAST(${col} AS TIMESTAMPTZ) IS NOT NULL`;
    // No non-null value: false (an all-null column is not a timestamp column).
    return `coalesce(bool_and(${instant}) FILTER (WHERE ${col} IS NOT NULL), false)`;
  });
  for (const name of jsons) {
    const col = quoteIdent(name);
    checks.push(`count(${col}) > 0`, `coalesce(bool_or(json_type(${col}) = 'VARCHAR'), false)`);
  }
  return { sql: `SELECT ${checks.join(', ')} FROM ${from}`, params: params.values };
}

export function describeQuery(source: EngineSource): CompiledQuery {
  const params = new Params();
  return { sql: `DESCRIBE SELECT * FROM ${sourceSql(source, params)}`, params: params.values };
}
