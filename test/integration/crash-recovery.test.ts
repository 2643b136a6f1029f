// Crash recovery, tested with real processes: a worker process is SIGKILLed while it computes a
// multi-second aggregation; a second worker process picks the job up once BullMQ's stall check
// sees the lapsed lock, within 15 s on the default lock settings (8000/3000 ms). The app sees
// the job complete once, with the right answer, and exactly one result is stored.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { createQuarry, type QuarryClient } from '../../producers/client.ts';
import type { ResultEnvelope } from '../../shared/aggregation.ts';
import type { JobEvent, JobStatus } from '../../shared/status.ts';
import { tsExecArgv } from '../../shared/ts-runtime.ts';
import { createDuckDBEngine } from '../../workers/engines/duckdb.ts';
import { slowFlightsSpec, VEGA_DATA_DIR } from '../helpers/flights.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { testConfig } from '../helpers/system.ts';
import { assertSameResult } from '../reference/compare.ts';

const root = path.resolve(import.meta.dirname, '../..');
const RECOVERY_LIMIT_MS = 15_000;

// Two to four seconds of DuckDB work on one thread over 3M rows: the worker is surely mid-job
// when it is killed, and the second worker's run is long enough to be a real recomputation.
const heavySpec = {
  ...slowFlightsSpec(7),
  engine: 'duckdb',
};

interface WorkerProcess {
  readonly child: ChildProcess;
  /** The worker's pino lines, parsed, as they arrive. */
  readonly lines: Record<string, unknown>[];
  readonly ready: Promise<void>;
  readonly exited: Promise<void>;
}

function spawnWorker(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, [...tsExecArgv(), 'workers/main.ts'], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let pending = '';
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      pending += chunk;
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const part of parts) {
        try {
          const line = JSON.parse(part) as Record<string, unknown>;
          lines.push(line);
          if (line.msg === 'worker ready') resolve();
        } catch {
          // Not a log line (a native library's output): irrelevant here.
        }
      }
    });
    child.once('exit', (code, signal) =>
      reject(new Error(`worker exited before it was ready (${code ?? signal}): ${stderr.slice(-2000)}`)),
    );
  });
  // The rejection matters only while waiting for readiness; a later exit is expected.
  ready.catch(() => undefined);
  return { child, lines, ready, exited };
}

/**
 * Polls the job's status record until a run starts that is not `previous` (its startedAt differs).
 * Polling, not events: the job may start before a waiter's subscription is up.
 */
async function nextStart(
  client: QuarryClient,
  jobId: string,
  previous: string | null,
  timeoutMs = 30_000,
): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const status = await client.status(jobId);
    if (status?.state === 'active' && status.startedAt !== null && status.startedAt !== previous) {
      return status.startedAt;
    }
    if (status !== null && status.state !== 'active' && status.state !== 'queued') {
      throw new Error(`job ${jobId} is ${status.state} before it was seen running`);
    }
    if (performance.now() > deadline) throw new Error(`job ${jobId} did not start within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function stopWorker(worker: WorkerProcess | undefined): Promise<void> {
  if (worker === undefined) return;
  if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
  await worker.exited;
}

describe('crash recovery', () => {
  let queueRedis: RedisServer;
  let cacheRedis: RedisServer;
  let raw: Redis;
  before(async () => {
    [queueRedis, cacheRedis] = await Promise.all([
      startRedis(['--maxmemory-policy', 'noeviction']),
      startRedis(['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru']),
    ]);
    raw = new Redis(queueRedis.url);
  });
  after(async () => {
    raw?.disconnect();
    await Promise.all([queueRedis?.stop(), cacheRedis?.stop()]);
  });

  // Filled by the first test, examined by the second.
  let recovered: { status: JobStatus | null; startsInStream: number } | undefined;

  test('a job on a SIGKILLed worker is taken over within 15 s and completes once', async () => {
    const config = testConfig({
      QUARRY_QUEUE_REDIS_URL: queueRedis.url,
      QUARRY_CACHE_REDIS_URL: cacheRedis.url,
      QUARRY_DATA_DIR: VEGA_DATA_DIR,
    });
    // The default lock settings are what this test is about: it sets none of them.
    assert.equal(config.lockDurationMs, 8000);
    assert.equal(config.stalledIntervalMs, 3000);
    const spoolDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-crash-spool-'));
    const env = {
      QUARRY_QUEUE_REDIS_URL: config.queueRedisUrl,
      QUARRY_CACHE_REDIS_URL: config.cacheRedisUrl,
      QUARRY_PREFIX: config.prefix,
      QUARRY_DATA_DIR: config.dataDir,
      QUARRY_SPOOL_DIR: spoolDir,
      QUARRY_LOG_LEVEL: 'info',
      QUARRY_DUCKDB_THREADS: '1',
      // Two workers on one host: each serves its metrics on a port of its own.
      QUARRY_WORKER_METRICS_PORT: '0',
    };
    let first: WorkerProcess | undefined;
    let second: WorkerProcess | undefined;
    let client: QuarryClient | undefined;
    const engine = await createDuckDBEngine({ threads: 2, dataDir: VEGA_DATA_DIR, spoolDir });
    try {
      first = spawnWorker(env);
      await first.ready;
      client = createQuarry({ config });
      const handle = await client.aggregate(heavySpec);
      assert.equal(handle.cached, false);

      // Every status event the app's waiter sees, stamped on arrival.
      const seen: { at: number; event: JobEvent }[] = [];
      let resolutions = 0;
      const waited = handle
        .wait({ timeoutMs: 90_000, onEvent: (event) => seen.push({ at: performance.now(), event }) })
        .then((envelope) => {
          resolutions++;
          return envelope;
        });

      // Only the first worker runs when the job starts, so it holds the job; then the second
      // one starts, and once it takes jobs the first one dies mid-computation.
      await nextStart(client, handle.jobId, null);
      second = spawnWorker(env);
      await second.ready;
      const stillRunning = await client.status(handle.jobId);
      assert.equal(stillRunning?.state, 'active', 'the job is still running on the first worker');
      const killedAt = performance.now();
      first.child.kill('SIGKILL');
      await first.exited;

      const envelope: ResultEnvelope = await waited;
      const pickedUp = seen.find((s) => s.at > killedAt && s.event.state === 'active');
      assert.ok(pickedUp, 'the job became active again after the kill');
      const recoveryMs = pickedUp.at - killedAt;
      const completedAfterMs = seen.find((s) => s.event.state === 'completed')!.at - killedAt;
      console.log(
        `recovery: picked up ${Math.round(recoveryMs)} ms after the kill, completed after ${Math.round(completedAfterMs)} ms`,
      );
      assert.ok(recoveryMs <= RECOVERY_LIMIT_MS, `picked up ${Math.round(recoveryMs)} ms after the kill`);

      // Completed once, as the app sees it: one resolution, one completed event.
      assert.equal(resolutions, 1);
      assert.equal(seen.filter((s) => s.event.state === 'completed').length, 1);
      assert.equal(seen.filter((s) => s.event.state === 'failed').length, 0);

      // The right answer: the same spec computed in this process by a fresh engine.
      const addressed = await client.address(heavySpec);
      const expected = await engine.run({
        spec: addressed.spec,
        source: { kind: 'file', file: path.join(VEGA_DATA_DIR, 'flights-3m.parquet'), format: 'parquet' },
        maxRows: config.maxResultRows,
      });
      assertSameResult(envelope, expected, 'recovered result');
      assert.equal(envelope.resultKey, handle.resultKey);

      // The status record: completed, with its result key and times.
      const status = await client.status(handle.jobId);
      assert.equal(status?.state, 'completed');
      assert.equal(status?.resultKey, handle.resultKey);
      assert.notEqual(status?.finishedAt, null);
      assert.ok((status?.attempts ?? 0) >= 1);

      // Exactly one result stored, and it is the one the app got.
      const cache = new Redis(cacheRedis.url);
      try {
        const keys = await cache.keys(`${config.prefix}:result:*`);
        assert.deepEqual(keys, [`${config.prefix}:result:${handle.resultKey}`]);
        assert.deepEqual(JSON.parse((await cache.get(keys[0]!))!), envelope);
      } finally {
        cache.disconnect();
      }

      // BullMQ's view: started twice (the crashed run, the recovery), stalled once, completed once.
      const stream = await raw.xrange(`${config.prefix}:aggregate:events`, '-', '+');
      const mine = stream.filter(([, f]) => f.includes(handle.jobId)).map(([, f]) => f[1]);
      assert.equal(mine.filter((e) => e === 'stalled').length, 1, mine.join(', '));
      assert.equal(mine.filter((e) => e === 'active').length, 2, mine.join(', '));
      assert.equal(mine.filter((e) => e === 'completed').length, 1, mine.join(', '));

      // The second worker computed it (not reused: the first died before storing anything), once.
      const done = second.lines.filter((l) => l.msg === 'aggregation done' && l.jobId === handle.jobId);
      assert.equal(done.length, 1);
      assert.equal(done[0]!.reused, false);
      assert.equal(
        first.lines.some((l) => l.msg === 'aggregation done'),
        false,
        'the first worker never finished it',
      );
      recovered = { status, startsInStream: mine.filter((e) => e === 'active').length };
    } finally {
      await Promise.all([stopWorker(first), stopWorker(second)]);
      await client?.close();
      await engine.close();
      rmSync(spoolDir, { recursive: true, force: true });
    }
  });

  test('a job whose worker dies twice still ends: the waiter settles and the record is final', async () => {
    // Short locks: this test is about what happens after the second stall, not how fast.
    const config = testConfig({
      QUARRY_QUEUE_REDIS_URL: queueRedis.url,
      QUARRY_CACHE_REDIS_URL: cacheRedis.url,
      QUARRY_DATA_DIR: VEGA_DATA_DIR,
      QUARRY_LOCK_DURATION_MS: '1500',
      QUARRY_STALLED_INTERVAL_MS: '1000',
    });
    const env = {
      QUARRY_QUEUE_REDIS_URL: config.queueRedisUrl,
      QUARRY_CACHE_REDIS_URL: config.cacheRedisUrl,
      QUARRY_PREFIX: config.prefix,
      QUARRY_DATA_DIR: config.dataDir,
      QUARRY_LOCK_DURATION_MS: '1500',
      QUARRY_STALLED_INTERVAL_MS: '1000',
      QUARRY_LOG_LEVEL: 'info',
      QUARRY_DUCKDB_THREADS: '1',
      // Two workers on one host: each serves its metrics on a port of its own.
      QUARRY_WORKER_METRICS_PORT: '0',
    };
    const workers: WorkerProcess[] = [];
    let client: QuarryClient | undefined;
    try {
      workers.push(spawnWorker(env));
      await workers[0]!.ready;
      client = createQuarry({ config });
      const handle = await client.aggregate({ ...heavySpec, limit: 8 });
      const settled = handle.wait({ timeoutMs: 25_000 }).then(
        () => 'completed',
        (error: unknown) => (error as { code?: string }).code ?? String(error),
      );
      // Twice: once the one live worker runs the job, kill it and start the next one.
      let started: string | null = null;
      for (let crash = 1; crash <= 2; crash++) {
        started = await nextStart(client, handle.jobId, started);
        const victim = workers[crash - 1]!;
        victim.child.kill('SIGKILL');
        await victim.exited;
        const next = spawnWorker(env);
        workers.push(next);
        await next.ready;
      }
      const outcome = await settled;
      const status = await client.status(handle.jobId);
      assert.notEqual(outcome, 'QUARRY_ERR_WAIT_TIMEOUT', `status record: ${JSON.stringify(status)}`);
      assert.ok(status !== null && ['completed', 'failed'].includes(status.state), status?.state);
    } finally {
      await Promise.all(workers.map((w) => stopWorker(w)));
      await client?.close();
    }
  });

  test('the status record counts the crashed attempt', () => {
    assert.ok(recovered, 'the crash test ran');
    assert.equal(recovered.status?.attempts, recovered.startsInStream);
  });
});
