// How Quarry scales with worker processes and QUARRY_WORKER_CONCURRENCY: bursts of small
// aggregation jobs (20 flights each, every job a distinct dataset so nothing is cached) enqueued
// with the SDK, run by 1 or 2 real worker processes (`workers/main.ts`) at several
// concurrencies. Beside each setting, the same burst of no-op jobs through a plain BullMQ
// Worker (addBulk, same process count and concurrency): the queue's own ceiling on this machine.
// Measures throughput (jobs / time from the first enqueue to the last completion) and per-job
// latency (enqueue → result seen), which in a burst includes the time a job waits its turn.
import os from 'node:os';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { createQuarry, type QuarryClient } from '../producers/client.ts';
import { loadConfig } from '../shared/config.ts';
import type { InlineRecord } from '../shared/datasets.ts';
import { flightsSpec, loadFlights } from '../test/helpers/flights.ts';
import { type RedisServer, startRedis } from '../test/helpers/redis.ts';
import { type Child, startNode } from './lib/processes.ts';
import { printTable, type Row, type Summary, summarize, writeResults } from './lib/stats.ts';

export interface ScaleOptions {
  /** Multiplies the jobs per setting (default 2,000 at scale 1). */
  scale: number;
  /** Worker process counts to try. Default [1, 2]. */
  processes?: readonly number[];
  /** QUARRY_WORKER_CONCURRENCY values to try. Default [1, 4, 16]. */
  concurrencies?: readonly number[];
}

const JOBS_PER_SETTING = 2000;
const RECORDS_PER_JOB = 20;
/**
 * Enqueues in flight at once from the SDK: many producers at once, as an app under load would
 * enqueue, without a promise pile of thousands of half-done enqueues.
 */
const ENQUEUE_WINDOW = 64;
/** Untimed jobs per setting, enough that every worker process has JIT-warmed its paths. */
const WARMUP_JOBS = 100;
/** Jobs per addBulk call in the raw BullMQ burst. */
const ADD_BULK_CHUNK = 100;
const BURST_TIMEOUT_MS = 120_000;

interface Burst {
  jobs: number;
  /** Jobs completed per second, first enqueue to last completion. */
  jobsPerS: number;
  /** Seconds until the last job was enqueued. */
  enqueueS: number;
  latencyMs: Summary;
}

interface Setting {
  processes: number;
  concurrency: number;
  quarry: Burst;
  bullmqNoop: Burst;
}

export async function runScale(options: ScaleOptions): Promise<void> {
  const jobs = Math.max(100, Math.round(JOBS_PER_SETTING * options.scale));
  const processCounts = options.processes ?? [1, 2];
  const concurrencies = options.concurrencies ?? [1, 4, 16];
  const cores = os.availableParallelism();
  const flights = loadFlights('flights-5k.json');
  const started = performance.now();
  // Other work on a shared machine shows here: compare with the cores before trusting a row.
  const loadAtStart = os.loadavg()[0]!;

  let queueRedis: RedisServer | undefined;
  let cacheRedis: RedisServer | undefined;
  const children: Child[] = [];
  let quarry: QuarryClient | undefined;
  try {
    queueRedis = await startRedis(['--maxmemory-policy', 'noeviction']);
    cacheRedis = await startRedis(['--maxmemory', '1gb', '--maxmemory-policy', 'allkeys-lru']);
    let salt = 0;
    // 20 consecutive flights from a rotating slice; the salt in the first record's delay makes
    // each dataset (so each result key) new, across settings too.
    const nextSpec = () => {
      salt += 1;
      const from = ((salt * RECORDS_PER_JOB) % (flights.length - RECORDS_PER_JOB)) | 0;
      const records: InlineRecord[] = flights.slice(from, from + RECORDS_PER_JOB);
      records[0] = { ...records[0]!, delay: 1_000_000 + salt };
      return flightsSpec({ records });
    };

    const settings: Setting[] = [];
    for (const processes of processCounts) {
      for (const concurrency of concurrencies) {
        const tag = `p${processes}c${concurrency}`;

        // Raw BullMQ first, then Quarry, back to back so drift in machine speed hits both alike.
        const noopWorkers = await Promise.all(
          Array.from({ length: processes }, () =>
            startNode(
              'bench/lib/noop-worker.ts',
              { REDIS_URL: queueRedis!.url, PREFIX: `raw-${tag}`, CONCURRENCY: String(concurrency) },
              'noop worker ready',
            ),
          ),
        );
        children.push(...noopWorkers);
        const bullmqNoop = await rawBurst(queueRedis.url, `raw-${tag}`, jobs);
        await stopAll(noopWorkers, children);

        const env = {
          QUARRY_QUEUE_REDIS_URL: queueRedis.url,
          QUARRY_CACHE_REDIS_URL: cacheRedis.url,
          QUARRY_PREFIX: `scale-${tag}`,
          // 'worker ready' is logged at info; nothing per job is.
          QUARRY_LOG_LEVEL: 'info',
          QUARRY_WORKER_CONCURRENCY: String(concurrency),
          // Two workers on one host must not both claim the default 9464.
          QUARRY_WORKER_METRICS_PORT: '0',
          QUARRY_DATA_DIR: os.tmpdir(),
        };
        const workers = await Promise.all(
          Array.from({ length: processes }, () => startNode('workers/main.ts', env, 'worker ready')),
        );
        children.push(...workers);
        quarry = createQuarry({ config: loadConfig(env), failFast: true });
        await quarry.ready();
        await quarryBurst(quarry, Array.from({ length: WARMUP_JOBS }, nextSpec));
        const quarryResult = await quarryBurst(quarry, Array.from({ length: jobs }, nextSpec));
        await quarry.close();
        quarry = undefined;
        await stopAll(workers, children);

        settings.push({ processes, concurrency, quarry: quarryResult, bullmqNoop });
        console.log(
          `  ${processes} process(es) × concurrency ${concurrency}: quarry ${quarryResult.jobsPerS} jobs/s, bullmq no-op ${bullmqNoop.jobsPerS} jobs/s`,
        );
      }
    }

    const rows: Row[] = settings.map((s) => ({
      processes: s.processes,
      concurrency: s.concurrency,
      'quarry jobs/s': s.quarry.jobsPerS,
      'p50 ms': round1(s.quarry.latencyMs.p50),
      'p99 ms': round1(s.quarry.latencyMs.p99),
      'enqueue s': s.quarry.enqueueS,
      'no-op jobs/s': s.bullmqNoop.jobsPerS,
      'no-op p50': round1(s.bullmqNoop.latencyMs.p50),
      'no-op p99': round1(s.bullmqNoop.latencyMs.p99),
      'quarry/no-op': Math.round((s.quarry.jobsPerS / s.bullmqNoop.jobsPerS) * 100) / 100,
    }));
    const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
    printTable(
      `scale: bursts of ${jobs} jobs per setting (${RECORDS_PER_JOB}-record aggregations, each a cache miss; latency = enqueue → result seen, queueing included)`,
      rows,
    );
    const notes = [
      `${cores} cores available (${cpu}), Node ${process.version}. Everything shares them: the worker processes, two redis-servers and this client process, so 2 worker processes on ${cores} cores compete with Redis and the producer and measure contention as much as scaling.`,
      `Quarry: SDK aggregate() with ${ENQUEUE_WINDOW} enqueues in flight, job.wait() per job; ${WARMUP_JOBS} untimed warm-up jobs per setting; worker processes are workers/main.ts with their defaults apart from QUARRY_WORKER_CONCURRENCY.`,
      `No-op: a plain BullMQ Worker per process doing nothing, addBulk in chunks of ${ADD_BULK_CHUNK}, completion seen via QueueEvents.`,
      `"enqueue s" is when the last job was enqueued; close to the burst's whole time means the producer, not the workers, set the pace.`,
      `total bench time ${Math.round((performance.now() - started) / 1000)} s; 1-minute load average ${loadAtStart.toFixed(2)} at the start, ${os.loadavg()[0]!.toFixed(2)} at the end`,
    ];
    console.log(`\n${notes.map((n) => `- ${n}`).join('\n')}`);
    const file = writeResults('scale', {
      jobsPerSetting: jobs,
      recordsPerJob: RECORDS_PER_JOB,
      enqueueWindow: ENQUEUE_WINDOW,
      warmupJobs: WARMUP_JOBS,
      cores,
      notes,
      settings,
    });
    console.log(`\nwrote ${file}`);
  } finally {
    // Each step on its own: a failing one must not leave a process or a redis-server behind.
    try {
      await quarry?.close();
    } catch (err) {
      console.error('closing the client failed', err);
    }
    await stopAll([...children], children);
    for (const server of [cacheRedis, queueRedis]) {
      try {
        await server?.stop();
      } catch (err) {
        console.error('stopping redis-server failed', err);
      }
    }
  }
}

/** Enqueues every spec through the SDK, waits for every result; throws if any job fails. */
async function quarryBurst(quarry: QuarryClient, specs: unknown[]): Promise<Burst> {
  const latencies = new Array<number>(specs.length);
  const waits: Promise<void>[] = [];
  let failure: unknown;
  let next = 0;
  let lastDone = 0;
  const start = performance.now();
  const submitter = async () => {
    while (next < specs.length && failure === undefined) {
      const i = next++;
      const t0 = performance.now();
      const job = await quarry.aggregate(specs[i]);
      if (job.cached) throw new Error('expected a cache miss: the bench datasets must be distinct');
      // Caught at once: a failure is reported after the burst, never as an unhandled rejection.
      waits.push(
        job.wait({ timeoutMs: BURST_TIMEOUT_MS }).then(
          () => {
            const t = performance.now();
            latencies[i] = t - t0;
            lastDone = Math.max(lastDone, t);
          },
          (err: unknown) => {
            failure ??= err;
          },
        ),
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(ENQUEUE_WINDOW, specs.length) }, submitter));
  const enqueued = performance.now();
  await Promise.all(waits);
  if (failure !== undefined) throw failure;
  return burst(specs.length, start, enqueued, lastDone, latencies);
}

/** The same burst as raw BullMQ no-op jobs: addBulk, completion seen via QueueEvents. */
async function rawBurst(url: string, prefix: string, jobs: number): Promise<Burst> {
  const connection = new Redis(url, { maxRetriesPerRequest: null });
  // The events stream must keep every completion until QueueEvents has read it (~4 entries a job).
  const queue = new Queue('noop', {
    connection,
    prefix,
    streams: { events: { maxLen: Math.max(10_000, (jobs + WARMUP_JOBS * 2) * 8) } },
  });
  const events = new QueueEvents('noop', { connection: { url }, prefix });
  try {
    await events.waitUntilReady();
    const run = async (n: number, label: string) => {
      const sentAt = new Map<string, number>();
      const latencies: number[] = [];
      let lastDone = 0;
      let timer: NodeJS.Timeout | undefined;
      const allDone = new Promise<void>((resolve, reject) => {
        timer = setTimeout(
          () => reject(new Error(`raw burst: ${latencies.length}/${n} done in ${BURST_TIMEOUT_MS} ms`)),
          BURST_TIMEOUT_MS,
        );
        const onCompleted = ({ jobId }: { jobId: string }) => {
          const t0 = sentAt.get(jobId);
          if (t0 === undefined) return;
          const t = performance.now();
          latencies.push(t - t0);
          lastDone = t;
          if (latencies.length === n) {
            events.off('completed', onCompleted);
            resolve();
          }
        };
        events.on('completed', onCompleted);
      });
      const start = performance.now();
      for (let from = 0; from < n; from += ADD_BULK_CHUNK) {
        const chunk = Array.from({ length: Math.min(ADD_BULK_CHUNK, n - from) }, (_, k) => ({
          name: 'noop',
          data: { i: from + k },
          // Explicit ids: a completion can arrive before addBulk answers, and must find its time.
          opts: { jobId: `${label}-${from + k}`, removeOnComplete: true, removeOnFail: true },
        }));
        const t0 = performance.now();
        for (const job of chunk) sentAt.set(job.opts.jobId, t0);
        await queue.addBulk(chunk);
      }
      const enqueued = performance.now();
      try {
        await allDone;
      } finally {
        clearTimeout(timer);
      }
      return burst(n, start, enqueued, lastDone, latencies);
    };
    await run(WARMUP_JOBS * 2, 'warm');
    return await run(jobs, 'job');
  } finally {
    await events.close().catch(() => undefined);
    await queue.close().catch(() => undefined);
    connection.disconnect();
  }
}

function burst(jobs: number, start: number, enqueued: number, lastDone: number, latencies: number[]): Burst {
  const seconds = (lastDone - start) / 1000;
  return {
    jobs,
    jobsPerS: Math.round(jobs / seconds),
    enqueueS: Math.round(((enqueued - start) / 1000) * 100) / 100,
    latencyMs: summarize(latencies),
  };
}

/** Stops the given children at once and forgets them. */
async function stopAll(some: readonly Child[], all: Child[]): Promise<void> {
  await Promise.all(
    some.map((c) => c.stop().catch((err: unknown) => console.error('stopping a process failed', err))),
  );
  for (const c of some) {
    const at = all.indexOf(c);
    if (at !== -1) all.splice(at, 1);
  }
}

const round1 = (x: number) => Math.round(x * 10) / 10;
