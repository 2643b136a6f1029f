// The published Python-stack test, redone: 5,000 flights (vega-datasets flights-5k.json), per
// origin count, avg delay, max distance, distinct destinations, p95 delay; order by count desc;
// limit 20. End-to-end latency in the app (enqueue → result) on a cache MISS (every iteration
// a distinct dataset) and a HIT, via the SDK and via HTTP (keep-alive, one connection); result
// fetch by key against a bare node:http server sending the same bytes; beside them the floors:
// a raw BullMQ no-op round trip and the raw DuckDB engine call on the same data.
// Worker, API, bare server and no-op worker each run in their own process, as deployed.
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { createQuarry } from '../producers/client.ts';
import { addressAggregation, parseAggregation } from '../shared/aggregation.ts';
import { loadConfig } from '../shared/config.ts';
import { flightsSpec, loadFlights } from '../test/helpers/flights.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { createDuckDBEngine } from '../workers/engines/duckdb.ts';
import { startNode } from './lib/processes.ts';
import { measure, printTable, type Row, type Summary, summarize, writeResults } from './lib/stats.ts';

export async function runAggregate5k(options: { iterations: number }): Promise<void> {
  const N = options.iterations;
  const records = loadFlights('flights-5k.json');
  const queueRedis = await startRedis(['--maxmemory-policy', 'noeviction']);
  const cacheRedis = await startRedis(['--maxmemory', '1gb', '--maxmemory-policy', 'allkeys-lru']);
  const env = {
    QUARRY_QUEUE_REDIS_URL: queueRedis.url,
    QUARRY_CACHE_REDIS_URL: cacheRedis.url,
    QUARRY_PREFIX: 'bench',
    QUARRY_LOG_LEVEL: 'info',
    QUARRY_API_PORT: '0',
    QUARRY_DATA_DIR: os.tmpdir(),
  };
  const apiPort = String(30000 + Math.floor(Math.random() * 20000));
  const worker = await startNode('workers/main.ts', env, 'worker ready');
  const api = await startNode(
    'api/main.ts',
    { ...env, QUARRY_API_PORT: apiPort, QUARRY_LOG_LEVEL: 'info' },
    'Server listening',
  );
  const config = loadConfig(env);
  const quarry = createQuarry({ config });
  await quarry.ready();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const post = (body: string) =>
    httpRequest(agent, Number(apiPort), 'POST', '/v1/aggregations?wait=30000', body);
  const get = (port: number, url: string) => httpRequest(agent, port, 'GET', url);

  const rows: Row[] = [];
  const results: Record<string, Summary> = {};
  const add = (name: string, what: string, s: Summary, note = '') => {
    results[name] = s;
    rows.push({ measure: name, what, p50: s.p50, p95: s.p95, p99: s.p99, n: s.n, note });
  };
  // Each MISS iteration changes one value, so the dataset (and the result key) is new.
  let salt = 0;
  const distinct = () => {
    salt += 1;
    const copy = records.slice();
    copy[0] = { ...copy[0]!, delay: 1_000_000 + salt };
    return flightsSpec({ records: copy });
  };

  try {
    // SDK
    add(
      'sdk-miss',
      'SDK aggregate() + wait(), new data',
      await measure(N, async () => {
        const job = await quarry.aggregate(distinct());
        if (job.cached) throw new Error('expected a miss');
        await job.wait();
      }),
    );
    const hitSpec = flightsSpec({ records });
    await (await quarry.aggregate(hitSpec)).wait();
    add(
      'sdk-hit',
      'SDK aggregate() + wait(), cached',
      await measure(N, async () => {
        const job = await quarry.aggregate(hitSpec);
        if (!job.cached) throw new Error('expected a hit');
        await job.wait();
      }),
    );

    // HTTP (client serializes the body in each iteration, as an app would)
    add(
      'http-miss',
      'POST /v1/aggregations?wait, new data',
      await measure(N, async () => {
        const res = await post(JSON.stringify(distinct()));
        if (res.status !== 200 || res.headers['x-quarry-cache'] !== 'miss')
          throw new Error(`miss: ${res.status}`);
      }),
    );
    await post(JSON.stringify(hitSpec));
    add(
      'http-hit',
      'POST /v1/aggregations, cached',
      await measure(N, async () => {
        const res = await post(JSON.stringify(hitSpec));
        if (res.headers['x-quarry-cache'] !== 'hit') throw new Error('expected a hit');
      }),
    );

    // Result by key: API vs a bare node:http server with the same bytes, vs the SDK.
    const { resultKey } = addressAggregation(parseAggregation(hitSpec, config));
    const bytes = (await quarry.resultBytes(resultKey))!;
    const bytesFile = path.join(os.tmpdir(), `quarry-bench-result-${process.pid}.json`);
    writeFileSync(bytesFile, bytes);
    const bare = await startNode('bench/lib/bare-server.ts', {}, 'listening', [bytesFile]);
    const barePortNumber = Number(/listening (\d+)/.exec(bare.output)?.[1]);
    // Interleave the two servers so drift in machine speed hits both alike.
    const apiSamples: number[] = [];
    const bareSamples: number[] = [];
    for (let i = 0; i < N * 5 + 50; i++) {
      for (const [port, url, sink] of [
        [Number(apiPort), `/v1/results/${resultKey}`, apiSamples],
        [barePortNumber, '/', bareSamples],
      ] as const) {
        const t0 = performance.now();
        const res = await get(port, url);
        const dt = performance.now() - t0;
        if (res.body.length !== bytes.length) throw new Error('result bytes differ');
        if (i >= 50) sink.push(dt);
      }
    }
    add('http-result', 'GET /v1/results/:key', summarize(apiSamples), `${bytes.length} B`);
    add('bare-http', 'bare node:http, same bytes', summarize(bareSamples), 'floor');
    add(
      'sdk-result',
      'SDK result(key)',
      await measure(N * 5, async () => {
        await quarry.result(resultKey);
      }),
    );
    await bare.stop();

    // Floors: a raw BullMQ no-op round trip, and the raw engine call.
    const noop = await startNode(
      'bench/lib/noop-worker.ts',
      { REDIS_URL: queueRedis.url, PREFIX: 'floor' },
      'ready',
    );
    const queueConn = new Redis(queueRedis.url, { maxRetriesPerRequest: null });
    const queue = new Queue('noop', { connection: queueConn, prefix: 'floor' });
    const events = new QueueEvents('noop', { connection: { url: queueRedis.url }, prefix: 'floor' });
    await events.waitUntilReady();
    add(
      'bullmq-noop',
      'raw BullMQ add → waitUntilFinished',
      await measure(N, async () => {
        const job = await queue.add('noop', { x: 1 }, { removeOnComplete: { count: 100 } });
        await job.waitUntilFinished(events);
      }),
      'floor',
    );
    await events.close();
    await queue.close();
    queueConn.disconnect();
    await noop.stop();

    const engine = await createDuckDBEngine({
      dataDir: os.tmpdir(),
      spoolDir: config.spoolDir,
      threads: config.duckdbThreads,
    });
    const addressed = addressAggregation(parseAggregation(hitSpec, config));
    const spool = path.join(config.spoolDir, 'bench-engine.json');
    writeFileSync(spool, addressed.inlineJson!);
    if (addressed.spec.dataset.kind !== 'inline') throw new Error('inline expected');
    const source = { kind: 'inline' as const, file: spool, columns: addressed.spec.dataset.columns };
    add(
      'duckdb-raw',
      'DuckDB engine call (read JSON + query)',
      await measure(N, async () => {
        await engine.run({ spec: addressed.spec, source, maxRows: 1000 });
      }),
      'floor',
    );
    add(
      'hash-only',
      'validate + canonicalize + hash 5k records',
      await measure(N, async () => {
        addressAggregation(parseAggregation(hitSpec, config));
      }),
    );
    await engine.close();

    const published = [
      { measure: 'python stack (published)', what: 'Polars + DuckDB + Redis', miss: 864, hit: 8.4 },
      { measure: 'node + prisma (published)', what: '', miss: 1250, hit: 12 },
      { measure: 'rust (published)', what: '', miss: 720, hit: 6 },
    ];
    printTable(
      `aggregate-5k: end-to-end latency in ms (n=${N}, ${os.cpus().length} cores, Node ${process.version})`,
      rows,
    );
    printTable('published reference rows (ms)', published);
    const ratio = results['http-result']!.p50 / results['bare-http']!.p50;
    const targets = {
      'miss p50 ≤ 15 ms (SDK)': results['sdk-miss']!.p50,
      'miss p99 ≤ 40 ms (SDK)': results['sdk-miss']!.p99,
      'miss p50 ≤ 15 ms (HTTP)': results['http-miss']!.p50,
      'miss p99 ≤ 40 ms (HTTP)': results['http-miss']!.p99,
      'hit p50 ≤ 3 ms (SDK)': results['sdk-hit']!.p50,
      'hit p50 ≤ 3 ms (HTTP)': results['http-hit']!.p50,
      'result p50 ≤ 0.3 ms (HTTP)': results['http-result']!.p50,
      'result p50 ≤ 0.3 ms (SDK)': results['sdk-result']!.p50,
      'result p50 / bare ≤ 1.3': Math.round(ratio * 100) / 100,
      'speedup vs python miss (SDK p50)': Math.round((864 / results['sdk-miss']!.p50) * 10) / 10,
      'speedup vs python hit (SDK p50)': Math.round((8.4 / results['sdk-hit']!.p50) * 10) / 10,
    };
    printTable(
      'targets (measured)',
      Object.entries(targets).map(([target, value]) => ({ target, value })),
    );
    const file = writeResults('aggregate-5k', { iterations: N, results, published, targets });
    console.log(`\nwrote ${file}`);
  } finally {
    agent.destroy();
    await quarry.close();
    await api.stop();
    await worker.stop();
    await queueRedis.stop();
    await cacheRedis.stop();
  }
}

interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export function httpRequest(
  agent: http.Agent,
  port: number,
  method: string,
  url: string,
  body?: string,
): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: url,
        agent,
        headers:
          body === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
