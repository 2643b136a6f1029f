// The queue Redis behind Sentinel (issue 14, part 2), on real servers: a primary, two replicas
// and three Sentinels (test/helpers/sentinel.ts), the API in this process and a worker in
// another, both finding the primary through the Sentinels only (their URL names a port nothing
// listens on). With QUARRY_QUEUE_MIN_REPLICAS=1, the primary is SIGKILLed during a burst of
// enqueues: the API answers 503 with Retry-After (never 500) while the Sentinels fail over, then
// 202 again by itself; every job it acknowledged completes on the promoted replica; the worker
// (BullMQ's blocking connections included) keeps taking jobs. And when no replica confirms in
// time, the enqueue is a 503 QUARRY_ERR_REDIS_NOT_REPLICATED, and the job still runs.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { QuarryClient } from '../../producers/client.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { type ReplicatedRedis, SENTINEL_NAME, startReplicatedRedis } from '../helpers/sentinel.ts';
import { startSystem, type TestSystem, uniquePrefix } from '../helpers/system.ts';
import { killWorker, spawnWorker, type WorkerProcess } from '../helpers/worker-process.ts';

const spec = (seed: number) => ({
  dataset: { records: [0, 1, 2, 3].map((i) => ({ g: `k${i % 2}`, x: seed * 10 + i })) },
  groupBy: ['g'],
  metrics: [{ op: 'sum', column: 'x' }],
});

interface Answer {
  readonly seed: number;
  readonly sentAt: number;
  readonly status: number;
  readonly code?: string;
  readonly retryAfter?: string;
  readonly jobId?: string;
}

/** Polls each job's status until all are completed; fails on a failed one or at the deadline. */
async function allCompleted(client: QuarryClient, jobIds: string[], timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  const pending = new Set(jobIds);
  while (pending.size > 0) {
    for (const jobId of [...pending]) {
      const status = await client.status(jobId).catch(() => undefined);
      if (status?.state === 'completed') pending.delete(jobId);
      else if (status === null) assert.fail(`acknowledged job ${jobId} is gone after the failover`);
      else if (status?.state === 'failed' || status?.state === 'cancelled') {
        assert.fail(`acknowledged job ${jobId} ended ${status.state}: ${JSON.stringify(status.error)}`);
      }
    }
    if (pending.size === 0) return;
    if (performance.now() > deadline) {
      assert.fail(`${pending.size} acknowledged jobs did not complete within ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function sentinelEnv(group: ReplicatedRedis, cache: RedisServer, prefix: string): Record<string, string> {
  return {
    // Nothing listens here: the Sentinels are the only way to the queue Redis.
    QUARRY_QUEUE_REDIS_URL: 'redis://127.0.0.1:1',
    QUARRY_QUEUE_REDIS_SENTINELS: group.sentinels,
    QUARRY_QUEUE_REDIS_SENTINEL_NAME: SENTINEL_NAME,
    QUARRY_CACHE_REDIS_URL: cache.url,
    QUARRY_QUEUE_MIN_REPLICAS: '1',
    QUARRY_QUEUE_MIN_REPLICAS_TIMEOUT_MS: '500',
    QUARRY_PREFIX: prefix,
    // A job whose worker lost its completion in the failover is taken over in ~3 s, not ~11 s.
    QUARRY_LOCK_DURATION_MS: '2000',
    QUARRY_STALLED_INTERVAL_MS: '1000',
  };
}

function spawnTestWorker(env: Record<string, string>): WorkerProcess {
  return spawnWorker({
    ...env,
    QUARRY_LOG_LEVEL: 'info',
    QUARRY_DUCKDB_THREADS: '1',
    QUARRY_WORKER_METRICS_PORT: '0',
    QUARRY_SPOOL_DIR: mkdtempSync(path.join(os.tmpdir(), 'quarry-sentinel-spool-')),
  });
}

describe('queue Redis behind Sentinel: the primary SIGKILLed during a burst of enqueues', () => {
  let group: ReplicatedRedis;
  let cache: RedisServer;
  let sys: TestSystem;
  let worker: WorkerProcess | undefined;

  before(async () => {
    [group, cache] = await Promise.all([startReplicatedRedis({ replicas: 2 }), startRedis()]);
    const env = sentinelEnv(group, cache, uniquePrefix());
    worker = spawnTestWorker(env);
    sys = await startSystem({ env, worker: false });
    await worker.ready;
  });
  after(async () => {
    await sys?.close();
    await killWorker(worker);
    await Promise.all([group?.stop(), cache?.stop()]);
  });

  test('503 with Retry-After during the failover, 202 again after it; every 202 completes', async (t) => {
    const answers: Answer[] = [];
    let acknowledged = 0;
    let onAck: (() => void) | undefined;
    const send = async (seed: number) => {
      const sentAt = performance.now();
      const res = await sys.app.inject({ method: 'POST', url: '/v1/aggregations', payload: spec(seed) });
      const body = res.json() as { jobId?: string; error?: { code: string } };
      answers.push({
        seed,
        sentAt,
        status: res.statusCode,
        ...(body.error ? { code: body.error.code } : {}),
        ...(res.headers['retry-after'] === undefined
          ? {}
          : { retryAfter: String(res.headers['retry-after']) }),
        ...(body.jobId === undefined ? {} : { jobId: body.jobId }),
      });
      if (res.statusCode === 202) {
        acknowledged++;
        onAck?.();
      }
    };
    // The burst: a request every 5 ms, at most 16 at once, until told to stop.
    let stopping = false;
    const inFlight = new Set<Promise<void>>();
    const burst = (async () => {
      for (let seed = 0; !stopping; seed++) {
        const sent = send(seed).finally(() => inFlight.delete(sent));
        inFlight.add(sent);
        if (inFlight.size >= 16) await Promise.race(inFlight);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await Promise.all(inFlight);
    })();
    const acks = (n: number) =>
      new Promise<void>((resolve) => {
        const check = () => acknowledged >= n && resolve();
        onAck = check;
        check();
      });

    await acks(30);
    const oldPort = group.primary.port;
    const killedAt = performance.now();
    await group.primary.stop();
    const newPort = await group.waitForNewPrimary(oldPort);
    const failedOverAt = performance.now();
    assert.ok(
      group.replicas.some((r) => r.port === newPort),
      'a replica was promoted',
    );
    // Recovered by itself: 202s for requests sent after the Sentinels agreed on the new primary.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no 202 within 15 s of the failover')), 15_000);
      onAck = () => {
        if (answers.filter((a) => a.status === 202 && a.sentAt > failedOverAt).length >= 20) {
          clearTimeout(timer);
          resolve();
        }
      };
    });
    stopping = true;
    await burst;

    const byStatus = new Map<number, number>();
    for (const a of answers) byStatus.set(a.status, (byStatus.get(a.status) ?? 0) + 1);
    const unexpected = answers.filter((a) => a.status !== 202 && a.status !== 503);
    assert.deepEqual(unexpected, [], 'every answer is a 202 or a 503, never a 500');
    const refused = answers.filter((a) => a.status === 503);
    assert.ok(refused.length > 0, 'the API answered 503 while the Sentinels failed over');
    for (const a of refused) {
      assert.ok(Number(a.retryAfter) >= 1, `503 for seed ${a.seed} has Retry-After`);
      assert.ok(
        [
          'QUARRY_ERR_REDIS_UNAVAILABLE',
          'QUARRY_ERR_REDIS_REFUSED',
          'QUARRY_ERR_REDIS_NOT_REPLICATED',
        ].includes(a.code ?? ''),
        `503 for seed ${a.seed} carries a Redis code, not ${a.code}`,
      );
    }
    const lastRefused = Math.max(...refused.map((a) => a.sentAt));
    assert.ok(lastRefused > killedAt, 'the 503s came with the failover');
    const acked = answers.filter((a) => a.status === 202).map((a) => a.jobId!);
    assert.equal(new Set(acked).size, acked.length, 'each seed is a job of its own');
    // Every acknowledged job completes: those acknowledged before the kill (on the promoted
    // replica thanks to WAIT) and after it (the worker's blocking connections found the new primary).
    await allCompleted(sys.client, acked, 60_000);
    const counts = Object.fromEntries(byStatus);
    assert.ok((counts[202] ?? 0) >= 50, `answers: ${JSON.stringify(counts)}`);
    const firstRefused = Math.min(...refused.map((a) => a.sentAt));
    const ms = (at: number) => Math.round(at - killedAt);
    t.diagnostic(
      `answers ${JSON.stringify(counts)}; 503s sent ${ms(firstRefused)}-${ms(lastRefused)} ms after the kill; ` +
        `Sentinels agreed on the new primary after ${ms(failedOverAt)} ms; ${acked.length} acknowledged, all completed ` +
        `${ms(performance.now())} ms after the kill`,
    );
  });

  test('the worker keeps taking jobs after the failover', async () => {
    // The other replica may still be resyncing from the promoted one (WAIT then confirms 0 of 1):
    // a 503 with Retry-After is the answer a client retries, as it would here.
    const deadline = performance.now() + 20_000;
    let res = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations?wait=15000',
      payload: spec(1e6),
    });
    while (
      res.statusCode === 503 &&
      res.headers['retry-after'] !== undefined &&
      performance.now() < deadline
    ) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      res = await sys.app.inject({ method: 'POST', url: '/v1/aggregations?wait=15000', payload: spec(1e6) });
    }
    assert.equal(res.statusCode, 200, res.body);
    const rows = (res.json() as { rows: { g: string; sum_x: number }[] }).rows;
    assert.equal(rows.length, 2);
  });
});

describe('QUARRY_QUEUE_MIN_REPLICAS: no replica confirms in time', () => {
  let group: ReplicatedRedis;
  let cache: RedisServer;
  let sys: TestSystem;
  let worker: WorkerProcess | undefined;
  const paused = new Set<RedisServer>();

  before(async () => {
    [group, cache] = await Promise.all([startReplicatedRedis({ replicas: 1 }), startRedis()]);
    const env = sentinelEnv(group, cache, uniquePrefix());
    worker = spawnTestWorker(env);
    sys = await startSystem({ env, worker: false });
    await worker.ready;
  });
  after(async () => {
    for (const server of paused) process.kill(server.process.pid!, 'SIGCONT');
    await sys?.close();
    await killWorker(worker);
    await Promise.all([group?.stop(), cache?.stop()]);
  });

  test('a 503 QUARRY_ERR_REDIS_NOT_REPLICATED with Retry-After; the job still runs', async () => {
    const replica = group.replicas[0]!;
    const healthy = await sys.app.inject({ method: 'POST', url: '/v1/aggregations', payload: spec(1) });
    assert.equal(healthy.statusCode, 202, healthy.body);

    process.kill(replica.process.pid!, 'SIGSTOP');
    paused.add(replica);
    const t0 = performance.now();
    const res = await sys.app.inject({ method: 'POST', url: '/v1/aggregations', payload: spec(2) });
    const ms = performance.now() - t0;
    process.kill(replica.process.pid!, 'SIGCONT');
    paused.delete(replica);
    assert.equal(res.statusCode, 503, res.body);
    assert.equal(res.json().error.code, 'QUARRY_ERR_REDIS_NOT_REPLICATED');
    assert.ok(Number(res.headers['retry-after']) >= 1, 'Retry-After');
    assert.ok(
      ms >= 450 && ms < 2500,
      `the enqueue waited about the 500 ms timeout, not ${Math.round(ms)} ms`,
    );

    // Not acknowledged, not taken back: the job was written on the primary and runs.
    const { jobId } = await sys.client.address(spec(2));
    await allCompleted(sys.client, [jobId], 15_000);
  });

  test('a batch is acknowledged item by item once replicated, or each item is a 503 NOT_REPLICATED', async () => {
    const replica = group.replicas[0]!;
    const batch = (seeds: number[]) =>
      sys.app.inject({ method: 'POST', url: '/v1/aggregations/batch', payload: { items: seeds.map(spec) } });
    const statuses = async (seeds: number[]) => {
      const res = await batch(seeds);
      assert.equal(res.statusCode, 200, res.body);
      return (res.json() as { items: { status: number; body: { error?: { code: string } } }[] }).items;
    };
    assert.deepEqual(
      (await statuses([10, 11, 12])).map((i) => i.status),
      [202, 202, 202],
    );
    process.kill(replica.process.pid!, 'SIGSTOP');
    paused.add(replica);
    const refused = await statuses([13, 14]);
    process.kill(replica.process.pid!, 'SIGCONT');
    paused.delete(replica);
    assert.deepEqual(
      refused.map((i) => `${i.status} ${i.body.error?.code}`),
      ['503 QUARRY_ERR_REDIS_NOT_REPLICATED', '503 QUARRY_ERR_REDIS_NOT_REPLICATED'],
    );
    // Written, not taken back: they run.
    const ids = await Promise.all([13, 14].map(async (seed) => (await sys.client.address(spec(seed))).jobId));
    await allCompleted(sys.client, ids, 15_000);
  });

  test('with the replica gone, enqueues are refused at once and write nothing', async () => {
    await group.replicas[0]!.stop();
    // The first one may still write and wait out the timeout (the replica's loss not yet seen).
    const first = await sys.app.inject({ method: 'POST', url: '/v1/aggregations', payload: spec(3) });
    assert.equal(first.statusCode, 503, first.body);
    const t0 = performance.now();
    const res = await sys.app.inject({ method: 'POST', url: '/v1/aggregations', payload: spec(4) });
    const ms = performance.now() - t0;
    assert.equal(res.statusCode, 503, res.body);
    assert.equal(res.json().error.code, 'QUARRY_ERR_REDIS_NOT_REPLICATED');
    assert.ok(ms < 400, `refused before waiting out the 500 ms timeout, not after ${Math.round(ms)} ms`);
    const { jobId } = await sys.client.address(spec(4));
    assert.equal(await sys.client.status(jobId), null, 'nothing was written for the refused enqueue');
  });
});
