// The JS engine's computed group keys, as docs/AGGREGATION.md defines them and duckdb-sql.ts
// compileGroup computes them: time buckets (the start instant of the local calendar period in an
// IANA zone, by Intl's ICU, across DST; ISO weeks from Monday) and numeric bins.
import type { Bucket } from '../../shared/group-keys.ts';
import type { PlanGroup } from '../../shared/plan.ts';
import { utcDay, type Values } from './js-values.ts';

const MS_PER_MINUTE = 60_000;
const MS_PER_HOUR = 3_600_000;
const MS_PER_DAY = 86_400_000;

const mod = (a: number, b: number) => ((a % b) + b) % b;

/** The start of the period holding `wall` (ms, a wall time labelled UTC), as a wall time. */
function truncateWall(wall: number, unit: Bucket): number {
  switch (unit) {
    case 'minute':
      return wall - mod(wall, MS_PER_MINUTE);
    case 'hour':
      return wall - mod(wall, MS_PER_HOUR);
    case 'day':
      return wall - mod(wall, MS_PER_DAY);
    case 'week': {
      const day = wall - mod(wall, MS_PER_DAY);
      // getUTCDay: 0 is Sunday; ISO weeks start on Monday.
      return day - mod(new Date(day).getUTCDay() - 1, 7) * MS_PER_DAY;
    }
    default: {
      const d = new Date(wall);
      const month = d.getUTCMonth();
      const first = unit === 'year' ? 0 : unit === 'quarter' ? month - (month % 3) : month;
      return utcDay(d.getUTCFullYear(), first, 1);
    }
  }
}

/**
 * A zone's wall-time readings. `format()` costs about a quarter of `formatToParts()` (1.7 vs
 * 5.9 µs here); its text ("12/31/2000 AD, 16:00:00") is parsed, after the reading was checked
 * once against formatToParts on instants that exercise every field (BC years, single digits,
 * the turn of a day). An ICU whose text differs keeps formatToParts (`byText` false).
 */
interface ZoneReader {
  /** The reading used: the text one when it checked out, else byParts. */
  readonly read: (ms: number) => number;
  readonly byParts: (ms: number) => number;
  readonly byText: boolean;
}

const readers = new Map<string, ZoneReader>();
const FORMAT_TEXT = /^(\d+)\/(\d+)\/(\d+) (AD|BC), (\d+):(\d+):(\d+)$/;
const PROBES = [0, -62_198_755_200_001, 1_710_054_000_000, 1_735_689_599_999, 253_402_300_799_000];

function readerFor(zone: string): ZoneReader {
  let reader = readers.get(zone);
  if (reader !== undefined) return reader;
  const format = new Intl.DateTimeFormat('en-US', { timeZone: zone, ...WALL_FIELDS });
  const byParts = (ms: number) => wallFromParts(format, ms);
  const fromText = (ms: number) => {
    const m = FORMAT_TEXT.exec(format.format(ms));
    if (m === null) return byParts(ms);
    const year = m[4] === 'BC' ? 1 - Number(m[3]) : Number(m[3]);
    return (
      utcDay(year, Number(m[1]) - 1, Number(m[2])) +
      Number(m[5]) * MS_PER_HOUR +
      Number(m[6]) * MS_PER_MINUTE +
      Number(m[7]) * 1000 +
      mod(ms, 1000)
    );
  };
  const byText = PROBES.every((t) => fromText(t) === byParts(t));
  reader = { read: byText ? fromText : byParts, byParts, byText };
  readers.set(zone, reader);
  return reader;
}

/** Whether `zone`'s wall times are read from format()'s text on this runtime's ICU. */
export function readsWallText(zone: string): boolean {
  return readerFor(zone).byText;
}

/** The wall time of instant `ms` in `zone`, as ms labelled UTC (Intl's ICU has every zone). */
export function wallTime(ms: number, zone: string): number {
  return readerFor(zone).read(ms);
}

/** wallTime by formatToParts alone (what the text reading is checked against; tests compare). */
export function wallTimeByParts(ms: number, zone: string): number {
  return readerFor(zone).byParts(ms);
}

const WALL_FIELDS = {
  hourCycle: 'h23',
  era: 'short',
  year: 'numeric',
  month: 'numeric',
  day: 'numeric',
  hour: 'numeric',
  minute: 'numeric',
  second: 'numeric',
} as const satisfies Intl.DateTimeFormatOptions;

function wallFromParts(format: Intl.DateTimeFormat, ms: number): number {
  let year = 0;
  let month = 0;
  let day = 0;
  let hour = 0;
  let minute = 0;
  let second = 0;
  let bc = false;
  for (const p of format.formatToParts(ms)) {
    switch (p.type) {
      case 'year':
        year = Number(p.value);
        break;
      case 'month':
        month = Number(p.value);
        break;
      case 'day':
        day = Number(p.value);
        break;
      case 'hour':
        hour = Number(p.value);
        break;
      case 'minute':
        minute = Number(p.value);
        break;
      case 'second':
        second = Number(p.value);
        break;
      case 'era':
        bc = p.value.startsWith('B');
        break;
    }
  }
  if (bc) year = 1 - year;
  return (
    utcDay(year, month - 1, day) + hour * MS_PER_HOUR + minute * MS_PER_MINUTE + second * 1000 + mod(ms, 1000)
  );
}

/**
 * The first instant whose wall time in `zone` is `wall` (a local midnight): the earlier one where
 * DST repeats it; where DST skips it, the reading with the offset in force before the change,
 * which is the end of the gap (01:00 -03 on 2024-09-08 in Santiago), as ICU reads it.
 */
export function instantOf(wall: number, zone: string): number {
  // The offsets a day before and a day after: one of them is the wall time's, or both are.
  const before = wall - (wallTime(wall - MS_PER_DAY, zone) - (wall - MS_PER_DAY));
  const after = wall - (wallTime(wall + MS_PER_DAY, zone) - (wall + MS_PER_DAY));
  const [first, second] = before <= after ? [before, after] : [after, before];
  if (wallTime(first, zone) === wall) return first;
  if (wallTime(second, zone) === wall) return second;
  return before; // skipped
}

/**
 * The bucket start (epoch ms) of an instant. `starts` remembers the instants of local period
 * starts already resolved (three readings each): a day holds many instants, one start.
 */
export function bucketStart(ms: number, unit: Bucket, zone: string, starts?: Map<number, number>): number {
  if (zone === 'UTC') return truncateWall(ms, unit);
  const wall = wallTime(ms, zone);
  const start = truncateWall(wall, unit);
  // Hours and minutes: the instant minus its wall time past the truncation (both 1 AMs apart).
  if (unit === 'hour' || unit === 'minute') return ms - (wall - start);
  let instant = starts?.get(start);
  if (instant === undefined) {
    instant = instantOf(start, zone);
    starts?.set(start, instant);
  }
  return instant;
}

/** A group's key values, one per row: the column itself, its buckets or its bins. */
export function groupValues(g: PlanGroup, values: Values): Values {
  if (g.kind === 'column') return values;
  if (g.column.type === 'null') return values; // all null: null buckets and bins
  const out: (number | null)[] = new Array(values.length);
  if (g.kind === 'bin') {
    const w = g.width;
    for (let i = 0; i < values.length; i++) {
      const x = values[i] as number | null;
      // Integers: x minus its non-negative remainder, exactly; else floor(x / w) · w.
      out[i] = x === null ? null : g.integer ? x - mod(x, w) : Math.floor(x / w) * w;
    }
    return out;
  }
  // A bucket depends on the value alone: each distinct value is converted once.
  const seen = new Map<number, number>();
  const starts = new Map<number, number>();
  for (let i = 0; i < values.length; i++) {
    const x = values[i] as number | null;
    if (x === null) {
      out[i] = null;
      continue;
    }
    let start = seen.get(x);
    if (start === undefined) {
      start = bucketStart(x, g.unit, g.tz, starts);
      seen.set(x, start);
    }
    out[i] = start;
  }
  return out;
}
