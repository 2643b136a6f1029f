// The scale bench's row for a worker on another host (bench/scale.ts): Quarry on the simulated
// hosts of `npm run hosts-test` (scripts/netns.ts builds them, scripts/hosts-system.ts starts the
// queue and cache Redis and the object store on the Redis host, the API on its own and one worker
// on another), every byte between them over the veth links. The operator (this process) reaches
// the API alone, so jobs go in through HTTP (`POST /v1/aggregations?wait`, a window of them in
// flight). Three bursts on that one worker: flights-5k by path (the folder every host sees: the
// baseline), then as many distinct s3:// objects with the host's cache cold (every job downloads
// its object from the Redis host), then the same objects again with the cache warm. Each job's
// spec differs (its limit), so no result is reused. The fetch time per job is the worker's own
// (quarry_object_fetch_seconds by cache=miss|hit), read off its /metrics on its own host. Where
// network namespaces cannot be made (not root, no `ip netns`) it says why and runs nothing.
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BUCKET } from '../scripts/hosts-burst.ts';
import { PORTS, REDIS_HOST_PORTS, systemOn } from '../scripts/hosts-system.ts';
import { buildNetwork, type Network, netnsUnavailable, sweepStale } from '../scripts/netns.ts';
import { loadConfig } from '../shared/config.ts';
import { isFinalState, type JobStatus } from '../shared/status.ts';
import { makeFlightsDataDir } from '../test/helpers/flights.ts';
import type { Row } from './lib/stats.ts';
import { parseFetchSeconds } from './objects.ts';

export interface RemoteBurst {
  mode: 'path' | 'cold' | 'warm';
  jobs: number;
  jobsPerS: number;
  /** The worker's fetch time per job (ms), from its histogram; null for the path burst. */
  fetchMsPerJob: number | null;
}

export type RemoteResult =
  | { skipped: string }
  | { concurrency: number; isolation: string; objectBytes: number; bursts: RemoteBurst[] };

/** Requests in flight at once from the operator. */
const WINDOW = 16;
const SPEC = {
  groupBy: ['origin'],
  metrics: [{ op: 'count' }, { op: 'avg', column: 'delay' }, { op: 'max', column: 'distance' }],
  orderBy: [{ column: 'count', direction: 'desc' }],
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function remoteObjects(options: { jobs: number; concurrency: number }): Promise<RemoteResult> {
  const unavailable = netnsUnavailable();
  if (unavailable !== null) return { skipped: `cannot build the hosts: ${unavailable}` };
  sweepStale();
  const dirs: string[] = [];
  let net: Network | undefined;
  // The namespaces go whatever ends the run; a SIGKILLed run's are swept by the next one.
  const destroy = () => net?.destroy();
  const onSignal = () => {
    destroy();
    process.exit(130);
  };
  process.on('exit', destroy);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const dataDir = await makeFlightsDataDir();
    const work = mkdtempSync(path.join(os.tmpdir(), 'quarry-scale-remote-'));
    dirs.push(dataDir, work);
    copyFileSync(path.join(dataDir, 'flights.parquet'), path.join(dataDir, 'remote.parquet'));
    net = buildNetwork({ workerHosts: 1, redisHostPorts: REDIS_HOST_PORTS, apiPort: PORTS.api });
    const defaults = loadConfig({});
    const system = systemOn(net, {
      lockMs: defaults.lockDurationMs,
      stalledMs: defaults.stalledIntervalMs,
      maxStalledCount: undefined,
      prefix: defaults.prefix,
      workerConcurrency: options.concurrency,
    });
    const file = path.join(dataDir, 'flights.parquet');
    const keys = Array.from({ length: options.jobs }, (_, i) => `remote/${i}.parquet`);
    await system.startServices(
      work,
      dataDir,
      keys.map((key) => ({ key, file })),
    );
    const worker = net.hosts.find((h) => h.role === 'worker')!;
    const metrics = async () =>
      parseFetchSeconds(
        await net!.run(worker, [
          process.execPath,
          '-e',
          `fetch('http://127.0.0.1:${PORTS.metrics}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`,
        ]),
      );

    let serial = 0;
    const run = async (dataset: (i: number) => unknown): Promise<number> => {
      const started = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(WINDOW, options.jobs) }, async () => {
          while (next < options.jobs) {
            const i = next++;
            // A distinct spec per job: nothing is served from the result cache.
            const body = JSON.stringify({ ...SPEC, dataset: dataset(i), limit: 1000 + serial++ });
            await aggregate(system.api, body);
          }
        }),
      );
      return (performance.now() - started) / 1000;
    };
    const burst = async (mode: RemoteBurst['mode']): Promise<RemoteBurst> => {
      const before = await metrics();
      const seconds = await run((i) =>
        mode === 'path' ? { path: 'remote.parquet' } : { url: `s3://${BUCKET}/${keys[i]}` },
      );
      const after = await metrics();
      const kind = mode === 'cold' ? 'miss' : 'hit';
      const count = after[kind].count - before[kind].count;
      return {
        mode,
        jobs: options.jobs,
        jobsPerS: Math.round((options.jobs / seconds) * 10) / 10,
        fetchMsPerJob:
          mode === 'path'
            ? null
            : Math.round(((after[kind].sum - before[kind].sum) / Math.max(1, count)) * 1e5) / 100,
      };
    };
    // Untimed: JIT, engines and the HTTP path warm, by path only (the cache stays cold).
    await burst('path');
    const bursts = [await burst('path'), await burst('cold'), await burst('warm')];
    return {
      concurrency: options.concurrency,
      isolation: net.isolation,
      objectBytes: statSync(file).size,
      bursts,
    };
  } finally {
    destroy();
    process.off('exit', destroy);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
}

/** One aggregation through the API, until its result is there; throws if it fails. */
async function aggregate(
  api: (route: string, init?: RequestInit) => Promise<Response>,
  body: string,
): Promise<void> {
  const res = await api('/v1/aggregations?wait=15000', { method: 'POST', body });
  if (res.status === 200) {
    await res.arrayBuffer();
    return;
  }
  const json = (await res.json()) as { jobId?: string };
  if (res.status !== 202 || json.jobId === undefined) {
    throw new Error(`POST /v1/aggregations answered ${res.status}: ${JSON.stringify(json).slice(0, 300)}`);
  }
  // Still running after the wait: its status until it is final.
  for (;;) {
    const status = (await (await api(`/v1/jobs/${json.jobId}`)).json()) as JobStatus;
    if (isFinalState(status.state)) {
      if (status.state !== 'completed') throw new Error(`job ${json.jobId} ended ${status.state}`);
      return;
    }
    await sleep(100);
  }
}

/** The remote worker's one row: by path, s3 cold and warm (jobs/s, fetch ms per job), or why not. */
export function remoteRow(r: RemoteResult): Row {
  const host = 'another host (netns)';
  if ('skipped' in r) return { host, skipped: r.skipped };
  const [byPath, cold, warm] = r.bursts;
  return {
    host,
    processes: 1,
    concurrency: r.concurrency,
    'jobs/burst': byPath!.jobs,
    'path jobs/s': byPath!.jobsPerS,
    's3 cold jobs/s': cold!.jobsPerS,
    'cold fetch ms/job': cold!.fetchMsPerJob,
    's3 warm jobs/s': warm!.jobsPerS,
    'warm fetch ms/job': warm!.fetchMsPerJob,
    'cold/path': ratio(cold!.jobsPerS, byPath!.jobsPerS),
    'warm/path': ratio(warm!.jobsPerS, byPath!.jobsPerS),
  };
}

const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
