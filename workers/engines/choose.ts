// engine: "auto" — which engine computes a request. The rule follows what `npm run bench --
// engines` measures on this kind of machine (docs/ENGINES.md has the table and the reasoning);
// it stays a function of the spec so crossovers measured elsewhere slot in.
import type { AggregationSpec, EngineName } from '../../shared/aggregation.ts';

export function chooseEngine(spec: AggregationSpec): EngineName {
  if (spec.engine !== 'auto') return spec.engine;
  // DuckDB measured faster on every spec, the dashboard spec (time buckets in a zone, top-N) on
  // 3M rows included once its buckets were computed per distinct value (duckdb-sql.ts bucketMaps).
  return 'duckdb';
}
