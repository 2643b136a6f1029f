// Translates an aggregation plan (shared/plan.ts) into a Polars lazy plan and runs it; sources are
// read by polars-source.ts, rows shaped by result-rows.ts. Loaded only inside a Polars worker
// thread (polars-thread.ts): readers, schema inference and row conversion block while they run.
import pl from 'nodejs-polars';
import type { ColumnType } from '../../shared/datasets.ts';
import { QuarryError } from '../../shared/errors.ts';
import {
  type AggregationPlan,
  buildPlan,
  type PlanGroup,
  type PlanMetric,
  type PlanPredicate,
  type PlanValue,
} from '../../shared/plan.ts';
import { type EngineInput, type EngineOutput, spooledSource } from './engine.ts';
import { dtypeOf, type PreparedSource, prepareSource, unreadable } from './polars-source.ts';
import { utcBucketExpr, zoneBucketMap } from './polars-zones.ts';
import { shapeRows } from './result-rows.ts';
import { caseInsensitivePattern } from './text-match.ts';

/**
 * Plans refer to columns by positional names only (polars-source.ts internalName): pl.col reads
 * "*" as every column and "^...$" as a regex, so a dataset's own names never reach an expression.
 * Output columns are named by position too, and rows take their names from the spec.
 */
const outputName = (index: number) => `__quarry_out_${index}`;
const RANK = '__quarry_rank';
const bucketName = (index: number) => `__quarry_bucket_${index}`;

/** Timestamps leave as JavaScript's ISO form (milliseconds, UTC), as the DuckDB engine writes them. */
const TIMESTAMP_FORMAT = '%Y-%m-%dT%H:%M:%S%.3fZ';
const DATE_FORMAT = '%Y-%m-%d';

export async function runAggregation(input: EngineInput): Promise<EngineOutput> {
  const { spec, maxRows } = input;
  const source = spooledSource(input.source, 'Polars');
  const prepared = prepareSource(source);
  const plan = buildPlan(spec, prepared.columns, maxRows, prepared.unusable);
  // Resolving the optimized plan checks names and types without reading data, so a failure after
  // this point comes from the data itself. (Zone buckets read the key column once in translate:
  // a failure there is the data's too.)
  let lazy: pl.LazyDataFrame;
  try {
    lazy = translate(plan, prepared);
  } catch (cause) {
    if (source.kind === 'file' && !(cause instanceof QuarryError)) throw unreadable(source, cause);
    throw cause;
  }
  lazy.describeOptimizedPlan();
  let kept: pl.DataFrame;
  try {
    kept = await lazy.collect();
  } catch (cause) {
    if (source.kind === 'file') throw unreadable(source, cause);
    throw cause;
  }
  const result = kept.slice(plan.offset, Math.max(0, Math.min(plan.fetch, kept.height - plan.offset)));
  // An oversized result is refused by shapeRows before any value is converted.
  const values =
    result.height > maxRows ? [] : result.getColumns().map((series) => series.toArray() as unknown[]);
  return {
    columns: plan.outputs,
    rows: await shapeRows(plan, values, result.height),
    totalRows: kept.height,
  };
}

function translate(plan: AggregationPlan, source: PreparedSource): pl.LazyDataFrame {
  const col = (name: string) => pl.col(source.names.get(name)!);
  let lazy = source.frame;

  const casts = plan.columns.flatMap((c) => {
    const cast = source.casts.get(c.name);
    return cast === undefined ? [] : [cast];
  });
  if (casts.length > 0) lazy = lazy.withColumns(...casts);

  if (!(plan.where.kind === 'const' && plan.where.value)) lazy = lazy.filter(predicateExpr(plan.where, col));

  // Output columns by position: group keys, then metrics (the order shapeRows names them in).
  const aggregations = plan.metrics.flatMap((m, i) =>
    m.op === 'ratio' ? [] : [rowMetricExpr(m, col).alias(outputName(plan.groups.length + i))],
  );
  if (plan.groups.length > 0) {
    // A bucket in a zone other than UTC is computed once per distinct value and joined back, as
    // duckdb-buckets.ts's bucketMaps does: the zone conversions cost ~0.2 µs a row (600 of 830 ms
    // on 3M rows), the distinct values are far fewer. A left join on the value: null stays null.
    const keys = plan.groups.map((g, i) => {
      if (g.kind !== 'bucket' || g.column.type === 'null' || g.tz === 'UTC') {
        return groupExpr(g, col).alias(outputName(i));
      }
      const key = source.names.get(g.column.name)!;
      const map = zoneBucketMap(lazy, key, g, { out: bucketName(i), index: i });
      lazy = lazy.join(map, { on: key, how: 'left' });
      return pl.col(bucketName(i)).alias(outputName(i));
    });
    lazy = lazy.groupBy(keys).agg(...aggregations);
  } else {
    lazy = lazy.select(...aggregations);
  }
  // Ratios read the aggregates; the outputs are then put back in their order.
  const ratios = plan.metrics.flatMap((m, i) =>
    m.op === 'ratio' ? [ratioExpr(m).alias(outputName(plan.groups.length + i))] : [],
  );
  if (ratios.length > 0)
    lazy = lazy.withColumns(...ratios).select(...plan.outputs.map((_, i) => outputName(i)));
  if (!(plan.having.kind === 'const' && plan.having.value)) {
    const position = new Map(plan.outputs.map((o, i) => [o.name, i]));
    lazy = lazy.filter(predicateExpr(plan.having, (name) => pl.col(outputName(position.get(name)!))));
  }

  if (plan.sort.length > 0) {
    lazy = lazy.sort({
      by: plan.sort.map((k) => outputName(k.index)),
      descending: plan.sort.map((k) => k.descending),
      nullsLast: true,
    });
  }
  if (plan.top !== undefined) {
    // The rows' rank in their partition, in the sorted order (over() keeps row order).
    const per = plan.top.per.map(outputName);
    lazy = lazy
      .withColumns(pl.lit(1).alias(RANK))
      .filter(
        pl
          .col(RANK)
          .cumSum()
          .over(per[0]!, ...per.slice(1))
          .ltEq(plan.top.limit),
      )
      .drop(RANK);
  }
  // Not sliced here: the page is cut after collecting, once the total is known (runAggregation).

  const temporal = plan.outputs.flatMap((c, i) =>
    c.type === 'date' || c.type === 'timestamp'
      ? [pl.col(outputName(i)).dt.strftime(c.type === 'date' ? DATE_FORMAT : TIMESTAMP_FORMAT)]
      : [],
  );
  return temporal.length > 0 ? lazy.withColumns(...temporal) : lazy;
}

function predicateExpr(p: PlanPredicate, col: (name: string) => pl.Expr): pl.Expr {
  switch (p.kind) {
    case 'const':
      return p.value === null ? pl.lit(null).cast(pl.Bool) : pl.lit(p.value);
    case 'and':
      return p.items.map((item) => predicateExpr(item, col)).reduce((all, e) => all.and(e));
    case 'or':
      return p.items.map((item) => predicateExpr(item, col)).reduce((all, e) => all.or(e));
    case 'not':
      return predicateExpr(p.item, col).not();
    case 'text': {
      const c = col(p.column.name).str;
      if (p.ignoreCase) return c.contains(caseInsensitivePattern(p.op, p.value), false);
      if (p.op === 'contains') return c.contains(p.value, true);
      return p.op === 'starts_with' ? c.startsWith(pl.lit(p.value)) : c.endsWith(pl.lit(p.value));
    }
    case 'null':
      return p.negate ? col(p.column.name).isNotNull() : col(p.column.name).isNull();
    case 'in':
      return col(p.column.name).isIn(valueSeries(p.values, p.column.type).implode());
    case 'between': {
      const c = col(p.column.name);
      return c.gtEq(literal(p.low, p.column.type)).and(c.ltEq(literal(p.high, p.column.type)));
    }
    case 'compare': {
      const c = col(p.column.name);
      const v = literal(p.value, p.column.type);
      switch (p.op) {
        case 'eq':
          return c.eq(v);
        case 'ne':
          return c.neq(v);
        case 'gt':
          return c.gt(v);
        case 'gte':
          return c.gtEq(v);
        case 'lt':
          return c.lt(v);
        case 'lte':
          return c.ltEq(v);
      }
    }
  }
}

/** A plan value as a literal of its column's type (temporal values come in their cast form). */
function literal(value: PlanValue, type: ColumnType): pl.Expr {
  if (type === 'date' || type === 'timestamp') return pl.lit(value).cast(dtypeOf(type));
  // pl.lit makes every number a Float64; integers against an integer column compare exactly.
  if (type === 'integer' && typeof value === 'number' && Number.isSafeInteger(value)) {
    return pl.lit(value).cast(pl.Int64);
  }
  return pl.lit(value);
}

function valueSeries(values: readonly PlanValue[], type: ColumnType): pl.Series {
  if (type === 'date' || type === 'timestamp') {
    return pl.Series('', [...values], pl.String).cast(dtypeOf(type));
  }
  if (type === 'string') return pl.Series('', [...values], pl.String);
  if (type === 'boolean') return pl.Series('', [...values], pl.Bool);
  const exact = type === 'integer' && values.every((v) => typeof v === 'number' && Number.isSafeInteger(v));
  return pl.Series('', [...values], exact ? pl.Int64 : pl.Float64);
}

/** A group key, as duckdb-sql.ts's compileGroup defines it: a column, a bin, or a time bucket (polars-zones.ts). */
function groupExpr(g: PlanGroup, col: (name: string) => pl.Expr): pl.Expr {
  const c = col(g.column.name);
  if (g.kind === 'column') return c;
  if (g.kind === 'bin') {
    if (g.integer) {
      const b = pl.lit(g.width).cast(pl.Int64);
      return c.sub(c.modulo(b).add(b).modulo(b));
    }
    // floor(x / width) · width with a true division, as DuckDB and the definition: Polars divides
    // a column by a literal as a multiplication by its reciprocal (0.3 / 0.1 gives 3, not
    // 2.9999999999999996), so the divisor is a column (null where x is, which changes nothing).
    const x = c.cast(pl.Float64);
    const width = pl.when(x.isNull()).then(pl.lit(null).cast(pl.Float64)).otherwise(pl.lit(g.width));
    return x.div(width).floor().mul(pl.lit(g.width));
  }
  // An all-null column: its own nulls, typed (a literal key would make a group of no rows).
  if (g.column.type === 'null') return c.cast(pl.Datetime('us'));
  return utcBucketExpr(g, c);
}

/** An aggregate of the group's rows, over those its own filter keeps when it has one. */
function rowMetricExpr(m: PlanMetric, col: (name: string) => pl.Expr): pl.Expr {
  const mask = m.filter === undefined ? undefined : predicateExpr(m.filter, col);
  if (m.column === undefined)
    return mask === undefined ? pl.len() : mask.fillNull(false).cast(pl.Int64).sum();
  const c = col(m.column.name);
  return metricExpr(m, mask === undefined ? c : c.filter(mask));
}

/** of / to as doubles; null when the divisor is 0 or null (or the dividend null). */
function ratioExpr(m: PlanMetric): pl.Expr {
  const of = pl.col(outputName(m.of!)).cast(pl.Float64);
  const to = pl.col(outputName(m.to!)).cast(pl.Float64);
  return pl.when(to.eq(0)).then(pl.lit(null).cast(pl.Float64)).otherwise(of.div(to));
}

function metricExpr(metric: PlanMetric, c: pl.Expr | undefined): pl.Expr {
  if (c === undefined) return pl.len(); // pl.count() without a column is broken in 0.25
  switch (metric.op) {
    case 'count':
      return c.count();
    case 'sum': {
      // Polars sums no values to 0; SQL (and the definition) to null.
      const none = c.count().gt(0).not();
      if (metric.column?.type !== 'integer') return pl.when(none).then(pl.lit(null)).otherwise(c.sum());
      // An Int64 sum wraps past 2^63 (DuckDB's HUGEINT does not). The exact sum, rounded to a
      // double once as DuckDB's is, while the double sum says it is far from the wrap; past that
      // the double sum (within a few units of the last place of the exact one).
      const approx = c.cast(pl.Float64).sum();
      return pl
        .when(none)
        .then(pl.lit(null))
        .when(approx.abs().lt(2 ** 62))
        .then(c.sum().cast(pl.Float64))
        .otherwise(approx);
    }
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
    case 'stddev':
    case 'variance': {
      if (!metric.population) return metric.op === 'stddev' ? c.std() : c.var(); // n − 1; null below 2 values
      // Two passes over the non-null values: the mean of squared deviations; null with none.
      const values = c.dropNulls();
      const variance = values.sub(values.mean()).pow(2).mean();
      return metric.op === 'stddev' ? variance.pow(0.5) : variance; // no sqrt() in nodejs-polars 0.25
    }
    case 'ratio':
      throw new Error('a ratio is computed over outputs, not rows (ratioExpr)');
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
