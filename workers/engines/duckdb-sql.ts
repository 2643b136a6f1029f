// Compiles a normalized AggregationSpec to one DuckDB SELECT. Identifiers are validated
// upstream and always quoted here; every value (filter values, quantile q, limit, file path,
// inline column types) is a bound parameter. No user text is ever spliced into SQL.
import type { AggregationSpec, Filter, Metric } from '../../shared/aggregation.ts';
import type { ColumnInfo, ColumnType } from '../../shared/datasets.ts';
import type { EngineSource } from './engine.ts';

export type SqlValue = string | number | boolean | Record<string, string>;

export interface CompiledQuery {
  readonly sql: string;
  readonly params: SqlValue[];
}

export interface CompiledAggregation extends CompiledQuery {
  /** The output column names, in the order of the result's columns (groupBy, then metrics). */
  readonly outputNames: readonly string[];
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

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

const DUCK_TYPES: Record<ColumnType, string> = {
  integer: 'BIGINT',
  float: 'DOUBLE',
  string: 'VARCHAR',
  boolean: 'BOOLEAN',
  date: 'DATE',
  timestamp: 'TIMESTAMP',
  // A column whose every value is null: DOUBLE suits numeric metrics, and filters on it are
  // compiled to constants (see compileFilter), so its type never meets a filter value.
  null: 'DOUBLE',
};

class Params {
  readonly values: SqlValue[] = [];
  add(value: SqlValue): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** The FROM clause reading the source; `sourceSql` alone is used for DESCRIBE too. */
export function sourceSql(source: EngineSource, params: Params): string {
  const file = params.add(source.file);
  if (source.kind === 'inline') {
    // fromEntries defines own properties: a column named "__proto__" stays a column.
    const columns: Record<string, string> = Object.fromEntries(
      source.columns.map((c) => [c.name, DUCK_TYPES[c.type]]),
    );
    if (source.columns.length === 0)
      return `(SELECT * FROM read_json(${file}, format = 'array') WHERE false)`;
    return `read_json(${file}, format = 'array', columns = ${params.add(columns)})`;
  }
  switch (source.format) {
    case 'parquet':
      return `read_parquet(${file})`;
    case 'csv':
      return `read_csv(${file})`;
    case 'ndjson':
      return `read_json(${file}, format = 'newline_delimited')`;
  }
}

export function describeQuery(source: EngineSource): CompiledQuery {
  const params = new Params();
  return { sql: `DESCRIBE SELECT * FROM ${sourceSql(source, params)}`, params: params.values };
}

type Ident = (name: string) => string;

function compileFilter(
  f: Filter,
  types: ReadonlyMap<string, ColumnType>,
  params: Params,
  ident: Ident,
): string {
  const col = ident(f.column);
  if (f.op === 'is_null') return `${col} IS NULL`;
  if (f.op === 'not_null') return `${col} IS NOT NULL`;
  // Every comparison with null is not true: on an all-null column the filter keeps no row.
  if (types.get(f.column) === 'null') return 'false';
  switch (f.op) {
    case 'in':
      return `${col} IN (${f.value.map((v) => params.add(v)).join(', ')})`;
    case 'between':
      return `${col} BETWEEN ${params.add(f.value[0])} AND ${params.add(f.value[1])}`;
    default: {
      // Narrowed by op above; zod's enum discriminant does not narrow `f` itself.
      const cmp = f as { op: 'eq' | 'ne' | 'gt' | 'gte' | 'lt' | 'lte'; value: string | number | boolean };
      const ops = { eq: '=', ne: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' } as const;
      return `${col} ${ops[cmp.op]} ${params.add(cmp.value)}`;
    }
  }
}

function compileMetric(m: Metric, params: Params, ident: Ident): string {
  const col = m.column === undefined ? '*' : ident(m.column);
  let expr: string;
  switch (m.op) {
    case 'count':
      expr = `count(${col})`;
      break;
    case 'count_distinct':
      expr = `count(DISTINCT ${col})`;
      break;
    case 'quantile':
      // nearest_rank needs ceil(q·n) exactly: as a double, q·n can land just above an integer
      // (0.55 × 100 = 55.000000000000007), so q goes in as a DECIMAL(10,9), as the spec defines it.
      expr =
        m.method === 'nearest_rank'
          ? `quantile_disc(${col}, CAST(${params.add(Math.round(m.q! * 1e9) / 1e9)} AS DECIMAL(10,9)))`
          : `quantile_cont(${col}, ${params.add(m.q!)})`;
      break;
    default:
      expr = `${m.op}(${col})`;
  }
  return expr;
}

/**
 * The aggregation query. The inner SELECT aggregates; the outer one orders by output columns
 * (aliased by position, see outputAlias), with groupBy columns as ascending tie-breakers and
 * NULLS LAST everywhere, then limits. `rowCap` caps what is fetched (the caller asks for one row
 * more than it allows, to detect an oversized result). `sourceNames` maps the spec's column names
 * to the source's when the source was renamed (positional names, see collidesIgnoringCase).
 */
export function compileAggregation(
  spec: Omit<AggregationSpec, 'dataset'>,
  source: EngineSource,
  columns: readonly ColumnInfo[],
  rowCap: number,
  sourceNames?: ReadonlyMap<string, string>,
): CompiledAggregation {
  const params = new Params();
  const types = new Map(columns.map((c) => [c.name, c.type]));
  const ident: Ident = (name) => quoteIdent(sourceNames?.get(name) ?? name);
  const from = sourceSql(source, params);
  const outputNames = [...spec.groupBy, ...spec.metrics.map((m) => m.as)];
  const position = new Map(outputNames.map((name, i) => [name, i]));
  const select = [
    ...spec.groupBy.map((g, i) => `${ident(g)} AS ${outputAlias(i)}`),
    ...spec.metrics.map(
      (m, i) => `${compileMetric(m, params, ident)} AS ${outputAlias(spec.groupBy.length + i)}`,
    ),
  ];
  const where = spec.filters.map((f) => compileFilter(f, types, params, ident));
  let inner = `SELECT ${select.join(', ')} FROM ${from}`;
  if (where.length > 0) inner += ` WHERE ${where.map((w) => `(${w})`).join(' AND ')}`;
  if (spec.groupBy.length > 0) inner += ` GROUP BY ${spec.groupBy.map(ident).join(', ')}`;
  const order = [
    ...spec.orderBy.map(
      (o) => `${outputAlias(position.get(o.column)!)} ${o.direction === 'desc' ? 'DESC' : 'ASC'} NULLS LAST`,
    ),
    ...spec.groupBy.map((_, i) => `${outputAlias(i)} ASC NULLS LAST`),
  ];
  let sql = `SELECT * FROM (${inner}) AS agg`;
  if (order.length > 0) sql += ` ORDER BY ${order.join(', ')}`;
  const limit = Math.min(spec.limit ?? Number.MAX_SAFE_INTEGER, rowCap);
  sql += ` LIMIT ${params.add(limit)}`;
  return { sql, params: params.values, outputNames };
}
