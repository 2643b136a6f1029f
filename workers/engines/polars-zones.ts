// Time buckets in Polars (docs/AGGREGATION.md, "Time buckets"): the start instant of a value's
// local period, by Polars' zone conversions (chrono-tz) up to 2099 and by the JS engine's ICU
// reading (js-buckets.ts) from 2100 on, where chrono-tz's rules end. Loaded only inside a Polars
// worker thread (polars-plan.ts).
import pl from 'nodejs-polars';
import { QuarryError } from '../../shared/errors.ts';
import type { Bucket } from '../../shared/group-keys.ts';
import type { PlanGroup } from '../../shared/plan.ts';
import { bucketStart, instantOf } from './js-buckets.ts';

type BucketGroup = Extract<PlanGroup, { kind: 'bucket' }>;

const TRUNCATE_EVERY: Record<Bucket, string> = {
  minute: '1m',
  hour: '1h',
  day: '1d',
  week: '1w', // Polars' weeks start on Monday, as ISO weeks do
  month: '1mo',
  quarter: '1q',
  year: '1y',
};

const US_PER_DAY = 86_400_000_000;
const int64 = (v: number) => pl.lit(v).cast(pl.Int64);

/**
 * The first instant of the local day, week, … whose wall time `wall` (a Datetime naive or in
 * UTC, a midnight) names: that midnight; the earlier one where DST repeats it; where DST skips it,
 * the instant it would have been with the offset in force before the change, which is the end of
 * the gap (01:00 -03 on 2024-09-08 in Santiago). Polars raises on both by default.
 */
function firstInstant(wall: pl.Expr, tz: string): pl.Expr {
  const at = (w: pl.Expr) => w.dt.replaceTimeZone(tz, 'earliest', 'null').cast(pl.Int64);
  const dayBefore = wall
    .cast(pl.Datetime('us'))
    .cast(pl.Int64)
    .sub(int64(US_PER_DAY))
    .cast(pl.Datetime('us'));
  return at(wall)
    .fillNull(at(dayBefore).add(int64(US_PER_DAY)))
    .cast(pl.Datetime('us'));
}

/** A bucket in UTC of `c` (a timestamp or date column): truncated, as a naive Datetime('us'). */
export function utcBucketExpr(g: BucketGroup, c: pl.Expr): pl.Expr {
  const every = TRUNCATE_EVERY[g.unit];
  return g.column.type === 'date'
    ? c.cast(pl.Datetime('us')).dt.truncate(every)
    : c.dt.truncate(every).cast(pl.Datetime('us'));
}

/**
 * Each distinct value's bucket start in zone g.tz, as duckdb-buckets.ts's bucketExpr: the instant's
 * wall time in the zone (as a UTC-labelled wall time, which truncates without DST), truncated;
 * from a day up, the first instant of that wall time; for hours and minutes, the instant minus
 * the wall time past the truncation. A date is its day's first instant. Starts are naive UTC
 * Datetime('us'). (Finding first instants once per distinct period and joining them back
 * measured slower here than three conversions a value: Polars' conversions are cheap.)
 */
function zoneStarts(distinct: pl.LazyDataFrame, g: BucketGroup, key: string, out: string): pl.LazyDataFrame {
  const every = TRUNCATE_EVERY[g.unit];
  const c = pl.col(key);
  const instant =
    g.column.type === 'date'
      ? firstInstant(c.cast(pl.Datetime('us')), g.tz).dt.replaceTimeZone('UTC')
      : c.dt.replaceTimeZone('UTC');
  const wall = instant.dt.convertTimeZone(g.tz).dt.replaceTimeZone('UTC');
  const start =
    g.unit === 'hour' || g.unit === 'minute'
      ? instant.sub(wall.sub(wall.dt.truncate(every))).cast(pl.Datetime('us'))
      : firstInstant(wall.dt.truncate(every), g.tz);
  return distinct.withColumns(start.alias(out));
}

/** Where chrono-tz's zone rules end: past it every zone keeps the offset of its last transition. */
const RULES_END_MS = Date.UTC(2100, 0, 1);
/** The last instant a JS Date (and Intl) can read: 8.64e15 ms, in +275760. */
const JS_DATE_MAX_MS = 8.64e15;

/**
 * The map of each distinct value of `key` (a column of `source`, by its positional name) to its
 * bucket start. Values
 * from 2100 on take the JS engine's ICU reading instead of Polars' (chrono-tz's table ends with
 * 2099, so a New York day in July 2100 would start at 05:00Z): finding them costs one pass over
 * the column, which row-group statistics let Parquet skip.
 */
export function zoneBucketMap(
  source: pl.LazyDataFrame,
  key: string,
  g: BucketGroup,
  { out, index }: { out: string; index: number },
): pl.LazyDataFrame {
  const map = zoneStarts(source.select(pl.col(key).unique()), g, key, out);
  const isDate = g.column.type === 'date';
  const end = pl.lit(new Date(RULES_END_MS)).cast(isDate ? pl.Date : pl.Datetime('us'));
  // Filtered before unique(), on the column itself: Parquet statistics then skip row groups.
  const late = source.filter(pl.col(key).gtEq(end)).select(pl.col(key).unique()).collectSync();
  if (late.height === 0) return map;
  // Dates as days since the epoch (Int32), timestamps as microseconds (Int64: bigint or number).
  const raw = late
    .select(isDate ? pl.col(key).cast(pl.Int32) : pl.col(key).cast(pl.Datetime('us')).cast(pl.Int64))
    .getColumns()[0]!;
  const starts = new Map<number, number>();
  const buckets = (raw.toArray() as (number | bigint)[]).map((v) => {
    const ms = isDate ? Number(v) * 86_400_000 : Number(BigInt(v) / 1000n);
    if (ms > JS_DATE_MAX_MS)
      throw new QuarryError(
        'QUARRY_ERR_SPEC_TYPE',
        `groupBy: a ${g.column.type} past the year 275760 cannot be bucketed in ${g.tz}`,
        { field: `groupBy.${index}.column` },
      );
    const instant = isDate ? instantOf(ms, g.tz) : ms;
    // A date's hour and minute buckets are its first instant.
    return isDate && (g.unit === 'hour' || g.unit === 'minute')
      ? instant
      : bucketStart(instant, g.unit, g.tz, starts);
  });
  // Milliseconds below 8.64e15 are exact as doubles, and times 1000 exact in Int64.
  const computed = late
    .withColumns(pl.Series(out, buckets, pl.Float64))
    .lazy()
    .withColumns(pl.col(out).cast(pl.Int64).mul(int64(1000)).cast(pl.Datetime('us')));
  return pl.concat([map.filter(pl.col(key).lt(end)), computed]);
}
