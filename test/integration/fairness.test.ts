// Fair dispatch between tenants (docs/FAIRNESS.md), with real workers and a real Redis: a
// tenant's flood queued first never makes another tenant's jobs wait behind it (two and three
// tenants), weights share the worker by their ratio, a SIGKILLed worker in the middle loses no
// job and keeps the order fair, maxQueued refuses with 429 writing nothing, maxActive bounds a
// tenant's running jobs, interactive jobs go first within a tenant, and two identical requests
// with different priorities share one job.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { createQuarry, type QuarryClient } from '../../producers/client.ts';
import type { QuarryConfig } from '../../shared/config.ts';
import { placeJob, tenantPolicy } from '../../shared/fairness.ts';
import { keyScheme, QUEUE_NAMES } from '../../shared/keys.ts';
import { silentLogger } from '../../shared/logger.ts';
import { startWorker, type WorkerHandle } from '../../workers/worker.ts';
import { slowFlightsSpec, VEGA_DATA_DIR } from '../helpers/flights.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, testConfig } from '../helpers/system.ts';
import { killWorker, spawnWorker } from '../helpers/worker-process.ts';

const key = (tenant: string) => `key-${tenant}-0123456789abcdef`;

type Policy = { weight?: number; maxActive?: number; maxQueued?: number; dataDir?: string };

function keysEnv(tenants: Record<string, Policy>) {
  return JSON.stringify(
    Object.entries(tenants).map(([tenant, policy]) => ({
      key: key(tenant),
      tenant,
      scopes: ['enqueue', 'read'],
      ...policy,
    })),
  );
}

/** A small aggregation, distinct per (tenant, i): each is its own job. */
const small = (tag: string, i: number) => ({
  dataset: {
    records: [
      { tag, i },
      { tag, i: i + 1 },
    ],
  },
  metrics: [{ op: 'sum', column: 'i' }],
});

/** An attempt's start: `active` with phase `load` (progress changes publish `active` too). */
const isStart = (e: { state: string; progress: { phase: string } }) =>
  e.state === 'active' && e.progress.phase === 'load';

/** Records, in the order workers started them, which tenant each started job belongs to. */
async function watchStarts(url: string, prefix: string): Promise<{ order: string[]; close(): void }> {
  const sub = new Redis(url);
  const order: string[] = [];
  const pattern = `${prefix}:t:*:events`;
  sub.on('pmessage', (_p, channel, message) => {
    const event = JSON.parse(message) as { state: string; progress: { phase: string } };
    if (isStart(event)) order.push(channel.slice(`${prefix}:t:`.length, -':events'.length));
  });
  await sub.psubscribe(pattern);
  return { order, close: () => sub.disconnect() };
}

describe('fair dispatch between tenants', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  async function setup(
    tenants: Record<string, Policy>,
    env: Record<string, string> = {},
  ): Promise<{ config: QuarryConfig; client: QuarryClient; close(): Promise<void> }> {
    const config = testConfig({
      QUARRY_QUEUE_REDIS_URL: redis.url,
      QUARRY_API_KEYS: keysEnv(tenants),
      QUARRY_WORKER_CONCURRENCY: '1',
      ...env,
    });
    const client = createQuarry({ config, logger: silentLogger(), failFast: true });
    await client.ready();
    return { config, client, close: () => client.close() };
  }

  async function enqueue(client: QuarryClient, tenant: string, n: number, priority?: string) {
    const jobs = [];
    for (let i = 0; i < n; i++) {
      jobs.push(
        await client
          .forTenant(tenant)
          .aggregate({ ...small(`${tenant}${priority ?? ''}`, i), ...(priority ? { priority } : {}) }),
      );
    }
    return jobs;
  }

  async function runAll(config: QuarryConfig, jobs: { wait(o: { timeoutMs: number }): Promise<unknown> }[]) {
    const worker: WorkerHandle = await startWorker(config, silentLogger());
    try {
      await worker.ready;
      await Promise.all(jobs.map((j) => j.wait({ timeoutMs: 60_000 })));
    } finally {
      await worker.close();
    }
  }

  test('two tenants: B, queued after A flooded, never waits behind the flood', async () => {
    const s = await setup({ A: {}, B: {} });
    const starts = await watchStarts(redis.url, s.config.prefix);
    try {
      const a = await enqueue(s.client, 'A', 60);
      const b = await enqueue(s.client, 'B', 5);
      await runAll(s.config, [...a, ...b]);
      assert.equal(starts.order.length, 65);
      const lastB = starts.order.lastIndexOf('B');
      // Round-robin: B's 5 jobs interleave with A's first ones (FIFO would put them at 60-64).
      assert.ok(lastB <= 11, `B's last job started ${lastB}th: ${starts.order.join('')}`);
    } finally {
      starts.close();
      await s.close();
    }
  });

  test('three tenants share the worker in turn; weights share it by their ratio', async () => {
    const s = await setup({ A: {}, B: {}, C: {}, H: { weight: 3 } });
    const starts = await watchStarts(redis.url, s.config.prefix);
    try {
      const jobs = [
        ...(await enqueue(s.client, 'A', 30)),
        ...(await enqueue(s.client, 'B', 30)),
        ...(await enqueue(s.client, 'C', 30)),
      ];
      await runAll(s.config, jobs);
      const first = starts.order.slice(0, 30);
      for (const t of ['A', 'B', 'C']) {
        const n = first.filter((x) => x === t).length;
        assert.ok(n >= 8 && n <= 12, `${t} had ${n} of the first 30 starts: ${first.join('')}`);
      }
      starts.order.length = 0;
      const weighted = [...(await enqueue(s.client, 'A', 40)), ...(await enqueue(s.client, 'H', 40))];
      await runAll(s.config, weighted);
      const h = starts.order.slice(0, 40).filter((x) => x === 'H').length;
      // Weight 3 against 1: 30 of the first 40 (FIFO would give H none).
      assert.ok(h >= 26 && h <= 34, `H had ${h} of the first 40 starts: ${starts.order.join('')}`);
    } finally {
      starts.close();
      await s.close();
    }
  });

  test('interactive jobs go first within their tenant; a different priority shares one job', async () => {
    const s = await setup({ A: {} });
    const raw = new Redis(redis.url);
    const starts = await watchStarts(redis.url, s.config.prefix);
    try {
      const flood = await enqueue(s.client, 'A', 30);
      const view = s.client.forTenant('A');
      const batch = await view.aggregate({ ...small('same', 1), priority: 'batch' });
      const interactive = await view.aggregate({ ...small('same', 1), priority: 'interactive' });
      assert.equal(interactive.jobId, batch.jobId, 'identical requests share one job');
      assert.equal((await view.status(batch.jobId))?.priority, 'batch', 'the first request set it');
      const urgent = await view.aggregate({ ...small('urgent', 1), priority: 'interactive' });
      assert.equal((await view.status(urgent.jobId))?.priority, 'interactive');
      const queued = await raw.zcard(`${s.config.prefix}:aggregate:prioritized`);
      assert.equal(queued, 32, 'one BullMQ job for the two identical requests');
      const ids: string[] = [];
      const sub = new Redis(redis.url);
      sub.on('message', (_c, m) => {
        const e = JSON.parse(m) as { state: string; jobId: string; progress: { phase: string } };
        if (isStart(e)) ids.push(e.jobId);
      });
      await sub.subscribe(`${s.config.prefix}:t:A:events`);
      await runAll(s.config, [...flood, batch, interactive, urgent]);
      sub.disconnect();
      assert.ok(ids.indexOf(urgent.jobId) <= 1, `the interactive job started ${ids.indexOf(urgent.jobId)}th`);
      assert.equal(ids.at(-1), batch.jobId, 'the batch job runs after the normal ones');
      assert.equal(ids.filter((id) => id === batch.jobId).length, 1, 'computed once');
    } finally {
      starts.close();
      raw.disconnect();
      await s.close();
    }
  });

  test("a second tenant's first place in an empty queue keeps the lane of a job placed just before", async () => {
    // Placing and adding to BullMQ are two round trips: between them the queue still looks empty.
    const s = await setup({ A: {}, B: {} });
    const raw = new Redis(redis.url);
    try {
      const place = (tenant: string) =>
        placeJob(
          raw,
          keyScheme(s.config.prefix, tenant),
          QUEUE_NAMES.aggregate,
          tenantPolicy(s.config, tenant),
          'normal',
        );
      assert.deepEqual([await place('A'), await place('B'), await place('A')], [1, 1, 2]);
    } finally {
      raw.disconnect();
      await s.close();
    }
  });

  test('maxQueued: 429 QUARRY_ERR_TENANT_QUOTA at the limit, nothing written; joins still allowed', async () => {
    const s = await setup({ Q: { maxQueued: 3 }, R: {} });
    const raw = new Redis(redis.url);
    try {
      const view = s.client.forTenant('Q');
      const queued = await enqueue(s.client, 'Q', 3);
      const before = (await raw.keys(`${s.config.prefix}*`)).sort();
      const refused = await view.aggregate(small('Q', 99)).then(
        () => null,
        (e: unknown) => e as { code?: string; retryAfterS?: number },
      );
      assert.equal(refused?.code, 'QUARRY_ERR_TENANT_QUOTA');
      assert.equal(refused?.retryAfterS, 1);
      assert.deepEqual((await raw.keys(`${s.config.prefix}*`)).sort(), before, 'nothing written');
      const again = await view.aggregate(small('Q', 0));
      assert.equal(again.jobId, queued[0]!.jobId, 'an identical request joins at the limit');
      const other = await enqueue(s.client, 'R', 1);
      await runAll(s.config, [...queued, ...other]);
      const after = await view.aggregate(small('Q', 99));
      await runAll(s.config, [after]);
    } finally {
      raw.disconnect();
      await s.close();
    }
  });

  test('a retry is a new job of its tenant: refused past maxQueued, else queued in a fair place', async () => {
    const s = await setup({ Q: { maxQueued: 2 } });
    const raw = new Redis(redis.url);
    const queuedSet = `${s.config.prefix}:t:Q:fair:queued`;
    try {
      const view = s.client.forTenant('Q');
      const [first, second] = await enqueue(s.client, 'Q', 2);
      assert.equal((await view.cancel(first!.jobId)).state, 'cancelled');
      assert.equal(await raw.sismember(queuedSet, first!.jobId), 0, 'a cancelled job leaves the queued set');
      const third = await view.aggregate(small('Q', 50));
      const refused = await view.jobs.retry(first!.jobId).then(
        () => null,
        (e: unknown) => e as { code?: string; retryAfterS?: number },
      );
      assert.equal(refused?.code, 'QUARRY_ERR_TENANT_QUOTA');
      assert.equal(refused?.retryAfterS, 1);
      assert.equal(
        (await view.status(first!.jobId))?.state,
        'cancelled',
        'the refused retry changed nothing',
      );
      await runAll(s.config, [second!, third]);
      const retried = await view.jobs.retry(first!.jobId);
      assert.equal(await raw.sismember(queuedSet, first!.jobId), 1, 'the retry counts as queued');
      const priority = Number(await raw.hget(`${s.config.prefix}:aggregate:${first!.jobId}`, 'priority'));
      assert.ok(priority > 0, `the retried job has a fair place (BullMQ priority ${priority})`);
      await runAll(s.config, [retried]);
      assert.equal((await view.status(first!.jobId))?.state, 'completed');
      assert.equal(await raw.scard(queuedSet), 0);
    } finally {
      raw.disconnect();
      await s.close();
    }
  });

  test('a running tenant job is cancelled: the signal reaches the engine through admission', async () => {
    const s = await setup({ C: { dataDir: VEGA_DATA_DIR } });
    const raw = new Redis(redis.url);
    const worker = await startWorker(s.config, silentLogger());
    try {
      await worker.ready;
      const view = s.client.forTenant('C');
      const handle = await view.aggregate(slowFlightsSpec(9));
      await new Promise<void>((resolve) => {
        void handle
          .wait({ timeoutMs: 30_000, onEvent: (e) => e.state === 'active' && resolve() })
          .catch(() => undefined);
      });
      const status = await view.cancel(handle.jobId, { timeoutMs: 10_000 });
      assert.equal(status.state, 'cancelled');
      assert.equal(status.error?.code, 'QUARRY_ERR_JOB_CANCELLED');
      for (let i = 0; i < 50 && (await raw.zcard(`${s.config.prefix}:t:C:fair:active`)) > 0; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(await raw.zcard(`${s.config.prefix}:t:C:fair:active`), 0, 'its lease is released');
    } finally {
      await worker.close();
      raw.disconnect();
      await s.close();
    }
  });

  test('over HTTP: the 429 carries Retry-After; usage for the tenant itself and admins; gauges', async () => {
    const keys = JSON.stringify([
      { key: key('Q'), tenant: 'Q', scopes: ['enqueue', 'read'], maxQueued: 2 },
      { key: key('R'), tenant: 'R', scopes: ['enqueue', 'read'] },
      { key: key('admin'), tenant: 'ops', scopes: ['admin'] },
    ]);
    const sys = await startSystem({
      env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_API_KEYS: keys },
      worker: false,
    });
    const auth = (t: string) => ({ authorization: `Bearer ${key(t)}` });
    try {
      for (const i of [1, 2]) {
        const ok = await sys.app.inject({
          method: 'POST',
          url: '/v1/aggregations',
          headers: auth('Q'),
          payload: { ...small('Q', i), priority: 'batch' },
        });
        assert.equal(ok.statusCode, 202, ok.body);
      }
      const refused = await sys.app.inject({
        method: 'POST',
        url: '/v1/aggregations',
        headers: auth('Q'),
        payload: small('Q', 3),
      });
      assert.equal(refused.statusCode, 429, refused.body);
      assert.equal(refused.json().error.code, 'QUARRY_ERR_TENANT_QUOTA');
      assert.equal(refused.headers['retry-after'], '1');
      const badPriority = await sys.app.inject({
        method: 'POST',
        url: '/v1/aggregations',
        headers: auth('R'),
        payload: { ...small('R', 1), priority: 'urgent' },
      });
      assert.equal(badPriority.statusCode, 400, badPriority.body);
      assert.equal(badPriority.json().error.field, 'priority');
      const own = await sys.app.inject({ method: 'GET', url: '/v1/tenants/Q/usage', headers: auth('Q') });
      assert.equal(own.statusCode, 200, own.body);
      assert.deepEqual(own.json(), {
        tenant: 'Q',
        weight: 1,
        maxActive: 0,
        maxQueued: 2,
        queued: 2,
        active: 0,
      });
      const other = await sys.app.inject({ method: 'GET', url: '/v1/tenants/Q/usage', headers: auth('R') });
      assert.equal(other.statusCode, 404, other.body);
      assert.equal(other.json().error.code, 'QUARRY_ERR_TENANT_NOT_FOUND');
      const admin = await sys.app.inject({
        method: 'GET',
        url: '/v1/tenants/Q/usage',
        headers: auth('admin'),
      });
      assert.equal(admin.json().queued, 2);
      const listed = async (who: string) =>
        (
          (await sys.app.inject({ method: 'GET', url: '/v1/tenants', headers: auth(who) })).json() as {
            tenants: { tenant: string; queued: number }[];
          }
        ).tenants.map((t) => `${t.tenant}:${t.queued}`);
      assert.deepEqual(await listed('R'), ['R:0'], 'a tenant key lists only its own tenant');
      assert.deepEqual(await listed('admin'), ['Q:2', 'R:0', 'ops:0'], 'an admin key lists every tenant');
      const unknown = await sys.app.inject({
        method: 'GET',
        url: '/v1/tenants/nobody/usage',
        headers: auth('admin'),
      });
      assert.equal(unknown.statusCode, 404);
      const worker = await startWorker(sys.config, silentLogger());
      try {
        await worker.ready;
        const text = await (await fetch(String(worker.metricsUrl))).text();
        const series = text.split('\n').filter((l) => l.startsWith('quarry_tenant_jobs{'));
        const tenants = new Set(series.map((l) => /tenant="([^"]+)"/.exec(l)?.[1]));
        assert.deepEqual([...tenants].sort(), ['Q', 'R', 'ops'], 'labels from the key list only');
      } finally {
        await worker.close();
      }
    } finally {
      await sys.close();
    }
  });

  test("a tenant's schedule refreshes as batch under fair dispatch", async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-fair-'));
    writeFileSync(path.join(dataDir, 'sales.csv'), 'region,amount\nnorth,5\n');
    const config = testConfig({
      QUARRY_QUEUE_REDIS_URL: redis.url,
      QUARRY_API_KEYS: JSON.stringify([{ key: key('S'), tenant: 'S', scopes: ['enqueue', 'read'], dataDir }]),
    });
    const client = createQuarry({ config, logger: silentLogger(), failFast: true });
    const worker = await startWorker(config, silentLogger());
    try {
      await worker.ready;
      const view = client.forTenant('S');
      const spec = { dataset: { path: 'sales.csv' }, metrics: [{ op: 'sum', column: 'amount' }] };
      const withPriority = await view.schedules
        .put('sales', { spec: { ...spec, priority: 'interactive' }, everyMs: 1000 })
        .then(
          () => null,
          (e: unknown) => e as { code?: string; field?: string },
        );
      assert.equal(withPriority?.field, 'spec.priority', 'a schedule cannot ask for another priority');
      await view.schedules.put('sales', { spec, everyMs: 1000 });
      const deadline = Date.now() + 20_000;
      let alias = await view.schedules.alias('sales');
      while (alias === null && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        alias = await view.schedules.alias('sales');
      }
      assert.ok(alias !== null, 'the first refresh ran');
      const status = await view.status(`agg-${alias.resultKey}`);
      assert.equal(status?.priority, 'batch');
      await view.schedules.remove('sales');
    } finally {
      await worker.close();
      await client.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('maxActive: a tenant never runs more jobs at once than its limit, across workers', async () => {
    const s = await setup({ M: { maxActive: 1 }, N: {} }, { QUARRY_WORKER_CONCURRENCY: '4' });
    const sub = new Redis(redis.url);
    const raw = new Redis(redis.url);
    let running = 0;
    let most = 0;
    sub.on('message', (_c, m) => {
      const e = JSON.parse(m) as { state: string; progress: { phase: string } };
      if (isStart(e)) most = Math.max(most, ++running);
      if (e.state === 'completed' || e.state === 'failed') running--;
    });
    await sub.subscribe(`${s.config.prefix}:t:M:events`);
    try {
      // Rows enough that a job lasts a few milliseconds: four slots would overlap them.
      const jobs = [];
      for (let i = 0; i < 16; i++) {
        const records = Array.from({ length: 5000 }, (_, r) => ({ g: r % 7, v: r * i }));
        jobs.push(
          await s.client.forTenant('M').aggregate({
            dataset: { records },
            groupBy: ['g'],
            metrics: [{ op: 'sum', column: 'v' }],
          }),
        );
      }
      const second = await startWorker(s.config, silentLogger());
      try {
        await runAll(s.config, jobs);
      } finally {
        await second.close();
      }
      assert.equal(most, 1, 'one M job at a time');
      assert.equal(await raw.zcard(`${s.config.prefix}:t:M:fair:active`), 0, 'every lease released');
    } finally {
      raw.disconnect();
      sub.disconnect();
      await s.close();
    }
  });

  test('a worker SIGKILLed in the middle: every job completes, and B still does not wait for A', async () => {
    const env = {
      QUARRY_LOCK_DURATION_MS: '2000',
      QUARRY_STALLED_INTERVAL_MS: '1000',
    };
    const s = await setup({ A: {}, B: {} }, env);
    const starts = await watchStarts(redis.url, s.config.prefix);
    const workerEnv = {
      QUARRY_QUEUE_REDIS_URL: redis.url,
      QUARRY_PREFIX: s.config.prefix,
      QUARRY_API_KEYS: keysEnv({ A: {}, B: {} }),
      QUARRY_WORKER_CONCURRENCY: '1',
      QUARRY_WORKER_METRICS_PORT: '0',
      QUARRY_LOG_FORMAT: 'json',
      QUARRY_DUCKDB_THREADS: '1',
      ...env,
    };
    let first: ReturnType<typeof spawnWorker> | undefined;
    try {
      const a = await enqueue(s.client, 'A', 80);
      first = spawnWorker(workerEnv);
      await first.ready;
      while (starts.order.length < 20) await new Promise((r) => setTimeout(r, 20));
      await killWorker(first);
      const b = await enqueue(s.client, 'B', 5);
      const done = starts.order.length;
      await runAll(s.config, [...a, ...b]);
      const after = starts.order.slice(done);
      const lastB = after.lastIndexOf('B');
      assert.ok(lastB >= 0 && lastB <= 12, `B's last start ${lastB} after the kill: ${after.join('')}`);
      for (const [tenant, jobs] of [
        ['A', a],
        ['B', b],
      ] as const) {
        for (const j of jobs) {
          const st = await s.client.forTenant(tenant).status(j.jobId);
          assert.equal(st?.state, 'completed', `${j.jobId} ${st?.state}`);
        }
      }
    } finally {
      await killWorker(first);
      starts.close();
      await s.close();
    }
  });
});
