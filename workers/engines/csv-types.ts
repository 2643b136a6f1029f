// A CSV's column types, by one rule both engines apply (docs/AGGREGATION.md, "Files"): every
// field is read as text (RFC 4180: comma-separated, `"` quotes, a header row; an empty field is
// null, a quoted empty one the empty string), then a column is typed by what all of its non-null
// values are. Each engine evaluates the same patterns (DuckDB's RE2 and Polars' regex crate read
// them alike) and checks with its own exact parser; which type wins is decided here, once. The
// engines' own inference disagreed on dates, leading zeros, spaces, `inf`, integers past int64
// and the delimiter.
//
// Two passes, so a file is not tested five ways per value: every kind over the first rows (a
// sample), then over the whole file only the kinds each column still may be (a kind one sampled
// value fails cannot hold for the file). A column of text needs no second pass, and a file the
// sample covered whole needs none at all. The sample may be tested here, in JS (hasKind: the same
// patterns, and the checks the engines' parses make), where building an engine's expressions
// costs more than testing a few thousand values.

import type { ColumnType } from '../../shared/datasets.ts';
import { INSTANT_PATTERN, isInstant } from '../../shared/datasets.ts';

/** JSON's integer grammar (no sign, leading zero or space): `007` and `+5` stay text. */
const INTEGER_PATTERN = '^-?(0|[1-9][0-9]*)$';
/** JSON's number grammar: `1e3` and `2.5`; not `inf`, `NaN`, `.5` or `1,5`. */
const NUMBER_PATTERN = '^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?$';
const BOOLEAN_PATTERN = '^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$';
/** A calendar date as INSTANT_PATTERN writes its day: years 0001-9999. */
const DATE_PATTERN =
  '^([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$';

/**
 * What a column's values may be, in the order a type is chosen. Each kind is a pattern, and for
 * all but `boolean` a parse by the engine that must succeed too: `integer` fits int64, `number`
 * is a finite double, `date` a real date, `instant` an RFC 3339 instant naming a real time.
 */
export const CSV_KINDS = ['integer', 'number', 'boolean', 'date', 'instant'] as const;
export type CsvKind = (typeof CSV_KINDS)[number];

export const CSV_PATTERNS: Record<CsvKind, string> = {
  integer: INTEGER_PATTERN,
  number: NUMBER_PATTERN,
  boolean: BOOLEAN_PATTERN,
  date: DATE_PATTERN,
  instant: INSTANT_PATTERN,
};

const TYPE_OF: Record<CsvKind, ColumnType> = {
  integer: 'integer',
  number: 'float',
  boolean: 'boolean',
  date: 'date',
  instant: 'timestamp',
};

/** The first pass's rows, when an engine tests them. */
export const CSV_SAMPLE_ROWS = 100_000;
/** The first pass's rows, when they are tested here (hasKind). */
export const CSV_TEXT_SAMPLE_ROWS = 10_000;

const PATTERN_RE = Object.fromEntries(CSV_KINDS.map((k) => [k, new RegExp(CSV_PATTERNS[k])])) as Record<
  CsvKind,
  RegExp
>;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** Whether the non-null text `v` has `kind`, by the rule (CSV_KINDS) as the engines test it. */
export function hasKind(v: string, kind: CsvKind): boolean {
  if (!PATTERN_RE[kind].test(v)) return false;
  switch (kind) {
    case 'integer': {
      const n = BigInt(v);
      return n >= INT64_MIN && n <= INT64_MAX;
    }
    case 'number':
      return Number.isFinite(Number(v));
    case 'boolean':
      return true;
    case 'date':
      return isInstant(`${v}T00:00:00Z`);
    case 'instant':
      return isInstant(v);
  }
}

/** `checks` measured here over each column's text values (`values[k]` for checks[k]). */
export function measureText(
  checks: readonly CsvCheck[],
  values: readonly (readonly (string | null)[])[],
): CsvMeasure[] {
  return checks.map((check, k) => {
    const present = values[k]!.filter((v): v is string => v !== null);
    return {
      values: present.length > 0,
      kinds: check.kinds.map((kind) => present.every((v) => hasKind(v, kind))),
    };
  });
}

/** One column's tests: the kinds to check, each true when every non-null value has it. */
export interface CsvCheck {
  readonly name: string;
  readonly kinds: readonly CsvKind[];
}

/** What an engine measured for a CsvCheck: whether any value is non-null, and each kind's test. */
export interface CsvMeasure {
  readonly values: boolean;
  readonly kinds: readonly boolean[];
}

/** The first pass: every kind, for each column. */
export function sampleChecks(names: readonly string[]): CsvCheck[] {
  return names.map((name) => ({ name, kinds: CSV_KINDS }));
}

/**
 * The second pass's checks from the first's results, in `names` order: the kinds each column
 * passed on the sample (all of them when the sample held no value). Columns left with no kind
 * are text and need no second pass.
 */
export function fileChecks(sample: readonly CsvCheck[], measured: readonly CsvMeasure[]): CsvCheck[] {
  return sample.map((check, k) => ({
    name: check.name,
    kinds: check.kinds.filter((_, j) => measured[k]!.kinds[j]),
  }));
}

/**
 * Each column's type from the second pass: the first kind all its non-null values have; text
 * when it has none, or no values at all. `measured` is aligned with the checks that have kinds.
 */
export function csvTypes(checks: readonly CsvCheck[], measured: readonly CsvMeasure[]): ColumnType[] {
  let next = 0;
  return checks.map((check) => {
    if (check.kinds.length === 0) return 'string';
    const m = measured[next++]!;
    if (!m.values) return 'string';
    const k = check.kinds.findIndex((_, j) => m.kinds[j]);
    return k < 0 ? 'string' : TYPE_OF[check.kinds[k]!];
  });
}
