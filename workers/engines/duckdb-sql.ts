// Translates an aggregation plan (shared/plan.ts) to one DuckDB SELECT. Identifiers are validated
// upstream and always quoted here; every value (filter values, quantile q, limit, file path,
// inline column types) is a bound parameter. No user text is ever spliced into SQL.
import type { ComparisonOp } from '../../shared/aggregation-ops.ts';
import { type ColumnInfo, type ColumnType, INSTANT_PATTERN } from '../../shared/datasets.ts';
import type { AggregationPlan, PlanGroup, PlanMetric, PlanPredicate } from '../../shared/plan.ts';
import { CSV_PATTERNS, type CsvCheck, type CsvKind } from './csv-types.ts';
import type { EngineSource } from './engine.ts';
import { caseInsensitivePattern } from './text-match.ts';

export type SqlValue = string | number | boolean | Record<string, string>;

export interface CompiledQuery {
  readonly sql: string;
  readonly params: SqlValue[];
}

/**
 * DuckDB binds identifiers case-insensitively, quoted or not: `"a"` and `"A"` are one column to
 * it (and a struct of read_json columns may not hold both). True when some names only differ so.
 */
export function collidesIgnoringCase(names: readonly string[]): boolean {
  const folded = new Set<string>();
  for (const name of names) {
    // toLowerCase folds more than DuckDB's ASCII folding: renaming more than needed is harmless.
    const f = name.toLowerCase();
    if (folded.has(f)) return true;
    folded.add(f);
  }
  return false;
}

/** The positional name that stands in for source column `index` when names are renamed. */
export function positionalName(index: number): string {
  return `c${index}`;
}

/**
 * Output columns are aliased by position inside the query, and named only when rows are built:
 * output names that DuckDB would fold together (`x` and `X`), or that shadow a source column, then
 * never meet in SQL. The prefix keeps them apart from source columns WHERE and GROUP BY may bind.
 */
const outputAlias = (index: number) => quoteIdent(`__quarry_out_${index}`);
/** The columns after the outputs: true on a page row (null on the empty page's stand-in), and the total. */
const PRESENT = quoteIdent('__quarry_present');
const TOTAL = quoteIdent('__quarry_total');

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

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

class Params {
  readonly values: SqlValue[] = [];
  add(value: SqlValue): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

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
  null: (c) => c,
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
 * non-null value has it (and when there is none).
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
  return { sql: `SELECT ${select.join(', ')} FROM ${from}`, params: params.values };
}

/**
 * For each of `names` (string columns of an NDJSON file): true when every non-null value is an
 * RFC 3339 instant as inline records write them (isInstant: INSTANT_PATTERN, then a real date),
 * so that the column is a timestamp column. One scan of the file.
 */
export function instantColumnsQuery(source: EngineSource, names: readonly string[]): CompiledQuery {
  const params = new Params();
  const from = sourceSql(source, params);
  const pattern = params.add(INSTANT_PATTERN);
  const checks = names.map((name) => {
    const col = quoteIdent(name);
    const instant = `regexp_full_match(${col}, ${pattern}) AND TRY_CAST(${col} AS TIMESTAMPTZ) IS NOT NULL`;
    // No non-null value: false (an all-null column is not a timestamp column).
    return `coalesce(bool_and(${instant}) FILTER (WHERE ${col} IS NOT NULL), false)`;
  });
  return { sql: `SELECT ${checks.join(', ')} FROM ${from}`, params: params.values };
}

export function describeQuery(source: EngineSource): CompiledQuery {
  const params = new Params();
  return { sql: `DESCRIBE SELECT * FROM ${sourceSql(source, params)}`, params: params.values };
}

type Ident = (name: string) => string;

const COMPARISONS: Record<ComparisonOp, string> = {
  eq: '=',
  ne: '<>',
  gt: '>',
  gte: '>=',
  lt: '<',
  lte: '<=',
};

function compilePredicate(p: PlanPredicate, params: Params, ident: Ident): string {
  switch (p.kind) {
    case 'const':
      return p.value === null ? 'NULL' : p.value ? 'true' : 'false';
    case 'and':
    case 'or':
      return p.items
        .map((item) => `(${compilePredicate(item, params, ident)})`)
        .join(p.kind === 'and' ? ' AND ' : ' OR ');
    case 'not':
      return `NOT (${compilePredicate(p.item, params, ident)})`;
    case 'text': {
      const col = ident(p.column.name);
      if (p.ignoreCase) return `regexp_matches(${col}, ${params.add(caseInsensitivePattern(p.op, p.value))})`;
      const fn = { contains: 'contains', starts_with: 'starts_with', ends_with: 'suffix' } as const;
      return `${fn[p.op]}(${col}, ${params.add(p.value)})`;
    }
    case 'null':
      return `${ident(p.column.name)} IS ${p.negate ? 'NOT ' : ''}NULL`;
    case 'in':
      return `${ident(p.column.name)} IN (${p.values.map((v) => params.add(v)).join(', ')})`;
    case 'between':
      return `${ident(p.column.name)} BETWEEN ${params.add(p.low)} AND ${params.add(p.high)}`;
    case 'compare':
      return `${ident(p.column.name)} ${COMPARISONS[p.op]} ${params.add(p.value)}`;
  }
}

/**
 * A group key. Buckets: the instant's wall time in the zone (ICU, built into DuckDB), truncated;
 * from a day up, the truncated wall time back to the instant it names in the zone; for hours and
 * minutes, the instant minus the wall time past the truncation, so both 1 AMs of a DST fall-back
 * stay apart. A date is its day's first instant in the zone (firstInstant). Out as UTC TIMESTAMPs (session zone UTC).
 * A bucket in a zone other than UTC is looked up (bucketMaps): `col` is then its map's column.
 */
function compileGroup(g: PlanGroup, params: Params, ident: Ident, mapped?: string): string {
  const col = ident(g.column.name);
  if (g.kind === 'column') return col;
  if (g.kind === 'bin') {
    if (g.column.type === 'null') return 'CAST(NULL AS DOUBLE)';
    const b = params.add(g.width);
    // x minus its non-negative remainder: floor(x / b) · b in exact integer arithmetic.
    return g.integer
      ? `(${col} - (((${col} % ${b}) + ${b}) % ${b}))`
      : `(floor(CAST(${col} AS DOUBLE) / ${b}) * ${b})`;
  }
  if (g.column.type === 'null') return 'CAST(NULL AS TIMESTAMP)';
  return mapped ?? bucketExpr(g, col, params);
}

/** The start of the bucket of `col` (a date or timestamp value), as a UTC TIMESTAMP. */
function bucketExpr(g: Extract<PlanGroup, { kind: 'bucket' }>, col: string, params: Params): string {
  const unit = `'${g.unit}'`; // one of BUCKETS, not request text
  // In UTC the wall time is the UTC timestamp itself: truncated without ICU (ISO weeks, Monday).
  if (g.tz === 'UTC') return `date_trunc(${unit}, CAST(${col} AS TIMESTAMP))`;
  const tz = params.add(g.tz);
  const instant =
    g.column.type === 'date' ? firstInstant(`CAST(${col} AS TIMESTAMP)`, tz) : `CAST(${col} AS TIMESTAMPTZ)`;
  const local = `timezone(${tz}, ${instant})`;
  if (g.unit === 'hour' || g.unit === 'minute') {
    return `CAST(${instant} - (${local} - date_trunc(${unit}, ${local})) AS TIMESTAMP)`;
  }
  return `CAST(${firstInstant(`date_trunc(${unit}, ${local})`, tz)} AS TIMESTAMP)`;
}

/**
 * The first instant (TIMESTAMPTZ) whose wall time in zone `tz` is `wall` (a local midnight).
 * ICU reads a skipped wall time with the offset before the change, which is the end of the gap,
 * as the definition asks; a repeated one it reads as the later of the two, so the earlier is
 * tried first: the wall time a day before, read in the zone, a day on (24 hours, in the session's
 * UTC), when that names the same wall time and comes sooner.
 */
function firstInstant(wall: string, tz: string): string {
  const later = `timezone(${tz}, ${wall})`;
  const earlier = `(timezone(${tz}, ${wall} - INTERVAL 1 DAY) + INTERVAL 24 HOUR)`;
  return `(CASE WHEN ${earlier} < ${later} AND timezone(${tz}, ${earlier}) = ${wall} THEN ${earlier} ELSE ${later} END)`;
}

const SOURCE = quoteIdent('__quarry_source');
const mapName = (index: number) => quoteIdent(`__quarry_map_${index}`);
const mapKey = (index: number) => quoteIdent(`__quarry_key_${index}`);
const mapBucket = (index: number) => quoteIdent(`__quarry_bucket_${index}`);
const mapWalls = (index: number) => quoteIdent(`__quarry_walls_${index}`);
const mapWall = (index: number) => quoteIdent(`__quarry_wall_${index}`);

/**
 * Zone conversions cost ICU about a microsecond a value: 3M rows bucketed in a zone spent most of
 * the query there. A bucket depends on its column's value alone, so each distinct value is
 * converted once, in a map of value → bucket start, and rows join it (a null value finds no
 * entry: a null bucket, as it should). The maps' names are prefixed as the output aliases are.
 */
function bucketMaps(
  plan: AggregationPlan,
  params: Params,
  ident: Ident,
): { ctes: string[]; joins: string[]; mapped: Map<number, string> } {
  const ctes: string[] = [];
  const joins: string[] = [];
  const mapped = new Map<number, string>();
  plan.groups.forEach((g, i) => {
    if (g.kind !== 'bucket' || g.column.type === 'null' || g.tz === 'UTC') return;
    const col = ident(g.column.name);
    const distinct = `(SELECT DISTINCT ${col} AS ${mapKey(i)} FROM ${SOURCE})`;
    if (g.column.type === 'timestamp' && g.unit !== 'hour' && g.unit !== 'minute') {
      // From a day up: each value's local period (its wall time, truncated), then each distinct
      // period's first instant, which takes three conversions: a few hundred days, not a few
      // hundred thousand instants.
      const tz = params.add(g.tz);
      const wall = `date_trunc('${g.unit}', timezone(${tz}, CAST(${mapKey(i)} AS TIMESTAMPTZ)))`;
      const start = `CAST(${firstInstant(mapWall(i), tz)} AS TIMESTAMP)`;
      ctes.push(
        `${mapWalls(i)} AS MATERIALIZED (SELECT ${mapKey(i)}, ${wall} AS ${mapWall(i)} FROM ${distinct})`,
        `${mapName(i)} AS (SELECT ${mapKey(i)}, ${mapBucket(i)} FROM ${mapWalls(i)} JOIN (SELECT ${mapWall(i)}, ${start} AS ${mapBucket(i)} FROM (SELECT DISTINCT ${mapWall(i)} FROM ${mapWalls(i)})) USING (${mapWall(i)}))`,
      );
    } else {
      const bucket = bucketExpr(g, mapKey(i), params);
      ctes.push(`${mapName(i)} AS (SELECT ${mapKey(i)}, ${bucket} AS ${mapBucket(i)} FROM ${distinct})`);
    }
    joins.push(` LEFT JOIN ${mapName(i)} ON ${SOURCE}.${col} = ${mapName(i)}.${mapKey(i)}`);
    mapped.set(i, `${mapName(i)}.${mapBucket(i)}`);
  });
  return { ctes, joins, mapped };
}

/** An aggregate of the source rows (every op but ratio), with its own filter when it has one. */
function compileMetric(m: PlanMetric, params: Params, ident: Ident): string {
  const expr = compileAggregate(m, params, ident);
  return m.filter === undefined
    ? expr
    : `${expr} FILTER (WHERE ${compilePredicate(m.filter, params, ident)})`;
}

function compileAggregate(m: PlanMetric, params: Params, ident: Ident): string {
  const col = m.column === undefined ? '*' : ident(m.column.name);
  switch (m.op) {
    case 'count':
      return `count(${col})`;
    case 'count_distinct':
      return `count(DISTINCT ${col})`;
    case 'quantile':
      // nearest_rank needs ceil(q·n) exactly: as a double, q·n can land just above an integer
      // (0.55 × 100 = 55.000000000000007), so q goes in as a DECIMAL(10,9), as the spec defines it.
      return m.method === 'nearest_rank'
        ? `quantile_disc(${col}, CAST(${params.add(Math.round(m.q! * 1e9) / 1e9)} AS DECIMAL(10,9)))`
        : `quantile_cont(${col}, ${params.add(m.q!)})`;
    case 'stddev':
      return `${m.population ? 'stddev_pop' : 'stddev_samp'}(${col})`;
    case 'variance':
      return `${m.population ? 'var_pop' : 'var_samp'}(${col})`;
    case 'sum':
    case 'avg':
    case 'min':
    case 'max':
      return `${m.op}(${col})`;
    case 'ratio':
      throw new Error('a ratio is computed over outputs, not rows (compileAggregation)');
  }
}

/** of / to as doubles; null when the divisor is 0 or null (or the dividend null). */
function compileRatio(m: PlanMetric): string {
  const of = `CAST(${outputAlias(m.of!)} AS DOUBLE)`;
  const to = `CAST(${outputAlias(m.to!)} AS DOUBLE)`;
  return `CASE WHEN ${to} = 0 THEN NULL ELSE ${of} / ${to} END`;
}

/**
 * The query of a plan. The inner SELECT aggregates (ratios one level up); `kept` keeps the rows
 * `having` holds for and `top` the first of each partition; the page orders by the plan's sort keys
 * (outputs aliased by position, see outputAlias), NULLS LAST everywhere, then fetches the plan's
 * row count. `sourceNames` maps the dataset's column names to the source's when the source was
 * renamed (positional names, see collidesIgnoringCase).
 */
export function compileAggregation(
  plan: AggregationPlan,
  source: EngineSource,
  sourceNames?: ReadonlyMap<string, string>,
  texts: readonly TextColumn[] = [],
): CompiledQuery {
  const params = new Params();
  const ident: Ident = (name) => quoteIdent(sourceNames?.get(name) ?? name);
  // NDJSON has no timestamps of its own (read_json's detection is off): its timestamp columns are
  // instant strings (columnsOf in duckdb.ts), read as UTC timestamps here. A CSV is all text:
  // every column the plan reads is cast to its type (csv-types.ts).
  const typed =
    source.kind !== 'file'
      ? []
      : source.format === 'ndjson'
        ? plan.columns.filter((c) => c.type === 'timestamp')
        : source.format === 'csv'
          ? plan.columns.filter((c) => c.type !== 'string')
          : [];
  const read = new Set(plan.columns.map((c) => c.name));
  const from = sourceSql(
    source,
    params,
    typed,
    texts.filter((t) => read.has(t.name)),
  );
  const maps = bucketMaps(plan, params, ident);
  const rowMetrics = plan.metrics.flatMap((m, i) =>
    m.op === 'ratio' ? [] : [{ m, at: plan.groups.length + i }],
  );
  const select = [
    ...plan.groups.map(
      (g, i) => `${compileGroup(g, params, ident, maps.mapped.get(i))} AS ${outputAlias(i)}`,
    ),
    ...rowMetrics.map(({ m, at }) => `${compileMetric(m, params, ident)} AS ${outputAlias(at)}`),
  ];
  let inner =
    maps.ctes.length === 0
      ? `SELECT ${select.join(', ')} FROM ${from}`
      : `WITH ${SOURCE} AS (SELECT * FROM ${from}), ${maps.ctes.join(', ')} SELECT ${select.join(', ')} FROM ${SOURCE}${maps.joins.join('')}`;
  if (!(plan.where.kind === 'const' && plan.where.value)) {
    inner += ` WHERE (${compilePredicate(plan.where, params, ident)})`;
  }
  // By position: a bucket or bin is an expression, and its alias could meet a source column.
  if (plan.groups.length > 0) inner += ` GROUP BY ${plan.groups.map((_, i) => i + 1).join(', ')}`;
  // Ratios read the aggregates by their aliases, one level up; the outputs keep their order.
  const ratios = plan.metrics.some((m) => m.op === 'ratio');
  const outputs = plan.outputs.map((_, i) => {
    const m = plan.metrics[i - plan.groups.length];
    return m?.op === 'ratio' ? `${compileRatio(m)} AS ${outputAlias(i)}` : outputAlias(i);
  });
  let kept = `SELECT * FROM (${ratios ? `SELECT ${outputs.join(', ')} FROM (${inner}) AS agg` : inner}) AS agg`;
  if (!(plan.having.kind === 'const' && plan.having.value)) {
    const position = new Map(plan.outputs.map((o, i) => [o.name, i]));
    const output: Ident = (name) => outputAlias(position.get(name)!);
    kept += ` WHERE (${compilePredicate(plan.having, params, output)})`;
  }
  const order = plan.sort.map((k) => `${outputAlias(k.index)} ${k.descending ? 'DESC' : 'ASC'} NULLS LAST`);
  const orderBy = order.length > 0 ? ` ORDER BY ${order.join(', ')}` : '';
  if (plan.top !== undefined) {
    const per = plan.top.per.map(outputAlias).join(', ');
    // Materialized first: with a range condition of `having` pushed under the window, DuckDB
    // 1.5 fails internally ("Failed to cast expression to type - expression type mismatch").
    const ranked = `SELECT * FROM held QUALIFY row_number() OVER (PARTITION BY ${per}${orderBy}) <= ${params.add(plan.top.limit)}`;
    kept = `WITH held AS MATERIALIZED (${kept}) ${ranked}`;
  }
  // The page, beside the count of every kept row: one row of nulls (and no PRESENT mark) when the
  // page is empty, so the total arrives whatever the offset.
  const page = `SELECT *, true AS ${PRESENT} FROM kept${orderBy} LIMIT ${params.add(plan.fetch)} OFFSET ${params.add(plan.offset)}`;
  const sql = `WITH kept AS (${kept}), page AS (${page}) SELECT page.*, total.n AS ${TOTAL} FROM (SELECT count(*) AS n FROM kept) AS total LEFT JOIN page ON true${orderBy}`;
  return { sql, params: params.values };
}
