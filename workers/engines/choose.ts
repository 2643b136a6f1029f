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

export function chooseEngine(spec: AggregationSpec): EngineName {
  if (spec.engine !== 'auto') return spec.engine;
  // Small inline data: the JS engine, which needs no spool file and no native call.
  if (spec.dataset.kind === 'inline' && spec.dataset.rows <= JS_ENGINE_MAX_ROWS) return 'js';
  // DuckDB measured faster on every other spec, the dashboard spec (time buckets in a zone, top-N)
  // on 3M rows included once its buckets were computed per distinct value (duckdb-sql.ts bucketMaps).
  return 'duckdb';
}
