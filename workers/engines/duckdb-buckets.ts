// Time buckets in DuckDB SQL: a value's bucket start in a zone (ICU), a local period's first
// instant on days whose midnight DST skips or repeats, and the maps that convert each distinct
// value (or period) once instead of every row.
import type { AggregationPlan, PlanGroup } from '../../shared/plan.ts';
import { type Ident, type Params, quoteIdent } from './duckdb-params.ts';

/** The start of the bucket of `col` (a date or timestamp value), as a UTC TIMESTAMP. */
export function bucketExpr(g: Extract<PlanGroup, { kind: 'bucket' }>, col: string, params: Params): string {
  const unit = `'${g.unit}'`; // one of BUCKETS, not request text
  // In UTC the wall time is the UTC timestamp itself: truncated without ICU (ISO weeks, Monday).
  if (g.tz === 'UTC') return `date_trunc(${unit}, CAST(${col} AS TIMESTAMP))`;
  const tz = params.add(g.tz);
  const instant =
    g.column.type === 'date' ? firstInstant(`CAST(${col} AS TIMESTAMP)`, tz) : `CAST(${col} AS TIMESTAMPTZ)`;
  const local = `timezone(${tz}, ${instant})`;
  if (g.unit === 'hour' || g.unit === 'minute') {
    return `CAST(${instant} - (${local} - date_trunc(${unit}, ${local})) AS TIMESTAMP)`;
  }
  return `CAST(${firstInstant(`date_trunc(${unit}, ${local})`, tz)} AS TIMESTAMP)`;
}

/**
 * The first instant (TIMESTAMPTZ) whose wall time in zone `tz` is `wall` (a local midnight).
 * ICU reads a skipped wall time with the offset before the change, which is the end of the gap,
 * as the definition asks; a repeated one it reads as the later of the two, so the earlier is
 * tried first: the wall time a day before, read in the zone, a day on (24 hours, in the session's
 * UTC), when that names the same wall time and comes sooner.
 */
function firstInstant(wall: string, tz: string): string {
  const later = `timezone(${tz}, ${wall})`;
  const earlier = `(timezone(${tz}, ${wall} - INTERVAL 1 DAY) + INTERVAL 24 HOUR)`;
  return `(CASE WHEN ${earlier} < ${later} AND timezone(${tz}, ${earlier}) = ${wall} THEN ${earlier} ELSE ${later} END)`;
}

export const SOURCE = quoteIdent('__quarry_source');
const mapName = (index: number) => quoteIdent(`__quarry_map_${index}`);
const mapKey = (index: number) => quoteIdent(`__quarry_key_${index}`);
const mapBucket = (index: number) => quoteIdent(`__quarry_bucket_${index}`);
const mapWalls = (index: number) => quoteIdent(`__quarry_walls_${index}`);
const mapWall = (index: number) => quoteIdent(`__quarry_wall_${index}`);

/**
 * Zone conversions cost ICU about a microsecond a value: 3M rows bucketed in a zone spent most of
 * the query there. A bucket depends on its column's value alone, so each distinct value is
 * converted once, in a map of value → bucket start, and rows join it (a null value finds no
 * entry: a null bucket, as it should). The maps' names are prefixed as the output aliases are.
 */
export function bucketMaps(
  plan: AggregationPlan,
  params: Params,
  ident: Ident,
): { ctes: string[]; joins: string[]; mapped: Map<number, string> } {
  const ctes: string[] = [];
  const joins: string[] = [];
  const mapped = new Map<number, string>();
  plan.groups.forEach((g, i) => {
    if (g.kind !== 'bucket' || g.column.type === 'null' || g.tz === 'UTC') return;
    const col = ident(g.column.name);
    const distinct = `(SELECT DISTINCT ${col} AS ${mapKey(i)} FROM ${SOURCE})`;
    if (g.column.type === 'timestamp' && g.unit !== 'hour' && g.unit !== 'minute') {
      // From a day up: each value's local period (its wall time, truncated), then each distinct
      // period's first instant, which takes three conversions: a few hundred days, not a few
      // hundred thousand instants.
      const tz = params.add(g.tz);
      const wall = `date_trunc('${g.unit}', timezone(${tz}, CAST(${mapKey(i)} AS TIMESTAMPTZ)))`;
      const start = `CAST(${firstInstant(mapWall(i), tz)} AS TIMESTAMP)`;
      ctes.push(
        `${mapWalls(i)} AS MATERIALIZED (SELECT ${mapKey(i)}, ${wall} AS ${mapWall(i)} FROM ${distinct})`,
        `${mapName(i)} AS (SELECT ${mapKey(i)}, ${mapBucket(i)} FROM ${mapWalls(i)} JOIN (SELECT ${mapWall(i)}, ${start} AS ${mapBucket(i)} FROM (SELECT DISTINCT ${mapWall(i)} FROM ${mapWalls(i)})) USING (${mapWall(i)}))`,
      );
    } else {
      const bucket = bucketExpr(g, mapKey(i), params);
      ctes.push(`${mapName(i)} AS (SELECT ${mapKey(i)}, ${bucket} AS ${mapBucket(i)} FROM ${distinct})`);
    }
    joins.push(` LEFT JOIN ${mapName(i)} ON ${SOURCE}.${col} = ${mapName(i)}.${mapKey(i)}`);
    mapped.set(i, `${mapName(i)}.${mapBucket(i)}`);
  });
  return { ctes, joins, mapped };
}
