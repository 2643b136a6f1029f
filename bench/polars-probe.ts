// A probe, not a benchmark of record: where Polars' raw call on the 3M-row flights Parquet spends
// its time (docs/ENGINES.md, "Polars at scale"). Each variant is one hypothesis, timed in this
// process on the main thread (no pool, no worker): the whole engine plan as Quarry builds it, the
// scan alone, each metric alone, collect() vs the streaming engine, the Parquet reader's
// parallelism, and the plan Polars optimizes to. Threads are a process-wide setting read once:
// run it under `POLARS_MAX_THREADS=1|2` to compare.
//   node --import tsx bench/polars-probe.ts [--runs N] [--only name,name]
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pl from 'nodejs-polars';
import { type AggregationSpec, parseAggregation } from '../shared/aggregation.ts';
import { loadConfig } from '../shared/config.ts';
import { flightsSpec, VEGA_DATA_DIR } from '../test/helpers/flights.ts';
import { createDuckDBEngine } from '../workers/engines/duckdb.ts';
import { createPolarsEngine } from '../workers/engines/polars.ts';
import { runAggregation } from '../workers/engines/polars-plan.ts';
import { printTable, summarize } from './lib/stats.ts';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '9' }, only: { type: 'string' }, explain: { type: 'boolean' } },
});
const runs = Number(values.runs);
const file = path.join(VEGA_DATA_DIR, 'flights-3m.parquet');
type Parallel = 'auto' | 'columns' | 'row_groups' | 'prefiltered' | 'none';
const scan = (parallel: Parallel = 'auto') => pl.scanParquet(file, { parallel });
const by = () => pl.col('origin');
const count = () => pl.len().alias('count');
const avg = () => pl.col('delay').mean().alias('avg_delay');
const max = () => pl.col('distance').max().alias('max_distance');
const distinct = () => pl.col('destination').dropNulls().nUnique().alias('count_distinct_destination');
// The same count as `distinct`, without a per-group filter: n_unique counts null as a value.
const distinctNoFilter = () =>
  pl
    .col('destination')
    .nUnique()
    .sub(pl.col('destination').nullCount().gt(0).cast(pl.UInt32))
    .alias('count_distinct_destination');
const distinctPlain = () => pl.col('destination').nUnique().alias('count_distinct_destination');
const p95 = () => pl.col('delay').dropNulls().quantile(0.95, 'linear').alias('p95_delay');
const p95Plain = () => pl.col('delay').quantile(0.95, 'linear').alias('p95_delay');
/**
 * The linear-interpolated 0.95 quantile of delay per origin from the counts of each (origin,
 * delay) pair: the order statistics at floor and ceil of 0.95 · (n − 1) are the first values whose
 * running count passes them. Exact (the same values as quantile(0.95, 'linear')).
 */
const p95FromValueCounts = (s: pl.LazyDataFrame) =>
  s
    .filter(pl.col('delay').isNotNull())
    .groupBy(['origin', 'delay'])
    .agg(pl.len().alias('n'))
    .sort(['origin', 'delay'])
    .withColumns(
      pl.col('n').cumSum().over('origin').alias('cum'),
      pl.col('n').sum().over('origin').alias('total'),
    )
    .withColumns(pl.col('total').sub(1).cast(pl.Float64).mul(0.95).alias('h'))
    .withColumns(pl.col('h').floor().alias('lo'), pl.col('h').ceil().alias('hi'))
    .groupBy('origin')
    .agg(
      pl
        .col('delay')
        .filter(pl.col('cum').gt(pl.col('lo')))
        .first()
        .alias('vlo'),
      pl
        .col('delay')
        .filter(pl.col('cum').gt(pl.col('hi')))
        .first()
        .alias('vhi'),
      pl.col('h').first(),
      pl.col('lo').first(),
    )
    .select(
      'origin',
      pl
        .col('vlo')
        .add(
          pl
            .col('h')
            .sub(pl.col('lo'))
            .mul(pl.col('vhi').sub(pl.col('vlo'))),
        )
        .alias('p95_delay'),
    );
const all = () => [count(), avg(), max(), distinct(), p95()];
const top = (lf: pl.LazyDataFrame) =>
  lf.sort({ by: ['count', 'origin'], descending: [true, false], nullsLast: true }).head(21);

const config = loadConfig({ QUARRY_DATA_DIR: VEGA_DATA_DIR });
const source = { kind: 'file' as const, file, format: 'parquet' as const };
// The engines take the normalized spec; the dataset part is not read by them (source is).
const spec = {
  ...parseAggregation(flightsSpec({ path: 'flights-3m.parquet' }), config).spec,
  dataset: { kind: 'file', path: 'flights-3m.parquet' },
} as unknown as AggregationSpec;

const variants: Record<string, () => Promise<unknown>> = {
  'engine plan (runAggregation)': () => runAggregation({ spec: spec, source, maxRows: 1000 }),
  'schema read (scan + limit(0), as prepareFile)': async () => scan().limit(0).collectSync(),
  'scan: len()': () => scan().select(pl.len()).collect(),
  'scan 4 cols, no agg (sum of each)': () =>
    scan()
      .select(
        pl.col('delay').sum(),
        pl.col('distance').sum(),
        pl.col('origin').count(),
        pl.col('destination').count(),
      )
      .collect(),
  'group: count': () => top(scan().groupBy(by()).agg(count())).collect(),
  'group: count+avg': () => top(scan().groupBy(by()).agg(count(), avg())).collect(),
  'group: count+max': () => top(scan().groupBy(by()).agg(count(), max())).collect(),
  'group: count+distinct (dropNulls)': () => top(scan().groupBy(by()).agg(count(), distinct())).collect(),
  'group: count+distinct (plain)': () => top(scan().groupBy(by()).agg(count(), distinctPlain())).collect(),
  'group: count+p95 (dropNulls)': () => top(scan().groupBy(by()).agg(count(), p95())).collect(),
  'group: count+p95 (plain)': () => top(scan().groupBy(by()).agg(count(), p95Plain())).collect(),
  'group: all five': () =>
    top(
      scan()
        .groupBy(by())
        .agg(...all()),
    ).collect(),
  'group: count, key as Categorical': () =>
    top(
      scan().groupBy(by().cast(pl.Categorical)).agg(count()).withColumns(pl.col('origin').cast(pl.String)),
    ).collect(),
  'group: all five, key as Categorical': () =>
    top(
      scan()
        .groupBy(by().cast(pl.Categorical))
        .agg(...all())
        .withColumns(pl.col('origin').cast(pl.String)),
    ).collect(),
  'group: all five, distinct as n_unique − has-null': () =>
    top(scan().groupBy(by()).agg(count(), avg(), max(), distinctNoFilter(), p95())).collect(),
  'group: all five, distinct as n_unique − has-null, key as Categorical': () =>
    top(
      scan()
        .groupBy(by().cast(pl.Categorical))
        .agg(count(), avg(), max(), distinctNoFilter(), p95())
        .withColumns(pl.col('origin').cast(pl.String)),
    ).collect(),
  'group: all five, columns renamed by position (as the engine)': () => {
    const names = { date: 'c0', delay: 'c1', distance: 'c2', origin: 'c3', destination: 'c4' };
    return scan()
      .rename(names)
      .groupBy(pl.col('c3').alias('o0'))
      .agg(
        pl.len().alias('o1'),
        pl.col('c1').mean().alias('o2'),
        pl.col('c2').max().alias('o3'),
        pl.col('c4').dropNulls().nUnique().alias('o4'),
        pl.col('c1').dropNulls().quantile(0.95, 'linear').alias('o5'),
      )
      .sort({ by: ['o1', 'o0'], descending: [true, false], nullsLast: true })
      .head(21)
      .collect();
  },
  'group: all five, collectSync streaming': async () =>
    top(
      scan()
        .groupBy(by())
        .agg(...all()),
    ).collectSync({ engine: 'streaming' }),
  'group: all five, collectSync in-memory': async () =>
    top(
      scan()
        .groupBy(by())
        .agg(...all()),
    ).collectSync({ engine: 'in-memory' }),
  'group: all five, parallel row_groups': () =>
    top(
      scan('row_groups')
        .groupBy(by())
        .agg(...all()),
    ).collect(),
  'group: all five, parallel columns': () =>
    top(
      scan('columns')
        .groupBy(by())
        .agg(...all()),
    ).collect(),
  'group: all five, parallel none': () =>
    top(
      scan('none')
        .groupBy(by())
        .agg(...all()),
    ).collect(),
  // The streaming engine (2026-12-07): its grouped n_unique is fast, but a quantile sends the
  // query back to the in-memory group-by.
  'streaming: count, avg, max, distinct (no p95)': async () =>
    top(scan().groupBy(by()).agg(count(), avg(), max(), distinctNoFilter())).collectSync({
      engine: 'streaming',
    }),
  'streaming: count + p95 alone': async () =>
    scan().groupBy(by()).agg(count(), p95()).collectSync({ engine: 'streaming' }),
  'streaming: the four above, then p95 from (origin, delay) value counts, joined': async () => {
    const s = scan();
    const main = s.groupBy(by()).agg(count(), avg(), max(), distinctNoFilter());
    return top(main.join(p95FromValueCounts(s), { on: 'origin', how: 'left' })).collectSync({
      engine: 'streaming',
    });
  },
  'eager: readParquet 4 cols': async () =>
    pl.readParquet(file, { columns: ['delay', 'distance', 'origin', 'destination'] }),
  'in-memory frame: all five (data preloaded)': (() => {
    let frame: pl.DataFrame | undefined;
    return async () => {
      frame ??= pl.readParquet(file, { columns: ['delay', 'distance', 'origin', 'destination'] });
      return top(
        frame
          .lazy()
          .groupBy(by())
          .agg(...all()),
      ).collect();
    };
  })(),
};

const only = values.only?.split(',');
const duck = await createDuckDBEngine({ dataDir: VEGA_DATA_DIR, spoolDir: os.tmpdir() });
const polars = createPolarsEngine({ poolSize: 1 });
type Variant = [string, () => Promise<unknown>];
const chosen = (
  [
    ['DuckDB engine.run (reference)', () => duck.run({ spec, source, maxRows: 1000 })],
    ['Polars engine.run (pool thread, as the bench)', () => polars.run({ spec, source, maxRows: 1000 })],
    ...Object.entries(variants),
  ] as Variant[]
).filter(([name]) => only === undefined || name.startsWith('DuckDB') || only.some((o) => name.includes(o)));
// Round robin: every run times each variant once, so drift in the machine's load (other
// processes on the same cores) hits all of them alike. The minimum is the least disturbed run.
const samples = new Map<string, number[]>(chosen.map(([name]) => [name, []]));
try {
  for (const [, fn] of chosen) await fn(); // warm
  for (let i = 0; i < runs; i++) {
    for (const [name, fn] of chosen) {
      const t0 = performance.now();
      await fn();
      samples.get(name)!.push(performance.now() - t0);
    }
  }
} finally {
  await duck.close();
  await polars.close();
}
const duckMin = summarize(samples.get('DuckDB engine.run (reference)')!).min;
const rows = chosen.map(([name]) => {
  const s = summarize(samples.get(name)!);
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return { variant: name, 'p50 ms': r1(s.p50), 'min ms': r1(s.min), 'min / DuckDB min': r1(s.min / duckMin) };
});
printTable(
  `polars probe: 3M-row flights Parquet, ${runs} runs, POLARS_MAX_THREADS=${process.env.POLARS_MAX_THREADS ?? '(default)'}, ${os.cpus().length} cores`,
  rows,
);
if (values.explain)
  console.log(
    top(
      scan()
        .groupBy(by())
        .agg(...all()),
    ).describeOptimizedPlan(),
  );
process.exit(0);
