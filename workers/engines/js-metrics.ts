// The JS engine's aggregates over one group's rows (row indexes), as docs/AGGREGATION.md defines
// them: nulls skipped; integer sums exact (BigInt once a partial sum leaves the safe range); the
// linear and nearest-rank quantiles by their formulas; two-pass variance, sample or population.
import type { PlanMetric } from '../../shared/plan.ts';
import { compareValues, type Values } from './js-values.ts';

type Value = string | number | boolean | null;

/** An aggregate of the rows `rows` (already narrowed by the metric's filter). */
export type Aggregate = (rows: readonly number[]) => Value;

export function compileAggregate(m: PlanMetric, values: Values | undefined): Aggregate {
  if (values === undefined) return (rows) => rows.length; // count(*)
  const nonNull = (rows: readonly number[]): (string | number | boolean)[] => {
    const out: (string | number | boolean)[] = [];
    for (const i of rows) {
      const v = values[i]!;
      if (v !== null) out.push(v);
    }
    return out;
  };
  const numbers = (rows: readonly number[]) => nonNull(rows) as number[];
  switch (m.op) {
    case 'count':
      return (rows) => {
        let n = 0;
        for (const i of rows) if (values[i] !== null) n++;
        return n;
      };
    case 'count_distinct':
      return (rows) => new Set(nonNull(rows)).size;
    case 'min':
    case 'max': {
      const sign = m.op === 'min' ? -1 : 1;
      return (rows) => {
        let best: Value = null;
        for (const i of rows) {
          const v = values[i]!;
          if (v !== null && (best === null || compareValues(v, best) * sign > 0)) best = v;
        }
        return best;
      };
    }
    case 'sum': {
      const integer = m.column?.type === 'integer';
      return (rows) => {
        const xs = numbers(rows);
        return xs.length === 0 ? null : integer ? exactSum(xs) : plainSum(xs);
      };
    }
    case 'avg': {
      const integer = m.column?.type === 'integer';
      return (rows) => {
        const xs = numbers(rows);
        return xs.length === 0 ? null : (integer ? exactSum(xs) : plainSum(xs)) / xs.length;
      };
    }
    case 'stddev':
    case 'variance': {
      const population = m.population === true;
      const root = m.op === 'stddev';
      return (rows) => {
        const xs = numbers(rows);
        const n = xs.length;
        if (n === 0 || (n === 1 && !population)) return null;
        const mean = plainSum(xs) / n;
        let squares = 0;
        for (const x of xs) squares += (x - mean) * (x - mean);
        const variance = squares / (population ? n : n - 1);
        return root ? Math.sqrt(variance) : variance;
      };
    }
    case 'quantile': {
      const q = m.q!;
      const nearest = m.method === 'nearest_rank';
      // q to 9 decimal places, as a fraction num / 1e9: ceil(q·n) in exact integer arithmetic.
      const num = Math.round(q * 1e9);
      return (rows) => {
        const xs = numbers(rows).sort((a, b) => a - b);
        const n = xs.length;
        if (n === 0) return null;
        if (nearest) {
          const a = n * num;
          const rank = (a - (a % 1e9)) / 1e9 + (a % 1e9 > 0 ? 1 : 0);
          return xs[Math.max(0, rank - 1)]!;
        }
        const h = (n - 1) * q;
        const lo = Math.floor(h);
        if (lo >= n - 1) return xs[n - 1]!;
        return xs[lo]! + (h - lo) * (xs[lo + 1]! - xs[lo]!);
      };
    }
    case 'ratio':
      throw new Error('a ratio is computed over outputs, not rows');
  }
}

function plainSum(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

/** The sum of safe integers, exact, rounded once to a double (as DuckDB's HUGEINT sum converts). */
function exactSum(xs: readonly number[]): number {
  let s = 0;
  let exact = true;
  for (const x of xs) {
    s += x;
    if (!Number.isSafeInteger(s)) exact = false;
  }
  if (exact) return s;
  let big = 0n;
  for (const x of xs) big += BigInt(x);
  return Number(big);
}
