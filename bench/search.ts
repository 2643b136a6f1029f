// `npm run bench -- search`: full-text search on ~10,000 and ~100,000 real documents (the corpus
// recipe in bench/corpus.ts), 200 queries of 1-4 terms drawn from the text. In process (from
// bench/search-core.ts): build time, query p50/p99, index bytes and top-10 overlap with exact
// BM25 for Quarry, MiniSearch, FlexSearch and SQLite FTS5, plus Tantivy's published figures.
// Through the system (here): the index job end to end (SDK enqueue → version live, documents
// from an NDJSON file under the data root, built by a worker process), fetching and loading
// the index from Redis, and query latency over HTTP against an API process (keep-alive, one
// connection) beside the in-process figure.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { createQuarry } from '../producers/client.ts';
import { loadConfig } from '../shared/config.ts';
import { IndexStore } from '../shared/index-store.ts';
import { keyScheme } from '../shared/keys.ts';
import { loadIndex, search } from '../shared/search/index.ts';
import { tsExecArgv } from '../shared/ts-runtime.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { IndexBuilder } from '../workers/index-builder.ts';
import { buildCorpus } from './corpus.ts';
import { startNode } from './lib/processes.ts';
import { get, type QueryLoop, queryLoop } from './lib/search-http.ts';
import { printTable, type Row, summarize, writeResults } from './lib/stats.ts';
import { runSearchCoreBench } from './search-core.ts';
import { runSearchQueryBench } from './search-query.ts';

export async function runSearch(options: { sizes: (10_000 | 100_000)[]; parts?: string }): Promise<void> {
  // `--cases core,queries,threads,system`: only those parts (all by default).
  const runs = (part: string) => options.parts === undefined || options.parts.split(',').includes(part);
  const core = runs('core')
    ? await runSearchCoreBench({ sizes: options.sizes, log: (line) => console.log(line) })
    : [];
  if (runs('core')) printTable('search, in process (build = compute only)', core);
  const queries = runs('queries')
    ? await runSearchQueryBench({ sizes: options.sizes, log: (line) => console.log(line) })
    : [];
  if (runs('queries')) printTable('full queries in process beside SQLite FTS5 (ms)', queries);
  const threads = runs('threads') ? await buildThreadsBench(options.sizes) : [];
  if (runs('threads')) {
    printTable(
      'index build on warm threads, JSON bytes in, 1 vs 2 threads, 2 threads keeping the documents (alternating rounds, ms)',
      threads,
    );
  }
  if (!runs('system')) {
    writeResults('search', { inProcess: core, queries, threads });
    return;
  }

  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-bench-search-'));
  const queueRedis = await startRedis(['--maxmemory-policy', 'noeviction']);
  const cacheRedis = await startRedis(['--maxmemory', '1gb', '--maxmemory-policy', 'allkeys-lru']);
  const apiPort = String(30000 + Math.floor(Math.random() * 20000));
  const env = {
    QUARRY_QUEUE_REDIS_URL: queueRedis.url,
    QUARRY_CACHE_REDIS_URL: cacheRedis.url,
    QUARRY_PREFIX: 'bench',
    QUARRY_LOG_LEVEL: 'info',
    QUARRY_DATA_DIR: dataDir,
  };
  const worker = await startNode('workers/main.ts', env, 'worker ready');
  const api = await startNode('api/main.ts', { ...env, QUARRY_API_PORT: apiPort }, 'Server listening');
  const config = loadConfig(env);
  const quarry = createQuarry({ config });
  await quarry.ready();
  const raw = new Redis(queueRedis.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const rows: Row[] = [];
  try {
    for (const size of options.sizes) {
      const corpus = await buildCorpus(size);
      const file = `corpus-${size}.ndjson`;
      writeFileSync(path.join(dataDir, file), `${corpus.docs.map((d) => JSON.stringify(d)).join('\n')}\n`);
      const collection = `c${size}`;
      const request = { source: { path: file }, idField: 'id', fields: ['title', 'body'], store: ['title'] };
      // Job end to end, twice (the second run is a rebuild: a new version replaces the first).
      const jobs: number[] = [];
      let buildMs = 0;
      for (let i = 0; i < 2; i++) {
        const t0 = performance.now();
        const info = await (await quarry.index(collection, request)).wait({ timeoutMs: 600_000 });
        jobs.push(performance.now() - t0);
        buildMs = info.buildMs;
      }
      // Fetch from Redis + load (what an API process does on a new version).
      const store = new IndexStore(raw, keyScheme(config.prefix));
      const version = (await store.current(collection))!;
      const loads: number[] = [];
      let bytes = 0;
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now();
        const buffer = (await store.fetch(collection, version))!;
        loadIndex(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length));
        loads.push(performance.now() - t0);
        bytes = buffer.length;
      }
      // The same in a process of its own (bench/search-load-client.ts), as an API process loads.
      const leanLoads = JSON.parse(
        await runLean('bench/search-load-client.ts', {
          url: queueRedis.url,
          prefix: config.prefix,
          collection,
          version,
          rounds: 5,
        }),
      ) as number[];
      // Queries: in process on the same index, then over HTTP against the API process.
      const buffer = (await store.fetch(collection, version))!;
      const index = loadIndex(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length));
      const inProcess: number[] = [];
      for (let pass = 0; pass < 5; pass++) {
        for (const q of corpus.queries) {
          const t0 = performance.now();
          search(index, q, { k: 10 });
          if (pass > 0) inProcess.push(performance.now() - t0);
        }
      }
      const task = { port: Number(apiPort), collection, queries: corpus.queries, passes: 5 };
      const { client: overHttp, server: tookMs } = await queryLoop(agent, task);
      // The same loop from a process that only makes the requests (bench/search-http-client.ts).
      const lean = await leanClient(task);
      // The floor: a bare node:http server in its own process answering every request with the
      // bytes of one real answer (the first query's), timed by the same lean client.
      const answer = path.join(dataDir, `answer-${size}.json`);
      writeFileSync(
        answer,
        await get(
          agent,
          Number(apiPort),
          `/v1/indexes/${collection}/search?q=${encodeURIComponent(corpus.queries[0]!)}&k=10`,
        ),
      );
      const bare = await startNode('bench/lib/bare-server.ts', {}, 'listening', [answer]);
      const barePort = Number(/listening (\d+)/.exec(bare.output)![1]);
      const floor = await leanClient({ ...task, port: barePort }).finally(() => bare.stop());
      // Document updates: 1% of the collection replaced (new body text), three times, each a job
      // end to end (SDK enqueue → version live), beside the full build above.
      const share = Math.round(size / 100);
      const updateJobs: number[] = [];
      const updateBuilds: number[] = [];
      let documentBytes = 0;
      for (let i = 0; i < 3; i++) {
        const changed = corpus.docs
          .slice(i * share, (i + 1) * share)
          .map((d) => ({ ...d, body: `${d.body} revised ${i}` }));
        const t0 = performance.now();
        const info = await (await quarry.upsertDocuments(collection, changed)).wait({ timeoutMs: 600_000 });
        updateJobs.push(performance.now() - t0);
        updateBuilds.push(info.buildMs);
        if (info.documents !== corpus.docs.length)
          throw new Error(`update lost documents: ${info.documents}`);
        documentBytes = (await store.documents(collection, info.version))?.length ?? 0;
      }
      const ip = summarize(inProcess);
      const h = summarize(overHttp);
      const server = summarize(tookMs);
      const updateJob = summarize(updateJobs).p50;
      rows.push({
        docs: corpus.docs.length,
        'text MB': Math.round(corpus.textBytes / 1e5) / 10,
        'build ms (compute)': buildMs,
        'job e2e ms': Math.round(Math.min(...jobs)),
        'index MB': Math.round(bytes / 1e5) / 10,
        'fetch+load ms': Math.round(summarize(loads).p50 * 10) / 10,
        'fetch+load ms, lean process': Math.round(summarize(leanLoads).p50 * 10) / 10,
        'in-process p50': ip.p50,
        'in-process p99': ip.p99,
        'HTTP p50': h.p50,
        'HTTP p99': h.p99,
        'HTTP p50, lean client': summarize(lean.client).p50,
        'HTTP p99, lean client': summarize(lean.client).p99,
        'server tookMs p50': server.p50,
        'server tookMs p99': server.p99,
        'lean client: server tookMs p99': summarize(lean.server).p99,
        'bare server p50, lean client': summarize(floor.client).p50,
        'bare server p99, lean client': summarize(floor.client).p99,
        'update 1% build ms (compute) p50': Math.round(summarize(updateBuilds).p50),
        'update 1% job e2e ms p50': Math.round(updateJob),
        'update/full job': Math.round((updateJob / Math.min(...jobs)) * 100) / 100,
        'kept documents MB (brotli)': Math.round(documentBytes / 1e5) / 10,
      });
    }
    printTable('search through Quarry (ms; HTTP = keep-alive, one connection, client side)', rows);
    const targets: Row[] = rows.map((r) => ({
      docs: r.docs ?? null,
      'build ≤ 300 ms (10k)': r['build ms (compute)'] ?? null,
      'in-process p50 ≤ 0.05 / p99 ≤ 0.3 (10k), p99 ≤ 0.5 (100k)': `${r['in-process p50']} / ${r['in-process p99']}`,
      'HTTP p50 ≤ 0.5 (10k) / p99 ≤ 1.5 (100k)': `${r['HTTP p50']} / ${r['HTTP p99']}`,
      'the same, lean client': `${r['HTTP p50, lean client']} / ${r['HTTP p99, lean client']}`,
      'floor: bare server, lean client': `${r['bare server p50, lean client']} / ${r['bare server p99, lean client']}`,
      'load ≤ 200 ms (100k)': r['fetch+load ms'] ?? null,
      'the same, lean process': r['fetch+load ms, lean process'] ?? null,
    }));
    printTable('targets (measured)', targets);
    const file = writeResults('search', { inProcess: core, queries, threads, system: rows, targets });
    printTable(
      'document updates (1% of the collection replaced) beside full builds (ms)',
      rows.map((r) => ({
        docs: r.docs ?? null,
        'full build ms (compute)': r['build ms (compute)'] ?? null,
        'full job e2e ms': r['job e2e ms'] ?? null,
        'update build ms (compute)': r['update 1% build ms (compute) p50'] ?? null,
        'update job e2e ms': r['update 1% job e2e ms p50'] ?? null,
        'update/full job': r['update/full job'] ?? null,
      })),
    );
    console.log(`\nwrote ${file}`);
  } finally {
    agent.destroy();
    raw.disconnect();
    await quarry.close();
    await api.stop();
    await worker.stop();
    await queueRedis.stop();
    await cacheRedis.stop();
  }
}

/** Runs bench/search-http-client.ts on `task`; its client-side and server timings. */
async function leanClient(task: QueryLoop): Promise<{ client: number[]; server: number[] }> {
  return JSON.parse(await runLean('bench/search-http-client.ts', task)) as {
    client: number[];
    server: number[];
  };
}

/** Runs a bench script in a process of its own with `task` as JSON on stdin; its stdout. */
async function runLean(script: string, task: unknown): Promise<string> {
  const child = spawn(process.execPath, [...tsExecArgv(), script], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdin.end(JSON.stringify(task));
  let out = '';
  for await (const chunk of child.stdout) out += chunk;
  const code: number | null = await new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', resolve);
  });
  if (code !== 0) throw new Error(`${script} exited with ${code}`);
  return out;
}

const KEPT_FIELDS = ['id', 'title', 'body'];

/** What a job's build costs (parse + analyze + write, on kept threads) with one thread and with
 * two, alternating rounds in one run so that the machine's noise hits both alike. */
export async function buildThreadsBench(sizes: readonly number[]): Promise<Row[]> {
  const rows: Row[] = [];
  const options = { idField: 'id', fields: ['title', 'body'], store: ['title'] };
  for (const size of sizes) {
    const corpus = await buildCorpus(size as 10_000 | 100_000);
    const json = Buffer.from(JSON.stringify(corpus.docs));
    const builders = [
      new IndexBuilder({ threadsPerBuild: 1 }),
      new IndexBuilder({ threadsPerBuild: 2 }),
      new IndexBuilder({ threadsPerBuild: 2 }),
    ];
    const times: number[][] = [[], [], []];
    let kept = 0;
    try {
      for (let round = 0; round < 7; round++) {
        for (let b = 0; b < 3; b++) {
          const input = json.buffer.slice(json.byteOffset, json.byteOffset + json.length) as ArrayBuffer;
          const t0 = performance.now();
          // The third keeps the documents as a job does (projected, brotli quality 0).
          if (b === 2) kept = (await builders[b]!.buildKeeping(input, options, KEPT_FIELDS)).documents.length;
          else await builders[b]!.build(input, options);
          // The first two rounds warm the threads' JIT.
          if (round >= 2) times[b]!.push(performance.now() - t0);
        }
      }
    } finally {
      await Promise.all(builders.map((b) => b.close()));
    }
    const one = summarize(times[0]!).p50;
    const two = summarize(times[1]!).p50;
    const keeping = summarize(times[2]!).p50;
    rows.push({
      docs: corpus.docs.length,
      '1 thread p50': Math.round(one),
      '2 threads p50': Math.round(two),
      'ratio 2/1': Math.round((two / one) * 100) / 100,
      '2 threads + kept docs p50': Math.round(keeping),
      'ratio kept/2': Math.round((keeping / two) * 100) / 100,
      'JSON MB': Math.round(json.length / 1e5) / 10,
      'kept MB (brotli)': Math.round(kept / 1e5) / 10,
    });
  }
  return rows;
}
