// The logical plan of an aggregation: what a normalized spec means over one dataset's columns,
// resolved once, so that the engines only translate it (workers/engines/duckdb-sql.ts,
// workers/engines/polars-plan.ts) and one step (shapeRows) caps, converts and names what they
// return. Pure: no engine, no I/O.
import type { AggregationSpec, Filter, Metric, ResultColumn } from './aggregation.ts';
import {
  type ComparisonOp,
  METRIC_OPS,
  type MetricOp,
  type MetricOpDef,
  type QuantileMethod,
} from './aggregation-ops.ts';
import type { ColumnInfo, ColumnType } from './datasets.ts';
import { QuarryError } from './errors.ts';

type Spec = Omit<AggregationSpec, 'dataset'>;
export type PlanValue = string | number | boolean;

export interface PlanColumn {
  readonly name: string;
  readonly type: ColumnType;
}

/**
 * A filter, resolved: columns typed, values checked against them and written in the one form
 * the engines read (dates `YYYY-MM-DD`, timestamps `YYYY-MM-DDTHH:MM:SS.ffffff` in UTC), and
 * conditions whose outcome is known without the data folded to constants.
 */
export type PlanPredicate =
  | { readonly kind: 'const'; readonly value: boolean }
  | { readonly kind: 'and'; readonly items: readonly PlanPredicate[] }
  | { readonly kind: 'null'; readonly column: PlanColumn; readonly negate: boolean }
  | {
      readonly kind: 'compare';
      readonly column: PlanColumn;
      readonly op: ComparisonOp;
      readonly value: PlanValue;
    }
  | { readonly kind: 'in'; readonly column: PlanColumn; readonly values: readonly PlanValue[] }
  | {
      readonly kind: 'between';
      readonly column: PlanColumn;
      readonly low: PlanValue;
      readonly high: PlanValue;
    };

export interface PlanMetric {
  readonly op: MetricOp;
  /** Absent only for a bare `count` (rows). */
  readonly column?: PlanColumn;
  readonly q?: number;
  readonly method?: QuantileMethod;
}

export interface PlanSortKey {
  /** Position among the outputs. */
  readonly index: number;
  readonly descending: boolean;
}

export interface AggregationPlan {
  /** Every source column the plan reads, each once, in the dataset's order. */
  readonly columns: readonly PlanColumn[];
  readonly where: PlanPredicate;
  /** The group keys: outputs 0 … groups.length − 1. */
  readonly groups: readonly PlanColumn[];
  /** The metrics: the outputs after the group keys, in order. */
  readonly metrics: readonly PlanMetric[];
  /** Every output column, named and typed, in result order. */
  readonly outputs: readonly ResultColumn[];
  /** orderBy, then every group key ascending as a tie-breaker (each output at most once); nulls last. */
  readonly sort: readonly PlanSortKey[];
  /** Rows to fetch from the engine: the limit, or one more than maxRows to detect an oversized result. */
  readonly fetch: number;
  readonly maxRows: number;
}

const NUMERIC = new Set<ColumnType>(['integer', 'float', 'null']);

/**
 * Resolves a normalized spec over a dataset's columns. Throws QuarryError naming the field: a
 * missing column (QUARRY_ERR_SPEC_UNKNOWN_COLUMN), a metric or filter value that does not fit its
 * column (QUARRY_ERR_SPEC_TYPE).
 */
export function buildPlan(spec: Spec, columns: readonly ColumnInfo[], maxRows: number): AggregationPlan {
  const types = new Map(columns.map((c) => [c.name, c.type]));
  const used = new Set<string>();
  const need = (name: string, field: string): PlanColumn => {
    const type = types.get(name);
    if (type === undefined) {
      throw new QuarryError(
        'QUARRY_ERR_SPEC_UNKNOWN_COLUMN',
        `${field}: the dataset has no column "${name}"`,
        {
          field,
        },
      );
    }
    used.add(name);
    return { name, type };
  };

  const where = and(spec.filters.map((f, i) => resolveFilter(f, `filters.${i}`, need)));
  const groups = spec.groupBy.map((g, i) => need(g, `groupBy.${i}`));
  const metrics = spec.metrics.map((m, i) => resolveMetric(m, `metrics.${i}`, need));
  const outputs: ResultColumn[] = [
    ...groups.map((g) => ({ name: g.name, type: g.type })),
    ...spec.metrics.map((m, i) => ({ name: m.as, type: metricType(metrics[i]!) })),
  ];

  const position = new Map(outputs.map((o, i) => [o.name, i]));
  const sort: PlanSortKey[] = [];
  const sorted = new Set<number>();
  const key = (index: number, descending: boolean) => {
    if (sorted.has(index)) return; // a repeated key cannot change the order
    sorted.add(index);
    sort.push({ index, descending });
  };
  for (const o of spec.orderBy) key(position.get(o.column)!, o.direction === 'desc');
  for (let i = 0; i < groups.length; i++) key(i, false);

  return {
    columns: columns.filter((c) => used.has(c.name)).map((c) => ({ name: c.name, type: c.type })),
    where,
    groups,
    metrics,
    outputs,
    sort,
    fetch: Math.min(spec.limit ?? Number.MAX_SAFE_INTEGER, maxRows + 1),
    maxRows,
  };
}

/** Checks that the spec fits the dataset's columns (buildPlan's checks, without a row cap). */
export function checkSpecColumns(spec: Spec, columns: readonly ColumnInfo[]): void {
  buildPlan(spec, columns, Number.MAX_SAFE_INTEGER - 1);
}

/** The result columns of a spec over a dataset's columns. */
export function outputColumns(spec: Spec, columns: readonly ColumnInfo[]): ResultColumn[] {
  return [...buildPlan(spec, columns, Number.MAX_SAFE_INTEGER - 1).outputs];
}

function metricType(m: PlanMetric): ColumnType {
  const def: MetricOpDef = METRIC_OPS[m.op];
  return def.resultType({ ...m, column: m.column?.name }, m.column?.type ?? 'integer');
}

function resolveMetric(
  m: Metric,
  field: string,
  need: (name: string, field: string) => PlanColumn,
): PlanMetric {
  const def = METRIC_OPS[m.op];
  const column = m.column === undefined ? undefined : need(m.column, `${field}.column`);
  if (column !== undefined && def.column === 'numeric' && !NUMERIC.has(column.type)) {
    throw new QuarryError(
      'QUARRY_ERR_SPEC_TYPE',
      `${field}.column: ${m.op} needs a numeric column; "${column.name}" is ${column.type}`,
      { field: `${field}.column` },
    );
  }
  return {
    op: m.op,
    ...(column === undefined ? {} : { column }),
    ...(m.q === undefined ? {} : { q: m.q }),
    ...(m.method === undefined ? {} : { method: m.method }),
  };
}

function and(items: PlanPredicate[]): PlanPredicate {
  const kept: PlanPredicate[] = [];
  for (const item of items) {
    if (item.kind === 'const') {
      if (!item.value) return item;
      continue;
    }
    if (item.kind === 'and') kept.push(...item.items);
    else kept.push(item);
  }
  if (kept.length === 0) return { kind: 'const', value: true };
  return kept.length === 1 ? kept[0]! : { kind: 'and', items: kept };
}

function resolveFilter(
  f: Filter,
  field: string,
  need: (name: string, field: string) => PlanColumn,
): PlanPredicate {
  const column = need(f.column, `${field}.column`);
  if (f.op === 'is_null' || f.op === 'not_null') {
    // Every value of an all-null column is null.
    if (column.type === 'null') return { kind: 'const', value: f.op === 'is_null' };
    return { kind: 'null', column, negate: f.op === 'not_null' };
  }
  const valueField = `${field}.value`;
  const value = (v: PlanValue) => filterValue(v, column, valueField);
  switch (f.op) {
    case 'in': {
      const values = f.value.map(value);
      // A comparison with null is never true: on an all-null column the filter keeps no row.
      return column.type === 'null' ? { kind: 'const', value: false } : { kind: 'in', column, values };
    }
    case 'between': {
      const [low, high] = [value(f.value[0]), value(f.value[1])];
      return column.type === 'null'
        ? { kind: 'const', value: false }
        : { kind: 'between', column, low, high };
    }
    default: {
      // Narrowed by op above; zod's enum discriminant does not narrow `f` itself.
      const cmp = f as { op: ComparisonOp; value: PlanValue };
      const v = value(cmp.value);
      return column.type === 'null'
        ? { kind: 'const', value: false }
        : { kind: 'compare', column, op: cmp.op, value: v };
    }
  }
}

/** A filter value checked against its column's type, temporal values in their engine form. */
function filterValue(v: PlanValue, column: PlanColumn, field: string): PlanValue {
  const t = column.type;
  if (t === 'null') return v; // any value may meet an all-null column: the filter folds away
  const ok =
    typeof v === 'number'
      ? NUMERIC.has(t)
      : typeof v === 'boolean'
        ? t === 'boolean'
        : t === 'string' || t === 'date' || t === 'timestamp';
  if (!ok) {
    throw new QuarryError(
      'QUARRY_ERR_SPEC_TYPE',
      `${field}: a ${typeof v} cannot be compared with column "${column.name}" of type ${t}`,
      { field },
    );
  }
  return t === 'date' || t === 'timestamp' ? temporalValue(v as string, t, field) : v;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?Z?$/;

/** A date or timestamp filter value in the one form both engines read. */
function temporalValue(value: string, type: 'date' | 'timestamp', field: string): string {
  const match = (type === 'date' ? DATE : TIMESTAMP).exec(value);
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
