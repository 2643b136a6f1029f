// fast-check generators for engine parity: small inline datasets that carry the awkward cases
// (nulls, missing keys, all-null columns, duplicate group keys, unicode and control characters,
// large and negative numbers, names that need quoting or mean something to JavaScript) and valid
// specs over them (every filter op, every metric, both quantile methods, ordering, limits).
import fc from 'fast-check';
import { type AggregationSpecInput, defaultMetricName, type Filter } from '../../shared/aggregation.ts';
import type { ColumnInfo, ColumnType, Scalar } from '../../shared/datasets.ts';
import { BUCKETS, type GroupKeyInput, groupKeyName } from '../../shared/group-keys.ts';
import { compareCodePoints } from '../../shared/hashing.ts';

export type ColumnKind = 'int' | 'float' | 'string' | 'bool' | 'null' | 'timestamp';

export interface GeneratedColumn {
  readonly name: string;
  readonly kind: ColumnKind;
}

export interface GeneratedDataset {
  readonly columns: readonly GeneratedColumn[];
  readonly records: Record<string, Scalar>[];
}

export interface ParityCase {
  readonly dataset: GeneratedDataset;
  /** The spec as a client writes it, dataset included. */
  readonly spec: AggregationSpecInput;
}

const COLUMN_NAMES = ['g', 'h', 'v', 'w', 's', 'flag', 'ünï', 'a b', 'constructor', 'x"y', "it's", 'Ω'];

const intValue: fc.Arbitrary<number> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: -3, max: 3 }) }, // few distinct values: shared groups
  { weight: 2, arbitrary: fc.integer({ min: -1_000_000, max: 1_000_000 }) },
  // Large, but 40 of them still sum below 2^53.
  { weight: 1, arbitrary: fc.constantFrom(2 ** 44, -(2 ** 44), 1e12 + 1, -999_999_999_999) },
);

/**
 * Multiples of 2^-10 below 2^36: forty of them sum exactly in any order, so sums and means are
 * the same to the bit whatever order an engine adds in. The parity tests check semantics; order
 * of summation is the documented, tolerated difference.
 */
const floatValue: fc.Arbitrary<number> = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: -24, max: 24 }).map((k) => k / 8) },
  {
    weight: 2,
    arbitrary: fc
      .double({ min: -(2 ** 36), max: 2 ** 36, noNaN: true, noDefaultInfinity: true })
      .map((x) => Math.round(x * 1024) / 1024),
  },
  { weight: 1, arbitrary: fc.constantFrom(0.5, -0.25, 2 ** -10, 2 ** 35 + 0.5) },
);

const stringValue: fc.Arbitrary<string> = fc.oneof(
  // Code point order differs from UTF-16 order and from collation: 'B' < 'a' < 'é' < '\uFFFD' < '😀'.
  {
    weight: 4,
    arbitrary: fc.constantFrom('a', 'b', 'B', 'ab', '', 'é', 'z', '😀', '\uFFFD', 'a b', ' a', 'Z'),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 6 }) }, // any code point, no lone surrogates
);

/** Instants where zones change offset (2024, 2100), and week, month, quarter and year boundaries. */
const TRANSITIONS = [
  '2024-03-10T07:00:00Z', // New York springs forward
  '2024-03-10T10:00:00Z', // Los Angeles springs forward
  '2024-11-03T06:00:00Z', // New York falls back
  '2024-11-03T09:00:00Z', // Los Angeles falls back
  '2024-03-31T01:00:00Z', // London
  '2024-10-27T01:00:00Z',
  '2024-04-06T15:00:00Z', // Lord Howe: half an hour back
  '2024-10-05T15:30:00Z', // Lord Howe: half an hour forward
  '2024-12-31T23:30:00Z', // a year, a quarter, a month; 2024-12-30 is an ISO week's Monday
  '2024-03-31T22:00:00Z',
  '2024-09-08T04:00:00Z', // Santiago skips midnight
  '2024-04-07T03:00:00Z', // Santiago falls back from midnight to 23:00
  '2024-03-10T05:00:00Z', // Havana skips midnight
  '2024-11-03T05:00:00Z', // Havana falls back from 01:00 to midnight: midnight twice
  '2024-03-30T22:00:00Z', // Beirut skips midnight
  '2024-10-26T21:00:00Z', // Beirut falls back from midnight to 23:00
  '2100-03-14T07:00:00Z', // New York springs forward, past Polars' zone rules (2099)
  '2100-10-31T01:00:00Z', // London falls back, ditto
].map(Date.parse);

/** Offsets instants are written with: the instant is the same whatever the offset. */
const WRITTEN_OFFSETS = [0, 0, -480, -300, 330, 630, 825];

/** An instant near a transition, as an RFC 3339 string with some offset (sometimes milliseconds). */
const instantValue: fc.Arbitrary<string> = fc
  .tuple(
    fc.constantFrom(...TRANSITIONS),
    fc.integer({ min: -36 * 60, max: 36 * 60 }),
    fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 59_999 })),
    fc.constantFrom(...WRITTEN_OFFSETS),
  )
  .map(([base, minutes, ms, offset]) => {
    const t = base + minutes * 60_000 + ms;
    const local = new Date(t + offset * 60_000).toISOString().slice(0, ms % 1000 === 0 ? 19 : 23);
    if (offset === 0 && minutes % 2 === 0) return `${local}Z`;
    const two = (n: number) => String(n).padStart(2, '0');
    const abs = Math.abs(offset);
    return `${local}${offset < 0 ? '-' : '+'}${two(Math.floor(abs / 60))}:${two(abs % 60)}`;
  });

/**
 * Zones buckets are taken in: with DST, half-hour offsets, a half-hour DST shift, and DST changes
 * that skip or repeat midnight (Santiago, Havana, Beirut).
 */
export const BUCKET_ZONES = [
  'UTC',
  'America/New_York',
  'America/Los_Angeles',
  'Europe/London',
  'Asia/Kolkata',
  'Australia/Lord_Howe',
  'America/Santiago',
  'America/Havana',
  'Asia/Beirut',
] as const;

function valueOfKind(kind: ColumnKind): fc.Arbitrary<Scalar> {
  switch (kind) {
    case 'int':
      return intValue;
    case 'float':
      return floatValue;
    case 'string':
      return stringValue;
    case 'bool':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'timestamp':
      return instantValue;
  }
}

const MISSING = Symbol('missing');

function cell(kind: ColumnKind): fc.Arbitrary<Scalar | typeof MISSING> {
  return fc.oneof(
    { weight: 6, arbitrary: valueOfKind(kind) },
    { weight: 1, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.constant(MISSING) },
  );
}

export const datasetArb: fc.Arbitrary<GeneratedDataset> = fc
  .uniqueArray(
    fc.record({
      name: fc.constantFrom(...COLUMN_NAMES),
      kind: fc.constantFrom<ColumnKind>(
        'int',
        'int',
        'float',
        'string',
        'string',
        'bool',
        'null',
        'timestamp',
      ),
    }),
    { minLength: 1, maxLength: 5, selector: (c) => c.name },
  )
  .chain((columns) =>
    fc.array(fc.tuple(...columns.map((c) => cell(c.kind))), { maxLength: 40 }).map((rows) => {
      const records = rows.map((values) => {
        const record: Record<string, Scalar> = {};
        columns.forEach((c, i) => {
          const v = values[i];
          if (v !== MISSING && v !== undefined) record[c.name] = v;
        });
        return record;
      });
      // A column no record has would not exist at all: give it a null in the first record.
      for (const c of columns) {
        if (records.length > 0 && !records.some((r) => Object.hasOwn(r, c.name))) records[0]![c.name] = null;
      }
      return { columns, records };
    }),
  );

const DECLARED: Record<ColumnKind, ColumnType> = {
  int: 'integer',
  float: 'float',
  string: 'string',
  bool: 'boolean',
  null: 'null',
  timestamp: 'timestamp',
};

/**
 * Column types for an empty dataset, which has none of its own: as a typed empty file would
 * declare them. Non-empty datasets take theirs from prepareInlineRecords, as in production.
 */
export function declaredColumns(dataset: GeneratedDataset): ColumnInfo[] {
  return dataset.columns
    .map((c) => ({ name: c.name, type: DECLARED[c.kind] }))
    .sort((a, b) => compareCodePoints(a.name, b.name));
}

const isNumeric = (kind: ColumnKind) => kind === 'int' || kind === 'float' || kind === 'null';

/** A filter value for a column: mostly one the data holds, so filters keep some rows. */
function filterValue(
  dataset: GeneratedDataset,
  column: GeneratedColumn,
): fc.Arbitrary<string | number | boolean> {
  // checkSpecColumns lets any value meet an all-null column; numbers stand in for all of them.
  // Timestamp filter values: an instant with an offset, or without one (UTC), or a date.
  const freshInstant = fc.oneof(
    instantValue,
    instantValue.map((v) => new Date(Date.parse(v)).toISOString().slice(0, 19)),
    instantValue.map((v) => new Date(Date.parse(v)).toISOString().slice(0, 10)),
  );
  if (column.kind === 'timestamp') {
    const present = dataset.records.flatMap((r) =>
      typeof r[column.name] === 'string' ? [r[column.name] as string] : [],
    );
    return present.length === 0 ? freshInstant : fc.oneof(fc.constantFrom(...present), freshInstant);
  }
  const fresh = (column.kind === 'null' ? intValue : valueOfKind(column.kind)) as fc.Arbitrary<
    string | number | boolean
  >;
  const present = dataset.records
    .map((r) => (Object.hasOwn(r, column.name) ? r[column.name] : null))
    .filter((v): v is string | number | boolean => v !== null && v !== undefined);
  return present.length === 0 ? fresh : fc.oneof(fc.constantFrom(...present), fresh);
}

type FilterInput = Filter;

/**
 * Text values for contains/starts_with/ends_with: slices of the column's strings and strings whose
 * case folds in ways engines have got wrong (ß/ẞ, the Kelvin sign, long s, dotted and dotless i).
 */
function textValue(dataset: GeneratedDataset, column: GeneratedColumn): fc.Arbitrary<string> {
  const present = dataset.records
    .map((r) => (Object.hasOwn(r, column.name) ? r[column.name] : null))
    .filter((v): v is string => typeof v === 'string');
  const tricky = fc.constantFrom(
    'a',
    'A',
    'B',
    'b',
    'É',
    'é',
    'ß',
    'ẞ',
    'K',
    '\u212A',
    'ſ',
    'S',
    'İ',
    'ı',
    'I',
    '',
    '.',
    '*',
  );
  if (present.length === 0) return tricky;
  const slice = fc.tuple(fc.constantFrom(...present), fc.nat(), fc.nat()).map(([v, a, b]) => {
    const chars = [...v];
    const start = a % (chars.length + 1);
    return chars.slice(start, start + (b % (chars.length + 1))).join('');
  });
  return fc.oneof(
    slice,
    tricky,
    slice.map((v) => v.toUpperCase()),
  );
}

/** A condition, or and/or/not of conditions nested up to `depth` deep. */
function filterArb(dataset: GeneratedDataset, depth = 2): fc.Arbitrary<FilterInput> {
  if (depth === 0)
    return leafArb(
      dataset.columns,
      (c) => filterValue(dataset, c),
      (c) => textValue(dataset, c),
    );
  const inner = filterArb(dataset, depth - 1);
  return fc.oneof(
    { weight: 4, arbitrary: inner },
    { weight: 1, arbitrary: fc.array(inner, { minLength: 1, maxLength: 3 }).map((and) => ({ and })) },
    { weight: 1, arbitrary: fc.array(inner, { minLength: 1, maxLength: 3 }).map((or) => ({ or })) },
    { weight: 1, arbitrary: inner.map((not) => ({ not })) },
  );
}

function leafArb(
  columns: readonly GeneratedColumn[],
  valuesOf: (column: GeneratedColumn) => fc.Arbitrary<string | number | boolean>,
  textOf: (column: GeneratedColumn) => fc.Arbitrary<string>,
): fc.Arbitrary<FilterInput> {
  return fc.constantFrom(...columns).chain((column): fc.Arbitrary<FilterInput> => {
    const value = valuesOf(column);
    const text: fc.Arbitrary<FilterInput>[] =
      column.kind === 'string' || column.kind === 'null'
        ? [
            fc.record({
              column: fc.constant(column.name),
              op: fc.constantFrom('contains' as const, 'starts_with' as const, 'ends_with' as const),
              value: textOf(column),
              ignoreCase: fc.boolean(),
            }),
          ]
        : [];
    return fc.oneof(
      ...text,
      fc.record({
        column: fc.constant(column.name),
        op: fc.constantFrom(
          'eq' as const,
          'ne' as const,
          'gt' as const,
          'gte' as const,
          'lt' as const,
          'lte' as const,
        ),
        value,
      }),
      fc.record({
        column: fc.constant(column.name),
        op: fc.constant('in' as const),
        value: fc.array(value, { minLength: 1, maxLength: 4 }),
      }),
      fc.record({
        column: fc.constant(column.name),
        op: fc.constant('between' as const),
        value: fc.tuple(value, value),
      }),
      fc.record({
        column: fc.constant(column.name),
        op: fc.constantFrom('is_null' as const, 'not_null' as const),
      }),
    );
  });
}

type MetricInput = AggregationSpecInput['metrics'][number];

/**
 * Fractions whose products with small counts land on or near whole numbers in binary floating
 * point, any 9-place fraction (nearest_rank takes q to 9 places), and any double in [0, 1]
 * (subnormals included: they found a Polars rounding issue).
 */
const quantileQ = fc.oneof(
  fc.constantFrom(0, 0.1, 0.2, 0.25, 0.3, 0.5, 0.55, 0.7, 0.9, 0.95, 0.999, 1),
  fc.integer({ min: 0, max: 1_000_000_000 }).map((k) => k / 1e9),
  fc.double({ min: 0, max: 1, noNaN: true }),
);

/** A metric, sometimes with its own filter (a tree over the dataset's columns). */
function metricArb(dataset: GeneratedDataset): fc.Arbitrary<MetricInput> {
  return fc
    .tuple(
      plainMetricArb(dataset),
      fc.oneof(
        { weight: 2, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: filterArb(dataset, 1) },
      ),
    )
    .map(([m, filter]) => (filter === undefined || m.op === 'ratio' ? m : { ...m, filter }));
}

function plainMetricArb(dataset: GeneratedDataset): fc.Arbitrary<MetricInput> {
  const numeric = dataset.columns.filter((c) => isNumeric(c.kind)).map((c) => c.name);
  const any = dataset.columns.map((c) => c.name);
  const options: fc.Arbitrary<MetricInput>[] = [
    fc.constant({ op: 'count' as const }),
    fc.record({
      op: fc.constantFrom('count' as const, 'min' as const, 'max' as const, 'count_distinct' as const),
      column: fc.constantFrom(...any),
    }),
  ];
  if (numeric.length > 0) {
    options.push(
      fc.record({ op: fc.constantFrom('sum' as const, 'avg' as const), column: fc.constantFrom(...numeric) }),
      fc.record({
        op: fc.constant('quantile' as const),
        column: fc.constantFrom(...numeric),
        q: quantileQ,
        method: fc.constantFrom('linear' as const, 'nearest_rank' as const),
      }),
      fc.record({ op: fc.constant('median' as const), column: fc.constantFrom(...numeric) }),
      fc.record({
        op: fc.constantFrom('stddev' as const, 'variance' as const),
        column: fc.constantFrom(...numeric),
        population: fc.boolean(),
      }),
    );
  }
  return fc.oneof(...options);
}

/**
 * `having` conditions over the outputs whose values are exact in every engine (group keys,
 * counts, integer sums, minima and maxima): values compared against them are never a last-bit
 * rounding apart, so the rows kept cannot differ by engine.
 */
function havingArb(
  dataset: GeneratedDataset,
  groupBy: readonly GroupKeyInput[],
  metrics: readonly MetricInput[],
  outputs: readonly string[],
): fc.Arbitrary<FilterInput[]> {
  const kindOf = (name: string) => dataset.columns.find((c) => c.name === name)!.kind;
  // A bucket or bin is compared with values of its column: instants, numbers.
  const exact: { column: GeneratedColumn; source?: GeneratedColumn }[] = groupBy.map((g) => {
    const column = typeof g === 'string' ? g : g.column;
    const kind = typeof g !== 'string' && 'bucket' in g ? 'timestamp' : kindOf(column);
    return { column: { name: groupKeyName(g), kind }, source: { name: column, kind: kindOf(column) } };
  });
  metrics.forEach((m, i) => {
    const name = outputs[groupBy.length + i]!;
    if (m.op === 'count' || m.op === 'count_distinct') exact.push({ column: { name, kind: 'int' } });
    else if ((m.op === 'min' || m.op === 'max') && m.column !== undefined) {
      const kind = kindOf(m.column);
      if (kind !== 'float') exact.push({ column: { name, kind }, source: { name: m.column, kind } });
    } else if (m.op === 'sum' && kindOf(m.column) === 'int') exact.push({ column: { name, kind: 'int' } });
  });
  if (exact.length === 0) return fc.constant([]);
  const byName = new Map(exact.map((e) => [e.column.name, e]));
  const valuesOf = (c: GeneratedColumn) => {
    const e = byName.get(c.name)!;
    if (e.source !== undefined) return filterValue(dataset, e.source);
    return fc.integer({ min: -2, max: 6 });
  };
  const textOf = (c: GeneratedColumn) => {
    const e = byName.get(c.name)!;
    return e.source === undefined ? fc.constant('a') : textValue(dataset, e.source);
  };
  const leaf = leafArb(
    exact.map((e) => e.column),
    valuesOf,
    textOf,
  );
  const tree = fc.oneof(
    { weight: 3, arbitrary: leaf },
    { weight: 1, arbitrary: fc.array(leaf, { minLength: 1, maxLength: 2 }).map((or) => ({ or })) },
    { weight: 1, arbitrary: leaf.map((not) => ({ not })) },
  );
  return fc.array(tree, { maxLength: 2 });
}

/** A column as it is, or (sometimes) a time bucket of a timestamp column or a bin of a number column. */
function groupKeyArb(column: GeneratedColumn): fc.Arbitrary<GroupKeyInput> {
  const plain = fc.constant(column.name);
  if (column.kind === 'timestamp') {
    const bucket = fc.record({
      column: fc.constant(column.name),
      bucket: fc.constantFrom(...BUCKETS),
      tz: fc.constantFrom(...BUCKET_ZONES),
    });
    return fc.oneof({ weight: 1, arbitrary: plain }, { weight: 3, arbitrary: bucket });
  }
  if (isNumeric(column.kind)) {
    const bin = fc.record({
      column: fc.constant(column.name),
      bin: fc.constantFrom(1, 2, 5, 0.5, 2.5, 1000, 0.25),
    });
    return fc.oneof({ weight: 3, arbitrary: plain }, { weight: 1, arbitrary: bin });
  }
  return plain;
}

/** A placeholder for the output name of a metric among `plain` (resolved once all are named). */
function defaultName(m: MetricInput, plain: readonly MetricInput[]): string {
  return `@${plain.indexOf(m)}`;
}

export function specArb(dataset: GeneratedDataset): fc.Arbitrary<AggregationSpecInput> {
  const names = dataset.columns.map((c) => c.name);
  return fc
    .record({
      filters: fc.array(filterArb(dataset), { maxLength: 2 }),
      groupBy: fc
        .shuffledSubarray([...dataset.columns], { maxLength: Math.min(2, names.length) })
        .chain((picked) => fc.tuple(...picked.map((c) => groupKeyArb(c)))),
      metrics: fc.array(metricArb(dataset), { minLength: 1, maxLength: 4 }),
      limit: fc.option(fc.integer({ min: 1, max: 8 }), { nil: undefined }),
      orderSeed: fc.array(fc.tuple(fc.nat(), fc.boolean()), { maxLength: 2 }),
      ratioSeed: fc.option(fc.tuple(fc.nat(), fc.nat()), { nil: undefined }),
      topSeed: fc.option(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 3 })), { nil: undefined, freq: 2 }),
      offset: fc.option(fc.integer({ min: 0, max: 5 }), { nil: undefined, freq: 2 }),
    })
    .map(({ filters, groupBy, metrics: plain, limit, orderSeed, ratioSeed, topSeed, offset }) => {
      // A ratio of two numeric metrics (min and max of strings or booleans are not numbers).
      const kindOf = (name: string) => dataset.columns.find((c) => c.name === name)?.kind;
      const numericOut = plain.filter(
        (m) => !((m.op === 'min' || m.op === 'max') && !isNumeric(kindOf(m.column)!)),
      );
      const metrics: MetricInput[] = [...plain];
      if (ratioSeed !== undefined && numericOut.length > 0) {
        const [a, b] = ratioSeed;
        metrics.push({
          op: 'ratio',
          of: defaultName(numericOut[a % numericOut.length]!, plain),
          to: defaultName(numericOut[b % numericOut.length]!, plain),
        });
      }
      // Default names where they are free, else a distinct `as`: the parser rejects duplicates.
      const outputs = groupBy.map((g) => groupKeyName(g));
      const withNames = metrics.map((m, i) => {
        const name = defaultMetricName(m);
        const as = outputs.includes(name) || m.op === 'ratio' ? `m${i}` : undefined;
        outputs.push(as ?? name);
        return as === undefined ? m : { ...m, as };
      });
      // A ratio names its operands by output name, known only now.
      const resolve = (placeholder: string) => outputs[groupBy.length + Number(placeholder.slice(1))]!;
      const named = withNames.map((m) =>
        m.op === 'ratio' ? { ...m, of: resolve(m.of), to: resolve(m.to) } : m,
      );
      const orderBy: { column: string; direction: 'asc' | 'desc' }[] = [];
      for (const [pick, desc] of orderSeed) {
        const column = outputs[pick % outputs.length]!;
        if (!orderBy.some((o) => o.column === column))
          orderBy.push({ column, direction: desc ? 'desc' : 'asc' });
      }
      return {
        dataset: { records: dataset.records },
        filters,
        groupBy,
        metrics: named,
        orderBy,
        ...(limit === undefined ? {} : { limit }),
        // top partitions by the first 1 … all group keys (ties in the order are broken by the rest).
        ...(topSeed === undefined || groupBy.length === 0
          ? {}
          : { top: { per: outputs.slice(0, 1 + (topSeed[0] % groupBy.length)), limit: topSeed[1] } }),
        ...(offset === undefined ? {} : { offset }),
        outputs,
      };
    })
    .chain(({ outputs, ...spec }) =>
      havingArb(dataset, spec.groupBy, spec.metrics, outputs).map((having) =>
        having.length === 0 ? spec : { ...spec, having },
      ),
    );
}

export const parityCaseArb: fc.Arbitrary<ParityCase> = datasetArb.chain((dataset) =>
  specArb(dataset).map((spec) => ({ dataset, spec })),
);
