// Soak: many small aggregation jobs (distinct tiny inline datasets, through the SDK in batches,
// one worker process) while the memory of both Redis roles is sampled every N jobs. Retention
// (BullMQ removes finished jobs, the events stream is capped, inline data is deleted when done,
// status records and results expire, the history index is trimmed with them, activity counters
// are per minute) must keep memory bounded: with TTLs short enough for the
// run to reach its steady state, used_memory levels off at about rate x TTL worth of records.
// Writes bench/results/soak.json.
import path from 'node:path';
import { Redis } from 'ioredis';
import { createQuarry } from '../producers/client.ts';
import { loadConfig } from '../shared/config.ts';
import { freePort, startRedis } from '../test/helpers/redis.ts';
import { uniquePrefix } from '../test/helpers/system.ts';
import { type Child, startNode } from './lib/processes.ts';
import { printTable, writeResults } from './lib/stats.ts';

export interface SoakOptions {
  /** Jobs to push. Default 50,000. */
  jobs?: number;
  /** Jobs enqueued (then awaited) at once. Default 500. */
  batch?: number;
  /** A memory sample every this many jobs. Default jobs / 20. */
  sampleEvery?: number;
  /**
   * Status record and result lifetimes for the run. Default 5 s each: short enough that the run
   * reaches the steady state that the production TTLs (a day, an hour) reach after a day.
   */
  statusTtlS?: number;
  resultTtlS?: number;
}

interface RoleSample {
  usedMemory: number;
  keys: number;
  expiredKeys: number;
  evictedKeys: number;
}

export interface SoakSample {
  jobs: number;
  seconds: number;
  /** Entries in the history index (GET /v1/jobs): bounded by the status TTL like the records. */
  historyEntries: number;
  queue: RoleSample;
  cache: RoleSample;
}

async function sample(redis: Redis): Promise<RoleSample> {
  const [memory, stats, keys] = await Promise.all([
    redis.info('memory'),
    redis.info('stats'),
    redis.dbsize(),
  ]);
  const field = (text: string, name: string) =>
    Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return {
    usedMemory: field(memory, 'used_memory'),
    keys,
    expiredKeys: field(stats, 'expired_keys'),
    evictedKeys: field(stats, 'evicted_keys'),
  };
}

/** A dataset no other job has: the result key (and so the job id) is new every time. */
function tinySpec(i: number) {
  return {
    dataset: {
      records: [
        { g: 'a', v: i },
        { g: 'b', v: i + 1 },
        { g: 'a', v: 2 * i },
      ],
    },
    groupBy: ['g'],
    metrics: [{ op: 'count' }, { op: 'sum', column: 'v' }],
  };
}

const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 100) / 100;

export async function runSoak(options: SoakOptions = {}): Promise<void> {
  const jobs = options.jobs ?? 50_000;
  const batch = options.batch ?? 500;
  const sampleEvery = options.sampleEvery ?? Math.max(batch, Math.round(jobs / 20 / batch) * batch);
  const statusTtlS = options.statusTtlS ?? 5;
  const resultTtlS = options.resultTtlS ?? 5;

  const [queueServer, cacheServer] = await Promise.all([
    startRedis(['--maxmemory-policy', 'noeviction']),
    startRedis(['--maxmemory', '256mb', '--maxmemory-policy', 'allkeys-lru']),
  ]);
  const env = {
    QUARRY_QUEUE_REDIS_URL: queueServer.url,
    QUARRY_CACHE_REDIS_URL: cacheServer.url,
    QUARRY_PREFIX: uniquePrefix(),
    QUARRY_LOG_LEVEL: 'info',
    QUARRY_STATUS_TTL_S: String(statusTtlS),
    QUARRY_RESULT_TTL_S: String(resultTtlS),
    QUARRY_DUCKDB_THREADS: '1',
    QUARRY_WORKER_METRICS_PORT: String(await freePort()),
  };
  const config = loadConfig(env);
  const queueRedis = new Redis(queueServer.url);
  const cacheRedis = new Redis(cacheServer.url);
  const quarry = createQuarry({ config });
  let worker: Child | undefined;
  const samples: SoakSample[] = [];
  try {
    worker = await startNode(path.resolve('workers/main.ts'), env, 'worker ready');
    const started = performance.now();
    const take = async (done: number) => {
      const [queue, cache, historyEntries] = await Promise.all([
        sample(queueRedis),
        sample(cacheRedis),
        queueRedis.zcard(quarry.keys.history),
      ]);
      samples.push({
        jobs: done,
        seconds: Math.round((performance.now() - started) / 100) / 10,
        historyEntries,
        queue,
        cache,
      });
    };
    await take(0);
    for (let done = 0; done < jobs; ) {
      const size = Math.min(batch, jobs - done);
      const handles = await Promise.all(
        Array.from({ length: size }, (_, k) => quarry.aggregate(tinySpec(done + k))),
      );
      await Promise.all(handles.map((h) => h.wait({ timeoutMs: 120_000 })));
      done += size;
      if (done % sampleEvery === 0 || done === jobs || done === 5000) await take(done);
    }
  } finally {
    await quarry.close();
    queueRedis.disconnect();
    cacheRedis.disconnect();
    await worker?.stop();
    await Promise.all([queueServer.stop(), cacheServer.stop()]);
  }

  const rows = samples.map((s) => ({
    jobs: s.jobs,
    s: s.seconds,
    'jobs/s': s.seconds > 0 ? Math.round(s.jobs / s.seconds) : null,
    'queue MB': mb(s.queue.usedMemory),
    'queue keys': s.queue.keys,
    'history entries': s.historyEntries,
    'queue expired': s.queue.expiredKeys,
    'cache MB': mb(s.cache.usedMemory),
    'cache keys': s.cache.keys,
    'cache expired': s.cache.expiredKeys,
    'cache evicted': s.cache.evictedKeys,
  }));
  printTable(`Soak: ${jobs} jobs, status/result TTL ${statusTtlS}/${resultTtlS} s, Redis used_memory`, rows);

  // Flat: at the end at most 20% above the value after the first 5,000 jobs, or, for short runs,
  // the first sample taken once twice the longest TTL has passed (before that, memory still
  // climbs towards its steady state by design).
  const settledAfterS = 2 * Math.max(statusTtlS, resultTtlS);
  const reference =
    samples.find((s) => s.jobs >= Math.min(5000, jobs) && s.seconds >= settledAfterS) ??
    samples.find((s) => s.seconds >= settledAfterS);
  const last = samples[samples.length - 1]!;
  const summary = (role: 'queue' | 'cache') => {
    const values = samples.map((s) => s[role].usedMemory);
    return {
      firstBytes: samples[1]?.[role].usedMemory ?? values[0]!,
      referenceJobs: reference?.jobs ?? null,
      referenceBytes: reference?.[role].usedMemory ?? null,
      maxBytes: Math.max(...values),
      lastBytes: last[role].usedMemory,
      flat: reference === undefined ? null : last[role].usedMemory <= 1.2 * reference[role].usedMemory,
    };
  };
  const result = { queue: summary('queue'), cache: summary('cache') };
  printTable(
    reference === undefined
      ? `Bounded? n/a: the run is shorter than twice the TTL (${settledAfterS} s)`
      : `Bounded? last <= 1.2 x the value after ${reference.jobs} jobs (${reference.seconds} s)`,
    (['queue', 'cache'] as const).map((role) => ({
      role,
      'first MB': mb(result[role].firstBytes),
      'reference MB': result[role].referenceBytes === null ? null : mb(result[role].referenceBytes),
      'max MB': mb(result[role].maxBytes),
      'last MB': mb(result[role].lastBytes),
      flat: result[role].flat === null ? 'n/a' : result[role].flat ? 'yes' : 'NO',
    })),
  );
  // What one retained job costs, and what the production TTLs would hold at this rate: the
  // steady state is rate x TTL records, and the queue Redis must not evict.
  const rate = last.seconds > 0 ? last.jobs / last.seconds : 0;
  const first = samples[0]!;
  const perJob = (role: 'queue' | 'cache') =>
    Math.round(
      (last[role].usedMemory - first[role].usedMemory) / Math.max(1, last[role].keys - first[role].keys),
    );
  const defaults = loadConfig({});
  const projection = {
    jobsPerSecond: Math.round(rate),
    queueBytesPerRecord: perJob('queue'),
    cacheBytesPerResult: perJob('cache'),
    queueBytesAtDefaultStatusTtl: Math.round(perJob('queue') * rate * defaults.statusTtlS),
    cacheBytesAtDefaultResultTtl: Math.round(perJob('cache') * rate * defaults.resultTtlS),
  };
  console.log(
    `\n${projection.queueBytesPerRecord} B per status record, ${projection.cacheBytesPerResult} B per result: at ${projection.jobsPerSecond} jobs/s the default TTLs (${defaults.statusTtlS} s, ${defaults.resultTtlS} s) would hold ${mb(projection.queueBytesAtDefaultStatusTtl)} MB (queue) and ${mb(projection.cacheBytesAtDefaultResultTtl)} MB (cache)`,
  );
  const file = writeResults('soak', {
    options: { jobs, batch, sampleEvery, statusTtlS, resultTtlS },
    summary: result,
    projection,
    samples,
  });
  console.log(`\nwritten ${file}`);
}
