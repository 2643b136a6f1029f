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
  type TextOp,
} from './aggregation-ops.ts';
import type { ColumnInfo, ColumnType } from './datasets.ts';
import { QuarryError } from './errors.ts';
import type { Bucket, GroupKey } from './group-keys.ts';

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
  /** A condition whose value is known without the data: true, false or unknown (null). */
  | { readonly kind: 'const'; readonly value: boolean | null }
  | { readonly kind: 'and' | 'or'; readonly items: readonly PlanPredicate[] }
  | { readonly kind: 'not'; readonly item: PlanPredicate }
  | {
      readonly kind: 'text';
      readonly column: PlanColumn;
      readonly op: TextOp;
      readonly value: string;
      readonly ignoreCase: boolean;
    }
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

/** The ops engines compute: `median` is planned as the linear quantile at 0.5. */
export type PlanOp = Exclude<MetricOp, 'median'>;

export interface PlanMetric {
  readonly op: PlanOp;
  /** Absent for a bare `count` (rows) and for `ratio`. */
  readonly column?: PlanColumn;
  readonly q?: number;
  readonly method?: QuantileMethod;
  /** stddev and variance: divide by n (population) instead of n − 1 (sample). */
  readonly population?: boolean;
  /** The rows this metric sees, beside the spec's filters; absent when all of them. */
  readonly filter?: PlanPredicate;
  /** ratio: the positions, among the outputs, of its dividend and divisor (never ratios). */
  readonly of?: number;
  readonly to?: number;
}

/** A group key, resolved: a column as it is, a time bucket of it, or a numeric bin. */
export type PlanGroup =
  | { readonly kind: 'column'; readonly column: PlanColumn; readonly output: string }
  | {
      readonly kind: 'bucket';
      readonly column: PlanColumn;
      readonly unit: Bucket;
      readonly tz: string;
      readonly output: string;
    }
  | {
      readonly kind: 'bin';
      readonly column: PlanColumn;
      readonly width: number;
      /** An integer column binned by an integer width: computed exactly in integers. */
      readonly integer: boolean;
      readonly output: string;
    };

export interface PlanSortKey {
  /** Position among the outputs. */
  readonly index: number;
  readonly descending: boolean;
}

export interface AggregationPlan {
  /** Every source column the plan reads, each once, in the dataset's order. */
  readonly columns: readonly PlanColumn[];
  /** Which source rows are kept: a tree, or the constant true or false (never unknown). */
  readonly where: PlanPredicate;
  /** Which output rows are kept, over output columns (named by position, see PlanColumn.name). */
  readonly having: PlanPredicate;
  /** The group keys: outputs 0 … groups.length − 1. */
  readonly groups: readonly PlanGroup[];
  /** The metrics: the outputs after the group keys, in order. */
  readonly metrics: readonly PlanMetric[];
  /** Every output column, named and typed, in result order. */
  readonly outputs: readonly ResultColumn[];
  /** orderBy, then every group key ascending as a tie-breaker (each output at most once); nulls last. */
  readonly sort: readonly PlanSortKey[];
  /** `top`: keep the first `limit` rows (in sort order) of each partition by these outputs. */
  readonly top?: { readonly per: readonly number[]; readonly limit: number };
  /** Rows skipped (in sort order, after having and top) before the fetched ones. */
  readonly offset: number;
  /** Rows to fetch from the engine: the limit, or one more than maxRows to detect an oversized result. */
  readonly fetch: number;
  readonly maxRows: number;
}

const NUMERIC = new Set<ColumnType>(['integer', 'float', 'null']);

/**
 * Resolves a normalized spec over a dataset's columns. Throws QuarryError naming the field: a
 * missing column (QUARRY_ERR_SPEC_UNKNOWN_COLUMN), a metric or filter value that does not fit its
 * column, or a column the engine read as a type with no kind here (`unusable`: name → that type;
 * QUARRY_ERR_SPEC_TYPE).
 */
export function buildPlan(
  spec: Spec,
  columns: readonly ColumnInfo[],
  maxRows: number,
  unusable: ReadonlyMap<string, string> = new Map(),
): AggregationPlan {
  const types = new Map(columns.map((c) => [c.name, c.type]));
  const used = new Set<string>();
  const need = (name: string, field: string): PlanColumn => {
    const type = types.get(name);
    const other = type === undefined ? unusable.get(name) : undefined;
    if (other !== undefined) {
      throw new QuarryError(
        'QUARRY_ERR_SPEC_TYPE',
        `${field}: column "${name}" is of type ${other}, which aggregations cannot use (docs/AGGREGATION.md, "Files")`,
        { field },
      );
    }
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

  const where = condition(spec.filters.map((f, i) => resolveFilter(f, `filters.${i}`, need)));
  const groups = spec.groupBy.map((g, i) => resolveGroup(g, `groupBy.${i}`, need));
  const position = new Map<string, number>([
    ...groups.map((g, i): [string, number] => [g.output, i]),
    ...spec.metrics.map((m, i): [string, number] => [m.as, groups.length + i]),
  ]);
  const metrics = spec.metrics.map((m, i) => resolveMetric(m, `metrics.${i}`, need, position));
  const outputs: ResultColumn[] = [
    ...groups.map((g) => ({ name: g.output, type: groupType(g) })),
    ...spec.metrics.map((m, i) => ({ name: m.as, type: metricType(m, metrics[i]!) })),
  ];
  metrics.forEach((m, i) => {
    for (const side of ['of', 'to'] as const) {
      const at = m[side];
      if (at !== undefined && !NUMERIC.has(outputs[at]!.type)) {
        const field = `metrics.${i}.${side}`;
        throw new QuarryError(
          'QUARRY_ERR_SPEC_TYPE',
          `${field}: a ratio divides numbers; "${outputs[at]!.name}" is ${outputs[at]!.type}`,
          { field },
        );
      }
    }
  });
  const outputTypes = new Map(outputs.map((o) => [o.name, o.type]));
  const output = (name: string, field: string): PlanColumn => {
    const type = outputTypes.get(name);
    if (type === undefined) {
      throw new QuarryError('QUARRY_ERR_VALIDATION', `${field}: "${name}" is not an output column`, {
        field,
      });
    }
    return { name, type };
  };
  const having = condition((spec.having ?? []).map((f, i) => resolveFilter(f, `having.${i}`, output)));

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
    having,
    groups,
    metrics,
    outputs,
    sort,
    ...(spec.top === undefined
      ? {}
      : { top: { per: spec.top.per.map((name) => position.get(name)!), limit: spec.top.limit } }),
    offset: spec.offset ?? 0,
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

const TEMPORAL = new Set<ColumnType>(['timestamp', 'date', 'null']);

function resolveGroup(
  g: GroupKey,
  field: string,
  need: (name: string, field: string) => PlanColumn,
): PlanGroup {
  if (typeof g === 'string') return { kind: 'column', column: need(g, field), output: g };
  const column = need(g.column, `${field}.column`);
  if ('bucket' in g) {
    if (!TEMPORAL.has(column.type)) {
      throw new QuarryError(
        'QUARRY_ERR_SPEC_TYPE',
        `${field}.column: a time bucket needs a timestamp or date column; "${column.name}" is ${column.type}`,
        { field: `${field}.column` },
      );
    }
    return { kind: 'bucket', column, unit: g.bucket, tz: g.tz, output: g.as };
  }
  if (!NUMERIC.has(column.type)) {
    throw new QuarryError(
      'QUARRY_ERR_SPEC_TYPE',
      `${field}.column: a bin needs a numeric column; "${column.name}" is ${column.type}`,
      { field: `${field}.column` },
    );
  }
  const integer = column.type === 'integer' && Number.isSafeInteger(g.bin);
  return { kind: 'bin', column, width: g.bin, integer, output: g.as };
}

function groupType(g: PlanGroup): ColumnType {
  if (g.kind === 'column' || g.column.type === 'null') return g.column.type;
  if (g.kind === 'bucket') return 'timestamp';
  return g.integer ? 'integer' : 'float';
}

function metricType(m: Metric, planned: PlanMetric): ColumnType {
  const def: MetricOpDef = METRIC_OPS[m.op];
  return def.resultType(m, planned.column?.type ?? 'integer');
}

function resolveMetric(
  m: Metric,
  field: string,
  need: (name: string, field: string) => PlanColumn,
  position: ReadonlyMap<string, number>,
): PlanMetric {
  const def: MetricOpDef = METRIC_OPS[m.op];
  const column = m.column === undefined ? undefined : need(m.column, `${field}.column`);
  if (column !== undefined && def.column === 'numeric' && !NUMERIC.has(column.type)) {
    throw new QuarryError(
      'QUARRY_ERR_SPEC_TYPE',
      `${field}.column: ${m.op} needs a numeric column; "${column.name}" is ${column.type}`,
      { field: `${field}.column` },
    );
  }
  const filter =
    m.filter === undefined ? undefined : condition([resolveFilter(m.filter, `${field}.filter`, need)]);
  const rows = filter === undefined || (filter.kind === 'const' && filter.value === true) ? {} : { filter };
  if (m.op === 'ratio') return { op: 'ratio', of: position.get(m.of!)!, to: position.get(m.to!)! };
  if (m.op === 'median') return { op: 'quantile', column: column!, q: 0.5, method: 'linear', ...rows };
  return {
    op: m.op,
    ...(column === undefined ? {} : { column }),
    ...(m.q === undefined ? {} : { q: m.q }),
    ...(m.method === undefined ? {} : { method: m.method }),
    ...(m.op === 'stddev' || m.op === 'variance' ? { population: m.population === true } : {}),
    ...rows,
  };
}

/**
 * A kept-rows condition: all of `items`. A row is kept only when it is true, so at this level
 * unknown is as good as false: an unknown item decides an `and`, and drops out of an `or`.
 */
function condition(items: PlanPredicate[]): PlanPredicate {
  const all = combine('and', items);
  const unknown = (p: PlanPredicate) => p.kind === 'const' && p.value === null;
  if (unknown(all) || (all.kind === 'and' && all.items.some(unknown))) return { kind: 'const', value: false };
  if (all.kind === 'or' && all.items.some(unknown))
    return combine(
      'or',
      all.items.filter((p) => !unknown(p)),
    );
  return all;
}

/**
 * `and` or `or` of items in SQL's three-valued logic, constants folded: false decides an `and`
 * (true an `or`), true drops out of it (false out of an `or`), unknown stays as an item.
 */
function combine(kind: 'and' | 'or', items: PlanPredicate[]): PlanPredicate {
  const decides = kind === 'or';
  const kept: PlanPredicate[] = [];
  let unknown = false;
  for (const item of items) {
    if (item.kind === 'const') {
      if (item.value === decides) return item;
      if (item.value === null) unknown = true;
      continue;
    }
    if (item.kind === kind) kept.push(...item.items);
    else kept.push(item);
  }
  if (unknown) {
    if (kept.length === 0) return { kind: 'const', value: null };
    kept.push({ kind: 'const', value: null });
  }
  if (kept.length === 0) return { kind: 'const', value: !decides };
  return kept.length === 1 ? kept[0]! : { kind, items: kept };
}

function negate(item: PlanPredicate): PlanPredicate {
  if (item.kind === 'const') return { kind: 'const', value: item.value === null ? null : !item.value };
  if (item.kind === 'not') return item.item;
  return { kind: 'not', item };
}

/** A comparison with null is unknown: on an all-null column a value condition is unknown. */
const UNKNOWN: PlanPredicate = { kind: 'const', value: null };

function resolveFilter(
  f: Filter,
  field: string,
  need: (name: string, field: string) => PlanColumn,
): PlanPredicate {
  if ('and' in f)
    return combine(
      'and',
      f.and.map((g, i) => resolveFilter(g, `${field}.and.${i}`, need)),
    );
  if ('or' in f)
    return combine(
      'or',
      f.or.map((g, i) => resolveFilter(g, `${field}.or.${i}`, need)),
    );
  if ('not' in f) return negate(resolveFilter(f.not, `${field}.not`, need));
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
      return column.type === 'null' ? UNKNOWN : { kind: 'in', column, values };
    }
    case 'between': {
      const [low, high] = [value(f.value[0]), value(f.value[1])];
      return column.type === 'null' ? UNKNOWN : { kind: 'between', column, low, high };
    }
    case 'contains':
    case 'starts_with':
    case 'ends_with': {
      if (column.type === 'null') return UNKNOWN;
      if (column.type !== 'string') {
        throw new QuarryError(
          'QUARRY_ERR_SPEC_TYPE',
          `${field}.op: ${f.op} needs a string column; "${column.name}" is ${column.type}`,
          { field: `${field}.op` },
        );
      }
      return { kind: 'text', column, op: f.op, value: f.value, ignoreCase: f.ignoreCase };
    }
    default: {
      // Narrowed by op above; the null ops' shared member does not narrow `f` itself.
      const cmp = f as { op: ComparisonOp; value: PlanValue };
      const v = value(cmp.value);
      return column.type === 'null' ? UNKNOWN : { kind: 'compare', column, op: cmp.op, value: v };
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
const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?([Zz]|[+-]\d{2}:\d{2})?$/;
const MS_PER_MINUTE = 60_000;

/**
 * A date or timestamp filter value in the one form both engines read: `YYYY-MM-DD`, or the UTC
 * instant as `YYYY-MM-DDTHH:MM:SS.ffffff` (an offset is applied; no offset or `Z` is UTC).
 */
function temporalValue(value: string, type: 'date' | 'timestamp', field: string): string {
  const match = (type === 'date' ? DATE : TIMESTAMP).exec(value);
  const [, y, mo, d, h = '00', mi = '00', s = '00', frac = '', zone = 'Z'] = match ?? [];
  const local = new Date(0);
  // setUTCFullYear, unlike Date.UTC, reads years 0-99 as themselves.
  local.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  local.setUTCHours(Number(h), Number(mi), Number(s));
  const valid =
    match !== null &&
    !Number.isNaN(local.getTime()) &&
    local.getUTCDate() === Number(d) &&
    local.getUTCHours() === Number(h) &&
    local.getUTCMinutes() === Number(mi) &&
    local.getUTCSeconds() === Number(s) &&
    (zone.length === 1 || (Number(zone.slice(1, 3)) < 24 && Number(zone.slice(4, 6)) < 60));
  const offsetMinutes =
    zone.length === 1
      ? 0
      : (zone[0] === '-' ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  const utc = valid ? new Date(local.getTime() - offsetMinutes * MS_PER_MINUTE).toISOString() : '';
  if (!/^\d{4}-/.test(utc)) {
    const form = type === 'date' ? 'YYYY-MM-DD' : 'YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z|±HH:MM]';
    throw new QuarryError(
      'QUARRY_ERR_SPEC_TYPE',
      `${field}: ${JSON.stringify(value)} is not a ${type} (${form})`,
      {
        field,
      },
    );
  }
  return type === 'date' ? `${y}-${mo}-${d}` : `${utc.slice(0, 19)}.${frac.padEnd(6, '0')}`;
}
