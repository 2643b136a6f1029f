// How the Polars engine reads a source: inline records (JSON with the declared types), Parquet,
// CSV (all text, typed by csv-types.ts) and NDJSON, each under positional column names, with the
// casts that bring every column to the one Polars type of its Quarry type. Loaded only inside a
// Polars worker thread: readers and schema inference block while they run.
import pl from 'nodejs-polars';
import { type ColumnInfo, type ColumnType, INSTANT_PATTERN } from '../../shared/datasets.ts';
import { QuarryError } from '../../shared/errors.ts';
import {
  CSV_PATTERNS,
  CSV_TEXT_SAMPLE_ROWS,
  type CsvCheck,
  type CsvKind,
  type CsvMeasure,
  csvTypes,
  fileChecks,
  measureText,
  sampleChecks,
} from './csv-types.ts';
import type { EngineSource } from './engine.ts';
import { type FileSource, firstLine } from './polars-protocol.ts';

export interface PreparedSource {
  /** The source with its columns renamed by position (see internalNames). */
  readonly frame: pl.LazyDataFrame;
  /** Columns under the dataset's own names. */
  readonly columns: readonly ColumnInfo[];
  /** Dataset column name → the positional name it has in `frame`. */
  readonly names: ReadonlyMap<string, string>;
  /** Casts (keyed by dataset name) that bring a column to the one Polars type of its ColumnType. */
  readonly casts: ReadonlyMap<string, pl.Expr>;
  /** File columns of a type Quarry has no kind for (a list, a struct, binary, ...) → that type. */
  readonly unusable?: ReadonlyMap<string, string>;
}

/** A source column's positional name (polars-plan.ts: dataset names never reach an expression). */
export const internalName = (index: number) => `c${index}`;

function internalNames(names: readonly string[]): Map<string, string> {
  return new Map(names.map((name, i) => [name, internalName(i)]));
}

/** A file's columns and their Quarry types; columns of types Quarry cannot use are left out. */
export function readFileColumns(source: FileSource): ColumnInfo[] {
  return [...prepareFile(source).columns];
}

export function prepareSource(source: EngineSource): PreparedSource {
  return source.kind === 'inline' ? prepareInline(source) : prepareFile(source);
}

function prepareInline(source: Extract<EngineSource, { kind: 'inline' }>): PreparedSource {
  // Full inference: with the default (100 rows) a float after 100 integers is silently truncated.
  // nodejs-polars passes `null` on as 0, which the JSON reader takes as "every row".
  const data = pl.readJSON(source.file, { format: 'json', inferSchemaLength: null });
  // An empty array has no columns to cast; adding literal columns to it would make a row.
  const names = internalNames(source.columns.map((c) => c.name));
  if (data.height === 0) {
    const frame = pl
      .DataFrame(source.columns.map((c) => pl.Series(names.get(c.name)!, [], dtypeOf(c.type))))
      .lazy();
    return { frame, columns: source.columns, names, casts: new Map() };
  }
  // Positional renaming: the setter takes names in column order, never as patterns.
  data.columns = data.columns.map((name) => names.get(name) ?? name);
  // Cast only what inference got otherwise (all-null columns, integers beyond Int64 in a float
  // column): every expression built costs ~0.4 ms in nodejs-polars' JS wrapper.
  const casts = new Map<string, pl.Expr>();
  for (const c of source.columns) {
    const want = dtypeOf(c.type);
    const internal = names.get(c.name)!;
    if (inferredType(data, internal) === want.variant) continue;
    casts.set(c.name, c.type === 'timestamp' ? parseInstant(pl.col(internal)) : pl.col(internal).cast(want));
  }
  return { frame: data.lazy(), columns: source.columns, names, casts };
}

/**
 * Inline timestamps are RFC 3339 strings with `Z` or an offset (shared/datasets.ts isInstant):
 * parsed to the UTC instant. Polars' %z reads `+00:00` but not `Z`.
 */
function parseInstant(c: pl.Expr): pl.Expr {
  return c.str
    .replace('[Zz]$', '+00:00')
    .str.strptime(pl.Datetime, '%Y-%m-%dT%H:%M:%S%.f%z')
    .cast(pl.Datetime('us'));
}

function inferredType(frame: pl.DataFrame, name: string): string | undefined {
  try {
    return frame.getColumn(name).dtype.variant;
  } catch {
    return undefined; // a type nodejs-polars cannot describe (Int128)
  }
}

function prepareFile(source: FileSource): PreparedSource {
  let frame: pl.LazyDataFrame;
  let head: pl.DataFrame;
  try {
    frame = scanFile(source);
    head = frame.limit(0).collectSync();
  } catch (cause) {
    throw unreadable(source, cause);
  }
  const columns: ColumnInfo[] = [];
  const casts = new Map<string, pl.Expr>();
  const unusable = new Map<string, string>();
  const names = internalNames(head.columns);
  for (const name of head.columns) {
    let mapped: ReturnType<typeof fileColumnType>;
    let dtype: pl.DataType;
    try {
      dtype = head.getColumn(name).dtype;
      mapped = fileColumnType(dtype);
    } catch (cause) {
      // A type nodejs-polars cannot describe. Int128 is what Polars infers for JSON integers past
      // int64 (99999999999999999999): a float column, as DuckDB reads them (a probe, 2026-12-07:
      // the column was left out, "no column"). Others cannot be used.
      if (!/\bInt128\b/.test(String((cause as Error)?.message))) {
        unusable.set(name, 'one nodejs-polars cannot describe');
        continue;
      }
      mapped = { type: 'float', cast: pl.Float64 };
      dtype = pl.Float64;
    }
    if (mapped === undefined) {
      // A spec naming it fails with QUARRY_ERR_SPEC_TYPE, not "no column" (buildPlan).
      unusable.set(name, dtype.variant);
      continue;
    }
    columns.push({ name, type: mapped.type });
    if (mapped.cast !== undefined) casts.set(name, pl.col(names.get(name)!).cast(mapped.cast));
  }
  // rename matches names literally; fromEntries keeps a "__proto__" column as an own key.
  const renamed = frame.rename(Object.fromEntries(names));
  if (source.format === 'csv') {
    const types = csvColumnTypes(
      source,
      renamed,
      columns.map((c) => names.get(c.name)!),
    );
    for (const [k, c] of columns.entries()) {
      const type = types[k]!;
      columns[k] = { name: c.name, type };
      if (type !== 'string') casts.set(c.name, fromText(pl.col(names.get(c.name)!), type));
    }
  }
  if (source.format === 'ndjson') {
    const instants = instantColumns(
      source,
      renamed,
      columns.filter((c) => c.type === 'string' && !casts.has(c.name)).map((c) => names.get(c.name)!),
    );
    for (const [k, c] of columns.entries()) {
      const internal = names.get(c.name)!;
      if (!instants.has(internal)) continue;
      columns[k] = { name: c.name, type: 'timestamp' };
      casts.set(c.name, parseInstant(pl.col(internal)));
    }
  }
  return { frame: renamed, columns, names, casts, unusable };
}

/**
 * The types of a CSV's columns `internal` (positional names, all read as text): csv-types.ts. The
 * sample is tested in JS (each Polars expression costs ~0.5 ms to build in nodejs-polars: 25 tests
 * took 240 ms on a 5,000-row file); the rest of the file, when there is more, by Polars.
 */
function csvColumnTypes(
  source: FileSource,
  frame: pl.LazyDataFrame,
  internal: readonly string[],
): ColumnType[] {
  if (internal.length === 0) return [];
  const sample = sampleChecks(internal);
  let head: pl.DataFrame;
  try {
    head = frame.head(CSV_TEXT_SAMPLE_ROWS).collectSync();
  } catch (cause) {
    throw unreadable(source, cause);
  }
  const measured = measureText(
    sample,
    internal.map((n) => head.getColumn(n).toArray() as (string | null)[]),
  );
  if (head.height < CSV_TEXT_SAMPLE_ROWS) return csvTypes(sample, measured);
  const checks = fileChecks(sample, measured);
  return csvTypes(
    checks,
    measureCsv(
      source,
      frame,
      checks.filter((c) => c.kinds.length > 0),
    ),
  );
}

/** One scan of `frame` measuring `checks` (csv-types.ts): any value, and each kind's test. */
function measureCsv(source: FileSource, frame: pl.LazyDataFrame, checks: readonly CsvCheck[]): CsvMeasure[] {
  if (checks.length === 0) return [];
  const select = checks.flatMap((check, k) => {
    const c = pl.col(check.name);
    // Only the kinds asked for: each expression costs ~0.5 ms to build in nodejs-polars.
    const parses = (kind: CsvKind): pl.Expr => {
      switch (kind) {
        case 'integer':
          return c.cast(pl.Int64, false).isNotNull();
        case 'number':
          return c.cast(pl.Float64, false).isFinite();
        case 'boolean':
          return pl.lit(true);
        case 'date':
          return fromText(c, 'date').isNotNull();
        case 'instant':
          return fromText(c, 'timestamp').isNotNull();
      }
    };
    // Over the non-null values, each test true or false (all() would skip a null test).
    const all = (kind: CsvKind) =>
      c
        .isNull()
        .or(c.str.contains(CSV_PATTERNS[kind]).and(parses(kind)).fillNull(false))
        .all();
    return [c.count().gt(0).alias(`${k}`), ...check.kinds.map((kind, j) => all(kind).alias(`${k}_${j}`))];
  });
  let flags: pl.DataFrame;
  try {
    flags = frame.select(...select).collectSync();
  } catch (cause) {
    throw unreadable(source, cause);
  }
  const at = (name: string) => flags.getColumn(name).toArray()[0] === true;
  return checks.map((check, k) => ({
    values: at(`${k}`),
    kinds: check.kinds.map((_, j) => at(`${k}_${j}`)),
  }));
}

/** A CSV column read as text, cast to its type (csv-types.ts): exact parses, null where none. */
function fromText(c: pl.Expr, type: ColumnType): pl.Expr {
  switch (type) {
    case 'integer':
      return c.cast(pl.Int64, false);
    case 'float':
      return c.cast(pl.Float64, false);
    case 'boolean':
      return c.str.toLowerCase().eq(pl.lit('true'));
    case 'date':
      return c.str.strptime(pl.Date, '%Y-%m-%d');
    case 'timestamp':
      return parseInstant(c);
    case 'string':
    case 'null':
      return c;
  }
}

/**
 * Which of the string columns `internal` (positional names) of an NDJSON file hold only RFC 3339
 * instants as inline records write them (isInstant: INSTANT_PATTERN, then a real date, which
 * parseInstant's non-strict parse checks): those are timestamp columns. One scan of the file.
 */
function instantColumns(
  source: FileSource,
  frame: pl.LazyDataFrame,
  internal: readonly string[],
): Set<string> {
  if (internal.length === 0) return new Set();
  const checks = internal.map((n) => {
    const c = pl.col(n);
    const instant = c.str.contains(INSTANT_PATTERN).and(parseInstant(c).isNotNull());
    return c.isNull().or(instant).all().and(c.count().gt(0)).alias(n);
  });
  let flags: pl.DataFrame;
  try {
    flags = frame.select(...checks).collectSync();
  } catch (cause) {
    throw unreadable(source, cause);
  }
  return new Set(internal.filter((n) => flags.getColumn(n).toArray()[0] === true));
}

function scanFile(source: FileSource): pl.LazyDataFrame {
  switch (source.format) {
    case 'parquet':
      return pl.scanParquet(source.file);
    // Every field as text (inferSchemaLength 0), the dialect fixed; the types are Quarry's
    // (csv-types.ts, csvColumnTypes above).
    case 'csv':
      return pl.scanCSV(source.file, { inferSchemaLength: 0, sep: ',', quoteChar: '"', hasHeader: true });
    case 'ndjson':
      return pl.scanJson(source.file, { inferSchemaLength: null }); // null: the whole file
  }
}

export function unreadable(source: FileSource, cause: unknown): QuarryError {
  const message = cause instanceof Error ? firstLine(cause.message) : String(cause);
  return new QuarryError(
    'QUARRY_ERR_DATASET_UNREADABLE',
    `dataset: Polars cannot read the file as ${source.format}: ${message}`,
    { field: 'dataset.path', cause },
  );
}

/** The Polars type each Quarry column type is computed in. */
export function dtypeOf(type: ColumnType): pl.DataType {
  switch (type) {
    case 'integer':
      return pl.Int64;
    case 'float':
    case 'null': // all-null columns: numeric, so every metric applies and yields null
      return pl.Float64;
    case 'string':
      return pl.String;
    case 'boolean':
      return pl.Bool;
    case 'date':
      return pl.Date;
    case 'timestamp':
      return pl.Datetime('us');
  }
}

function fileColumnType(dtype: pl.DataType): { type: ColumnType; cast?: pl.DataType } | undefined {
  switch (dtype.variant) {
    case 'Int64':
    case 'UInt64':
      return { type: 'integer' };
    // Narrow integers are widened so that sums cannot overflow their type.
    case 'Int8':
    case 'Int16':
    case 'Int32':
    case 'UInt8':
    case 'UInt16':
    case 'UInt32':
      return { type: 'integer', cast: pl.Int64 };
    case 'Float64':
      return { type: 'float' };
    case 'Float32':
    case 'Decimal':
      return { type: 'float', cast: pl.Float64 };
    case 'Utf8':
    case 'String':
      return { type: 'string' };
    case 'Categorical': // ordered by its strings, not by its category codes
      return { type: 'string', cast: pl.String };
    case 'Bool':
      return { type: 'boolean' };
    case 'Date':
      return { type: 'date' };
    case 'Datetime': {
      // Zoned timestamps become the naive UTC instant, so filters and output read as UTC.
      const { timeUnit, timeZone } = dtype as pl.DataType & {
        timeUnit?: 'ms' | 'us' | 'ns';
        timeZone?: string;
      };
      return timeZone ? { type: 'timestamp', cast: pl.Datetime(timeUnit ?? 'us') } : { type: 'timestamp' };
    }
    case 'Null':
      return { type: 'null', cast: pl.Float64 };
    default:
      return undefined;
  }
}
