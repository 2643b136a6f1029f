// Webhooks: what a delivery costs and how soon it arrives. A worker process, the SDK here and a
// loopback receiver (node:http) here. Measured in one run, jobs of the two tenants alternating,
// so the ratio compares like with like:
//   job-plain      aggregate() + wait() of a small new inline job, for a tenant without webhooks
//   job-hooked     the same for a tenant with a webhook listening to job.completed (the outbox
//                  write is in the script that completes the job)
//   event-to-post  from the job's finishedAt (the body's `at`) to the receiver having the POST
//   burst-plain    M jobs enqueued at once for the tenant without webhooks: until all completed
//   burst-hooked   the same for the hooked tenant: until every delivery arrived (the ratio is
//                  what delivering adds to the burst)
import { createQuarry } from '../producers/client.ts';
import { loadConfig } from '../shared/config.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { startReceiver } from '../test/helpers/webhook-receiver.ts';
import { startNode } from './lib/processes.ts';
import { printTable, type Row, summarize, writeResults } from './lib/stats.ts';

export async function runWebhooks(options: { iterations: number; burst?: number }): Promise<void> {
  const N = options.iterations;
  const M = options.burst ?? 500;
  const redis = await startRedis(['--maxmemory-policy', 'noeviction']);
  const env = {
    QUARRY_QUEUE_REDIS_URL: redis.url,
    QUARRY_PREFIX: 'bench',
    QUARRY_LOG_LEVEL: 'info',
    QUARRY_WORKER_METRICS_PORT: '0',
    QUARRY_WEBHOOK_ALLOW: '127.0.0.1',
  };
  const worker = await startNode('workers/main.ts', env, 'worker ready');
  const quarry = createQuarry({ config: loadConfig({ ...env, QUARRY_LOG_LEVEL: 'silent' }) });
  await quarry.ready();
  const receiver = await startReceiver();
  const plainTenant = quarry.forTenant('plain');
  const hookedTenant = quarry.forTenant('hooked');
  let salt = 0;
  const job = async (client: typeof quarry) => {
    salt += 1;
    const t0 = performance.now();
    const handle = await client.aggregate({
      dataset: { records: [{ g: 'a', v: salt }] },
      groupBy: ['g'],
      metrics: [{ op: 'sum', column: 'v' }],
    });
    await handle.wait({ timeoutMs: 30_000 });
    return performance.now() - t0;
  };
  const rows: Row[] = [];
  try {
    await hookedTenant.webhooks.put('bench', {
      url: receiver.url,
      events: ['job.completed'],
      secret: 'bench-secret-0123456789',
    });
    const WARMUP = 10;
    const plainMs: number[] = [];
    const hookedMs: number[] = [];
    for (let i = -WARMUP; i < N; i++) {
      // Alternate which goes first, so neither always runs on a just-warmed path.
      const pair =
        i % 2 === 0
          ? [await job(plainTenant), await job(hookedTenant)]
          : [await job(hookedTenant), await job(plainTenant)].reverse();
      if (i >= 0) {
        plainMs.push(pair[0]!);
        hookedMs.push(pair[1]!);
      }
    }
    const plain = summarize(plainMs);
    const hooked = summarize(hookedMs);
    await receiver.waitFor(N + WARMUP, 60_000);
    const lag = summarize(
      receiver.received.slice(WARMUP).map((r) => r.at - Date.parse(String(JSON.parse(r.body).at))),
    );
    // The same burst twice: jobs alone (waited), then jobs whose deliveries are waited for.
    const burst = async (client: typeof quarry, g: string) => {
      const handles = [];
      for (let i = 0; i < M; i++) {
        salt += 1;
        handles.push(
          client.aggregate({ dataset: { records: [{ g, v: salt }] }, metrics: [{ op: 'sum', column: 'v' }] }),
        );
      }
      return Promise.all(handles);
    };
    let t0 = performance.now();
    await Promise.all((await burst(plainTenant, 'p')).map((h) => h.wait({ timeoutMs: 120_000 })));
    const burstPlainMs = performance.now() - t0;
    const burstFrom = receiver.received.length;
    t0 = performance.now();
    await burst(hookedTenant, 'h');
    await receiver.waitFor(burstFrom + M, 120_000);
    const burstMs = performance.now() - t0;
    rows.push(
      { measure: 'job-plain', p50: plain.p50, p95: plain.p95, n: plain.n, note: 'ms, no webhook' },
      { measure: 'job-hooked', p50: hooked.p50, p95: hooked.p95, n: hooked.n, note: 'ms, one webhook' },
      {
        measure: 'hooked/plain',
        p50: Math.round((hooked.p50 / plain.p50) * 100) / 100,
        p95: null,
        n: null,
        note: 'ratio of medians',
      },
      { measure: 'event-to-post', p50: lag.p50, p95: lag.p95, n: lag.n, note: 'ms, finishedAt to receiver' },
      {
        measure: 'burst-plain',
        p50: Math.round(burstPlainMs),
        p95: null,
        n: M,
        note: `ms until ${M} jobs completed: ${Math.round((M / burstPlainMs) * 1000)} /s`,
      },
      {
        measure: 'burst-hooked',
        p50: Math.round(burstMs),
        p95: null,
        n: M,
        note: `ms until ${M} deliveries arrived: ${Math.round((M / burstMs) * 1000)} /s (${Math.round((burstMs / burstPlainMs) * 100) / 100}× plain)`,
      },
    );
    printTable('webhooks', rows);
    const data = { plain, hooked, lag, burst: { jobs: M, plainMs: burstPlainMs, hookedMs: burstMs } };
    const file = writeResults('webhooks', data);
    console.log(JSON.stringify(data));
    console.log(`written to ${file}`);
  } finally {
    await receiver.close();
    await quarry.close();
    await worker.stop();
    await redis.stop();
  }
}
