// Fairness: tenant A floods small jobs plus heavy 3M-row jobs; tenant B asks for small jobs one at
// a time meanwhile. Measures B's latency (p50/p99) idle and during the flood, A's flood throughput
// with fair dispatch against a FIFO run of the same flood (no API keys: one queue in arrival
// order), and an `interactive` job of A during A's own flood of `normal` jobs. One worker
// process, one Redis, the same settings in every run. Writes bench/results/fairness.json.
import path from 'node:path';
import { createQuarry, type QuarryClient } from '../producers/client.ts';
import { loadConfig } from '../shared/config.ts';
import { slowFlightsSpec, VEGA_DATA_DIR } from '../test/helpers/flights.ts';
import { freePort, startRedis } from '../test/helpers/redis.ts';
import { uniquePrefix } from '../test/helpers/system.ts';
import { type Child, startNode } from './lib/processes.ts';
import { printTable, type Row, type Summary, summarize, writeResults } from './lib/stats.ts';

export interface FairnessOptions {
  /** A's small jobs in the flood. Default 10,000 (the issue's). */
  small?: number;
  /** A's heavy 3M-row jobs in the flood. Default 100. */
  heavy?: number;
  /** B's jobs measured idle. Default 30. */
  idleSamples?: number;
}

const ENQUEUE_BATCH = 500;
const WAIT_MS = 30 * 60_000;

const small = (tag: string, i: number) => ({
  dataset: {
    records: [
      { tag, v: i },
      { tag, v: i + 1 },
    ],
  },
  metrics: [{ op: 'sum', column: 'v' }],
});

/** One small job, enqueued and awaited: its latency in ms. */
async function timed(client: QuarryClient, spec: object): Promise<number> {
  const t0 = performance.now();
  const handle = await client.aggregate(spec);
  await handle.wait({ timeoutMs: WAIT_MS });
  return performance.now() - t0;
}

/** A's flood: small jobs with the heavy ones spread evenly among them, enqueued in batches. */
async function flood(client: QuarryClient, tag: string, smallN: number, heavyN: number, priority?: string) {
  const specs: object[] = [];
  const every = heavyN > 0 ? Math.floor(smallN / heavyN) : Number.POSITIVE_INFINITY;
  let heavy = 0;
  for (let i = 0; i < smallN; i++) {
    if (heavy < heavyN && i % every === 0)
      specs.push({ ...slowFlightsSpec(1000 + heavy++), engine: 'duckdb' });
    specs.push({ ...small(tag, i), ...(priority ? { priority } : {}) });
  }
  const waits: Promise<unknown>[] = [];
  const heavyJobIds: string[] = [];
  for (let i = 0; i < specs.length; i += ENQUEUE_BATCH) {
    const batch = specs.slice(i, i + ENQUEUE_BATCH);
    const handles = await Promise.all(batch.map((s) => client.aggregate(s)));
    handles.forEach((h, j) => {
      waits.push(h.wait({ timeoutMs: WAIT_MS }));
      if ('limit' in (batch[j] as object)) heavyJobIds.push(h.jobId);
    });
  }
  return { jobs: specs.length, heavyJobIds, done: Promise.all(waits) };
}

interface RunResult {
  idle: Summary;
  during: Summary;
  floodJobs: number;
  floodSeconds: number;
  jobsPerSecond: number;
  /** Seconds to enqueue the flood (inside floodSeconds). */
  enqueueSeconds: number;
  /** Run time (startedAt to finishedAt) of each heavy job, from its status record. */
  heavyRunMs: Summary;
  interactive?: Summary;
}

/** Each job's run time in ms from its status record (the last attempt's). */
async function runTimes(client: QuarryClient, jobIds: string[]): Promise<number[]> {
  const times: number[] = [];
  for (const id of jobIds) {
    const s = await client.status(id);
    if (s?.startedAt && s.finishedAt) times.push(Date.parse(s.finishedAt) - Date.parse(s.startedAt));
  }
  return times;
}

async function run(
  mode: 'fair' | 'fifo',
  o: Required<FairnessOptions>,
  redisUrl: string,
): Promise<RunResult> {
  const keys = [
    { key: 'bench-key-A-0123456789', tenant: 'A', scopes: ['enqueue', 'read'], dataDir: VEGA_DATA_DIR },
    { key: 'bench-key-B-0123456789', tenant: 'B', scopes: ['enqueue', 'read'], dataDir: VEGA_DATA_DIR },
  ];
  const env: Record<string, string> = {
    QUARRY_QUEUE_REDIS_URL: redisUrl,
    QUARRY_PREFIX: uniquePrefix(),
    QUARRY_LOG_LEVEL: 'info',
    QUARRY_DATA_DIR: VEGA_DATA_DIR,
    QUARRY_DUCKDB_THREADS: '1',
    QUARRY_WORKER_METRICS_PORT: String(await freePort()),
    ...(mode === 'fair' ? { QUARRY_API_KEYS: JSON.stringify(keys) } : {}),
  };
  const config = loadConfig(env);
  const root = createQuarry({ config });
  // FIFO: no keys, one tenant; A and B are then the same queue in arrival order.
  const a = mode === 'fair' ? root.forTenant('A') : root;
  const b = mode === 'fair' ? root.forTenant('B') : root;
  let worker: Child | undefined;
  try {
    worker = await startNode(path.resolve('workers/main.ts'), env, 'worker ready');
    console.log(`${mode}: worker ready`);
    const idle: number[] = [];
    for (let i = 0; i < o.idleSamples; i++) idle.push(await timed(b, small(`idle-${mode}`, i)));
    console.log(`${mode}: idle measured, flooding`);
    const t0 = performance.now();
    const f = await flood(a, `flood-${mode}`, o.small, o.heavy);
    const enqueueSeconds = (performance.now() - t0) / 1000;
    let finished = false;
    const floodDone = f.done.then(() => {
      finished = true;
    });
    const during: number[] = [];
    for (let i = 0; !finished; i++) during.push(await timed(b, small(`during-${mode}`, i)));
    await floodDone;
    console.log(`${mode}: flood done`);
    const floodSeconds = (performance.now() - t0) / 1000;
    const result: RunResult = {
      idle: summarize(idle),
      during: summarize(during),
      floodJobs: f.jobs,
      floodSeconds: Math.round(floodSeconds * 10) / 10,
      jobsPerSecond: Math.round(f.jobs / floodSeconds),
      enqueueSeconds: Math.round(enqueueSeconds * 10) / 10,
      heavyRunMs: summarize(await runTimes(a, f.heavyJobIds)),
    };
    if (mode === 'fair') {
      const own = await flood(a, 'own-flood', o.small, 0);
      let ownDone = false;
      const ownFinished = own.done.then(() => {
        ownDone = true;
      });
      const interactive: number[] = [];
      for (let i = 0; !ownDone; i++) {
        interactive.push(await timed(a, { ...small('interactive', i), priority: 'interactive' }));
      }
      await ownFinished;
      result.interactive = summarize(interactive);
    }
    return result;
  } finally {
    await root.close();
    await worker?.stop();
  }
}

export async function runFairness(options: FairnessOptions = {}): Promise<void> {
  const o: Required<FairnessOptions> = {
    small: options.small ?? 10_000,
    heavy: options.heavy ?? 100,
    idleSamples: options.idleSamples ?? 30,
  };
  const redis = await startRedis(['--maxmemory-policy', 'noeviction']);
  let fair: RunResult;
  let fifo: RunResult;
  try {
    fifo = await run('fifo', o, redis.url);
    fair = await run('fair', o, redis.url);
  } finally {
    await redis.stop();
  }
  const ratio = (x: number, y: number) => Math.round((x / y) * 100) / 100;
  const rows: Row[] = [
    {
      run: 'FIFO (no keys)',
      'B idle p50 ms': fifo.idle.p50,
      'B idle p99 ms': fifo.idle.p99,
      'B during p50 ms': fifo.during.p50,
      'B during p99 ms': fifo.during.p99,
      'B during max ms': fifo.during.max,
      'B samples': fifo.during.n,
      'p99 / idle p99': ratio(fifo.during.p99, fifo.idle.p99),
      'flood jobs/s': fifo.jobsPerSecond,
      'flood s': fifo.floodSeconds,
      'enqueue s': fifo.enqueueSeconds,
      'heavy run p50 ms': fifo.heavyRunMs.p50,
      'heavy run max ms': fifo.heavyRunMs.max,
    },
    {
      run: 'fair',
      'B idle p50 ms': fair.idle.p50,
      'B idle p99 ms': fair.idle.p99,
      'B during p50 ms': fair.during.p50,
      'B during p99 ms': fair.during.p99,
      'B during max ms': fair.during.max,
      'B samples': fair.during.n,
      'p99 / idle p99': ratio(fair.during.p99, fair.idle.p99),
      'flood jobs/s': fair.jobsPerSecond,
      'flood s': fair.floodSeconds,
      'enqueue s': fair.enqueueSeconds,
      'heavy run p50 ms': fair.heavyRunMs.p50,
      'heavy run max ms': fair.heavyRunMs.max,
    },
    {
      run: 'A interactive during own flood',
      'B idle p50 ms': null,
      'B idle p99 ms': fair.idle.p99,
      'B during p50 ms': fair.interactive?.p50 ?? null,
      'B during p99 ms': fair.interactive?.p99 ?? null,
      'B during max ms': fair.interactive?.max ?? null,
      'B samples': fair.interactive?.n ?? null,
      'p99 / idle p99': fair.interactive ? ratio(fair.interactive.p99, fair.idle.p99) : null,
      'flood jobs/s': null,
      'flood s': null,
      'enqueue s': null,
      'heavy run p50 ms': null,
      'heavy run max ms': null,
    },
  ];
  printTable(
    `fairness: A floods ${o.small} small + ${o.heavy} heavy (3M-row) jobs, B asks one small job at a time`,
    rows,
  );
  const targets = {
    bLatencyP99VsIdle: { target: '<= 3', measured: ratio(fair.during.p99, fair.idle.p99) },
    throughputVsFifo: { target: '>= 0.9', measured: ratio(fair.jobsPerSecond, fifo.jobsPerSecond) },
    interactiveP99VsIdle: {
      target: '<= 3',
      measured: fair.interactive ? ratio(fair.interactive.p99, fair.idle.p99) : null,
    },
  };
  console.log(JSON.stringify({ options: o, targets }, null, 2));
  console.log(`wrote ${writeResults('fairness', { options: o, fifo, fair, targets })}`);
}
