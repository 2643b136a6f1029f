// The JS engine's columns and conditions: inline records read into one array per used column
// (timestamps as epoch milliseconds), values compared as docs/AGGREGATION.md orders them, and the
// plan's predicates compiled to functions of a row index in SQL's three-valued logic.
import type { ColumnType } from '../../shared/datasets.ts';
import { QuarryError } from '../../shared/errors.ts';
import { compareCodePoints } from '../../shared/hashing.ts';
import type { PlanColumn, PlanPredicate, PlanValue } from '../../shared/plan.ts';

/** A column's values: numbers, strings, booleans (timestamps as epoch ms), null. */
export type Values = readonly (string | number | boolean | null)[];
type Value = string | number | boolean;
/** A predicate over row `i`: true, false, or unknown (null). */
export type RowTest = (i: number) => boolean | null;

const INSTANT =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?(?:Z|([+-])(\d{2}):(\d{2}))$/;

/** Milliseconds of the UTC calendar date (years 0-99 as themselves, unlike Date.UTC). */
export function utcDay(year: number, month: number, day: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month, day);
  return d.getTime();
}

/** An inline RFC 3339 instant (shared/datasets.ts isInstant) as epoch ms; undefined if not one. */
export function instantMs(s: string): number | undefined {
  const m = INSTANT.exec(s);
  if (m === null) return undefined;
  const frac = m[7] === undefined ? 0 : Number(m[7].padEnd(3, '0'));
  const offset = m[8] === undefined ? 0 : (m[8] === '-' ? -1 : 1) * (Number(m[9]) * 60 + Number(m[10]));
  const ms =
    utcDay(Number(m[1]), Number(m[2]) - 1, Number(m[3])) +
    ((Number(m[4]) * 60 + Number(m[5])) * 60 + Number(m[6])) * 1000 +
    frac -
    offset * 60_000;
  return Number.isNaN(ms) ? undefined : ms;
}

const JS_TYPES: Partial<Record<ColumnType, string>> = {
  integer: 'number',
  float: 'number',
  string: 'string',
  boolean: 'boolean',
};

/** One array per column, from parsed records; a value that does not fit its column is refused. */
export function readColumn(records: readonly Record<string, unknown>[], column: PlanColumn): Values {
  const { name, type } = column;
  const out: (string | number | boolean | null)[] = new Array(records.length);
  const want = JS_TYPES[type];
  for (let i = 0; i < records.length; i++) {
    const record = records[i]!;
    // hasOwn: a record without "constructor" must read null, not Object's constructor.
    const v = Object.hasOwn(record, name) ? record[name] : null;
    if (v === null || v === undefined) {
      out[i] = null;
      continue;
    }
    if (type === 'timestamp' && typeof v === 'string') {
      const ms = instantMs(v);
      if (ms !== undefined) {
        out[i] = ms;
        continue;
      }
    } else if (typeof v === want) {
      out[i] = v as string | number | boolean;
      continue;
    }
    throw new QuarryError(
      'QUARRY_ERR_DATASET_UNREADABLE',
      `dataset: record ${i} has ${JSON.stringify(v)} in column "${name}" of type ${type}`,
      { field: 'dataset.records' },
    );
  }
  return out;
}

/** Order of two non-null values of one type: numbers (and instants), code points, false < true. */
export function compareValues(a: string | number | boolean, b: string | number | boolean): number {
  if (typeof a === 'string') return compareCodePoints(a, b as string);
  const x = Number(a);
  const y = Number(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * A plan value as a comparator of column values: `cmp(x)` < 0 when x is below it. Timestamp
 * values come as UTC `YYYY-MM-DDTHH:MM:SS.ffffff`: microseconds the millisecond columns lack are
 * compared exactly (x below the value when x is its whole millisecond and the rest is not 0).
 */
function comparator(value: PlanValue, type: ColumnType): (x: string | number | boolean) => number {
  if (type === 'timestamp' && typeof value === 'string') {
    const ms = instantMs(`${value.slice(0, 23)}Z`)!;
    const rest = Number(value.slice(23, 26) || '0');
    return (x) => {
      const t = x as number;
      return t < ms ? -1 : t > ms ? 1 : rest === 0 ? 0 : -1;
    };
  }
  return (x) => compareValues(x, value);
}

/** Compiles a predicate over columns found by name (source columns, or outputs for having). */
export function compilePredicate(p: PlanPredicate, column: (name: string) => Values): RowTest {
  switch (p.kind) {
    case 'const': {
      const v = p.value;
      return () => v;
    }
    case 'and':
    case 'or': {
      const items = p.items.map((item) => compilePredicate(item, column));
      const decides = p.kind === 'or';
      return (i) => {
        let unknown = false;
        for (const item of items) {
          const v = item(i);
          if (v === decides) return decides;
          if (v === null) unknown = true;
        }
        return unknown ? null : !decides;
      };
    }
    case 'not': {
      const item = compilePredicate(p.item, column);
      return (i) => {
        const v = item(i);
        return v === null ? null : !v;
      };
    }
    case 'null': {
      const values = column(p.column.name);
      const negate = p.negate;
      return (i) => (values[i] === null) !== negate;
    }
    case 'text': {
      const values = column(p.column.name);
      const match = textMatch(p.op, p.value, p.ignoreCase);
      return (i) => {
        const x = values[i];
        return x === null ? null : match(x as string);
      };
    }
    case 'in': {
      const values = column(p.column.name);
      const cmps = p.values.map((v) => comparator(v, p.column.type));
      return (i) => {
        const x = values[i] as Value | null;
        if (x === null) return null;
        for (const cmp of cmps) if (cmp(x) === 0) return true;
        return false;
      };
    }
    case 'between': {
      const values = column(p.column.name);
      const low = comparator(p.low, p.column.type);
      const high = comparator(p.high, p.column.type);
      return (i) => {
        const x = values[i] as Value | null;
        return x === null ? null : low(x) >= 0 && high(x) <= 0;
      };
    }
    case 'compare': {
      const values = column(p.column.name);
      const cmp = comparator(p.value, p.column.type);
      const holds = HOLDS[p.op];
      return (i) => {
        const x = values[i] as Value | null;
        return x === null ? null : holds(cmp(x));
      };
    }
  }
}

const HOLDS: Record<'eq' | 'ne' | 'gt' | 'gte' | 'lt' | 'lte', (c: number) => boolean> = {
  eq: (c) => c === 0,
  ne: (c) => c !== 0,
  gt: (c) => c > 0,
  gte: (c) => c >= 0,
  lt: (c) => c < 0,
  lte: (c) => c <= 0,
};

/** Regex syntax characters; escaping them (and `/`) is valid under the `u` flag. */
const META = /[\\^$.*+?()[\]{}|/]/g;

/**
 * `contains`, `starts_with`, `ends_with`. Case-insensitive: a regex with `iu`, which matches under
 * Unicode simple case folding, as DuckDB's RE2 and Polars' regex do under `(?i)`.
 */
function textMatch(op: string, value: string, ignoreCase: boolean): (x: string) => boolean {
  if (ignoreCase) {
    const literal = value.replace(META, '\\$&');
    const source = op === 'contains' ? literal : op === 'starts_with' ? `^${literal}` : `${literal}$`;
    const re = new RegExp(source, 'iu');
    return (x) => re.test(x);
  }
  if (op === 'contains') return (x) => x.includes(value);
  return op === 'starts_with' ? (x) => x.startsWith(value) : (x) => x.endsWith(value);
}
