// Real data for tests: vega-datasets' flights-5k.json, and the same rows written as Parquet,
// CSV and NDJSON into a data root by DuckDB (an unrestricted instance, test-only).
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { AggregationSpecInput } from '../../shared/aggregation.ts';
import type { InlineRecord } from '../../shared/datasets.ts';

const require = createRequire(import.meta.url);
// The package exports only its JS entry; its data folder sits beside package.json.
export const VEGA_DATA_DIR = path.join(path.dirname(path.dirname(require.resolve('vega-datasets'))), 'data');

export function loadFlights(name = 'flights-5k.json'): InlineRecord[] {
  return JSON.parse(readFileSync(path.join(VEGA_DATA_DIR, name), 'utf8')) as InlineRecord[];
}

/** A fresh data root holding flights-5k as flights.parquet, flights.csv and flights.ndjson. */
export async function makeFlightsDataDir(): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'quarry-data-'));
  const records = loadFlights();
  writeFileSync(path.join(dir, 'flights.ndjson'), `${records.map((r) => JSON.stringify(r)).join('\n')}\n`);
  const instance = await DuckDBInstance.create(':memory:');
  const c = await instance.connect();
  const src = `read_json('${path.join(dir, 'flights.ndjson')}', format = 'newline_delimited')`;
  await c.run(`COPY (SELECT * FROM ${src}) TO '${path.join(dir, 'flights.parquet')}' (FORMAT parquet)`);
  await c.run(`COPY (SELECT * FROM ${src}) TO '${path.join(dir, 'flights.csv')}' (FORMAT csv, HEADER true)`);
  c.closeSync();
  instance.closeSync();
  return dir;
}

/** The benchmark spec: per origin count, avg delay, max distance, distinct destinations, p95 delay. */
export function flightsSpec(dataset: unknown): Omit<AggregationSpecInput, 'dataset'> & { dataset: unknown } {
  return {
    dataset,
    groupBy: ['origin'],
    metrics: [
      { op: 'count' },
      { op: 'avg', column: 'delay' },
      { op: 'max', column: 'distance' },
      { op: 'count_distinct', column: 'destination' },
      { op: 'quantile', column: 'delay', q: 0.95 },
    ],
    orderBy: [{ column: 'count', direction: 'desc' }],
    limit: 20,
  };
}

/**
 * Seconds of DuckDB work over vega's flights-3m.parquet (more with QUARRY_DUCKDB_THREADS=1):
 * long enough for a job to be caught running, by a cancellation, a kill or a lock check.
 */
export function slowFlightsSpec(limit: number) {
  return {
    dataset: { path: 'flights-3m.parquet' },
    groupBy: ['date', 'origin'],
    metrics: [
      { op: 'count' },
      { op: 'quantile', column: 'delay', q: 0.5 },
      { op: 'count_distinct', column: 'destination' },
    ],
    orderBy: [{ column: 'count', direction: 'desc' }],
    limit,
  };
}
