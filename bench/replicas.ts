// What QUARRY_QUEUE_MIN_REPLICAS costs an enqueue: a primary and one replica (real
// redis-servers, no persistence), the SDK enqueueing distinct small aggregations (no worker: only
// the acknowledgement is timed), with MIN_REPLICAS 0 and 1 in alternating rounds of the same run.
// One enqueue at a time gives the latency of an acknowledgement (the WAIT adds a replication round
// trip); a window of 64 in flight gives throughput, where concurrent enqueues share WAITs.
import os from 'node:os';
import { Redis } from 'ioredis';
import { createQuarry, type QuarryClient } from '../producers/client.ts';
import { loadConfig } from '../shared/config.ts';
import { type RedisServer, startRedis } from '../test/helpers/redis.ts';
import { printTable, type Row, type Summary, summarize, writeResults } from './lib/stats.ts';

export interface ReplicasOptions {
  /** Alternating rounds per setting (default 3). */
  rounds?: number;
  /** Sequential enqueues per round (default 300). */
  sequential?: number;
  /** Enqueues per burst (default 2,000). */
  burst?: number;
}

const WINDOW = 64;
const SETTINGS = [0, 1] as const;

const spec = (seed: number) => ({
  dataset: { records: [0, 1, 2, 3].map((i) => ({ g: `k${i % 2}`, x: seed * 10 + i })) },
  groupBy: ['g'],
  metrics: [{ op: 'sum', column: 'x' }],
});

async function sequentialMs(client: QuarryClient, n: number, seed: () => number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await client.submitAggregation(spec(seed()));
    samples.push(performance.now() - t0);
  }
  return samples;
}

async function burstJobsPerS(client: QuarryClient, n: number, seed: () => number): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: WINDOW }, async () => {
      while (next < n) {
        next++;
        await client.submitAggregation(spec(seed()));
      }
    }),
  );
  return n / ((performance.now() - t0) / 1000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round1 = (x: number) => Math.round(x * 10) / 10;

export async function runReplicas(options: ReplicasOptions = {}): Promise<void> {
  const rounds = options.rounds ?? 3;
  const sequential = options.sequential ?? 300;
  const burst = options.burst ?? 2000;
  const started = performance.now();
  const loadAtStart = os.loadavg()[0]!;
  let primary: RedisServer | undefined;
  let replica: RedisServer | undefined;
  const clients: QuarryClient[] = [];
  try {
    primary = await startRedis(['--maxmemory-policy', 'noeviction', '--repl-diskless-sync-delay', '0']);
    replica = await startRedis(['--replicaof', '127.0.0.1', String(primary.port)]);
    const admin = new Redis(primary.url);
    while (!/state=online/.test(await admin.info('replication'))) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    admin.disconnect();
    const byReplicas = new Map<number, QuarryClient>();
    for (const n of SETTINGS) {
      const config = loadConfig({
        QUARRY_QUEUE_REDIS_URL: primary.url,
        QUARRY_CACHE_REDIS_URL: primary.url,
        QUARRY_PREFIX: `bench-replicas-${n}`,
        QUARRY_QUEUE_MIN_REPLICAS: String(n),
      });
      const client = createQuarry({ config });
      await client.ready();
      clients.push(client);
      byReplicas.set(n, client);
    }
    let seed = 0;
    const nextSeed = () => seed++;
    const seq = new Map<number, number[]>(SETTINGS.map((n) => [n, []]));
    const rates = new Map<number, number[]>(SETTINGS.map((n) => [n, []]));
    // Warm-up: JIT, scripts loaded, connections up.
    for (const n of SETTINGS) await sequentialMs(byReplicas.get(n)!, 100, nextSeed);
    for (let r = 0; r < rounds; r++) {
      for (const n of SETTINGS) {
        const client = byReplicas.get(n)!;
        seq.get(n)!.push(...(await sequentialMs(client, sequential, nextSeed)));
        rates.get(n)!.push(await burstJobsPerS(client, burst, nextSeed));
      }
    }
    const summaries = new Map<number, Summary>(SETTINGS.map((n) => [n, summarize(seq.get(n)!)]));
    const base = summaries.get(0)!;
    const baseRate = median(rates.get(0)!);
    const rows: Row[] = SETTINGS.map((n) => {
      const s = summaries.get(n)!;
      const rate = median(rates.get(n)!);
      return {
        MIN_REPLICAS: n,
        'enqueue p50 ms': round1(s.p50),
        'p99 ms': round1(s.p99),
        'p50 vs 0': Math.round((s.p50 / base.p50) * 100) / 100,
        [`enqueues/s (${WINDOW} in flight)`]: Math.round(rate),
        'rate vs 0': Math.round((rate / baseRate) * 100) / 100,
      };
    });
    printTable(
      `replicas: SDK enqueue acknowledgement with a primary and one replica (${rounds} alternating rounds of ${sequential} sequential enqueues and a burst of ${burst}; medians)`,
      rows,
    );
    const notes = [
      `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), Node ${process.version}; both redis-servers and this process share them.`,
      'Distinct 4-record inline aggregations, no worker: only the acknowledgement is timed (status record + inline data, BullMQ add, and with MIN_REPLICAS=1 a WAIT on the enqueue connection).',
      `total bench time ${Math.round((performance.now() - started) / 1000)} s; 1-minute load average ${loadAtStart.toFixed(2)} at the start, ${os.loadavg()[0]!.toFixed(2)} at the end`,
    ];
    console.log(`\n${notes.map((n) => `- ${n}`).join('\n')}`);
    const file = writeResults('replicas', {
      rounds,
      sequential,
      burst,
      window: WINDOW,
      notes,
      settings: SETTINGS.map((n) => ({
        minReplicas: n,
        latencyMs: summaries.get(n),
        enqueuesPerS: rates.get(n),
      })),
    });
    console.log(`\nwrote ${file}`);
  } finally {
    for (const client of clients) {
      try {
        await client.close();
      } catch (err) {
        console.error('closing a client failed', err);
      }
    }
    await replica?.stop();
    await primary?.stop();
  }
}
