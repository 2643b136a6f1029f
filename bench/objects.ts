// Object-store datasets: what reading an s3:// dataset costs a worker beside the same file by
// path. One real worker process (`workers/main.ts`), a real Redis and a real S3-protocol server
// (s3rver, a child process: test/helpers/s3.ts) on this machine. Per object size (flights-5k as
// Parquet, and vega's flights-3m.parquet, 13 MB): a burst of jobs reading the file by path; the
// same burst over as many distinct objects with a cold host cache (every job downloads its
// object); then again with the cache warm (every job reads the cached file). Each job's spec
// differs (its limit), so no result is reused. Prints jobs/s and the worker's own fetch time
// (quarry_object_fetch_seconds by cache=miss|hit, read off its /metrics) per job.
// This worker reaches s3rver over loopback; a worker on another host (a network namespace) reading
// objects over the simulated network is the scale bench's row (bench/scale-remote.ts).
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createQuarry } from '../producers/client.ts';
import { loadConfig } from '../shared/config.ts';
import { silentLogger } from '../shared/logger.ts';
import { makeFlightsDataDir, VEGA_DATA_DIR } from '../test/helpers/flights.ts';
import { freePort, startRedis } from '../test/helpers/redis.ts';
import { startS3 } from '../test/helpers/s3.ts';
import { startNode } from './lib/processes.ts';
import { printTable, type Row, writeResults } from './lib/stats.ts';

export interface ObjectsOptions {
  /** Jobs per burst (default 40; at least 5). */
  jobs?: number;
  /** Leave out flights-3m.parquet (13 MB): a quick run. */
  small?: boolean;
}

interface Burst {
  mode: 'path' | 'cold' | 'warm';
  jobs: number;
  jobsPerS: number;
  /** The worker's fetch time per job (ms), from its histogram; null for path datasets. */
  fetchMsPerJob: number | null;
}

const SPEC = {
  groupBy: ['origin'],
  metrics: [{ op: 'count' }, { op: 'avg', column: 'delay' }, { op: 'max', column: 'distance' }],
  orderBy: [{ column: 'count', direction: 'desc' }],
};

export async function runObjects(options: ObjectsOptions = {}): Promise<void> {
  const jobs = Math.max(5, options.jobs ?? 40);
  const [redis, s3, dataDir] = await Promise.all([
    startRedis(),
    startS3({ buckets: ['bench'] }),
    makeFlightsDataDir(),
  ]);
  const cacheDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-bench-objects-'));
  const metricsPort = await freePort();
  const files = [{ name: 'flights-5k.parquet', source: path.join(dataDir, 'flights.parquet') }];
  if (!options.small)
    files.push({ name: 'flights-3m.parquet', source: path.join(VEGA_DATA_DIR, 'flights-3m.parquet') });
  const env = {
    ...s3.env,
    QUARRY_PREFIX: `bench${Date.now().toString(36)}`,
    QUARRY_QUEUE_REDIS_URL: redis.url,
    QUARRY_DATA_DIR: dataDir,
    QUARRY_OBJECT_CACHE_DIR: cacheDir,
    QUARRY_LOG_LEVEL: 'warn',
    QUARRY_WORKER_METRICS_PORT: String(metricsPort),
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  const worker = await startNode('workers/main.ts', { ...env, QUARRY_LOG_LEVEL: 'info' }, 'worker ready');
  const client = createQuarry({ config: loadConfig(env), logger: silentLogger(), failFast: true });
  const rows: Row[] = [];
  const results: Record<string, Burst[]> = {};
  let serial = 0;
  try {
    await client.ready();
    for (const file of files) {
      copyFileSync(file.source, path.join(dataDir, file.name));
      const bytes = readFileSync(file.source);
      const urls: string[] = [];
      for (let i = 0; i < jobs; i++) {
        const key = `${file.name.replace('.parquet', '')}/${i}.parquet`;
        await s3.put('bench', key, bytes);
        urls.push(`s3://bench/${key}`);
      }
      const burst = async (mode: Burst['mode']): Promise<Burst> => {
        const before = await fetchSeconds(metricsPort);
        const started = performance.now();
        const handles = await Promise.all(
          urls.map((url) =>
            client.aggregate({
              ...SPEC,
              dataset: mode === 'path' ? { path: file.name } : { url },
              // A distinct spec per job: nothing is served from the result cache.
              limit: 1000 + serial++,
            }),
          ),
        );
        await Promise.all(handles.map((h) => h.wait({ timeoutMs: 600_000 })));
        const seconds = (performance.now() - started) / 1000;
        const after = await fetchSeconds(metricsPort);
        const kind = mode === 'cold' ? 'miss' : 'hit';
        const count = after[kind].count - before[kind].count;
        return {
          mode,
          jobs,
          jobsPerS: Math.round((jobs / seconds) * 10) / 10,
          fetchMsPerJob:
            mode === 'path'
              ? null
              : Math.round(((after[kind].sum - before[kind].sum) / Math.max(1, count)) * 1e5) / 100,
        };
      };
      // Untimed: JIT and engines warm, on other specs and the path file only.
      await burst('path');
      const bursts = [await burst('path'), await burst('cold'), await burst('warm')];
      results[file.name] = bursts;
      const base = bursts[0]!.jobsPerS;
      for (const b of bursts) {
        rows.push({
          dataset: file.name,
          bytes: bytes.length,
          read: b.mode === 'path' ? 'by path' : `s3, ${b.mode} cache`,
          jobs: b.jobs,
          'jobs/s': b.jobsPerS,
          'vs path': Math.round((b.jobsPerS / base) * 100) / 100,
          'fetch ms/job': b.fetchMsPerJob,
        });
      }
    }
  } finally {
    await client.close();
    await worker.stop();
    await Promise.all([redis.stop(), s3.stop()]);
    for (const dir of [dataDir, cacheDir]) rmSync(dir, { recursive: true, force: true });
  }
  printTable(`object-store datasets: one worker process (concurrency 4), ${jobs} jobs per burst`, rows);
  console.log(JSON.stringify(results));
  writeResults('objects', { jobs, results });
}

/** The worker's quarry_object_fetch_seconds sums and counts by cache label. */
async function fetchSeconds(port: number): Promise<Record<'hit' | 'miss', { sum: number; count: number }>> {
  return parseFetchSeconds(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
}

/** quarry_object_fetch_seconds' sums and counts by cache label, from a /metrics text. */
export function parseFetchSeconds(text: string): Record<'hit' | 'miss', { sum: number; count: number }> {
  const out = { hit: { sum: 0, count: 0 }, miss: { sum: 0, count: 0 } };
  for (const line of text.split('\n')) {
    const m = /^quarry_object_fetch_seconds_(sum|count)\{cache="(hit|miss)"\} ([0-9.e+-]+)$/.exec(line);
    if (m !== null) out[m[2] as 'hit' | 'miss'][m[1] as 'sum' | 'count'] = Number(m[3]);
  }
  return out;
}
