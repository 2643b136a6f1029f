// Heavy jobs never take every slot of a worker (workers/heavy-slots.ts): with two slots and two
// 3M-row file scans queued first, one scan runs, the other waits (not as an attempt), and a small
// job queued after both runs beside the first scan instead of waiting for one to end. With
// QUARRY_WORKER_HEAVY_SLOTS=0 both scans run at once and the small job waits: the limit is
// what makes the difference.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { JobStatus } from '../../shared/status.ts';
import { slowFlightsSpec, VEGA_DATA_DIR } from '../helpers/flights.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem } from '../helpers/system.ts';

interface Run {
  heavy: JobStatus[];
  small: JobStatus;
}

async function runMix(redisUrl: string, env: Record<string, string>): Promise<Run> {
  const sys = await startSystem({
    env: {
      QUARRY_QUEUE_REDIS_URL: redisUrl,
      QUARRY_DATA_DIR: VEGA_DATA_DIR,
      QUARRY_WORKER_CONCURRENCY: '2',
      QUARRY_DUCKDB_THREADS: '1',
      ...env,
    },
  });
  try {
    await sys.worker?.ready;
    const heavy = [
      await sys.client.aggregate({ ...slowFlightsSpec(901), engine: 'duckdb' }),
      await sys.client.aggregate({ ...slowFlightsSpec(902), engine: 'duckdb' }),
    ];
    // Let the worker take the heavy ones first.
    await new Promise((r) => setTimeout(r, 300));
    const small = await sys.client.aggregate({
      dataset: { records: [{ v: 1 }, { v: 2 }] },
      metrics: [{ op: 'sum', column: 'v' }],
    });
    await Promise.all([...heavy, small].map((h) => h.wait({ timeoutMs: 60_000 })));
    const status = async (id: string) => {
      const s = await sys.client.status(id);
      assert.ok(s?.startedAt && s.finishedAt, `job ${id} has its timings`);
      return s;
    };
    return {
      heavy: await Promise.all(heavy.map((h) => status(h.jobId))),
      small: await status(small.jobId),
    };
  } finally {
    await sys.close();
  }
}

const at = (iso: string | null) => Date.parse(iso ?? '');
const overlap = (a: JobStatus, b: JobStatus) =>
  at(a.startedAt) < at(b.finishedAt) && at(b.startedAt) < at(a.finishedAt);

describe('heavy slots', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  test('two slots: one heavy scan at a time; a small job runs beside it', async () => {
    const { heavy, small } = await runMix(redis.url, {});
    const [a, b] = heavy as [JobStatus, JobStatus];
    assert.equal(overlap(a, b), false, 'the two scans did not run at once');
    assert.ok(
      at(small.finishedAt) < Math.min(at(a.finishedAt), at(b.finishedAt)),
      'the small job finished before either scan',
    );
    for (const h of heavy) {
      assert.equal(h.state, 'completed');
      assert.equal(h.attempts, 1, 'waiting for a heavy slot is not an attempt');
    }
  });

  test('QUARRY_WORKER_HEAVY_SLOTS=0: both scans take the slots and the small job waits', async () => {
    const { heavy, small } = await runMix(redis.url, { QUARRY_WORKER_HEAVY_SLOTS: '0' });
    const [a, b] = heavy as [JobStatus, JobStatus];
    assert.equal(overlap(a, b), true, 'the two scans ran at once');
    assert.ok(at(small.finishedAt) > Math.min(at(a.finishedAt), at(b.finishedAt)), 'the small job waited');
  });
});
