// engine: "auto" — which engine computes a request. The rule follows what `npm run bench --
// engines` measures on this kind of machine (docs/ENGINES.md has the table and the reasoning);
// it stays a function of the spec so crossovers measured elsewhere slot in.
import type { AggregationSpec, EngineName } from '../../shared/aggregation.ts';

export function chooseEngine(spec: AggregationSpec): EngineName {
  if (spec.engine !== 'auto') return spec.engine;
  return 'duckdb';
}
