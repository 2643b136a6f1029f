// `npm run bench -- batch [--scale F] [--rtt-ms D]`: enqueue throughput of N small distinct
// aggregations (20 inline records each) one by one against batched, in one run: SDK aggregate()
// in a loop, SDK aggregateMany(), POST /v1/aggregations one request per spec (keep-alive, one
// connection) and POST /v1/aggregations/batch (100 per request). Only the enqueue is timed (no
// worker runs: every job stays queued), each mode on an emptied Redis, repeated; medians of
// jobs/s and the ratios to the one-by-one SDK loop of the same run. Beside them, per job: the
// producer's round trips to Redis (counted by a proxy in front of each server, the SDK's or the
// API process's connections alike) and the queue Redis' commands (INFO commandstats, scripts'
// inner calls included). `--rtt-ms` adds that delay each way in the
// proxies, as a network between the app and Redis would.
import http from 'node:http';
import os from 'node:os';
import { Redis } from 'ioredis';
import { createQuarry } from '../producers/client.ts';
import { loadConfig } from '../shared/config.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { startCountingProxy } from './lib/counting-proxy.ts';
import { startNode } from './lib/processes.ts';
import { measure, printTable, type Row, summarize, writeResults } from './lib/stats.ts';

const BATCH = 100;
const REPEATS = 5;

export async function runBatch(options: { scale: number; rttMs: number }): Promise<void> {
  const N = Math.max(BATCH, Math.round(1000 * options.scale));
  const queueRedis = await startRedis(['--maxmemory-policy', 'noeviction']);
  const cacheRedis = await startRedis(['--maxmemory', '1gb', '--maxmemory-policy', 'allkeys-lru']);
  // Half the round trip each way.
  const delay = options.rttMs / 2;
  const queueProxy = await startCountingProxy(queueRedis, delay);
  const cacheProxy = await startCountingProxy(cacheRedis, delay);
  const env = {
    QUARRY_QUEUE_REDIS_URL: queueProxy.url,
    QUARRY_CACHE_REDIS_URL: cacheProxy.url,
    QUARRY_PREFIX: 'bench',
    QUARRY_LOG_LEVEL: 'warn',
    QUARRY_DATA_DIR: os.tmpdir(),
    QUARRY_MAX_BATCH_ITEMS: String(BATCH),
  };
  const apiPort = 30000 + Math.floor(Math.random() * 20000);
  const api = await startNode(
    'api/main.ts',
    { ...env, QUARRY_API_PORT: String(apiPort), QUARRY_LOG_LEVEL: 'info' },
    'Server listening',
  );
  const quarry = createQuarry({ config: loadConfig(env) });
  await quarry.ready();
  const admin = new Redis(queueRedis.url);
  const cacheAdmin = new Redis(cacheRedis.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const post = async (url: string, body: string) => {
    const res = await httpPost(agent, apiPort, url, body);
    if (res.status !== 202 && res.status !== 200)
      throw new Error(`${url}: ${res.status} ${res.body.slice(0, 200)}`);
    return res.body;
  };

  let salt = 0;
  const specs = () =>
    Array.from({ length: N }, () => {
      salt++;
      return {
        dataset: {
          records: Array.from({ length: 20 }, (_, i) => ({ g: `k${i % 4}`, x: i, salt })),
        },
        groupBy: ['g'],
        metrics: [{ op: 'sum', column: 'x' }, { op: 'count' }],
      };
    });
  const modes: Record<string, (batch: ReturnType<typeof specs>) => Promise<number>> = {
    'sdk aggregate() x N': async (batch) => {
      for (const spec of batch) await quarry.aggregate(spec);
      return batch.length;
    },
    'sdk aggregateMany(N)': async (batch) => {
      const items = await quarry.aggregateMany(batch);
      return items.filter((i) => i.ok && !i.handle.cached).length;
    },
    'POST /v1/aggregations x N': async (batch) => {
      for (const spec of batch) await post('/v1/aggregations', JSON.stringify(spec));
      return batch.length;
    },
    [`POST /batch x N/${BATCH}`]: async (batch) => {
      let queued = 0;
      for (let i = 0; i < batch.length; i += BATCH) {
        const body = await post(
          '/v1/aggregations/batch',
          JSON.stringify({ items: batch.slice(i, i + BATCH) }),
        );
        queued += (JSON.parse(body) as { items: { status: number }[] }).items.filter(
          (x) => x.status === 202,
        ).length;
      }
      return queued;
    },
  };

  const samples: Record<string, { jobsPerS: number[]; roundTrips: number[]; commands: number[] }> = {};
  // What one round trip through the proxy takes (timers make an added delay coarser than asked).
  const probe = new Redis(queueProxy.url);
  const pingMs = await measure(100, () => probe.ping());
  probe.disconnect();
  try {
    for (let rep = 0; rep < REPEATS + 1; rep++) {
      // Interleaved, so drift on a shared machine hits every mode alike; round 0 warms up.
      for (const [name, run] of Object.entries(modes)) {
        const batch = specs();
        await admin.flushall();
        await cacheAdmin.flushall();
        await admin.config('RESETSTAT');
        queueProxy.reset();
        cacheProxy.reset();
        const t0 = performance.now();
        const queued = await run(batch);
        const ms = performance.now() - t0;
        if (queued !== N) throw new Error(`${name}: ${queued} of ${N} queued`);
        if (rep === 0) continue;
        samples[name] ??= { jobsPerS: [], roundTrips: [], commands: [] };
        const s = samples[name];
        s.jobsPerS.push((N / ms) * 1000);
        s.roundTrips.push((queueProxy.counts().roundTrips + cacheProxy.counts().roundTrips) / N);
        s.commands.push(commandCalls(await admin.info('commandstats')) / N);
      }
    }
  } finally {
    agent.destroy();
    await quarry.close();
    admin.disconnect();
    cacheAdmin.disconnect();
    await api.stop();
    await queueProxy.close();
    await cacheProxy.close();
    await Promise.all([queueRedis.stop(), cacheRedis.stop()]);
  }

  const median = (xs: number[]) => summarize(xs).p50;
  const base = median(samples['sdk aggregate() x N']!.jobsPerS);
  const httpBase = median(samples['POST /v1/aggregations x N']!.jobsPerS);
  const rows: Row[] = Object.entries(samples).map(([mode, s]) => {
    const jobsPerS = median(s.jobsPerS);
    return {
      mode,
      'jobs/s p50': Math.round(jobsPerS),
      'min..max': `${Math.round(Math.min(...s.jobsPerS))}..${Math.round(Math.max(...s.jobsPerS))}`,
      'x sdk loop': (jobsPerS / base).toFixed(2),
      'x http loop': (jobsPerS / httpBase).toFixed(2),
      'round trips/job': median(s.roundTrips).toFixed(3),
      'queue cmds/job': median(s.commands).toFixed(1),
    };
  });
  printTable(
    `Enqueue of ${N} distinct 20-record aggregations, no worker, ${REPEATS} runs each (medians); ` +
      `--rtt-ms ${options.rttMs}: a PING through the proxy takes ${pingMs.p50} ms (p50)`,
    rows,
  );
  const file = writeResults('batch', {
    n: N,
    batch: BATCH,
    repeats: REPEATS,
    rttMs: options.rttMs,
    rows,
    samples,
  });
  console.log(`\n${JSON.stringify({ rows }, null, 2)}\nwritten to ${file}`);
}

/** Total calls in `INFO commandstats` (commands inside scripts included), INFO itself left out. */
function commandCalls(info: string): number {
  let total = 0;
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (match[1] !== 'info' && match[1] !== 'config|resetstat') total += Number(match[2]);
  }
  return total;
}

function httpPost(
  agent: http.Agent,
  port: number,
  url: string,
  body: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: url,
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
