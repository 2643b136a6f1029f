// `npm run bench -- js-engine`: the JS engine against the DuckDB engine on the scale bench's spec
// (flightsSpec: per origin count, avg, max, count distinct, p95; ordered; top 20) over inline
// flights records of growing size, in this process, alternating run by run. JS: parse the
// canonical JSON and run (what a worker does); DuckDB: write the spool file and run. Prints
// median wall ms and CPU ms per job, and the ratio: where it crosses 1 is auto's bound
// (workers/engines/choose.ts JS_ENGINE_MAX_ROWS). Then the same for issue 10's dashboard spec
// (a day bucket in Los Angeles, filtered count, ratio, p95, top 3 per day), whose zone buckets
// cost the JS engine a wall-time reading per distinct instant: its crossover is
// JS_ENGINE_MAX_ZONED_ROWS.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addressAggregation, parseAggregation } from '../shared/aggregation.ts';
import { flightsSpec, loadFlights } from '../test/helpers/flights.ts';
import { createDuckDBEngine } from '../workers/engines/duckdb.ts';
import { createJsEngine } from '../workers/engines/js.ts';
import { dashboardSpec } from './engines.ts';

const SIZES = [20, 1_000, 5_000, 10_000, 20_000, 50_000];
const limits = { maxInlineBytes: 64 * 1024 * 1024, maxResultRows: 10_000 };

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function runJsEngine(options: { iterations: number }): Promise<void> {
  const five = loadFlights();
  const flights = Array.from({ length: Math.max(...SIZES) }, (_, i) => five[i % five.length]!);
  // As bench/engines.ts: flights-5k's "2001/01/14 21:55" as RFC 3339 instants, a timestamp column.
  // Repeated records get later instants (i / 5000 days on), so every copy adds distinct values.
  const instants = flights.map((r, i) => ({
    ...r,
    date: new Date(
      Date.parse(`${String(r.date).replaceAll('/', '-').replace(' ', 'T')}:00Z`) +
        Math.floor(i / five.length) * 86_400_000,
    ).toISOString(),
  }));
  const specs = [
    { spec: 'flights', build: (n: number) => flightsSpec({ records: flights.slice(0, n) }) },
    { spec: 'dashboard', build: (n: number) => dashboardSpec({ records: instants.slice(0, n) }) },
  ];
  const spoolDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-js-bench-'));
  const duckdb = await createDuckDBEngine({ threads: 2, dataDir: spoolDir, spoolDir });
  const js = createJsEngine();
  const table: Record<string, number | string>[] = [];
  try {
    for (const { spec, build } of specs)
      for (const size of SIZES) {
        const addressed = addressAggregation(parseAggregation(build(size), limits));
        if (addressed.spec.dataset.kind !== 'inline') throw new Error('inline');
        const { columns } = addressed.spec.dataset;
        const json = Buffer.from(addressed.inlineJson!);
        const runs = Math.max(5, Math.min(options.iterations, Math.round(200_000 / size)));
        const t = {
          js: [] as number[],
          duckdb: [] as number[],
          jsCpu: [] as number[],
          duckCpu: [] as number[],
        };
        for (let i = 0; i < runs; i++) {
          let c0 = process.cpuUsage();
          let t0 = performance.now();
          const records = JSON.parse(json.toString('utf8'));
          await js.run({
            spec: addressed.spec,
            source: { kind: 'records', records, columns },
            maxRows: 10_000,
          });
          t.js.push(performance.now() - t0);
          let c = process.cpuUsage(c0);
          t.jsCpu.push((c.user + c.system) / 1000);
          c0 = process.cpuUsage();
          t0 = performance.now();
          const file = path.join(spoolDir, `${i}.json`);
          writeFileSync(file, json);
          await duckdb.run({
            spec: addressed.spec,
            source: { kind: 'inline', file, columns },
            maxRows: 10_000,
          });
          rmSync(file);
          t.duckdb.push(performance.now() - t0);
          c = process.cpuUsage(c0);
          t.duckCpu.push((c.user + c.system) / 1000);
        }
        const row = {
          spec,
          records: size,
          runs,
          'js ms': +median(t.js).toFixed(3),
          'duckdb ms': +median(t.duckdb).toFixed(3),
          'js / duckdb (wall)': +(median(t.js) / median(t.duckdb)).toFixed(3),
          'js cpu ms': +median(t.jsCpu).toFixed(3),
          'duckdb cpu ms': +median(t.duckCpu).toFixed(3),
        };
        table.push(row);
        process.stdout.write(`${JSON.stringify(row)}\n`);
      }
    console.table(table);
    process.stdout.write(`${JSON.stringify({ bench: 'js-engine', loadavg: os.loadavg(), rows: table })}\n`);
  } finally {
    await duckdb.close();
    rmSync(spoolDir, { recursive: true, force: true });
  }
}
