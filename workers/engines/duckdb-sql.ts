// Translates an aggregation plan (shared/plan.ts) to one DuckDB SELECT. Identifiers are validated
// upstream and always quoted here; every value (filter values, quantile q, limit, file path,
// inline column types) is a bound parameter. No user text is ever spliced into SQL.
import type { ComparisonOp } from '../../shared/aggregation-ops.ts';
import type { AggregationPlan, PlanGroup, PlanMetric, PlanPredicate } from '../../shared/plan.ts';
import { bucketExpr, bucketMaps, SOURCE } from './duckdb-buckets.ts';
import { type CompiledQuery, type Ident, Params, quoteIdent } from './duckdb-params.ts';
import { sourceSql, type TextColumn } from './duckdb-source.ts';
import type { EngineSource } from './engine.ts';
import { caseInsensitivePattern } from './text-match.ts';

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
  // instant strings (columnsOf in duckdb.ts), read as UTC timestamps here; its null columns
  // (JSON, no value) are read as a DOUBLE of nulls, as inline ones are. A CSV is all text:
  // every column the plan reads is cast to its type (csv-types.ts).
  const typed =
    source.kind !== 'file'
      ? []
      : source.format === 'ndjson'
        ? plan.columns.filter((c) => c.type === 'timestamp' || c.type === 'null')
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
