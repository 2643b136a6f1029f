// engine: "auto" — which engine computes a request. The rule follows what `npm run bench --
// engines` and `npm run bench -- js-engine` measure on this kind of machine (docs/ENGINES.md has
// the tables and the reasoning); it stays a function of the spec so crossovers measured elsewhere
// slot in.
import type { AggregationSpec, EngineName } from '../../shared/aggregation.ts';

/**
 * The most inline records `auto` gives the JS engine. Below it the JS engine costs a fraction of
 * DuckDB's fixed cost per query (spool file, read_json, plan); it runs on the worker's main
 * thread, so the bound also caps how long one job holds the event loop (a few milliseconds at
 * this size: docs/ENGINES.md, "The JS engine").
 */
export const JS_ENGINE_MAX_ROWS = 5_000;

/**
 * The bound for a spec with a time bucket in a zone other than UTC: the JS engine reads each
 * distinct instant's wall time through Intl (about 7 µs a record in all on the dashboard spec,
 * against DuckDB's ~10 ms plus 4 µs), so it stops paying off near 3,000 records
 * (`npm run bench -- js-engine`, dashboard rows: 0.53× DuckDB at 1,000, 1.19× at 5,000).
 */
export const JS_ENGINE_MAX_ZONED_ROWS = 2_500;

const zonedBucket = (spec: AggregationSpec) =>
  spec.groupBy.some((g) => typeof g !== 'string' && 'bucket' in g && g.tz !== 'UTC');

export function chooseEngine(spec: AggregationSpec): EngineName {
  if (spec.engine !== 'auto') return spec.engine;
  // Small inline data: the JS engine, which needs no spool file and no native call.
  if (spec.dataset.kind === 'inline') {
    const bound = zonedBucket(spec) ? JS_ENGINE_MAX_ZONED_ROWS : JS_ENGINE_MAX_ROWS;
    if (spec.dataset.rows <= bound) return 'js';
  }
  // DuckDB measured faster on every other spec, the dashboard spec (time buckets in a zone, top-N)
  // on 3M rows included once its buckets were computed per distinct value (duckdb-buckets.ts bucketMaps).
  return 'duckdb';
}
