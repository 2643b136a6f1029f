// Engines side by side on real flights data: the benchmark spec (per origin count, avg delay,
// max distance, distinct destinations, p95 delay; order by count desc; limit 20) at 5k, 200k and
// 3M rows, inline (5k, 200k) and Parquet (all three), with DuckDB, Polars, "auto" and the TS
// reference. For each: the raw engine call (compute), ingest (validate, canonicalize, spool the
// inline records), the job end to end through a worker process (SDK enqueue → result), the
// job's overhead over the raw call, and the worst event-loop delay in the worker during jobs.
// Beside it, issue 10's dashboard spec (dashboardSpec) on 5k inline records and the 3M Parquet
// file; `--cases dashboard` runs only those.
import { type ChildProcess, fork } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { createQuarry } from '../producers/client.ts';
import { addressAggregation, parseAggregation } from '../shared/aggregation.ts';
import { loadConfig } from '../shared/config.ts';
import type { InlineRecord } from '../shared/datasets.ts';
import { tsExecArgv } from '../shared/ts-runtime.ts';
import { flightsSpec, VEGA_DATA_DIR } from '../test/helpers/flights.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { referenceAggregate } from '../test/reference/aggregate.ts';
import { createDuckDBEngine } from '../workers/engines/duckdb.ts';
import type { AggregationEngine, EngineSource } from '../workers/engines/engine.ts';
import { createPolarsEngine } from '../workers/engines/polars.ts';
import { printTable, type Row, summarize, writeResults } from './lib/stats.ts';

interface Case {
  name: string;
  rows: number;
  kind: 'inline' | 'parquet';
  runs: number;
  /** The spec run; default the benchmark spec (flightsSpec). */
  spec?: (dataset: unknown) => Record<string, unknown>;
}

/**
 * The dashboard spec of issue 10's Targets: per day in Los Angeles and origin, the count, the
 * count of flights delayed more than 15 minutes, their ratio and the p95 delay; the 3 busiest
 * origins of each day.
 */
export function dashboardSpec(dataset: unknown): Record<string, unknown> {
  return {
    dataset,
    groupBy: [{ column: 'date', bucket: 'day', tz: 'America/Los_Angeles', as: 'day' }, 'origin'],
    metrics: [
      { op: 'count' },
      { op: 'count', filter: { column: 'delay', op: 'gt', value: 15 }, as: 'delayed' },
      { op: 'ratio', of: 'delayed', to: 'count', as: 'delayed_share' },
      { op: 'quantile', column: 'delay', q: 0.95, as: 'p95_delay' },
    ],
    orderBy: [{ column: 'count', direction: 'desc' }],
    top: { per: ['day'], limit: 3 },
  };
}

const CASES: Case[] = [
  { name: '5k inline', rows: 5_000, kind: 'inline', runs: 30 },
  { name: '5k parquet', rows: 5_000, kind: 'parquet', runs: 30 },
  { name: '200k inline', rows: 200_000, kind: 'inline', runs: 8 },
  { name: '200k parquet', rows: 200_000, kind: 'parquet', runs: 10 },
  { name: '3M parquet', rows: 3_000_000, kind: 'parquet', runs: 15 },
  { name: 'dashboard 5k inline', rows: 5_000, kind: 'inline', runs: 30, spec: dashboardSpec },
  { name: 'dashboard 3M parquet', rows: 3_000_000, kind: 'parquet', runs: 15, spec: dashboardSpec },
];

const median = (xs: number[]) => summarize(xs).p50;
/** The row cap of raw engine calls: every case's result fits (the dashboard's: 3 rows a day). */
const RAW_MAX_ROWS = 10_000;

export async function runEngines(options: { scale: number; cases?: string }): Promise<void> {
  const cases = CASES.filter((c) => options.cases === undefined || c.name.includes(options.cases));
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-bench-data-'));
  const spoolDir = path.join(dataDir, '.spool');
  mkdirSync(spoolDir);
  // 5k: the flights-5k.json. 200k: the first 200,000 rows of flights-3m.parquet
  // (vega's flights-200k.json lacks origin and destination). Parquet forms of both via DuckDB.
  const duck = await DuckDBInstance.create(':memory:');
  const c = await duck.connect();
  const threeM = path.join(VEGA_DATA_DIR, 'flights-3m.parquet');
  await c.run(
    `COPY (SELECT * FROM read_json('${path.join(VEGA_DATA_DIR, 'flights-5k.json')}')) TO '${path.join(dataDir, 'flights-5000.parquet')}' (FORMAT parquet)`,
  );
  await c.run(
    `COPY (SELECT * FROM read_parquet('${threeM}') LIMIT 200000) TO '${path.join(dataDir, 'flights-200000.parquet')}' (FORMAT parquet)`,
  );
  const sample = await c.runAndReadAll(
    `SELECT strftime(date, '%Y/%m/%d %H:%M') AS date, delay, distance, origin, destination FROM read_parquet('${threeM}') LIMIT 200000`,
  );
  // flights-5k writes dates as "2001/01/14 21:55" (local to nowhere, read here as UTC); as RFC
  // 3339 instants they are a timestamp column, which the dashboard spec buckets.
  const toInstant = (r: InlineRecord): InlineRecord => ({
    ...r,
    date: `${String(r.date).replaceAll('/', '-').replace(' ', 'T')}:00Z`,
  });
  const flights: Record<number, InlineRecord[]> = {
    5000: (
      JSON.parse(readFileSync(path.join(VEGA_DATA_DIR, 'flights-5k.json'), 'utf8')) as InlineRecord[]
    ).map(toInstant),
    200000: sample.getRowObjectsJS().map((r) => ({
      date: String(r.date),
      delay: Number(r.delay),
      distance: Number(r.distance),
      origin: String(r.origin),
      destination: String(r.destination),
    })),
  };
  c.closeSync();
  duck.closeSync();
  copyFileSync(path.join(VEGA_DATA_DIR, 'flights-3m.parquet'), path.join(dataDir, 'flights-3000000.parquet'));

  const queueRedis = await startRedis(['--maxmemory-policy', 'noeviction']);
  const cacheRedis = await startRedis(['--maxmemory', '2gb', '--maxmemory-policy', 'allkeys-lru']);
  const env = {
    QUARRY_QUEUE_REDIS_URL: queueRedis.url,
    QUARRY_CACHE_REDIS_URL: cacheRedis.url,
    QUARRY_PREFIX: 'bench',
    QUARRY_LOG_LEVEL: 'warn',
    QUARRY_DATA_DIR: dataDir,
    QUARRY_WORKER_CONCURRENCY: '1',
    QUARRY_MAX_INLINE_BYTES: String(256 * 1024 * 1024),
    QUARRY_MAX_BODY_BYTES: String(256 * 1024 * 1024),
  };
  const config = loadConfig(env);
  const worker = await startWorkerProcess(env);
  const quarry = createQuarry({ config });
  await quarry.ready();
  const engines: Record<string, AggregationEngine> = {
    duckdb: await createDuckDBEngine({ dataDir, spoolDir, threads: config.duckdbThreads }),
    polars: createPolarsEngine({ threads: config.duckdbThreads, poolSize: config.polarsThreads }),
  };
  const rows: Row[] = [];
  const json: Record<string, unknown>[] = [];
  let salt = 0;
  try {
    for (const c of cases) {
      const runs = Math.max(2, Math.round(c.runs * options.scale));
      const dataset =
        c.kind === 'inline' ? { records: flights[c.rows]! } : { path: `flights-${c.rows}.parquet` };
      const spec = (c.spec ?? flightsSpec)(dataset) as ReturnType<typeof flightsSpec>;
      // Ingest: what it costs to get inline records to an engine (validate, canonicalize, spool).
      let ingestMs: number | null = null;
      let source: EngineSource;
      const addressed =
        c.kind === 'inline' ? addressAggregation(parseAggregation(spec, config)) : await quarry.address(spec);
      if (c.kind === 'inline') {
        const ingest: number[] = [];
        const file = path.join(spoolDir, `inline-${c.rows}.json`);
        for (let i = 0; i < Math.min(runs, 10); i++) {
          const t0 = performance.now();
          const a = addressAggregation(parseAggregation(spec, config));
          writeFileSync(file, a.inlineJson!);
          ingest.push(performance.now() - t0);
        }
        ingestMs = median(ingest);
        if (addressed.spec.dataset.kind !== 'inline') throw new Error('inline expected');
        source = { kind: 'inline', file, columns: addressed.spec.dataset.columns };
      } else {
        source = { kind: 'file', file: path.join(dataDir, `flights-${c.rows}.parquet`), format: 'parquet' };
      }
      const raw: Record<string, number> = {};
      for (const name of ['duckdb', 'polars']) {
        const engine = engines[name]!;
        await engine.run({ spec: addressed.spec, source, maxRows: RAW_MAX_ROWS }); // warm
        const times: number[] = [];
        for (let i = 0; i < runs; i++) {
          const t0 = performance.now();
          await engine.run({ spec: addressed.spec, source, maxRows: RAW_MAX_ROWS });
          times.push(performance.now() - t0);
        }
        raw[name] = median(times);
      }
      let referenceMs: number | null = null;
      if (c.kind === 'inline') {
        const times: number[] = [];
        const parsed = parseAggregation(spec, config);
        if (parsed.dataset.kind !== 'inline') throw new Error('inline expected');
        const records = flights[c.rows]!;
        for (let i = 0; i < Math.min(runs, 5); i++) {
          const t0 = performance.now();
          referenceAggregate(parsed.spec, records, parsed.dataset.data.columns);
          times.push(performance.now() - t0);
        }
        referenceMs = median(times);
      }
      // Jobs interleave the three choices run by run, so drift in machine speed hits all alike.
      const choices = ['duckdb', 'polars', 'auto'] as const;
      const e2eOf: Record<string, number[]> = { duckdb: [], polars: [], auto: [] };
      const delayOf: Record<string, number> = { duckdb: 0, polars: 0, auto: 0 };
      for (let i = -1; i < runs; i++) {
        for (const engine of choices) {
          salt += 1;
          // A new limit each run: a new result key, so every job computes (a cache miss).
          const jobSpec = { ...spec, engine, limit: 20 + (salt % 1000) };
          await workerCall(worker, 'reset');
          const t0 = performance.now();
          const handle = await quarry.aggregate(jobSpec);
          const envelope = await handle.wait({ timeoutMs: 120_000 });
          const dt = performance.now() - t0;
          const { maxMs } = (await workerCall(worker, 'read')) as { maxMs: number };
          if (handle.cached) throw new Error('expected a miss');
          if (engine !== 'auto' && envelope.engine !== engine) throw new Error('wrong engine');
          if (i >= 0) {
            e2eOf[engine]!.push(dt);
            delayOf[engine] = Math.max(delayOf[engine]!, maxMs);
          }
        }
      }
      for (const engine of choices) {
        const e2e = e2eOf[engine]!;
        const worstDelay = delayOf[engine]!;
        const rawMs = engine === 'auto' ? Math.min(raw.duckdb!, raw.polars!) : raw[engine]!;
        const jobMs = median(e2e);
        const base = rawMs + (ingestMs ?? 0);
        const row = {
          case: c.name,
          engine,
          'raw engine ms': engine === 'auto' ? null : round(rawMs),
          'ingest ms': ingestMs === null ? null : round(ingestMs),
          'job e2e ms': round(jobMs),
          'job / (ingest+raw)': round(jobMs / base),
          'max loop delay ms': round(worstDelay),
          'reference ms': engine === 'duckdb' && referenceMs !== null ? round(referenceMs) : null,
          runs,
        };
        rows.push(row);
        json.push({ ...row, e2e: summarize(e2e) });
      }
    }
    printTable(`engines: the aggregate-5k spec at three sizes, medians (${os.cpus().length} cores)`, rows);
    const byCase = new Map<string, Record<string, number>>();
    for (const r of rows) {
      const m = byCase.get(String(r.case)) ?? {};
      m[String(r.engine)] = Number(r['job e2e ms']);
      byCase.set(String(r.case), m);
    }
    const targets = [...byCase].map(([name, m]) => ({
      case: name,
      'auto / faster engine (≤ 1.10)': round(m.auto! / Math.min(m.duckdb!, m.polars!)),
    }));
    const threeM = rows.filter((r) => String(r.case).endsWith('3M parquet') && r.engine !== 'auto');
    for (const r of threeM) {
      targets.push({
        case: `${r.case} ${r.engine}: job / raw (≤ 1.15)`,
        'auto / faster engine (≤ 1.10)': Number(r['job / (ingest+raw)']),
      });
    }
    for (const name of new Set(threeM.map((r) => String(r.case)))) {
      const raw = (engine: string) =>
        Number(threeM.find((r) => r.case === name && r.engine === engine)?.['raw engine ms']);
      targets.push({
        case: `${name}: Polars raw / DuckDB raw (≤ 2)`,
        'auto / faster engine (≤ 1.10)': round(raw('polars') / raw('duckdb')),
      });
    }
    targets.push({
      case: 'max event-loop delay in the worker, ms (≤ 50)',
      'auto / faster engine (≤ 1.10)': Math.max(...rows.map((r) => Number(r['max loop delay ms']))),
    });
    printTable('targets (measured)', targets);
    const file = writeResults('engines', { rows: json, targets });
    console.log(`\nwrote ${file}`);
  } finally {
    await quarry.close();
    for (const e of Object.values(engines)) await e.close();
    worker.send('stop');
    await new Promise((r) => worker.once('exit', r));
    await queueRedis.stop();
    await cacheRedis.stop();
  }
}

const round = (x: number) => Math.round(x * 100) / 100;

function startWorkerProcess(env: Record<string, string>): Promise<ChildProcess> {
  const child = fork(path.resolve('bench/lib/eld-worker.ts'), [], {
    execArgv: tsExecArgv(),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`bench worker exited with ${code}`)));
  });
}

function workerCall(child: ChildProcess, message: string): Promise<unknown> {
  return new Promise((resolve) => {
    child.once('message', resolve);
    child.send(message);
  });
}
