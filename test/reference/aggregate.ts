// The reference aggregation: a plain TypeScript reading of docs/AGGREGATION.md, written for
// obviousness, not speed. Tests hold DuckDB and Polars to it; when an engine and this file
// disagree, the document decides which one is wrong.
import type { AggregationSpec, Filter, FilterLeaf, Metric, ResultColumn } from '../../shared/aggregation.ts';
import type { ColumnInfo, Scalar } from '../../shared/datasets.ts';
import type { GroupKey } from '../../shared/group-keys.ts';
import { compareCodePoints } from '../../shared/hashing.ts';

/** The normalized spec; the dataset reference is not needed (the records are given). */
export type ReferenceSpec = Omit<AggregationSpec, 'dataset'> & { readonly dataset?: unknown };

export interface ReferenceResult {
  readonly columns: ResultColumn[];
  readonly rows: Record<string, unknown>[];
  readonly totalRows: number;
}

type Row = Readonly<Record<string, Scalar | undefined>>;

export function referenceAggregate(
  spec: ReferenceSpec,
  records: readonly Row[],
  columns: readonly ColumnInfo[],
): ReferenceResult {
  const resultColumns = referenceColumns(spec, columns);
  // Timestamps are compared, grouped and ordered as instants (ms since the epoch), and written
  // out only at the end: bucket starts in their zone, other timestamps in UTC.
  const instantColumns = new Set(columns.filter((c) => c.type === 'timestamp').map((c) => c.name));
  const read = (record: Row, column: string): Scalar => {
    const v = cell(record, column);
    return v !== null && instantColumns.has(column) ? Date.parse(String(v)) : v;
  };
  const outputInstants = new Set(resultColumns.filter((c) => c.type === 'timestamp').map((c) => c.name));

  const kept = records.filter((record) =>
    spec.filters.every((f) => truth(f, (c) => read(record, c), instantColumns) === true),
  );

  // Groups in order of first appearance; the final sort fixes the output order.
  const names = spec.groupBy.map(keyName);
  const groups = new Map<string, { key: Scalar[]; rows: Row[] }>();
  for (const record of kept) {
    const key = spec.groupBy.map((g) => keyValue(g, (c) => read(record, c)));
    const id = groupId(key);
    let group = groups.get(id);
    if (group === undefined) {
      group = { key, rows: [] };
      groups.set(id, group);
    }
    group.rows.push(record);
  }
  // Without groupBy there is exactly one group, even over no rows (SQL aggregates without GROUP BY).
  if (spec.groupBy.length === 0 && groups.size === 0) groups.set('[]', { key: [], rows: [] });

  const rows: Record<string, unknown>[] = [];
  for (const { key, rows: groupRows } of groups.values()) {
    const row: Record<string, unknown> = {};
    names.forEach((name, i) => {
      setOwn(row, name, key[i]);
    });
    for (const metric of spec.metrics) {
      if (metric.op !== 'ratio')
        setOwn(row, metric.as, computeMetric(metric, groupRows, read, instantColumns));
    }
    // Ratios divide other metrics of the row; the row's keys stay in output order.
    for (const metric of spec.metrics)
      if (metric.op === 'ratio') setOwn(row, metric.as, ratioOf(row, metric));
    const ordered: Record<string, unknown> = {};
    for (const name of [...names, ...spec.metrics.map((m) => m.as)]) setOwn(ordered, name, row[name]);
    rows.push(ordered);
  }

  // having: conditions on the output row, kept only when all are true.
  const having = spec.having ?? [];
  const shown = rows.filter((row) =>
    having.every((f) => truth(f, (c) => row[c] as Scalar, outputInstants) === true),
  );

  const keys = [...spec.orderBy, ...names.map((column) => ({ column, direction: 'asc' as const }))];
  shown.sort((a, b) => {
    for (const { column, direction } of keys) {
      const c = compareNullsLast(a[column] as Scalar, b[column] as Scalar, direction);
      if (c !== 0) return c;
    }
    return 0;
  });
  // top: the first `limit` rows of each partition by the `per` outputs, in this order.
  const seen = new Map<string, number>();
  const topped =
    spec.top === undefined
      ? shown
      : shown.filter((row) => {
          const id = groupId(spec.top!.per.map((name) => row[name] as Scalar));
          const n = (seen.get(id) ?? 0) + 1;
          seen.set(id, n);
          return n <= spec.top!.limit;
        });
  // offset and limit page what is left; totalRows counts it all.
  const offset = spec.offset ?? 0;
  const page = topped.slice(offset, spec.limit === undefined ? undefined : offset + spec.limit);

  const zones = new Map(
    spec.groupBy.flatMap((g) => (typeof g !== 'string' && 'tz' in g ? [[g.as, g.tz]] : [])),
  );
  // A number JSON cannot write (an overflow past ±1.8e308) fails the job, naming its output.
  for (const row of page) {
    for (const [name, v] of Object.entries(row)) {
      if (typeof v === 'number' && !Number.isFinite(v))
        throw Object.assign(new Error(`${name} is ${v}`), { code: 'QUARRY_ERR_RESULT_OVERFLOW' });
    }
  }
  for (const row of page) {
    for (const name of outputInstants) {
      const v = row[name];
      if (typeof v !== 'number') continue;
      const zone = zones.get(name);
      row[name] = zone === undefined ? new Date(v).toISOString() : rfc3339(v, zone);
    }
  }
  return { columns: resultColumns, rows: page, totalRows: topped.length };
}

/** The result types of docs/AGGREGATION.md's table, read independently of the plan. */
function referenceColumns(spec: ReferenceSpec, columns: readonly ColumnInfo[]): ResultColumn[] {
  const typeOf = (name: string) => columns.find((c) => c.name === name)?.type ?? 'null';
  const metricType = (m: Metric): ResultColumn['type'] => {
    if (m.op === 'count' || m.op === 'count_distinct') return 'integer';
    const t = typeOf(m.column!);
    if (m.op === 'avg' || m.op === 'median' || m.op === 'stddev' || m.op === 'variance' || m.op === 'ratio') {
      return 'float';
    }
    if (m.op === 'min' || m.op === 'max') return t;
    if (m.op === 'quantile' && m.method === 'linear') return 'float';
    return t === 'integer' ? 'integer' : 'float'; // sum, nearest_rank quantile
  };
  const keyType = (g: GroupKey): ResultColumn['type'] => {
    if (typeof g === 'string') return typeOf(g);
    const t = typeOf(g.column);
    if (t === 'null') return 'null';
    if ('bucket' in g) return 'timestamp';
    return t === 'integer' && Number.isSafeInteger(g.bin) ? 'integer' : 'float';
  };
  return [
    ...spec.groupBy.map((g) => ({ name: keyName(g), type: keyType(g) })),
    ...spec.metrics.map((m) => ({ name: m.as, type: metricType(m) })),
  ];
}

function keyName(g: GroupKey): string {
  return typeof g === 'string' ? g : g.as;
}

/**
 * A row's value of a group key. A bin: floor(x / width) · width. A bucket: its start instant,
 * found from the wall time of the row's instant in the zone (docs/AGGREGATION.md).
 */
function keyValue(g: GroupKey, read: (column: string) => Scalar): Scalar {
  if (typeof g === 'string') return read(g);
  const x = read(g.column);
  if (x === null) return null;
  if ('bin' in g) {
    const v = x as number;
    if (Number.isSafeInteger(v) && Number.isSafeInteger(g.bin)) return v - (((v % g.bin) + g.bin) % g.bin);
    return Math.floor(v / g.bin) * g.bin;
  }
  const t = x as number;
  const w = wallTime(t, g.tz);
  if (g.bucket === 'minute') return t - w.second * 1000 - w.ms;
  if (g.bucket === 'hour') return t - (w.minute * 60 + w.second) * 1000 - w.ms;
  let { year, month, day } = w;
  if (g.bucket === 'week') {
    const weekday = dayOfWeek(year, month, day); // ISO weeks start on Monday
    const monday = new Date(Date.UTC(2000, 0, 1));
    monday.setUTCFullYear(year, month - 1, day - weekday);
    [year, month, day] = [monday.getUTCFullYear(), monday.getUTCMonth() + 1, monday.getUTCDate()];
  }
  if (g.bucket === 'month' || g.bucket === 'quarter' || g.bucket === 'year') day = 1;
  if (g.bucket === 'quarter') month = Math.floor((month - 1) / 3) * 3 + 1;
  if (g.bucket === 'year') month = 1;
  return midnightIn(year, month, day, g.tz);
}

/** Monday 0 … Sunday 6. */
function dayOfWeek(year: number, month: number, day: number): number {
  const d = new Date(Date.UTC(2000, 0, 1));
  d.setUTCFullYear(year, month - 1, day);
  return (d.getUTCDay() + 6) % 7;
}

interface Wall {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  ms: number;
}

const wallFormats = new Map<string, Intl.DateTimeFormat>();

/** The wall clock of instant t in zone tz, read with Intl. */
function wallTime(t: number, tz: string): Wall {
  let f = wallFormats.get(tz);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-GB', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    wallFormats.set(tz, f);
  }
  const parts = Object.fromEntries(f.formatToParts(new Date(t)).map((p) => [p.type, Number(p.value)]));
  return {
    year: parts.year!,
    month: parts.month!,
    day: parts.day!,
    hour: parts.hour!,
    minute: parts.minute!,
    second: parts.second!,
    ms: ((t % 1000) + 1000) % 1000,
  };
}

/** The zone's offset at t, in ms: wall time read as UTC, minus t. */
function offsetAt(t: number, tz: string): number {
  const w = wallTime(t, tz);
  const d = new Date(Date.UTC(2000, 0, 1));
  d.setUTCFullYear(w.year, w.month - 1, w.day);
  d.setUTCHours(w.hour, w.minute, w.second, w.ms);
  return d.getTime() - t;
}

/**
 * The first instant of the given local day in tz: of the instants wall − offset for the offsets
 * the zone has within 14 hours either side, the earliest whose wall time is that midnight or
 * later (past a midnight DST skips, the end of the gap; of a midnight it repeats, the first).
 */
function midnightIn(year: number, month: number, day: number, tz: string): number {
  const d = new Date(Date.UTC(2000, 0, 1));
  d.setUTCFullYear(year, month - 1, day);
  const wall = d.getTime();
  let first = Number.POSITIVE_INFINITY;
  for (let h = -14; h <= 14; h += 2) {
    const t = wall - offsetAt(wall + h * 3_600_000, tz);
    if (t < first && wall - offsetAt(t, tz) <= t) first = t;
  }
  return first;
}

/** RFC 3339 in the zone: the wall time and the offset, `2024-03-10T00:00:00-08:00`. */
function rfc3339(t: number, tz: string): string {
  const w = wallTime(t, tz);
  const minutes = Math.round(offsetAt(t, tz) / 60_000);
  const two = (n: number) => String(n).padStart(2, '0');
  const sign = minutes < 0 ? '-' : '+';
  const off = `${sign}${two(Math.floor(Math.abs(minutes) / 60))}:${two(Math.abs(minutes) % 60)}`;
  return `${String(w.year).padStart(4, '0')}-${two(w.month)}-${two(w.day)}T${two(w.hour)}:${two(w.minute)}:${two(w.second)}${off}`;
}

/** A timestamp filter value (ISO 8601, an offset or Z, else UTC) as ms since the epoch. */
function instantOf(value: string): number {
  let s = value.length > 10 ? `${value.slice(0, 10)}T${value.slice(11)}` : value;
  if (/^\d{4}-\d{2}-\d{2}$/.test(s)) s += 'T00:00';
  if (!/([Zz]|[+-]\d{2}:\d{2})$/.test(s)) s += 'Z';
  return Date.parse(s);
}

/** An own property even for "__proto__", which plain assignment would turn into a prototype. */
function setOwn(row: Record<string, unknown>, name: string, value: unknown): void {
  Object.defineProperty(row, name, { value, enumerable: true, writable: true, configurable: true });
}

/** A missing key reads as null (and a key like "constructor" is not read from the prototype). */
function cell(record: Row, column: string): Scalar {
  const value = Object.hasOwn(record, column) ? record[column] : undefined;
  return value === undefined ? null : value;
}

/** JSON tells 1 from "1" and null from "null", so it identifies a tuple of scalars exactly. */
function groupId(key: readonly Scalar[]): string {
  return JSON.stringify(key);
}

/** Orders two non-null scalars of one kind: numbers numerically, strings by code point, false < true. */
export function compareValues(a: Exclude<Scalar, null>, b: Exclude<Scalar, null>): number {
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'string' && typeof b === 'string') return Math.sign(compareCodePoints(a, b));
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  throw new Error(`reference: cannot compare ${typeof a} with ${typeof b}`);
}

function compareNullsLast(a: Scalar, b: Scalar, direction: 'asc' | 'desc'): number {
  if (a === null || b === null) {
    if (a === b) return 0;
    return a === null ? 1 : -1;
  }
  const c = compareValues(a, b);
  return direction === 'asc' ? c : -c;
}

/**
 * SQL three-valued logic: a comparison with null is unknown (null); `and`, `or` and `not` follow
 * Kleene's tables; a row is kept only when its condition is true.
 */
function truth(
  filter: Filter,
  value: (column: string) => Scalar,
  instants: ReadonlySet<string> = new Set(),
): boolean | null {
  if ('and' in filter) {
    const parts = filter.and.map((f) => truth(f, value, instants));
    return parts.includes(false) ? false : parts.includes(null) ? null : true;
  }
  if ('or' in filter) {
    const parts = filter.or.map((f) => truth(f, value, instants));
    return parts.includes(true) ? true : parts.includes(null) ? null : false;
  }
  if ('not' in filter) {
    const inner = truth(filter.not, value, instants);
    return inner === null ? null : !inner;
  }
  if (instants.has(filter.column) && 'value' in filter) {
    // Timestamp values compare as instants.
    const at = (v: unknown) => instantOf(String(v));
    const leaf = {
      ...filter,
      value: Array.isArray(filter.value) ? filter.value.map(at) : at(filter.value),
    } as FilterLeaf;
    return leafTruth(leaf, value(filter.column));
  }
  return leafTruth(filter, value(filter.column));
}

function leafTruth(filter: FilterLeaf, x: Scalar): boolean | null {
  if (filter.op === 'is_null') return x === null;
  if (filter.op === 'not_null') return x !== null;
  if (x === null) return null;
  switch (filter.op) {
    case 'in':
      return filter.value.some((v) => compareValues(x, v) === 0);
    case 'between':
      return compareValues(filter.value[0], x) <= 0 && compareValues(x, filter.value[1]) <= 0;
    case 'contains':
    case 'starts_with':
    case 'ends_with':
      return textMatch(filter.op, String(x), filter.value, filter.ignoreCase);
  }
  const c = compareValues(x, filter.value);
  switch (filter.op) {
    case 'eq':
      return c === 0;
    case 'ne':
      return c !== 0;
    case 'gt':
      return c > 0;
    case 'gte':
      return c >= 0;
    case 'lt':
      return c < 0;
    case 'lte':
      return c <= 0;
  }
}

/** Without ignoreCase: code points compared exactly. With it: JavaScript's Unicode simple case folding (/iu). */
function textMatch(
  op: 'contains' | 'starts_with' | 'ends_with',
  x: string,
  value: string,
  ignoreCase: boolean,
): boolean {
  if (!ignoreCase) {
    return op === 'contains'
      ? x.includes(value)
      : op === 'starts_with'
        ? x.startsWith(value)
        : x.endsWith(value);
  }
  const literal = value.replace(/[\\^$.|?*+()[\]{}/]/g, (c) => `\\${c}`);
  const source = op === 'contains' ? literal : op === 'starts_with' ? `^${literal}` : `${literal}$`;
  return new RegExp(source, 'iu').test(x);
}

function computeMetric(
  metric: Metric,
  groupRows: readonly Row[],
  read: (record: Row, column: string) => Scalar,
  instants: ReadonlySet<string>,
): Scalar {
  // A metric's own filter: it sees the group's rows for which the filter is true.
  const own = metric.filter;
  const rows =
    own === undefined ? groupRows : groupRows.filter((r) => truth(own, (c) => read(r, c), instants) === true);
  if (metric.op === 'count' && metric.column === undefined) return rows.length;
  const column = metric.column!;
  const values = rows.map((r) => read(r, column)).filter((v): v is Exclude<Scalar, null> => v !== null);
  switch (metric.op) {
    case 'count':
      return values.length;
    case 'count_distinct':
      return new Set(values).size;
    case 'sum':
      return values.length === 0 ? null : numbers(values).reduce((s, v) => s + v, 0);
    case 'avg':
      return values.length === 0 ? null : numbers(values).reduce((s, v) => s + v, 0) / values.length;
    case 'min':
      return values.length === 0 ? null : values.reduce((m, v) => (compareValues(v, m) < 0 ? v : m));
    case 'max':
      return values.length === 0 ? null : values.reduce((m, v) => (compareValues(v, m) > 0 ? v : m));
    case 'quantile':
      return quantile(numbers(values), metric.q!, metric.method ?? 'linear');
    case 'median':
      return quantile(numbers(values), 0.5, 'linear');
    case 'variance':
      return variance(numbers(values), metric.population === true);
    case 'stddev': {
      const v = variance(numbers(values), metric.population === true);
      return v === null ? null : Math.sqrt(v);
    }
    case 'ratio':
      throw new Error('reference: a ratio is computed from the row (see ratioOf)');
  }
}

/** Σ(x − mean)² / (n − 1) for a sample (null below 2 values), / n for the population (null for none). */
function variance(x: readonly number[], population: boolean): number | null {
  const n = x.length;
  if (n === 0 || (!population && n < 2)) return null;
  const mean = x.reduce((s, v) => s + v, 0) / n;
  const squares = x.reduce((s, v) => s + (v - mean) ** 2, 0);
  return squares / (population ? n : n - 1);
}

/** of / to; null when either is null or the divisor is 0. */
function ratioOf(row: Record<string, unknown>, metric: Metric): Scalar {
  const of = row[metric.of!] as Scalar;
  const to = row[metric.to!] as Scalar;
  if (of === null || to === null || to === 0) return null;
  return Number(of) / Number(to);
}

function numbers(values: readonly Exclude<Scalar, null>[]): number[] {
  return values.map((v) => {
    if (typeof v !== 'number') throw new Error(`reference: ${JSON.stringify(v)} is not a number`);
    return v;
  });
}

/**
 * linear: h = (n-1)q, x[lo] + (h - lo)(x[lo+1] - x[lo]) with lo = floor(h).
 * nearest_rank: x[max(0, ceil(qn) - 1)], the smallest value with at least qn values at or below it.
 */
export function quantile(
  values: readonly number[],
  q: number,
  method: 'linear' | 'nearest_rank',
): number | null {
  const n = values.length;
  if (n === 0) return null;
  const x = [...values].sort((a, b) => a - b);
  if (method === 'nearest_rank') return x[Math.max(1, nearestRank(q, n)) - 1]!;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  if (lo >= n - 1) return x[n - 1]!;
  return x[lo]! + (h - lo) * (x[lo + 1]! - x[lo]!);
}

/**
 * ceil(q·n) in exact decimal arithmetic, q taken to 9 decimal places. In floating point
 * 0.1 · 30 is 3.0000000000000004, whose ceiling would pick the 4th value instead of the 3rd.
 */
export function nearestRank(q: number, n: number): number {
  const scale = 1_000_000_000n;
  const m = BigInt(Math.round(q * 1e9));
  return Number((m * BigInt(n) + scale - 1n) / scale);
}
