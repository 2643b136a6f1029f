// How Quarry scales with worker processes and QUARRY_WORKER_CONCURRENCY: bursts of small
// aggregation jobs (20 flights each, every job a distinct dataset so nothing is cached) enqueued
// with the SDK, run by 1 or 2 real worker processes (`workers/main.ts`) at several
// concurrencies. Beside each setting, the same burst of no-op jobs through a plain BullMQ
// Worker (addBulk, same process count and concurrency): the queue's own ceiling on this machine.
// Measures throughput (jobs / time from the first enqueue to the last completion) and per-job
// latency (enqueue → result seen), which in a burst includes the time a job waits its turn; and
// where the time goes: queue- and cache-Redis commands per completed job (`INFO commandstats`
// deltas over the timed burst, the commands inside Lua scripts included), Redis CPU per job and
// the worker processes' CPU per job (process.cpuUsage, read from each worker before and after).
// `--profile` runs the Quarry workers under `node --cpu-prof` and prints their top self time.
// Then a row for a worker on another host (a network namespace) reading s3:// objects over the
// simulated network, cold and warm cache, beside the same worker by path (bench/scale-remote.ts).
import { mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { createQuarry, type QuarryClient } from '../producers/client.ts';
import { loadConfig } from '../shared/config.ts';
import type { InlineRecord } from '../shared/datasets.ts';
import { flightsSpec, loadFlights } from '../test/helpers/flights.ts';
import { freePort, type RedisServer, startRedis } from '../test/helpers/redis.ts';
import { type ProfileSummary, summarizeProfiles } from './lib/cpu-profile.ts';
import { engineFloor } from './lib/engine-floor.ts';
import { type Cost, type CpuProbe, meter, noopCpuProbe, quarryCpuProbe } from './lib/job-costs.ts';
import { type Child, startNode } from './lib/processes.ts';
import { perJobBreakdown } from './lib/redis-stats.ts';
import { printTable, type Row, type Summary, summarize, writeResults } from './lib/stats.ts';
import { remoteObjects, remoteRow } from './scale-remote.ts';

export interface ScaleOptions {
  /** Multiplies the jobs per setting (default 2,000 at scale 1). */
  scale: number;
  /** Jobs per setting; overrides `scale` (`--jobs N`, at least 50). */
  jobs?: number;
  /** Worker process counts to try. Default [1, 2, 4]. */
  processes?: readonly number[];
  /** QUARRY_WORKER_CONCURRENCY values to try. Default [1, 4, 16]. */
  concurrencies?: readonly number[];
  /** Run the Quarry workers under `--cpu-prof` and print their top self-time entries. */
  profile?: boolean;
}

const JOBS_PER_SETTING = 2000;
const RECORDS_PER_JOB = 20;
/**
 * Enqueues in flight at once from the SDK: many producers at once, as an app under load would
 * enqueue, without a promise pile of thousands of half-done enqueues.
 */
const ENQUEUE_WINDOW = 64;
/**
 * Untimed jobs per worker process and setting, enough that each has JIT-warmed its paths: with 100
 * per setting, a 2,000-job burst measured 0.76-0.82 ms of worker CPU a job, and 0.45-0.47 after
 * 1,000 (the same jobs; V8 was still compiling and collecting start-up garbage in the burst).
 * The no-op workers get twice as many.
 */
const WARMUP_JOBS_PER_PROCESS = 1000;
/** Jobs per addBulk call in the raw BullMQ burst. */
const ADD_BULK_CHUNK = 100;
const BURST_TIMEOUT_MS = 120_000;
/** Jobs per burst of the worker on another host (× scale), and its concurrency. */
const REMOTE_JOBS = 100;
const REMOTE_CONCURRENCY = 4;

/** Rows of self time printed per profiled setting. */
const PROFILE_TOP = 25;

interface Burst {
  jobs: number;
  /** Jobs completed per second, first enqueue to last completion. */
  jobsPerS: number;
  /** Seconds until the last job was enqueued. */
  enqueueS: number;
  latencyMs: Summary;
  /** What the timed burst cost, per completed job. */
  cost?: Cost;
}

interface Setting {
  processes: number;
  concurrency: number;
  quarry: Burst;
  bullmqNoop: Burst;
  profile?: ProfileSummary;
}

export async function runScale(options: ScaleOptions): Promise<void> {
  const jobs = Math.max(50, options.jobs ?? Math.round(JOBS_PER_SETTING * options.scale));
  const processCounts = options.processes ?? [1, 2, 4];
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
  let queueAdmin: Redis | undefined;
  let cacheAdmin: Redis | undefined;
  try {
    queueRedis = await startRedis(['--maxmemory-policy', 'noeviction']);
    cacheRedis = await startRedis(['--maxmemory', '1gb', '--maxmemory-policy', 'allkeys-lru']);
    // The connections that read INFO: their own commands are only the INFO calls, left out.
    queueAdmin = new Redis(queueRedis.url);
    cacheAdmin = new Redis(cacheRedis.url);
    const admin = { queue: queueAdmin, cache: cacheAdmin };
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

    // The engine alone on the same kind of jobs, before any worker runs: the floor of a job.
    const floorConcurrency = Math.max(...concurrencies);
    const floor = await engineFloor(Array.from({ length: Math.min(jobs, 2000) }, nextSpec), floorConcurrency);
    console.log(
      `  DuckDB engine alone (in this process, concurrency ${floor.concurrency}, ${floor.threads} threads): ${floor.jobsPerS} jobs/s, ${floor.cpuMs} ms CPU per job`,
    );
    const settings: Setting[] = [];
    for (const processes of processCounts) {
      for (const concurrency of concurrencies) {
        const tag = `p${processes}c${concurrency}`;
        const warmup = WARMUP_JOBS_PER_PROCESS * processes;

        // Raw BullMQ first, then Quarry, back to back so drift in machine speed hits both alike.
        const noopPorts = await Promise.all(Array.from({ length: processes }, () => freePort()));
        const noopWorkers = await Promise.all(
          noopPorts.map((port) =>
            startNode(
              'bench/lib/noop-worker.ts',
              {
                REDIS_URL: queueRedis!.url,
                PREFIX: `raw-${tag}`,
                CONCURRENCY: String(concurrency),
                CPU_PORT: String(port),
              },
              'noop worker ready',
            ),
          ),
        );
        children.push(...noopWorkers);
        const bullmqNoop = await rawBurst(
          queueRedis.url,
          `raw-${tag}`,
          jobs,
          warmup,
          admin,
          noopPorts.map(noopCpuProbe),
        );
        await stopAll(noopWorkers, children);

        const env = {
          QUARRY_QUEUE_REDIS_URL: queueRedis.url,
          QUARRY_CACHE_REDIS_URL: cacheRedis.url,
          QUARRY_PREFIX: `scale-${tag}`,
          // Info, as in production: 'worker ready' (which the bench waits for) and one line per job.
          QUARRY_LOG_LEVEL: 'info',
          QUARRY_WORKER_CONCURRENCY: String(concurrency),
          QUARRY_DATA_DIR: os.tmpdir(),
        };
        // Each worker its own metrics port (the CPU figure is read there).
        const ports = await Promise.all(Array.from({ length: processes }, () => freePort()));
        const profileDir = path.resolve('bench/results/profiles', `scale-${tag}`);
        if (options.profile) {
          rmSync(profileDir, { recursive: true, force: true });
          mkdirSync(profileDir, { recursive: true });
        }
        const nodeArgs = options.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
        const workers = await Promise.all(
          ports.map((port) =>
            startNode(
              'workers/main.ts',
              { ...env, QUARRY_WORKER_METRICS_PORT: String(port) },
              'worker ready',
              [],
              nodeArgs,
            ),
          ),
        );
        children.push(...workers);
        quarry = createQuarry({ config: loadConfig(env), failFast: true });
        await quarry.ready();
        await quarryBurst(quarry, Array.from({ length: warmup }, nextSpec));
        const metered = await meter(queueAdmin, cacheAdmin, ports.map(quarryCpuProbe));
        const quarryResult = await quarryBurst(quarry, Array.from({ length: jobs }, nextSpec));
        quarryResult.cost = await metered.end(jobs);
        await quarry.close();
        quarry = undefined;
        // A worker writes its profile as it exits.
        await stopAll(workers, children);

        const setting: Setting = { processes, concurrency, quarry: quarryResult, bullmqNoop };
        if (options.profile) setting.profile = summarizeProfiles(profileDir, PROFILE_TOP);
        settings.push(setting);
        const q = quarryResult.cost;
        const n = bullmqNoop.cost;
        console.log(
          `  ${processes} process(es) × concurrency ${concurrency}: quarry ${quarryResult.jobsPerS} jobs/s, bullmq no-op ${bullmqNoop.jobsPerS} jobs/s; queue-Redis commands per job ${q.queueCommands} vs ${n?.queueCommands}; worker CPU ms per job ${q.workerCpuMs} vs ${n?.workerCpuMs}`,
        );
      }
    }

    // The worker on another host, after the local settings (its own Redis, store and API).
    const remote = await remoteObjects({
      jobs: Math.max(10, Math.round(REMOTE_JOBS * options.scale)),
      concurrency: REMOTE_CONCURRENCY,
    });

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
      'quarry/no-op': round2(s.quarry.jobsPerS / s.bullmqNoop.jobsPerS),
      'queue cmd/job': s.quarry.cost?.queueCommands ?? null,
      'no-op cmd/job': s.bullmqNoop.cost?.queueCommands ?? null,
      'cmd ratio': round2((s.quarry.cost?.queueCommands ?? 0) / (s.bullmqNoop.cost?.queueCommands ?? 1)),
      'cache cmd/job': s.quarry.cost?.cacheCommands ?? null,
      'worker CPU ms/job': s.quarry.cost?.workerCpuMs ?? null,
      'no-op CPU ms/job': s.bullmqNoop.cost?.workerCpuMs ?? null,
      'redis CPU ms/job': s.quarry.cost?.redisCpuMs ?? null,
      'producer CPU ms/job': s.quarry.cost?.producerCpuMs ?? null,
      'no-op producer CPU ms/job': s.bullmqNoop.cost?.producerCpuMs ?? null,
    }));
    const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
    printTable(
      `scale: bursts of ${jobs} jobs per setting (${RECORDS_PER_JOB}-record aggregations, each a cache miss; latency = enqueue → result seen, queueing included)${options.profile ? ' — PROFILED: --cpu-prof slows the workers, read the rates as relative only' : ''}`,
      rows,
    );
    console.log(
      '\nqueue-Redis commands per completed job, by command (INFO commandstats, inside Lua included):',
    );
    for (const s of settings) {
      console.log(
        `  p${s.processes}c${s.concurrency} quarry: ${perJobBreakdown(s.quarry.cost?.queueByCommand ?? {}, 1)}`,
      );
      console.log(
        `  p${s.processes}c${s.concurrency} no-op:  ${perJobBreakdown(s.bullmqNoop.cost?.queueByCommand ?? {}, 1)}`,
      );
      console.log(
        `  p${s.processes}c${s.concurrency} quarry, cache Redis: ${perJobBreakdown(s.quarry.cost?.cacheByCommand ?? {}, 1)}`,
      );
    }
    for (const s of settings) {
      if (s.profile === undefined) continue;
      const processed = jobs / s.processes + WARMUP_JOBS_PER_PROCESS;
      printTable(
        `CPU profile p${s.processes}c${s.concurrency}: top self time on the worker main threads (${s.profile.files.length} file(s) in bench/results/profiles/scale-p${s.processes}c${s.concurrency}/; busy ${s.profile.busyMs} ms ≈ ${round3(s.profile.busyMs / processed)} ms per job, start-up included)`,
        s.profile.top.map((t) => ({
          'self ms': t.selfMs,
          '% busy': round1((t.selfMs / Math.max(1, s.profile!.busyMs)) * 100),
          'µs/job': round1((t.selfMs * 1000) / processed),
          function: t.frame,
        })),
      );
    }
    printTable(
      'the engine alone: the same jobs computed by the DuckDB engine in this process (no queue, status or result work)',
      [
        {
          jobs: floor.jobs,
          concurrency: floor.concurrency,
          'DuckDB threads': floor.threads,
          'jobs/s': floor.jobsPerS,
          'CPU ms/job': floor.cpuMs,
        },
      ],
    );
    printTable(
      'a worker on another host (network namespace, over veth links) reading flights-5k as s3:// objects from the Redis host: jobs through the API (?wait, 16 in flight), fetch time per job from its own /metrics',
      [remoteRow(remote)],
    );
    const notes = [
      `${cores} cores available (${cpu}), Node ${process.version}. Everything shares them: the worker processes, two redis-servers and this client process, so 2 worker processes on ${cores} cores compete with Redis and the producer and measure contention as much as scaling.`,
      `Quarry: SDK aggregate() with ${ENQUEUE_WINDOW} enqueues in flight, job.wait() per job; ${WARMUP_JOBS_PER_PROCESS} untimed warm-up jobs per worker process and setting (the no-op: twice as many); worker processes are workers/main.ts with their defaults apart from QUARRY_WORKER_CONCURRENCY.`,
      `No-op: a plain BullMQ Worker per process doing nothing, addBulk in chunks of ${ADD_BULK_CHUNK}, completion seen via QueueEvents.`,
      `Costs are per completed job over the timed burst only: Redis commands from INFO commandstats deltas (everything the server ran: producers, workers, waiters, Lua-internal calls; the INFO calls left out), Redis CPU (used_cpu_user+sys of both servers), worker CPU from process.cpuUsage of every worker process (all its threads: DuckDB's too), read from process_cpu_seconds_total on the worker's metrics endpoint, and the producer's CPU (this process: the SDK's enqueues and waits, or the no-op's addBulk and QueueEvents). All of them share the cores, so each weighs on the rate.`,
      `"enqueue s" is when the last job was enqueued; close to the burst's whole time means the producer, not the workers, set the pace.`,
      `Another host: the simulated hosts of npm run hosts-test (scripts/netns.ts, scripts/hosts-system.ts): queue and cache Redis and s3rver on one namespace, the API on another, one worker (concurrency ${REMOTE_CONCURRENCY}, one DuckDB and one Polars thread) on a third; the same worker by path first (its baseline), then distinct objects with its host's cache cold (each job downloads one), then the same objects warm (each job reads the cached file). Skipped, saying why, where namespaces cannot be made.`,
      `total bench time ${Math.round((performance.now() - started) / 1000)} s; 1-minute load average ${loadAtStart.toFixed(2)} at the start, ${os.loadavg()[0]!.toFixed(2)} at the end`,
    ];
    console.log(`\n${notes.map((n) => `- ${n}`).join('\n')}`);
    const file = writeResults('scale', {
      jobsPerSetting: jobs,
      recordsPerJob: RECORDS_PER_JOB,
      enqueueWindow: ENQUEUE_WINDOW,
      warmupJobsPerProcess: WARMUP_JOBS_PER_PROCESS,
      cores,
      notes,
      engineFloor: floor,
      settings,
      remote,
    });
    console.log(`\nwrote ${file}`);
  } finally {
    // Each step on its own: a failing one must not leave a process or a redis-server behind.
    try {
      await quarry?.close();
    } catch (err) {
      console.error('closing the client failed', err);
    }
    queueAdmin?.disconnect();
    cacheAdmin?.disconnect();
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
async function rawBurst(
  url: string,
  prefix: string,
  jobs: number,
  warmup: number,
  admin: { queue: Redis; cache: Redis },
  probes: readonly CpuProbe[],
): Promise<Burst> {
  const connection = new Redis(url, { maxRetriesPerRequest: null });
  // The events stream must keep every completion until QueueEvents has read it (~4 entries a job).
  const queue = new Queue('noop', {
    connection,
    prefix,
    streams: { events: { maxLen: Math.max(10_000, (jobs + warmup * 2) * 8) } },
  });
  const events = new QueueEvents('noop', { connection: { url }, prefix });
  try {
    await events.waitUntilReady();
    const run = async (n: number, label: string) => {
      const sentAt = new Map<string, number>();
      let missed = 0;
      let added = false;
      const latencies: number[] = [];
      let lastDone = 0;
      let timer: NodeJS.Timeout | undefined;
      const allDone = new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => {
          clearInterval(sweep);
          reject(new Error(`raw burst: ${latencies.length}/${n} done in ${BURST_TIMEOUT_MS} ms`));
        }, BURST_TIMEOUT_MS);
        const done = (jobId: string, t: number) => {
          const t0 = sentAt.get(jobId);
          if (t0 === undefined) return;
          sentAt.delete(jobId);
          latencies.push(t - t0);
          lastDone = Math.max(lastDone, t);
          if (latencies.length === n) {
            events.off('completed', onCompleted);
            clearInterval(sweep);
            resolve();
          }
        };
        const onCompleted = ({ jobId }: { jobId: string }) => done(jobId, performance.now());
        events.on('completed', onCompleted);
        // QueueEvents very rarely misses a completion here (2 of ~30 runs waited out the timeout
        // one job short). A job it missed is gone from BullMQ (removeOnComplete): after a second
        // without news, the few left are looked up, and those gone count as done now.
        let seen = 0;
        let quietSince = performance.now();
        const sweep = setInterval(() => {
          if (latencies.length !== seen) {
            seen = latencies.length;
            quietSince = performance.now();
            return;
          }
          if (!added || sentAt.size === 0 || sentAt.size > 10 || performance.now() - quietSince < 1000)
            return;
          for (const jobId of [...sentAt.keys()]) {
            // A later sweep may look the same job up again: it counts once, while still pending.
            queue.getJob(jobId).then(
              (job) => {
                if (job !== undefined || !sentAt.has(jobId)) return;
                missed++;
                done(jobId, performance.now());
              },
              () => undefined,
            );
          }
        }, 250);
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
      added = true;
      const enqueued = performance.now();
      try {
        await allDone;
      } finally {
        clearTimeout(timer);
      }
      if (missed > 0)
        console.log(
          `  raw burst (${label}): ${missed} completion(s) QueueEvents missed, found done by lookup`,
        );
      return burst(n, start, enqueued, lastDone, latencies);
    };
    await run(warmup * 2, 'warm');
    const metered = await meter(admin.queue, admin.cache, probes);
    const result = await run(jobs, 'job');
    result.cost = await metered.end(jobs);
    return result;
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
const round2 = (x: number) => Math.round(x * 100) / 100;
const round3 = (x: number) => Math.round(x * 1000) / 1000;
