// The registry of metric ops and filter ops: one entry per op says what it takes, its default
// output name, its result type and its line in docs/AGGREGATION.md. The zod schemas
// (shared/aggregation.ts), the plan (shared/plan.ts) and the docs table all derive from it; each
// engine only translates an op (workers/engines/duckdb-sql.ts, workers/engines/polars-plan.ts).
import type { ColumnType } from './datasets.ts';

export type ResultType = ColumnType;

export const QUANTILE_METHODS = ['linear', 'nearest_rank'] as const;
export type QuantileMethod = (typeof QUANTILE_METHODS)[number];

/** What a metric needs of its column. */
type ColumnUse = 'optional' | 'any' | 'numeric' | 'none';

interface MetricFields {
  readonly column?: string;
  readonly population?: boolean;
  readonly of?: string;
  readonly to?: string;
  readonly q?: number;
  readonly method?: QuantileMethod;
}

export interface MetricOpDef {
  readonly op: string;
  readonly column: ColumnUse;
  /** Extra parameters the op takes (beyond column and as); the schema adds them. */
  readonly params: readonly ('quantile' | 'population' | 'ratio')[];
  /** Whether the metric may carry its own `filter` (ratio reads other metrics, not rows). */
  readonly rowFilter: boolean;
  /** The default output name (the `as` a client leaves out). */
  defaultName(m: MetricFields): string;
  /** The result type, given the type of the metric's column (`integer` for a bare count). */
  resultType(m: MetricFields, columnType: ColumnType): ResultType;
  /** The docs table row: how the metric is written, its default name, its result type. */
  readonly doc: readonly { readonly metric: string; readonly name: string; readonly type: string }[];
}

/** `p<100q>` with the decimal point written `_`: 0.95 → p95, 0.999 → p99_9. */
function percentName(q: number): string {
  return `p${String(Math.round(q * 100 * 1e6) / 1e6).replace('.', '_')}`;
}

const columnName = (op: string) => (m: MetricFields) => `${op}_${m.column}`;

export const METRIC_OPS = {
  count: {
    op: 'count',
    column: 'optional',
    params: [],
    rowFilter: true,
    defaultName: (m) => (m.column === undefined ? 'count' : `count_${m.column}`),
    resultType: () => 'integer',
    doc: [
      { metric: '`count`', name: '`count`', type: 'integer' },
      { metric: '`count` of `col`', name: '`count_col`', type: 'integer' },
    ],
  },
  count_distinct: {
    op: 'count_distinct',
    column: 'any',
    params: [],
    rowFilter: true,
    defaultName: columnName('count_distinct'),
    resultType: () => 'integer',
    doc: [{ metric: '`count_distinct` of `col`', name: '`count_distinct_col`', type: 'integer' }],
  },
  sum: {
    op: 'sum',
    column: 'numeric',
    params: [],
    rowFilter: true,
    defaultName: columnName('sum'),
    resultType: (_, t) => (t === 'integer' ? 'integer' : 'float'),
    doc: [{ metric: '`sum` of `col`', name: '`sum_col`', type: 'integer on an integer column, else float' }],
  },
  avg: {
    op: 'avg',
    column: 'numeric',
    params: [],
    rowFilter: true,
    defaultName: columnName('avg'),
    resultType: () => 'float',
    doc: [{ metric: '`avg` of `col`', name: '`avg_col`', type: 'float' }],
  },
  min: {
    op: 'min',
    column: 'any',
    params: [],
    rowFilter: true,
    defaultName: columnName('min'),
    resultType: (_, t) => t,
    doc: [{ metric: '`min` of `col`', name: '`min_col`', type: "the column's type" }],
  },
  max: {
    op: 'max',
    column: 'any',
    params: [],
    rowFilter: true,
    defaultName: columnName('max'),
    resultType: (_, t) => t,
    doc: [{ metric: '`max` of `col`', name: '`max_col`', type: "the column's type" }],
  },
  quantile: {
    op: 'quantile',
    column: 'numeric',
    params: ['quantile'],
    rowFilter: true,
    defaultName: (m) => `${percentName(m.q!)}_${m.column}`,
    resultType: (m, t) => (m.method === 'nearest_rank' && t === 'integer' ? 'integer' : 'float'),
    doc: [
      { metric: '`quantile` of `col`, `linear`', name: '`p<100q>_col`', type: 'float' },
      {
        metric: '`quantile` of `col`, `nearest_rank`',
        name: '`p<100q>_col`',
        type: 'integer on an integer column, else float',
      },
    ],
  },
  median: {
    op: 'median',
    column: 'numeric',
    params: [],
    rowFilter: true,
    defaultName: columnName('median'),
    resultType: () => 'float',
    doc: [{ metric: '`median` of `col`', name: '`median_col`', type: 'float' }],
  },
  stddev: {
    op: 'stddev',
    column: 'numeric',
    params: ['population'],
    rowFilter: true,
    defaultName: (m) => `stddev_${m.population ? 'pop_' : ''}${m.column}`,
    resultType: () => 'float',
    doc: [
      { metric: '`stddev` of `col`', name: '`stddev_col`', type: 'float' },
      { metric: '`stddev` of `col`, `population`', name: '`stddev_pop_col`', type: 'float' },
    ],
  },
  variance: {
    op: 'variance',
    column: 'numeric',
    params: ['population'],
    rowFilter: true,
    defaultName: (m) => `variance_${m.population ? 'pop_' : ''}${m.column}`,
    resultType: () => 'float',
    doc: [
      { metric: '`variance` of `col`', name: '`variance_col`', type: 'float' },
      { metric: '`variance` of `col`, `population`', name: '`variance_pop_col`', type: 'float' },
    ],
  },
  ratio: {
    op: 'ratio',
    column: 'none',
    params: ['ratio'],
    rowFilter: false,
    defaultName: (m) => `${m.of}_per_${m.to}`,
    resultType: () => 'float',
    doc: [{ metric: '`ratio` of output `a` to output `b`', name: '`a_per_b`', type: 'float' }],
  },
} as const satisfies Record<string, MetricOpDef>;

export type MetricOp = keyof typeof METRIC_OPS;
export const METRIC_OP_NAMES = Object.keys(METRIC_OPS) as MetricOp[];

export function metricOp(op: MetricOp): MetricOpDef {
  return METRIC_OPS[op];
}

/** What a filter op compares its column with. */
export type FilterValueShape = 'scalar' | 'list' | 'pair' | 'none' | 'text';

export interface FilterOpDef {
  readonly op: string;
  readonly value: FilterValueShape;
  /** The docs table row: how the filter is written and which rows it keeps. */
  readonly doc: string;
}

export const FILTER_OPS = {
  eq: { op: 'eq', value: 'scalar', doc: 'x = value' },
  ne: { op: 'ne', value: 'scalar', doc: 'x ≠ value (a null x is dropped too)' },
  gt: { op: 'gt', value: 'scalar', doc: 'x > value' },
  gte: { op: 'gte', value: 'scalar', doc: 'x ≥ value' },
  lt: { op: 'lt', value: 'scalar', doc: 'x < value' },
  lte: { op: 'lte', value: 'scalar', doc: 'x ≤ value' },
  in: { op: 'in', value: 'list', doc: 'x equals one of the 1 to 10,000 values' },
  between: { op: 'between', value: 'pair', doc: 'lo ≤ x ≤ hi, both ends included' },
  is_null: { op: 'is_null', value: 'none', doc: 'x is null or missing' },
  not_null: { op: 'not_null', value: 'none', doc: 'x is not null' },
  contains: { op: 'contains', value: 'text', doc: 'the string x contains value' },
  starts_with: { op: 'starts_with', value: 'text', doc: 'the string x begins with value' },
  ends_with: { op: 'ends_with', value: 'text', doc: 'the string x ends with value' },
} as const satisfies Record<string, FilterOpDef>;

export type FilterOp = keyof typeof FILTER_OPS;
export const FILTER_OP_NAMES = Object.keys(FILTER_OPS) as FilterOp[];

export type ComparisonOp = {
  [K in FilterOp]: (typeof FILTER_OPS)[K]['value'] extends 'scalar' ? K : never;
}[FilterOp];
export const COMPARISON_OPS = FILTER_OP_NAMES.filter(
  (op) => FILTER_OPS[op].value === 'scalar',
) as ComparisonOp[];

export type TextOp = {
  [K in FilterOp]: (typeof FILTER_OPS)[K]['value'] extends 'text' ? K : never;
}[FilterOp];
export const TEXT_OPS = FILTER_OP_NAMES.filter((op) => FILTER_OPS[op].value === 'text') as TextOp[];

/** The metric table of docs/AGGREGATION.md, as the registry defines it (a test compares them). */
export function metricOpsTable(): string {
  const lines = ['| metric | default name | result type |', '|---|---|---|'];
  for (const op of METRIC_OP_NAMES) {
    for (const row of METRIC_OPS[op].doc) lines.push(`| ${row.metric} | ${row.name} | ${row.type} |`);
  }
  return lines.join('\n');
}

/** The filter table of docs/AGGREGATION.md, as the registry defines it (a test compares them). */
export function filterOpsTable(): string {
  const written: Record<FilterValueShape, (op: string) => string> = {
    scalar: (op) => `\`{ "column", "op": "${op}", "value" }\``,
    list: (op) => `\`{ "column", "op": "${op}", "value": [v, ...] }\``,
    pair: (op) => `\`{ "column", "op": "${op}", "value": [lo, hi] }\``,
    none: (op) => `\`{ "column", "op": "${op}" }\``,
    text: (op) => `\`{ "column", "op": "${op}", "value": "text", "ignoreCase"?: false }\``,
  };
  const lines = ['| filter | keeps a row when |', '|---|---|'];
  for (const op of FILTER_OP_NAMES) {
    const def: FilterOpDef = FILTER_OPS[op];
    lines.push(`| ${written[def.value](op)} | ${def.doc} |`);
  }
  return lines.join('\n');
}
