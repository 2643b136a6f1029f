// Attacks from the chaos run, replayed exactly with real worker processes and a real Redis.
// Seed 200846 of `npm run chaos`: one heavy job was caught running by three kills in a row and
// failed QUARRY_ERR_JOB_STALLED (the default allowed two), a healthy job lost to a crash storm.
// The rule now (README "Reliability"): a job survives QUARRY_MAX_STALLED_COUNT (default 5) kills
// of the worker holding it and fails QUARRY_ERR_JOB_STALLED on the next one, so a poison job that
// kills every worker still ends.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { createQuarry, type QuarryClient } from '../../producers/client.ts';
import { slowFlightsSpec, VEGA_DATA_DIR } from '../helpers/flights.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { testConfig } from '../helpers/system.ts';
import { killWorker, nextStart, spawnWorker, type WorkerProcess } from '../helpers/worker-process.ts';

// Two to four seconds of DuckDB work on one thread: each run is surely caught by its kill.
const heavySpec = { ...slowFlightsSpec(9), engine: 'duckdb' };

describe('attacks: chaos', () => {
  let redis: RedisServer;
  let raw: Redis;
  before(async () => {
    redis = await startRedis(['--maxmemory-policy', 'noeviction']);
    raw = new Redis(redis.url);
  });
  after(async () => {
    raw?.disconnect();
    await redis?.stop();
  });

  /**
   * Runs one heavy job and SIGKILLs the worker holding it `kills` times, each time once its run
   * has started (the status record says so); the next worker is started before each kill, so it
   * is ready when the lock lapses. Short locks: the rule is the point, not the recovery time.
   */
  async function killRepeatedly(kills: number, env: Record<string, string> = {}) {
    const config = testConfig({
      QUARRY_QUEUE_REDIS_URL: redis.url,
      QUARRY_DATA_DIR: VEGA_DATA_DIR,
      QUARRY_LOCK_DURATION_MS: '1500',
      QUARRY_STALLED_INTERVAL_MS: '1000',
      ...env,
    });
    const workerEnv = {
      QUARRY_QUEUE_REDIS_URL: config.queueRedisUrl,
      QUARRY_CACHE_REDIS_URL: config.cacheRedisUrl,
      QUARRY_PREFIX: config.prefix,
      QUARRY_DATA_DIR: config.dataDir,
      QUARRY_LOCK_DURATION_MS: '1500',
      QUARRY_STALLED_INTERVAL_MS: '1000',
      QUARRY_LOG_LEVEL: 'info',
      QUARRY_DUCKDB_THREADS: '1',
      QUARRY_WORKER_METRICS_PORT: '0',
      ...env,
    };
    const workers: WorkerProcess[] = [spawnWorker(workerEnv)];
    const client: QuarryClient = createQuarry({ config });
    try {
      await workers[0]!.ready;
      const handle = await client.aggregate(heavySpec);
      const settled = handle.wait({ timeoutMs: 60_000 }).then(
        () => ({ outcome: 'completed' }),
        (error: unknown) => ({ outcome: (error as { code?: string }).code ?? String(error) }),
      );
      let started: string | null = null;
      for (let k = 0; k < kills; k++) {
        started = await nextStart(client, handle.jobId, started);
        const next = spawnWorker(workerEnv);
        await next.ready;
        // Still running on the worker about to die: this kill hits the job.
        assert.equal((await client.status(handle.jobId))?.state, 'active', `before kill ${k + 1}`);
        await killWorker(workers.at(-1));
        workers.push(next);
      }
      const { outcome } = await settled;
      const status = await client.status(handle.jobId);
      const stream = await raw.xrange(`${config.prefix}:aggregate:events`, '-', '+');
      const events = stream.filter(([, f]) => f.includes(handle.jobId)).map(([, f]) => f[1]);
      return { outcome, status, events, config };
    } finally {
      await Promise.all(workers.map((w) => killWorker(w)));
      await client.close();
    }
  }

  test('seed 200846: a healthy job caught by three kills in a row completes under the default rule', async () => {
    const { outcome, status, events, config } = await killRepeatedly(3);
    assert.equal(config.maxStalledCount, 5, 'the default rule');
    assert.equal(outcome, 'completed', JSON.stringify(status));
    assert.equal(status?.state, 'completed');
    assert.equal(events.filter((e) => e === 'stalled').length, 3, events.join(', '));
    assert.equal(events.filter((e) => e === 'active').length, 4, events.join(', '));
  });

  test('a poison job survives QUARRY_MAX_STALLED_COUNT kills, then fails QUARRY_ERR_JOB_STALLED', async () => {
    // Allowed one death: the first kill is survived (the job runs again), the second ends it.
    const { outcome, status, events } = await killRepeatedly(2, { QUARRY_MAX_STALLED_COUNT: '1' });
    assert.equal(outcome, 'QUARRY_ERR_JOB_STALLED', JSON.stringify(status));
    assert.equal(status?.state, 'failed');
    assert.equal(status?.error?.code, 'QUARRY_ERR_JOB_STALLED');
    assert.match(status?.error?.message ?? '', /died 2 times/);
    // Two runs (the second after surviving the first kill), two stalls, one failure, never completed.
    assert.equal(events.filter((e) => e === 'active').length, 3, events.join(', '));
    assert.equal(events.filter((e) => e === 'stalled').length, 2, events.join(', '));
    assert.equal(events.filter((e) => e === 'failed').length, 1, events.join(', '));
    assert.equal(events.includes('completed'), false);
  });
});
