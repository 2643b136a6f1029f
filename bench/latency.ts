// Issue 13's latency targets in one run, each beside its target:
// - a 3M-row Parquet job through `POST /v1/aggregations?wait` (every run a new limit, so a new
//   result key: a miss) against the raw DuckDB engine call on the same file in this process,
//   alternated run by run: target ≤ 1.15 × raw + 3 ms;
// - 5,000 inline records (flights-5k), a miss over HTTP (p50 ≤ 12 ms) and via the SDK (≤ 9 ms),
//   a hit via the SDK (≤ 1.5 ms); beside them what validating, canonicalizing and hashing the
//   records costs alone.
// Worker and API run in their own processes, as deployed (logs at info); HTTP over one
// keep-alive connection.
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createQuarry } from '../producers/client.ts';
import { addressAggregation, parseAggregation } from '../shared/aggregation.ts';
import { loadConfig } from '../shared/config.ts';
import { flightsSpec, loadFlights, VEGA_DATA_DIR } from '../test/helpers/flights.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { createDuckDBEngine } from '../workers/engines/duckdb.ts';
import { httpRequest } from './aggregate-5k.ts';
import { type Child, startNode } from './lib/processes.ts';
import { measure, printTable, type Row, type Summary, summarize, writeResults } from './lib/stats.ts';

const round = (x: number) => Math.round(x * 100) / 100;

export async function runLatency(options: { iterations: number; parquetRuns: number }): Promise<void> {
  const N = options.iterations;
  // vega-datasets' folder is the data root: flights-3m.parquet is read where it lies.
  const dataDir = VEGA_DATA_DIR;
  const queueRedis = await startRedis(['--maxmemory-policy', 'noeviction']);
  const cacheRedis = await startRedis(['--maxmemory', '1gb', '--maxmemory-policy', 'allkeys-lru']);
  const apiPort = String(30000 + Math.floor(Math.random() * 20000));
  const env = {
    QUARRY_QUEUE_REDIS_URL: queueRedis.url,
    QUARRY_CACHE_REDIS_URL: cacheRedis.url,
    QUARRY_PREFIX: 'bench',
    QUARRY_LOG_LEVEL: 'info',
    QUARRY_LOG_FORMAT: 'json',
    QUARRY_DATA_DIR: dataDir,
    QUARRY_API_PORT: apiPort,
  };
  const config = loadConfig(env);
  const children: Child[] = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const quarry = createQuarry({ config });
  const engine = await createDuckDBEngine({
    dataDir,
    spoolDir: config.spoolDir,
    threads: config.duckdbThreads,
  });
  try {
    children.push(await startNode('workers/main.ts', env, 'worker ready'));
    children.push(await startNode('api/main.ts', env, 'Server listening'));
    await quarry.ready();
    const post = (body: string) =>
      httpRequest(agent, Number(apiPort), 'POST', '/v1/aggregations?wait=30000', body);

    // 3M-row Parquet: the job through POST ?wait against the raw engine call, alternated.
    const parquetSpec = flightsSpec({ path: 'flights-3m.parquet' });
    const addressed = await quarry.address(parquetSpec);
    const source = {
      kind: 'file' as const,
      file: path.join(dataDir, 'flights-3m.parquet'),
      format: 'parquet' as const,
    };
    const rawMs: number[] = [];
    const jobMs: number[] = [];
    for (let i = -1; i < options.parquetRuns; i++) {
      let t0 = performance.now();
      await engine.run({ spec: addressed.spec, source, maxRows: 1000 });
      const raw = performance.now() - t0;
      const body = JSON.stringify({ ...parquetSpec, engine: 'duckdb', limit: 20 + i + 2 });
      t0 = performance.now();
      const res = await post(body);
      const job = performance.now() - t0;
      if (res.status !== 200 || res.headers['x-quarry-cache'] !== 'miss') {
        throw new Error(`3M parquet job: ${res.status} ${res.headers['x-quarry-cache']} ${res.body}`);
      }
      if (i >= 0) {
        rawMs.push(raw);
        jobMs.push(job);
      }
    }
    const raw3m = summarize(rawMs);
    const job3m = summarize(jobMs);

    // 5k inline records: every miss a distinct dataset (one value changed), so a new result key.
    const records = loadFlights('flights-5k.json');
    let salt = 0;
    const distinct = () => {
      salt += 1;
      const copy = records.slice();
      copy[0] = { ...copy[0]!, delay: 1_000_000 + salt };
      return flightsSpec({ records: copy });
    };
    const httpMiss = await measure(N, async () => {
      const res = await post(JSON.stringify(distinct()));
      if (res.status !== 200 || res.headers['x-quarry-cache'] !== 'miss')
        throw new Error(`miss: ${res.status}`);
    });
    const sdkMiss = await measure(N, async () => {
      const job = await quarry.aggregate(distinct());
      if (job.cached) throw new Error('expected a miss');
      await job.wait();
    });
    const hitSpec = flightsSpec({ records });
    await (await quarry.aggregate(hitSpec)).wait();
    const sdkHit = await measure(N, async () => {
      const job = await quarry.aggregate(hitSpec);
      if (!job.cached) throw new Error('expected a hit');
      await job.wait();
    });
    const hashOnly = await measure(N, async () => {
      addressAggregation(parseAggregation(hitSpec, config));
    });

    const bound3m = 1.15 * raw3m.p50 + 3;
    // The figures came from a quieter machine: each 5k figure over the hash alone (2.1 ms
    // there) reads the same on any machine, and shows what the SDK hit can reach at best.
    const perHash = (x: Summary) => round(x.p50 / hashOnly.p50);
    const rows: Row[] = [
      { measure: '3M parquet, raw DuckDB engine call', 'p50 ms': round(raw3m.p50), target: '', met: '' },
      {
        measure: '3M parquet, POST /v1/aggregations?wait',
        'p50 ms': round(job3m.p50),
        target: `≤ 1.15 × raw + 3 = ${round(bound3m)}`,
        met: job3m.p50 <= bound3m ? 'yes' : 'no',
      },
      {
        measure: '5k inline miss, HTTP POST ?wait',
        'p50 ms': round(httpMiss.p50),
        '÷ hash': perHash(httpMiss),
        target: '≤ 12',
        met: httpMiss.p50 <= 12 ? 'yes' : 'no',
      },
      {
        measure: '5k inline miss, SDK aggregate + wait',
        'p50 ms': round(sdkMiss.p50),
        '÷ hash': perHash(sdkMiss),
        target: '≤ 9',
        met: sdkMiss.p50 <= 9 ? 'yes' : 'no',
      },
      {
        measure: '5k inline hit, SDK aggregate + wait',
        'p50 ms': round(sdkHit.p50),
        '÷ hash': perHash(sdkHit),
        target: '≤ 1.5',
        met: sdkHit.p50 <= 1.5 ? 'yes' : 'no',
      },
      {
        measure: '5k validate + canonicalize + hash',
        'p50 ms': round(hashOnly.p50),
        '÷ hash': 1,
        target: '(2.1 when the targets were set)',
        met: '',
      },
    ];
    const load = os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ');
    printTable(
      `latency: medians (3M parquet: ${options.parquetRuns} alternated runs; 5k: n=${N}; ${os.cpus().length} cores, load average ${load})`,
      rows,
    );
    const results: Record<string, Summary> = { raw3m, job3m, httpMiss, sdkMiss, sdkHit, hashOnly };
    const file = writeResults('latency', {
      iterations: N,
      parquetRuns: options.parquetRuns,
      loadAverage: os.loadavg(),
      results,
      rows,
    });
    console.log(`\nwrote ${file}`);
  } finally {
    agent.destroy();
    await quarry.close();
    await engine.close();
    for (const c of children.reverse()) await c.stop();
    await Promise.all([queueRedis.stop(), cacheRedis.stop()]);
  }
}
