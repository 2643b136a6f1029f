// `npm run chaos -- [--seed N | --seeds N|a,b,c] [--jobs N] [--seconds S] [--settle-seconds S]
//   [--kill-min-ms A --kill-max-ms B] [--max-stalled-count K]`:
// Quarry under faults, end to end. Starts a queue Redis (AOF, fsync always, noeviction), a cache
// Redis (allkeys-lru), two worker processes and the API; submits mixed aggregation and index jobs
// THROUGH HTTP at a steady pace while it SIGKILLs a worker every few seconds (restarting it) and
// restarts the queue Redis (SIGTERM, same port and dir). Then it checks that every acknowledged
// job completed with the answer a clean in-process computation gives, prints a table and exits
// non-zero when anything was lost or wrong. `runChaos` is the same run for tests. The seed is
// printed first and last; `--seed N` replays a run; `--seeds` runs several (scripts/chaos-seeds.ts).
//
// The verdict (scripts/chaos-verdict.ts) applies Quarry's rule: a job survives
// QUARRY_MAX_STALLED_COUNT kills of the worker holding it and fails QUARRY_ERR_JOB_STALLED on the
// next. The run counts those kills itself: it SIGSTOPs the victim, reads which jobs are active
// with BullMQ's processedBy naming that worker, then SIGKILLs it. A STALLED failure with no more
// kills than the rule allows is lost.
//
// How the figures are measured:
// - acknowledged: a 202 (or a 200 cache hit) for the POST. A 503 is not an acknowledgement: the
//   request is sent again after Retry-After, as the API's contract asks.
// - computations: the workers' own log lines, one per finished engine run ("aggregation done"
//   with reused:false, "index built"); a duplicate computation is a second finished run for one
//   job id. Runs cut short by a kill are re-runs, counted apart (BullMQ "active" events > 1).
// - recovery: for every job BullMQ reports "stalled" (its worker died holding it), the time from
//   the kill to the job running again and to its completion, from the events stream's ids (the
//   Redis server's clock, the same machine's). Which kill it was is known exactly when one kill
//   falls between the job's last start and the stall (less the lock time a kill always leaves);
//   with kills every few seconds two can, and then the earliest is charged: an upper bound.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { seededRandom } from '../bench/corpus.ts';
import { type Child, startNode } from '../bench/lib/processes.ts';
import { printTable } from '../bench/lib/stats.ts';
import {
  addressAggregation,
  type EngineName,
  parseAggregation,
  type ResultEnvelope,
} from '../shared/aggregation.ts';
import { loadConfig } from '../shared/config.ts';
import { fingerprintFile, type InlineRecord } from '../shared/datasets.ts';
import { QUEUE_NAMES } from '../shared/keys.ts';
import { buildIndex, loadIndex, search } from '../shared/search/index.ts';
import { isFinalState, type JobStatus } from '../shared/status.ts';
import { makeFlightsDataDir, VEGA_DATA_DIR } from '../test/helpers/flights.ts';
import { freePort, type RedisServer, startRedis } from '../test/helpers/redis.ts';
import { uniquePrefix } from '../test/helpers/system.ts';
import { referenceAggregate } from '../test/reference/aggregate.ts';
import { assertSameResult } from '../test/reference/compare.ts';
import { chooseEngine } from '../workers/engines/choose.ts';
import { createDuckDBEngine } from '../workers/engines/duckdb.ts';
import type { AggregationEngine } from '../workers/engines/engine.ts';
import { createJsEngine } from '../workers/engines/js.ts';
import { createPolarsEngine } from '../workers/engines/polars.ts';
import { workerName } from '../workers/worker.ts';
import { printSeedRuns, runSeeds, seedsFrom, seedsPassed } from './chaos-seeds.ts';
import { judgeJob, survives } from './chaos-verdict.ts';

const root = path.resolve(import.meta.dirname, '..');

export interface ChaosOptions {
  /** Jobs to submit. Default 1000. */
  jobs?: number;
  /** Submissions are spread evenly over this many seconds. Default 120. */
  seconds?: number;
  /** A worker is killed every killMinMs..killMaxMs while jobs are submitted. Default 3000..8000. */
  killMinMs?: number;
  killMaxMs?: number;
  /** At most this many kills. Default: no limit. */
  maxKills?: number;
  /** Queue Redis restarts, spread over the submission window. Default 1. */
  redisRestarts?: number;
  /**
   * How long the queue Redis stays down before it is started again. Default 3000 ms: a restart
   * alone takes ~0.1 s here, too short for the API's 503 answers to be seen.
   */
  redisDownMs?: number;
  /** After the last submission, how long the run waits with no job finishing before it calls the rest lost. Default 120 s. */
  settleSeconds?: number;
  /** Share of multi-second jobs over 3M rows besides the one placed before each kill. Default 0.01. */
  heavyShare?: number;
  seed?: number;
  /** QUARRY_MAX_STALLED_COUNT for the workers (the rule the verdict applies). Default: config's. */
  maxStalledCount?: number;
  /** Progress lines. Default console.log. */
  log?: (line: string) => void;
}

export interface ChaosReport {
  seed: number;
  /** The rule the verdict applied: a job survives this many kills of the worker holding it. */
  maxStalledCount: number;
  /** True when nothing was lost or wrong and no job was computed twice. */
  passed: boolean;
  submitted: number;
  acknowledged: number;
  cacheHits: number;
  retried503: number;
  retriedOther: number;
  completed: number;
  failed: number;
  unfinished: number;
  /** Failed QUARRY_ERR_JOB_STALLED after more kills than maxStalledCount: the rule, kept. */
  expectedStalled: number;
  lost: number;
  wrong: number;
  computations: number;
  /** Second finished runs of a job no kill hit. */
  duplicateComputations: number;
  /** Second finished runs of jobs a kill hit (the kill came after the run, before its store). */
  recomputedAfterKill: number;
  unacknowledgedComputed: number;
  rerunJobs: number;
  failedAttempts: number;
  kills: number;
  redisRestarts: number;
  redisDownMs: number;
  interruptedJobs: number;
  /** Kills that hit one job (the worker killed held it, active), most over any job. */
  mostHitsOnOneJob: number;
  /** Jobs hit by more kills than the rule lets them survive (all must be expectedStalled or done before). */
  jobsHitPastRule: number;
  stallsWithoutKill: number;
  /** Stalls with more than one kill that could have caused them (see analyzeRecovery). */
  ambiguousStalls: number;
  /** Over the stalls only one kill can explain (exact). */
  longestPickupMs: number | null;
  longestRecoveryMs: number | null;
  /** Over every stall, charged to the earliest kill that could explain it (an upper bound). */
  longestRecoveryUpperMs: number | null;
  recoveries: Recovery[];
  /** One line per lost or wrong job (the first 20) and per unexpected answer. */
  problems: string[];
}

// ---------------------------------------------------------------------------------------------
// The job plan: deterministic from the seed, so a failing run can be replayed.

type Rand = () => number;

const mulberry32 = seededRandom;
const int = (rand: Rand, n: number) => Math.floor(rand() * n);
const pick = <T>(rand: Rand, items: readonly T[]): T => items[int(rand, items.length)]!;

type Doc = { id: string; title: string; body: string };
type Planned =
  | { kind: 'aggregate'; label: 'inline' | 'file' | 'heavy'; body: Record<string, unknown> }
  | {
      kind: 'index';
      label: 'inline' | 'file';
      collection: string;
      body: Record<string, unknown>;
      query: string;
    };

const GROUPS = ['ant', 'bee', 'cat', 'dog', 'eel', 'fox', 'gnu', 'hen', 'ibis', 'jay'];
const AIRPORTS = ['LAX', 'SFO', 'LAS', 'PHX', 'SEA', 'DEN', 'OAK', 'SAN'];
const ENGINES: readonly string[] = ['duckdb', 'polars', 'auto'];

function inlineAggregation(rand: Rand): Record<string, unknown> {
  const groups = GROUPS.slice(0, 2 + int(rand, 8));
  // Non-negative values: float sums and interpolations then never cancel to near zero, where a
  // relative tolerance would call rounding differences between engines wrong.
  const records: InlineRecord[] = Array.from({ length: 20 + int(rand, 380) }, () => ({
    g: rand() < 0.05 ? null : pick(rand, groups),
    h: int(rand, 5),
    x: rand() < 0.1 ? null : int(rand, 1001),
    y: rand() < 0.1 ? null : Math.round(rand() * 100_000) / 100,
    flag: rand() < 0.5,
  }));
  const groupBy = pick(rand, [['g'], ['g', 'h'], ['h'], ['flag'], []]);
  const candidates = [
    { op: 'sum', column: 'x' },
    { op: 'avg', column: 'y' },
    { op: 'min', column: 'x' },
    { op: 'max', column: 'y' },
    { op: 'count', column: 'x' },
    { op: 'count_distinct', column: 'g' },
    { op: 'quantile', column: 'x', q: pick(rand, [0.25, 0.5, 0.9]), method: 'nearest_rank' },
    { op: 'quantile', column: 'y', q: pick(rand, [0.5, 0.95]), method: 'linear' },
  ];
  const metrics: Record<string, unknown>[] = [{ op: 'count' }];
  for (const m of candidates) if (rand() < 0.4) metrics.push(m);
  const filters = [
    { column: 'x', op: 'gte', value: int(rand, 500) },
    { column: 'y', op: 'not_null' },
    { column: 'g', op: 'in', value: [pick(rand, groups), pick(rand, groups)] },
    { column: 'h', op: 'between', value: [1, 3] },
    { column: 'flag', op: 'eq', value: true },
  ].filter(() => rand() < 0.25);
  const spec: Record<string, unknown> = {
    dataset: { records },
    filters,
    groupBy,
    metrics,
    engine: pick(rand, ENGINES),
  };
  if (groupBy.length > 0 && rand() < 0.6) spec.orderBy = [{ column: 'count', direction: 'desc' }];
  if (groupBy.length > 0 && rand() < 0.3) spec.limit = 1 + int(rand, 4);
  return spec;
}

function fileAggregation(rand: Rand): Record<string, unknown> {
  return {
    dataset: { path: pick(rand, ['flights.parquet', 'flights.csv', 'flights.ndjson']) },
    filters: [
      { column: 'distance', op: 'gte', value: int(rand, 1500) },
      ...(rand() < 0.3
        ? [{ column: 'origin', op: 'in', value: [pick(rand, AIRPORTS), pick(rand, AIRPORTS)] }]
        : []),
    ],
    groupBy: [pick(rand, ['origin', 'destination'])],
    metrics: [
      { op: 'count' },
      { op: 'avg', column: 'delay' },
      { op: 'max', column: 'distance' },
      { op: 'count_distinct', column: 'destination', as: 'destinations' },
      { op: 'quantile', column: 'delay', q: 0.9, method: pick(rand, ['linear', 'nearest_rank']) },
    ],
    orderBy: [{ column: 'count', direction: 'desc' }],
    limit: 5 + int(rand, 20),
    engine: pick(rand, ['duckdb', 'polars']),
  };
}

/** 1.3-2 s on one engine thread (DuckDB, Polars): long enough to be caught running by a kill. */
function heavyAggregation(rand: Rand): Record<string, unknown> {
  return {
    dataset: { path: 'flights-3m.parquet' },
    filters: [{ column: 'distance', op: 'gte', value: int(rand, 400) }],
    groupBy: ['date', 'origin'],
    metrics: [
      { op: 'count' },
      { op: 'count_distinct', column: 'destination' },
      { op: 'quantile', column: 'delay', q: 0.5 },
    ],
    orderBy: [{ column: 'count', direction: 'desc' }],
    limit: 5 + int(rand, 30),
    engine: pick(rand, ['duckdb', 'polars']),
  };
}

const WORDS = Array.from({ length: 400 }, (_, i) => `w${i.toString(36)}${'aeiou'[i % 5]}`);
/** Zipf-like: low word numbers are frequent, so queries hit many documents with varied scores. */
const word = (rand: Rand) => WORDS[Math.floor(WORDS.length * rand() ** 2.5)]!;
const words = (rand: Rand, n: number) => Array.from({ length: n }, () => word(rand)).join(' ');

function documents(rand: Rand, n: number, tag: string): Doc[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${tag}${i}`,
    title: words(rand, 2 + int(rand, 5)),
    body: words(rand, 10 + int(rand, 50)),
  }));
}

function indexRequest(rand: Rand, source: { documents: Doc[] } | { source: { path: string } }) {
  return {
    ...source,
    idField: 'id',
    fields: ['title', 'body'],
    store: ['title'],
    ...(rand() < 0.5 ? { boosts: { title: 2 } } : {}),
  };
}

function planJobs(n: number, heavyShare: number, heavyAt: Set<number>, rand: Rand): Planned[] {
  return Array.from({ length: n }, (_, i): Planned => {
    const r = rand();
    if (heavyAt.has(i) || r < heavyShare)
      return { kind: 'aggregate', label: 'heavy', body: heavyAggregation(rand) };
    if (r < 0.6) return { kind: 'aggregate', label: 'inline', body: inlineAggregation(rand) };
    if (r < 0.86) return { kind: 'aggregate', label: 'file', body: fileAggregation(rand) };
    const query = words(rand, 1 + int(rand, 3));
    if (r < 0.98) {
      const body = indexRequest(rand, { documents: documents(rand, 20 + int(rand, 130), `d${i}-`) });
      return { kind: 'index', label: 'inline', collection: `chaos-${i}`, body, query };
    }
    const body = indexRequest(rand, { source: { path: 'docs.ndjson' } });
    return { kind: 'index', label: 'file', collection: `chaos-${i}`, body, query };
  });
}

// ---------------------------------------------------------------------------------------------
// The system under test: the two Redis roles, two worker processes and the API, and what the
// queue's events stream and the workers' logs tell about each job.

const QUEUE_REDIS_ARGS = [
  '--appendonly',
  'yes',
  '--appendfsync',
  'always',
  '--maxmemory-policy',
  'noeviction',
];

interface WorkerSlot {
  child: Child | undefined;
  starting: Promise<void> | undefined;
}

/** Total CPU time of a process (all threads) in clock ticks, from /proc; null where unavailable. */
function cpuTicks(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return null;
  }
}

/** Reads pino lines off a worker's stdout (and what it printed before it was ready). */
function followLog(child: Child, onLine: (line: Record<string, unknown>) => void): void {
  let pending = '';
  const feed = (text: string) => {
    pending += text;
    const parts = pending.split('\n');
    pending = parts.pop() ?? '';
    for (const part of parts) {
      if (!part.startsWith('{')) continue;
      try {
        onLine(JSON.parse(part) as Record<string, unknown>);
      } catch {
        // A line cut by SIGKILL.
      }
    }
  };
  // Lines printed before the ready line was seen (a job may finish before it).
  for (const line of child.output.split('\n')) if (line.startsWith('{')) feed(`${line}\n`);
  child.process.stdout?.on('data', (chunk: Buffer) => feed(chunk.toString()));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

class Cluster {
  /** The current queue Redis first, then its stopped predecessors, the cache last. */
  readonly redis: RedisServer[] = [];
  readonly workers: WorkerSlot[] = [
    { child: undefined, starting: undefined },
    { child: undefined, starting: undefined },
  ];
  /** BullMQ's events per job id (the QueueEvents below fill it). */
  readonly stream = new Map<string, StreamEvent[]>();
  /** Finished engine runs per job id: "aggregation done" (reused: false) and "index built". */
  readonly computations = new Map<string, number>();
  /** "job attempt failed" lines: attempts BullMQ retries (or gives up on). */
  failedAttempts = 0;
  env: Record<string, string> = {};
  base = '';
  queueDir = '';
  #api: Child | undefined;
  /** Reads which jobs a worker holds at the instant it is killed; reconnects across restarts. */
  #inspect: Redis | undefined;
  readonly #queueEvents: QueueEvents[] = [];
  readonly #log: (line: string) => void;

  constructor(log: (line: string) => void) {
    this.#log = log;
  }

  async start(dirs: { dataDir: string; spoolDir: string }, extraEnv?: Record<string, string>): Promise<void> {
    const [queue, cache] = await Promise.all([
      startRedis(QUEUE_REDIS_ARGS),
      startRedis(['--maxmemory', '256mb', '--maxmemory-policy', 'allkeys-lru']),
    ]);
    this.redis.push(queue, cache);
    this.queueDir = queue.dir;
    const apiPort = await freePort();
    this.base = `http://127.0.0.1:${apiPort}`;
    this.env = {
      QUARRY_QUEUE_REDIS_URL: queue.url,
      QUARRY_CACHE_REDIS_URL: cache.url,
      QUARRY_PREFIX: uniquePrefix(),
      QUARRY_DATA_DIR: dirs.dataDir,
      QUARRY_SPOOL_DIR: dirs.spoolDir,
      QUARRY_API_PORT: String(apiPort),
      QUARRY_LOG_LEVEL: 'info',
      // Two workers and the API on two cores: one engine thread each.
      QUARRY_DUCKDB_THREADS: '1',
      QUARRY_POLARS_THREADS: '1',
      // Two workers on one host: each serves its metrics on a port of its own.
      QUARRY_WORKER_METRICS_PORT: '0',
    };
    if (extraEnv) Object.assign(this.env, extraEnv);
    this.#inspect = new Redis(queue.url, { maxRetriesPerRequest: null });
    this.#inspect.on('error', () => undefined);
    for (const name of [QUEUE_NAMES.aggregate, QUEUE_NAMES.index]) await this.#watch(name, queue.port);
    await Promise.all([
      ...this.workers.map((w) => this.startWorker(w)),
      startNode(path.join(root, 'api/main.ts'), this.env, 'Server listening at').then((child) => {
        this.#api = child;
      }),
    ]);
  }

  /** Records the queue's events from its first one; it reconnects by itself across restarts. */
  async #watch(name: string, port: number): Promise<void> {
    const events = new QueueEvents(name, {
      connection: { host: '127.0.0.1', port, maxRetriesPerRequest: null },
      prefix: this.env.QUARRY_PREFIX!,
      lastEventId: '0-0',
    });
    events.on('error', () => undefined);
    const record = (event: string) => (args: { jobId: string }, id: string) => {
      const list = this.stream.get(args.jobId) ?? [];
      list.push({ event, at: Number(id.split('-')[0]) });
      this.stream.set(args.jobId, list);
    };
    events.on('active', record('active'));
    events.on('stalled', record('stalled'));
    events.on('completed', record('completed'));
    events.on('failed', record('failed'));
    this.#queueEvents.push(events);
    await events.waitUntilReady();
  }

  startWorker(slot: WorkerSlot): Promise<void> {
    slot.starting = (async () => {
      let child: Child | undefined;
      for (let attempt = 1; child === undefined; attempt++) {
        try {
          child = await startNode(path.join(root, 'workers/main.ts'), this.env, 'worker ready');
        } catch (error) {
          if (attempt === 3) throw error;
          this.#log(
            `chaos: a worker failed to start, trying again: ${(error as Error).message.slice(0, 300)}`,
          );
        }
      }
      followLog(child, (line) => {
        const jobId = line.jobId as string | undefined;
        if (jobId === undefined) return;
        if ((line.msg === 'aggregation done' && line.reused === false) || line.msg === 'index built') {
          this.computations.set(jobId, (this.computations.get(jobId) ?? 0) + 1);
        } else if (line.msg === 'job attempt failed') {
          this.failedAttempts++;
        }
      });
      slot.child = child;
      slot.starting = undefined;
    })();
    return slot.starting;
  }

  /**
   * The worker using the most CPU over 200 ms (computing), else a random live one; none when
   * only one is up (recovery needs a worker to take the jobs over). Also what decided it.
   */
  async pickVictim(rand: Rand): Promise<{ slot: WorkerSlot; cpu: string } | undefined> {
    const live = this.workers.filter((w) => w.child !== undefined);
    if (live.length < 2) return undefined;
    const before = live.map((w) => cpuTicks(w.child?.process.pid));
    await sleep(200);
    const used = live.map((w, i) => (cpuTicks(w.child?.process.pid) ?? 0) - (before[i] ?? 0));
    const busiest = used.indexOf(Math.max(...used));
    // 80 ms of CPU in 200 ms (clock ticks are 10 ms): computing, not idling between small jobs.
    const slot = (used[busiest] ?? 0) >= 8 ? live[busiest]! : pick(rand, live);
    return { slot, cpu: `CPU ticks in 200 ms: ${used.join(' / ')}` };
  }

  /**
   * Kills the slot's worker and starts a new one there in the background. Returns its pid and
   * the ids of the jobs it held: active in BullMQ with `processedBy` naming it. The worker is
   * SIGSTOPped first, so it cannot take or finish a job between that reading and the SIGKILL;
   * 50 ms let Redis read what it had already written to its sockets.
   */
  async kill(
    slot: WorkerSlot,
    problems: string[],
  ): Promise<{ pid: number | undefined; held: string[] } | undefined> {
    const child = slot.child;
    if (child === undefined) return undefined;
    slot.child = undefined;
    const exited = new Promise((resolve) => child.process.once('exit', resolve));
    const pid = child.process.pid;
    let held: string[] = [];
    if (child.process.kill('SIGSTOP')) {
      await sleep(50);
      held = await this.#heldBy(workerName(pid)).catch((error: unknown) => {
        problems.push(`could not read the jobs of worker ${pid}: ${error}`);
        return [];
      });
    }
    child.process.kill('SIGKILL');
    await exited;
    this.startWorker(slot).catch((error: unknown) => problems.push(`worker restart failed: ${error}`));
    return { pid, held };
  }

  /** The jobs active in either queue whose BullMQ hash says `name` took them. */
  async #heldBy(name: string): Promise<string[]> {
    const redis = this.#inspect!;
    const prefix = this.env.QUARRY_PREFIX!;
    const held: string[] = [];
    for (const queue of [QUEUE_NAMES.aggregate, QUEUE_NAMES.index]) {
      const active = await redis.lrange(`${prefix}:${queue}:active`, 0, -1);
      const owners = await Promise.all(active.map((id) => redis.hget(`${prefix}:${queue}:${id}`, 'pb')));
      active.forEach((id, i) => {
        if (owners[i] === name) held.push(id);
      });
    }
    return held;
  }

  /**
   * SIGTERM (redis-server fsyncs its AOF and exits cleanly), down for `downMs`, then started
   * again on the same port and directory, where it reloads the AOF. Returns the time it was down.
   */
  async restartQueueRedis(downMs: number): Promise<number> {
    const old = this.redis[0]!;
    const down = Date.now();
    await old.stop({ signal: 'SIGTERM', keepData: true });
    await sleep(downMs);
    this.redis.unshift(await startRedis(QUEUE_REDIS_ARGS, old.port, this.queueDir));
    return Date.now() - down;
  }

  /** Both workers up (a replacement may still be starting). */
  async ensureWorkers(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.starting ?? (w.child ? undefined : this.startWorker(w))));
  }

  /** Stops everything, each step on its own, and removes the Redis directories. */
  async close(): Promise<void> {
    for (const [name, step] of [
      ['queue events', () => Promise.all(this.#queueEvents.map((e) => e.close()))],
      ['inspect connection', async () => this.#inspect?.disconnect()],
      ['api', async () => this.#api?.stop()],
      [
        'workers',
        () =>
          Promise.all(
            this.workers.map(async (w) => {
              await w.starting?.catch(() => undefined);
              await w.child?.stop();
            }),
          ),
      ],
      [
        'redis',
        async () => {
          for (const server of this.redis) await server.stop();
        },
      ],
    ] as const) {
      try {
        await step();
      } catch (error) {
        this.#log(`chaos: error while stopping ${name}: ${(error as Error).message}`);
      }
    }
    // The queue Redis' directory outlives its restarted instances (they were given it).
    for (const server of this.redis) rmSync(server.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Submitting through HTTP, and waiting for every acknowledged job to finish.

interface Ack {
  readonly jobId: string;
  readonly resultKey?: string;
  /** A 200 answer: the cached result itself. */
  readonly envelope?: ResultEnvelope;
}

interface SubmitCounters {
  retried503: number;
  retriedOther: number;
  cacheHits: number;
}

/**
 * POSTs a job until it is acknowledged (202, or 200 from the cache). A 503 means the queue Redis
 * is unreachable and nothing was acknowledged: the request goes again after Retry-After. Other
 * failures are sent again too, but noted as problems; a 4xx gives up.
 */
async function post(
  base: string,
  job: Planned,
  deadline: number,
  counters: SubmitCounters,
  problems: string[],
): Promise<Ack | undefined> {
  const url = job.kind === 'aggregate' ? `${base}/v1/aggregations` : `${base}/v1/indexes/${job.collection}`;
  const body = JSON.stringify(job.body);
  while (Date.now() < deadline) {
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(20_000),
      });
    } catch (error) {
      counters.retriedOther++;
      problems.push(`POST ${url} failed (${(error as Error).message}); sent again`);
      await sleep(1000);
      continue;
    }
    const text = await res.text();
    if (res.status === 200 || res.status === 202) {
      const json = JSON.parse(text) as { jobId?: string; resultKey?: string };
      if (res.status === 202)
        return { jobId: json.jobId!, ...(json.resultKey ? { resultKey: json.resultKey } : {}) };
      counters.cacheHits++;
      return { jobId: `agg-${json.resultKey}`, resultKey: json.resultKey!, envelope: json as ResultEnvelope };
    }
    if (res.status === 503) {
      counters.retried503++;
    } else {
      counters.retriedOther++;
      problems.push(`POST ${url} answered ${res.status} ${text.slice(0, 200)}`);
      if (res.status < 500) return undefined;
    }
    await sleep(1000 * Number(res.headers.get('retry-after') ?? '1'));
  }
  return undefined;
}

async function jobStatus(base: string, jobId: string): Promise<JobStatus | null> {
  const res = await fetch(`${base}/v1/jobs/${jobId}`, { signal: AbortSignal.timeout(10_000) }).catch(
    () => null,
  );
  return res?.status === 200 ? ((await res.json()) as JobStatus) : null;
}

/**
 * Polls the acknowledged jobs' status records until each is final, or until none has become final
 * for `quietMs` (a job that is lost never finishes; a slow, loaded machine still finishes some
 * every few seconds, so the bound follows progress, not the clock), or the hard cap passes.
 */
async function settle(
  base: string,
  acks: readonly (Ack | undefined)[],
  quietMs: number,
  capMs: number = 30 * 60_000,
) {
  const finals = new Map<number, JobStatus>();
  const cap = Date.now() + capMs;
  let lastProgress = Date.now();
  for (;;) {
    const pending = acks.flatMap((a, i) =>
      a !== undefined && a.envelope === undefined && !finals.has(i) ? [i] : [],
    );
    const now = Date.now();
    if (pending.length === 0 || now - lastProgress > quietMs || now > cap) return finals;
    for (let from = 0; from < pending.length; from += 50) {
      await Promise.all(
        pending.slice(from, from + 50).map(async (i) => {
          const status = await jobStatus(base, acks[i]!.jobId);
          if (status !== null && isFinalState(status.state)) {
            finals.set(i, status);
            lastProgress = Date.now();
          }
        }),
      );
    }
    await sleep(250);
  }
}

// ---------------------------------------------------------------------------------------------
// The expected answers: the TS reference (inline aggregations), a fresh in-process engine of the
// same kind (file aggregations), an in-process buildIndex (index builds).

class Checker {
  readonly #dataDir: string;
  readonly #base: string;
  readonly #fileDocs: readonly Doc[];
  readonly #engines: Promise<Record<EngineName, AggregationEngine>>;

  constructor(options: { dataDir: string; spoolDir: string; base: string; fileDocs: readonly Doc[] }) {
    this.#dataDir = options.dataDir;
    this.#base = options.base;
    this.#fileDocs = options.fileDocs;
    this.#engines = createDuckDBEngine({
      threads: 2,
      dataDir: options.dataDir,
      spoolDir: options.spoolDir,
    }).then((duckdb) => ({ duckdb, polars: createPolarsEngine({ poolSize: 1 }), js: createJsEngine() }));
  }

  /** Throws, saying what differs, unless the job's answer equals the expected one. */
  async check(job: Planned, ack: Ack): Promise<void> {
    if (job.kind === 'index') return this.#checkIndex(job);
    const limits = { maxInlineBytes: 1024 ** 3, maxResultRows: 100_000 };
    const parsed = parseAggregation(job.body, limits);
    const addressed =
      parsed.dataset.kind !== 'file'
        ? addressAggregation(parsed)
        : addressAggregation(
            parsed,
            await fingerprintFile(this.#dataDir, parsed.dataset.path, parsed.dataset.format),
          );
    const envelope =
      ack.envelope ??
      ((await (await fetch(`${this.#base}/v1/results/${ack.resultKey}`)).json()) as ResultEnvelope);
    if (envelope.resultKey !== addressed.resultKey) throw new Error(`result key ${envelope.resultKey}`);
    const { spec } = addressed;
    const expected =
      spec.dataset.kind === 'inline'
        ? referenceAggregate(spec, JSON.parse(addressed.inlineJson!) as InlineRecord[], spec.dataset.columns)
        : await (await this.#engines)[chooseEngine(spec)].run({
            spec,
            source: {
              kind: 'file',
              file: path.join(this.#dataDir, spec.dataset.kind === 'file' ? spec.dataset.path : ''),
              format: spec.dataset.format,
            },
            maxRows: limits.maxResultRows,
          });
    assertSameResult(envelope, expected);
  }

  async #checkIndex(job: Extract<Planned, { kind: 'index' }>): Promise<void> {
    const { idField, fields, store, boosts } = job.body as {
      idField: string;
      fields: string[];
      store: string[];
      boosts?: Record<string, number>;
    };
    const docs = 'documents' in job.body ? (job.body.documents as Doc[]) : this.#fileDocs;
    const index = loadIndex(buildIndex(docs, { idField, fields, store, ...(boosts ? { boosts } : {}) }));
    const want = search(index, job.query, { k: 10 }).hits.map((h) => h.id);
    const q = encodeURIComponent(job.query);
    const res = await fetch(`${this.#base}/v1/indexes/${job.collection}/search?q=${q}&k=10`);
    const got = ((await res.json()) as { hits: { id: string }[] }).hits.map((h) => h.id);
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      throw new Error(`top 10 ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
    }
  }

  async close(): Promise<void> {
    const engines = await this.#engines;
    await Promise.all([engines.duckdb.close(), engines.polars.close()]);
  }
}

// ---------------------------------------------------------------------------------------------
// Recovery, from the queue's events stream and the kill times.

export interface StreamEvent {
  readonly event: string;
  /** Epoch ms, from the stream entry's id. */
  readonly at: number;
}

export interface Recovery {
  readonly jobId: string;
  /** Kills during the job's run that could have caused the stall; the earliest is charged. */
  readonly candidates: number;
  /** From the kill to the job running again / its end; null when that never happened. */
  readonly pickupMs: number | null;
  readonly endMs: number | null;
  readonly outcome: 'completed' | 'failed' | 'never';
}

/**
 * Which kill interrupted each stalled job, and how long the job took to come back. A stall comes
 * at least `minLockLeftMs` after the kill that caused it (a worker renews its locks so that at
 * least lockDuration - lockRenewTime is always left), so the kill is one of those between the
 * job's last start and the stall less that margin. One candidate: the figures are exact; more:
 * the earliest is charged, so they are upper bounds.
 */
export function analyzeRecovery(
  stream: ReadonlyMap<string, readonly StreamEvent[]>,
  kills: readonly number[],
  minLockLeftMs: number,
  held: ReadonlySet<string> = new Set(),
): Pick<
  ChaosReport,
  | 'interruptedJobs'
  | 'stallsWithoutKill'
  | 'ambiguousStalls'
  | 'longestPickupMs'
  | 'longestRecoveryMs'
  | 'longestRecoveryUpperMs'
  | 'recoveries'
> {
  const recoveries: Recovery[] = [];
  let stallsWithoutKill = 0;
  // A second of slack: timers fire late on a loaded machine.
  const margin = Math.max(0, minLockLeftMs - 1000);
  for (const [jobId, events] of stream) {
    events.forEach((e, k) => {
      if (e.event !== 'stalled') return;
      const started = events.slice(0, k).findLast((s) => s.event === 'active')?.at ?? 0;
      let candidates = kills.filter((at) => at >= started && at <= e.at - margin);
      // A loaded worker renews its locks late, so its lock can run out sooner after the kill than
      // the margin says. A job the run saw the killed worker hold was interrupted by a kill all
      // the same: any kill between its start and the stall is a candidate then.
      if (candidates.length === 0 && held.has(jobId)) {
        candidates = kills.filter((at) => at >= started && at <= e.at);
      }
      if (candidates.length === 0) {
        stallsWithoutKill++;
        return;
      }
      const kill = candidates[0]!;
      const later = events.slice(k + 1);
      const next = later.find((s) => s.event === 'active');
      const end = later.find((s) => s.event === 'completed' || s.event === 'failed');
      recoveries.push({
        jobId,
        candidates: candidates.length,
        pickupMs: next ? next.at - kill : null,
        endMs: end ? end.at - kill : null,
        outcome: end?.event === 'completed' ? 'completed' : end?.event === 'failed' ? 'failed' : 'never',
      });
    });
  }
  const longest = (values: (number | null)[]) =>
    values.reduce<number | null>((m, v) => (v === null ? m : Math.max(m ?? 0, v)), null);
  const exact = recoveries.filter((r) => r.candidates === 1);
  const completedIn = (r: Recovery) => (r.outcome === 'completed' ? r.endMs : null);
  return {
    interruptedJobs: recoveries.length,
    stallsWithoutKill,
    ambiguousStalls: recoveries.length - exact.length,
    longestPickupMs: longest(exact.map((r) => r.pickupMs)),
    longestRecoveryMs: longest(exact.map(completedIn)),
    longestRecoveryUpperMs: longest(recoveries.map(completedIn)),
    recoveries,
  };
}

// ---------------------------------------------------------------------------------------------

export async function runChaos(options: ChaosOptions = {}): Promise<ChaosReport> {
  const jobs = options.jobs ?? 1000;
  const windowMs = (options.seconds ?? 120) * 1000;
  const killMinMs = options.killMinMs ?? 3000;
  const killMaxMs = options.killMaxMs ?? 8000;
  const restarts = options.redisRestarts ?? 1;
  const settleMs = (options.settleSeconds ?? 120) * 1000;
  const seed = options.seed ?? Date.now() % 1_000_000;
  const log = options.log ?? ((line: string) => console.log(line));
  const rand = mulberry32(seed);
  const problems: string[] = [];

  // Kill times first: a heavy job is placed half a second before each, so a kill finds work.
  const killTimes: number[] = [];
  for (
    let t = killMinMs + rand() * (killMaxMs - killMinMs);
    t < windowMs;
    t += killMinMs + rand() * (killMaxMs - killMinMs)
  ) {
    if (killTimes.length === (options.maxKills ?? Number.POSITIVE_INFINITY)) break;
    killTimes.push(t);
  }
  const spacing = windowMs / jobs;
  const heavyFor = killTimes.map((t) => Math.max(0, Math.floor((t - 500) / spacing)));
  const plan = planJobs(jobs, options.heavyShare ?? 0.01, new Set(heavyFor), rand);
  const stallEnv =
    options.maxStalledCount === undefined
      ? undefined
      : { QUARRY_MAX_STALLED_COUNT: String(options.maxStalledCount) };
  log(
    `chaos: seed ${seed} (replay: npm run chaos -- --seed ${seed}), ${jobs} jobs over ${windowMs / 1000} s, ${killTimes.length} kills, ${restarts} Redis restart(s)`,
  );

  const dataDir = await makeFlightsDataDir();
  copyFileSync(path.join(VEGA_DATA_DIR, 'flights-3m.parquet'), path.join(dataDir, 'flights-3m.parquet'));
  const fileDocs = documents(mulberry32(seed + 1), 300, 'f');
  writeFileSync(path.join(dataDir, 'docs.ndjson'), `${fileDocs.map((d) => JSON.stringify(d)).join('\n')}\n`);
  const spoolDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-chaos-spool-'));
  const cluster = new Cluster(log);
  let checker: Checker | undefined;
  try {
    await cluster.start({ dataDir, spoolDir }, stallEnv);
    const { base } = cluster;
    const config = loadConfig(cluster.env);
    const { maxStalledCount } = config;
    log('chaos: Redis x2, 2 workers and the API are up');
    const t0 = Date.now();
    const at = () => `+${((Date.now() - t0) / 1000).toFixed(1)} s`;
    const acks: (Ack | undefined)[] = new Array(jobs).fill(undefined);
    const counters: SubmitCounters = { retried503: 0, retriedOther: 0, cacheHits: 0 };
    const kills: number[] = [];
    /** Kills that hit each job: the killed worker held it, active. */
    const hits = new Map<string, number>();
    let redisDownMs = 0;
    let restarted = 0;
    let submitting = true;

    /** Until the job is running (its status record says so); false if it never is within `ms`. */
    const running = async (i: number, ms: number): Promise<boolean> => {
      for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(20)) {
        const ack = acks[i];
        const state = ack === undefined ? undefined : (await jobStatus(base, ack.jobId))?.state;
        if (state === 'active') return true;
        if (state !== undefined && state !== 'queued') return false;
      }
      return false;
    };

    const faults = (async () => {
      const schedule = [
        ...killTimes.map((at, k) => ({ at, heavy: heavyFor[k]! })),
        ...Array.from({ length: restarts }, (_, i) => ({
          at: ((i + 1) * windowMs) / (restarts + 1),
          heavy: -1,
        })),
      ].sort((a, b) => a.at - b.at);
      for (const step of schedule) {
        await sleep(Math.max(0, t0 + step.at - Date.now()));
        if (!submitting) return;
        if (step.heavy === -1) {
          const downMs = await cluster.restartQueueRedis(options.redisDownMs ?? 3000);
          redisDownMs = Math.max(redisDownMs, downMs);
          restarted++;
          log(`chaos: ${at()} queue Redis restarted (${downMs} ms down)`);
          continue;
        }
        const heavyRunning = await running(step.heavy, 5000);
        const victim = await cluster.pickVictim(rand);
        if (victim === undefined) continue;
        kills.push(Date.now());
        const killed = await cluster.kill(victim.slot, problems);
        for (const jobId of killed?.held ?? []) hits.set(jobId, (hits.get(jobId) ?? 0) + 1);
        log(
          `chaos: ${at()} killed worker pid ${killed?.pid} holding ${killed?.held.length ?? 0} job(s) (heavy job ${heavyRunning ? 'running' : 'not seen running'}; ${victim.cpu})`,
        );
      }
    })();

    const submissions: Promise<void>[] = [];
    for (let i = 0; i < jobs; i++) {
      await sleep(Math.max(0, t0 + i * spacing - Date.now()));
      submissions.push(
        post(base, plan[i]!, t0 + windowMs + settleMs, counters, problems).then((ack) => {
          acks[i] = ack;
        }),
      );
      if (i > 0 && i % Math.ceil(jobs / 10) === 0) log(`chaos: ${at()} ${i} jobs submitted`);
    }
    await Promise.all(submissions);
    submitting = false;
    await faults;
    await cluster.ensureWorkers();
    const acknowledged = acks.filter((a) => a !== undefined).length;
    log(`chaos: ${at()} all submitted (${acknowledged} acknowledged); waiting for them`);
    const finals = await settle(base, acks, settleMs);

    checker = new Checker({ dataDir, spoolDir: path.join(spoolDir, 'check'), base, fileDocs });
    let completed = 0;
    let failed = 0;
    let unfinished = 0;
    let expectedStalled = 0;
    let wrong = 0;
    const note = (line: string) => {
      if (problems.length < 40) problems.push(line);
    };
    for (const [i, ack] of acks.entries()) {
      if (ack === undefined) continue;
      const job = plan[i]!;
      const status = finals.get(i);
      const jobHits = hits.get(ack.jobId) ?? 0;
      const what = `job ${i} (${job.kind} ${job.label}) ${ack.jobId}, hit by ${jobHits} kill(s)`;
      const verdict = ack.envelope === undefined ? judgeJob(status, jobHits, maxStalledCount) : 'completed';
      if (verdict === 'expected-stalled') {
        expectedStalled++;
        continue;
      }
      if (verdict === 'lost') {
        if (status === undefined) unfinished++;
        else failed++;
        const now = status ?? (await jobStatus(base, ack.jobId));
        note(
          `lost: ${what} (survives ${maxStalledCount}): status record ${now?.state ?? 'missing'} ${JSON.stringify(now?.error ?? null)}`,
        );
        continue;
      }
      try {
        await checker.check(job, ack);
        completed++;
      } catch (error) {
        wrong++;
        note(`wrong: ${what}: ${(error as Error).message.slice(0, 300)}`);
      }
    }

    const ackedIds = new Set(acks.flatMap((a) => (a ? [a.jobId] : [])));
    const runs = [...cluster.computations];
    const seen = [...cluster.stream.values()].flat();
    log(
      `chaos: events stream: ${['active', 'stalled', 'completed', 'failed'].map((e) => `${seen.filter((s) => s.event === e).length} ${e}`).join(', ')}`,
    );
    const lost = failed + unfinished + (jobs - acknowledged);
    // A second finished run is a duplicate unless a kill hit the job: a worker killed after its
    // engine run finished but before the result was stored leaves a run that must be redone.
    const extraRuns = (hit: boolean) =>
      runs.reduce((n, [jobId, c]) => n + ((hits.get(jobId) ?? 0) > 0 === hit ? Math.max(0, c - 1) : 0), 0);
    const duplicateComputations = extraRuns(false);
    return {
      seed,
      maxStalledCount,
      passed: lost === 0 && wrong === 0 && duplicateComputations === 0,
      submitted: jobs,
      acknowledged,
      ...counters,
      completed,
      failed,
      unfinished,
      expectedStalled,
      lost,
      wrong,
      computations: runs.reduce((n, [, c]) => n + c, 0),
      duplicateComputations,
      recomputedAfterKill: extraRuns(true),
      unacknowledgedComputed: runs.filter(([jobId]) => !ackedIds.has(jobId)).length,
      rerunJobs: [...cluster.stream.values()].filter((e) => e.filter((s) => s.event === 'active').length > 1)
        .length,
      failedAttempts: cluster.failedAttempts,
      kills: kills.length,
      redisRestarts: restarted,
      redisDownMs,
      mostHitsOnOneJob: Math.max(0, ...hits.values()),
      jobsHitPastRule: [...hits.values()].filter((n) => !survives(n, maxStalledCount)).length,
      ...analyzeRecovery(cluster.stream, kills, config.lockDurationMs / 2, new Set(hits.keys())),
      problems,
    };
  } finally {
    await checker?.close().catch(() => undefined);
    await cluster.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(spoolDir, { recursive: true, force: true });
  }
}

/** The report as rows for printTable, with what each line means. */
export function reportRows(r: ChaosReport): { measure: string; value: string | number }[] {
  const ms = (v: number | null) => (v === null ? 'n/a' : `${(v / 1000).toFixed(1)} s`);
  return [
    { measure: 'seed (replay: npm run chaos -- --seed N)', value: r.seed },
    { measure: 'verdict', value: r.passed ? 'pass' : 'FAIL' },
    { measure: 'jobs submitted (POST)', value: r.submitted },
    { measure: 'acknowledged (202, or 200 from the cache)', value: r.acknowledged },
    { measure: '  of which cache hits (200)', value: r.cacheHits },
    { measure: '  503 answers, sent again after Retry-After', value: r.retried503 },
    { measure: '  other errors, sent again', value: r.retriedOther },
    { measure: 'completed with the right result', value: r.completed },
    {
      measure: `failed QUARRY_ERR_JOB_STALLED, hit by more than ${r.maxStalledCount} kills (the rule)`,
      value: r.expectedStalled,
    },
    { measure: 'lost (failed otherwise, unfinished or never acknowledged)', value: r.lost },
    { measure: 'wrong results', value: r.wrong },
    { measure: 'computations (finished engine runs)', value: r.computations },
    {
      measure: 'duplicate computations (2nd finished run, no kill hit the job)',
      value: r.duplicateComputations,
    },
    { measure: 'runs redone because a kill hit the job after its run', value: r.recomputedAfterKill },
    { measure: 'jobs computed but never acknowledged', value: r.unacknowledgedComputed },
    { measure: 'jobs started more than once', value: r.rerunJobs },
    { measure: 'failed attempts retried by BullMQ', value: r.failedAttempts },
    { measure: 'worker kills (SIGKILL)', value: r.kills },
    { measure: 'jobs interrupted by a kill (stalled)', value: r.interruptedJobs },
    { measure: '  of which more than one kill could be the cause', value: r.ambiguousStalls },
    { measure: 'stalls without a kill', value: r.stallsWithoutKill },
    {
      measure: 'most kills that hit one job (it was active on the killed worker)',
      value: r.mostHitsOnOneJob,
    },
    { measure: `jobs hit by more than ${r.maxStalledCount} kills`, value: r.jobsHitPastRule },
    { measure: 'longest pickup (kill -> job running again)', value: ms(r.longestPickupMs) },
    { measure: 'longest recovery (kill -> job completed)', value: ms(r.longestRecoveryMs) },
    { measure: '  upper bound, counting ambiguous stalls too', value: ms(r.longestRecoveryUpperMs) },
    { measure: 'queue Redis restarts', value: r.redisRestarts },
    { measure: 'queue Redis down (longest)', value: ms(r.redisDownMs) },
  ];
}

export function printReport(r: ChaosReport): void {
  printTable('Chaos run', reportRows(r));
  if (r.recoveries.length > 0) {
    printTable(
      'Jobs interrupted by a kill (seconds after the kill; the earliest when several could be it)',
      r.recoveries.map((x) => ({
        job: x.jobId,
        'possible kills': x.candidates,
        'running again': x.pickupMs === null ? 'never' : (x.pickupMs / 1000).toFixed(1),
        ended: x.endMs === null ? 'never' : `${x.outcome} ${(x.endMs / 1000).toFixed(1)}`,
      })),
    );
  }
  if (r.problems.length > 0) console.log(`\n${r.problems.join('\n')}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      jobs: { type: 'string' },
      seconds: { type: 'string' },
      'settle-seconds': { type: 'string' },
      seed: { type: 'string' },
      seeds: { type: 'string' },
      'kill-min-ms': { type: 'string' },
      'kill-max-ms': { type: 'string' },
      'max-stalled-count': { type: 'string' },
      'report-file': { type: 'string' },
      'timeout-s': { type: 'string' },
    },
  });
  const num = (name: keyof typeof values) => {
    const v = values[name];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: a non-negative number, not ${v}`);
    return n;
  };
  const options: ChaosOptions = {
    jobs: num('jobs') ?? 1000,
    seconds: num('seconds') ?? 120,
    settleSeconds: num('settle-seconds') ?? 120,
    ...(values.seed === undefined ? {} : { seed: num('seed')! }),
    ...(values['kill-min-ms'] === undefined ? {} : { killMinMs: num('kill-min-ms')! }),
    ...(values['kill-max-ms'] === undefined ? {} : { killMaxMs: num('kill-max-ms')! }),
    ...(values['max-stalled-count'] === undefined ? {} : { maxStalledCount: num('max-stalled-count')! }),
  };
  if (values.seeds !== undefined) {
    // Every option but the seed goes to each run as given.
    const own = new Set(['--seeds', '--timeout-s']);
    const args = process.argv.slice(2).filter((a, k, all) => !own.has(a) && !own.has(all[k - 1]!));
    // A run's own bound: submissions, the settle time, and 15 minutes to start, check every
    // answer in process (~1,000 engine runs and index builds: minutes on a loaded machine), stop.
    const timeoutMs = (num('timeout-s') ?? options.seconds! + options.settleSeconds! + 900) * 1000;
    const runs = await runSeeds(seedsFrom(values.seeds), args, timeoutMs);
    printSeedRuns(runs);
    process.exitCode = seedsPassed(runs) ? 0 : 1;
    return;
  }
  const report = await runChaos(options);
  printReport(report);
  if (values['report-file'] !== undefined) writeFileSync(values['report-file'], JSON.stringify(report));
  console.log(`\nchaos: seed ${report.seed}: ${report.passed ? 'pass' : 'FAIL'}`);
  process.exitCode = report.passed ? 0 : 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // Ctrl-C: exit at once; the helpers kill every child process and Redis on exit.
  process.once('SIGINT', () => process.exit(130));
  await main();
}
