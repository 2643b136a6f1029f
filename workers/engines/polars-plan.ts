// Compiles a normalized AggregationSpec into a Polars lazy plan, runs it and turns the result into
// plain rows, with the semantics of docs/AGGREGATION.md. Loaded only inside a Polars worker thread
// (polars-thread.ts): readers, schema inference and row conversion here block while they run.
import pl from 'nodejs-polars';
import {
  type AggregationSpec,
  checkSpecColumns,
  type Metric,
  outputColumns,
} from '../../shared/aggregation.ts';
import type { ColumnInfo, ColumnType } from '../../shared/datasets.ts';
import { QuarryError } from '../../shared/errors.ts';
import type { EngineInput, EngineOutput, EngineSource } from './engine.ts';
import { type FileSource, firstLine } from './polars-protocol.ts';

type Spec = Omit<AggregationSpec, 'dataset'>;
type Filter = Spec['filters'][number];
type FilterValue = string | number | boolean;

interface PreparedSource {
  /** The source with its columns renamed by position (see internalNames). */
  readonly frame: pl.LazyDataFrame;
  /** Columns under the dataset's own names. */
  readonly columns: readonly ColumnInfo[];
  /** Dataset column name → the positional name it has in `frame`. */
  readonly names: ReadonlyMap<string, string>;
  /** Casts (keyed by dataset name) that bring a column to the one Polars type of its ColumnType. */
  readonly casts: ReadonlyMap<string, pl.Expr>;
}

/**
 * Plans refer to columns by positional names only: pl.col reads "*" as every column and
 * "^...$" as a regex, so a dataset's own names never reach an expression. Output columns are
 * named by position too, and rows take their names from the spec (toRows).
 */
const internalName = (index: number) => `c${index}`;
const outputName = (index: number) => `__quarry_out_${index}`;

function internalNames(names: readonly string[]): Map<string, string> {
  return new Map(names.map((name, i) => [name, internalName(i)]));
}

/**
 * Polars reserves 24 bytes of address space per inference row up front (2^32 rows aborts the
 * process); 50M rows is 1.2 GB of untouched virtual memory.
 */
const CSV_INFER_ROWS = 50_000_000;

/** Timestamps leave as JavaScript's ISO form (milliseconds, UTC), as the DuckDB engine writes them. */
const TIMESTAMP_FORMAT = '%Y-%m-%dT%H:%M:%S%.3fZ';
const DATE_FORMAT = '%Y-%m-%d';

export async function runAggregation(input: EngineInput): Promise<EngineOutput> {
  const { spec, source, maxRows } = input;
  const prepared = prepareSource(source);
  checkSpecColumns(spec, prepared.columns);
  const columns = outputColumns(spec, prepared.columns);
  const plan = compilePlan(spec, prepared, maxRows);
  // Resolving the optimized plan checks names and types without reading data, so a failure after
  // this point comes from the data itself.
  plan.describeOptimizedPlan();
  let result: pl.DataFrame;
  try {
    result = await plan.collect();
  } catch (cause) {
    if (source.kind === 'file') throw unreadable(source, cause);
    throw cause;
  }
  if (result.height > maxRows) {
    throw new QuarryError(
      'QUARRY_ERR_RESULT_TOO_LARGE',
      `the result has more than ${maxRows} rows (QUARRY_MAX_RESULT_ROWS); add a limit or group more coarsely`,
    );
  }
  return { columns, rows: toRows(result, [...spec.groupBy, ...spec.metrics.map((m) => m.as)]) };
}

/** A file's columns and their Quarry types; columns of types Quarry cannot use are left out. */
export function readFileColumns(source: FileSource): ColumnInfo[] {
  return [...prepareFile(source).columns];
}

function prepareSource(source: EngineSource): PreparedSource {
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
    if (inferredType(data, internal) !== want.variant) casts.set(c.name, pl.col(internal).cast(want));
  }
  return { frame: data.lazy(), columns: source.columns, names, casts };
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
  const names = internalNames(head.columns);
  for (const name of head.columns) {
    let dtype: pl.DataType;
    try {
      dtype = head.getColumn(name).dtype;
    } catch {
      continue; // a type nodejs-polars cannot describe (Int128 from huge JSON integers, ...)
    }
    const mapped = fileColumnType(dtype);
    if (mapped === undefined) continue;
    columns.push({ name, type: mapped.type });
    if (mapped.cast !== undefined) casts.set(name, pl.col(names.get(name)!).cast(mapped.cast));
  }
  // rename matches names literally; fromEntries keeps a "__proto__" column as an own key.
  const renamed = frame.rename(Object.fromEntries(names));
  return { frame: renamed, columns, names, casts };
}

function scanFile(source: FileSource): pl.LazyDataFrame {
  switch (source.format) {
    case 'parquet':
      return pl.scanParquet(source.file);
    // Types are inferred from (nearly) the whole file: one guessed from the first 100 rows fails
    // on a later row. Not `null`: nodejs-polars turns it into 0 (every CSV column a string).
    case 'csv':
      return pl.scanCSV(source.file, { inferSchemaLength: CSV_INFER_ROWS });
    case 'ndjson':
      return pl.scanJson(source.file, { inferSchemaLength: null }); // null: the whole file
  }
}

function unreadable(source: FileSource, cause: unknown): QuarryError {
  const message = cause instanceof Error ? firstLine(cause.message) : String(cause);
  return new QuarryError(
    'QUARRY_ERR_DATASET_UNREADABLE',
    `dataset: Polars cannot read the file as ${source.format}: ${message}`,
    { field: 'dataset.path', cause },
  );
}

/** The Polars type each Quarry column type is computed in. */
function dtypeOf(type: ColumnType): pl.DataType {
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

function usedColumns(spec: Spec): Set<string> {
  const used = new Set<string>(spec.groupBy);
  for (const f of spec.filters) used.add(f.column);
  for (const m of spec.metrics) if (m.column !== undefined) used.add(m.column);
  return used;
}

function compilePlan(spec: Spec, source: PreparedSource, maxRows: number): pl.LazyDataFrame {
  const types = new Map(source.columns.map((c) => [c.name, c.type]));
  const typeOf = (name: string) => types.get(name) ?? 'null';
  const col = (name: string) => pl.col(source.names.get(name)!);
  let plan = source.frame;

  const casts = [...usedColumns(spec)].flatMap((name) => {
    const cast = source.casts.get(name);
    return cast === undefined ? [] : [cast];
  });
  if (casts.length > 0) plan = plan.withColumns(...casts);

  if (spec.filters.length > 0) {
    const predicates = spec.filters.map((f, i) => filterExpr(f, col(f.column), typeOf(f.column), i));
    plan = plan.filter(predicates.reduce((all, p) => all.and(p)));
  }

  // Output columns by position: groupBy columns, then metrics (the order toRows names them in).
  const outputs = [...spec.groupBy, ...spec.metrics.map((m) => m.as)];
  const position = new Map(outputs.map((name, i) => [name, i]));
  const aggregations = spec.metrics.map((m, i) =>
    metricExpr(m, m.column === undefined ? undefined : col(m.column)).alias(
      outputName(spec.groupBy.length + i),
    ),
  );
  plan =
    spec.groupBy.length > 0
      ? plan.groupBy(spec.groupBy.map((g, i) => col(g).alias(outputName(i)))).agg(...aggregations)
      : plan.select(...aggregations);

  // The orderBy keys, then every groupBy column ascending: a total order, as in the reference.
  const keys = [...spec.orderBy];
  for (const column of spec.groupBy) {
    if (!keys.some((k) => k.column === column)) keys.push({ column, direction: 'asc' });
  }
  if (keys.length > 0) {
    plan = plan.sort({
      by: keys.map((k) => outputName(position.get(k.column)!)),
      descending: keys.map((k) => k.direction === 'desc'),
      nullsLast: true,
    });
  }
  // One row more than allowed is enough to tell that the result is too large.
  plan = plan.head(Math.min(spec.limit ?? Number.MAX_SAFE_INTEGER, maxRows + 1));

  const temporal = outputColumns(spec, source.columns).flatMap((c, i) =>
    c.type === 'date' || c.type === 'timestamp'
      ? [pl.col(outputName(i)).dt.strftime(c.type === 'date' ? DATE_FORMAT : TIMESTAMP_FORMAT)]
      : [],
  );
  return temporal.length > 0 ? plan.withColumns(...temporal) : plan;
}

function filterExpr(filter: Filter, c: pl.Expr, type: ColumnType, index: number): pl.Expr {
  if (filter.op === 'is_null') return c.isNull();
  if (filter.op === 'not_null') return c.isNotNull();
  // Every value of an all-null column is null, and a comparison with null is never true.
  if (type === 'null') return pl.lit(false);
  const field = `filters.${index}.value`;
  switch (filter.op) {
    case 'in':
      return c.isIn(valueSeries(filter.value, type, field).implode());
    case 'between':
      return c.gtEq(literal(filter.value[0], type, field)).and(c.ltEq(literal(filter.value[1], type, field)));
    case 'eq':
      return c.eq(literal(filter.value, type, field));
    case 'ne':
      return c.neq(literal(filter.value, type, field));
    case 'gt':
      return c.gt(literal(filter.value, type, field));
    case 'gte':
      return c.gtEq(literal(filter.value, type, field));
    case 'lt':
      return c.lt(literal(filter.value, type, field));
    case 'lte':
      return c.ltEq(literal(filter.value, type, field));
  }
}

function literal(value: FilterValue, type: ColumnType, field: string): pl.Expr {
  if (type === 'date' || type === 'timestamp') {
    return pl.lit(temporalValue(value, type, field)).cast(dtypeOf(type));
  }
  // pl.lit makes every number a Float64; integers against an integer column compare exactly.
  if (type === 'integer' && typeof value === 'number' && Number.isSafeInteger(value)) {
    return pl.lit(value).cast(pl.Int64);
  }
  return pl.lit(value);
}

function valueSeries(values: readonly FilterValue[], type: ColumnType, field: string): pl.Series {
  if (type === 'date' || type === 'timestamp') {
    return pl
      .Series(
        '',
        values.map((v) => temporalValue(v, type, field)),
        pl.String,
      )
      .cast(dtypeOf(type));
  }
  if (type === 'string') return pl.Series('', [...values], pl.String);
  if (type === 'boolean') return pl.Series('', [...values], pl.Bool);
  const exact = type === 'integer' && values.every((v) => typeof v === 'number' && Number.isSafeInteger(v));
  return pl.Series('', [...values], exact ? pl.Int64 : pl.Float64);
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?Z?$/;

/** A filter value for a date or timestamp column, in the one form Polars' cast reads. */
function temporalValue(value: FilterValue, type: 'date' | 'timestamp', field: string): string {
  const match = typeof value === 'string' ? (type === 'date' ? DATE : TIMESTAMP).exec(value) : null;
  const [, y, mo, d, h = '00', mi = '00', s = '00', frac = ''] = match ?? [];
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  const check = new Date(ms);
  if (
    match === null ||
    Number.isNaN(ms) ||
    check.getUTCDate() !== Number(d) ||
    check.getUTCHours() !== Number(h) ||
    check.getUTCMinutes() !== Number(mi) ||
    check.getUTCSeconds() !== Number(s)
  ) {
    const form = type === 'date' ? 'YYYY-MM-DD' : 'YYYY-MM-DDTHH:MM:SS[.ffffff][Z]';
    throw new QuarryError(
      'QUARRY_ERR_SPEC_TYPE',
      `${field}: ${JSON.stringify(value)} is not a ${type} (${form})`,
      {
        field,
      },
    );
  }
  return type === 'date' ? `${y}-${mo}-${d}` : `${y}-${mo}-${d}T${h}:${mi}:${s}.${frac.padEnd(6, '0')}`;
}

function metricExpr(metric: Metric, c: pl.Expr | undefined): pl.Expr {
  if (c === undefined) return pl.len(); // pl.count() without a column is broken in 0.25
  switch (metric.op) {
    case 'count':
      return c.count();
    case 'sum':
      // Polars sums no values to 0; SQL (and the definition) to null.
      return pl.when(c.count().gt(0)).then(c.sum()).otherwise(pl.lit(null));
    case 'avg':
      return c.mean();
    case 'min':
      return c.min();
    case 'max':
      return c.max();
    case 'count_distinct':
      // n_unique counts null as one value: take it off when the group has any. The same count as
      // dropNulls().nUnique(), without filtering every group's values first (docs/ENGINES.md).
      return c.nUnique().sub(c.nullCount().gt(0).cast(pl.UInt32));
    case 'quantile':
      // Without the nulls: with them Polars offsets the index by the null count and back, which
      // rounds h = (n-1)q (0.3999999999999999 for 0.4; 0 for 1.5e-323).
      return metric.method === 'nearest_rank'
        ? nearestRankExpr(c, metric.q!)
        : c.dropNulls().quantile(metric.q!, 'linear');
  }
}

/**
 * x[max(0, ceil(q·n) − 1)] over the sorted non-null values is the least value whose ordinal rank
 * r satisfies r ≥ q·n, i.e. r·den ≥ n·num with q = num/den to 9 decimal places
 * (docs/AGGREGATION.md): integer arithmetic, never binary floating point. With n = 0 no value
 * qualifies and min() is null.
 */
function nearestRankExpr(c: pl.Expr, q: number): pl.Expr {
  const [num, den] = decimalFraction(q);
  // Ranks and counts are UInt32; times an Int64 literal they are Int64 (pl.lit alone is Float64).
  const int = (v: number) => pl.lit(v).cast(pl.Int64);
  return c
    .filter(
      c
        .rank('ordinal')
        .mul(int(den))
        .gtEq(c.count().mul(int(num))),
    )
    .min();
}

/** q to 9 decimal places as a reduced fraction: 0.95 → [19, 20]. */
export function decimalFraction(q: number): [number, number] {
  let num = Math.round(q * 1e9);
  let den = 1e9;
  const g = gcd(num, den);
  num /= g;
  den /= g;
  return [num, den];
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/**
 * Column-wise conversion (faster than toRecords); bigints (UInt64, Int64 beyond 2^53) become
 * numbers. Columns are named by position from `names` (the frame's own are positional).
 */
function toRows(frame: pl.DataFrame, names: readonly string[]): Record<string, unknown>[] {
  const values = frame.getColumns().map((series) => series.toArray() as unknown[]);
  const rows: Record<string, unknown>[] = new Array(frame.height);
  for (let i = 0; i < frame.height; i++) {
    // Object.fromEntries defines own properties, so a column named "__proto__" stays a column.
    rows[i] = Object.fromEntries(
      names.map((name, c) => {
        const v = values[c]![i];
        return [name, typeof v === 'bigint' ? Number(v) : v === undefined ? null : v];
      }),
    );
  }
  return rows;
}
