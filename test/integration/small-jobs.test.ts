// A small aggregation's life as the events channel shows it: one message per state change
// (queued, active, completed), no progress writes in between (progress is coalesced: a job that
// ends within PROGRESS_DELAY_MS never reports it), the record complete and its inline data gone.
// Real redis-servers, a real worker and the SDK.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { flightsSpec, loadFlights } from '../helpers/flights.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

describe('small jobs', () => {
  let queueRedis: RedisServer;
  let cacheRedis: RedisServer;
  let sys: TestSystem;
  let subscriber: Redis;
  let raw: Redis;

  before(async () => {
    [queueRedis, cacheRedis] = await Promise.all([startRedis(), startRedis()]);
    sys = await startSystem({
      env: { QUARRY_QUEUE_REDIS_URL: queueRedis.url, QUARRY_CACHE_REDIS_URL: cacheRedis.url },
    });
    subscriber = new Redis(queueRedis.url);
    raw = new Redis(queueRedis.url);
  });
  after(async () => {
    subscriber?.disconnect();
    raw?.disconnect();
    await sys?.close();
    await Promise.all([queueRedis?.stop(), cacheRedis?.stop()]);
  });

  test('each publishes queued, active (load) and completed (done): one event per state change', async () => {
    const events = new Map<string, { state: string; phase: string; attempts: number }[]>();
    // Whether the inline data was still there when the completed event arrived: the completing
    // script deletes it with the record's write, so it must be gone by then.
    const dataAtCompletion = new Map<string, Promise<number>>();
    subscriber.on('message', (_channel: string, text: string) => {
      const e = JSON.parse(text) as {
        jobId: string;
        state: string;
        progress: { phase: string };
        attempts: number;
      };
      if (e.state === 'completed')
        dataAtCompletion.set(e.jobId, raw.exists(sys.client.keys.inlineData(e.jobId)));
      const list = events.get(e.jobId) ?? [];
      list.push({ state: e.state, phase: e.progress.phase, attempts: e.attempts });
      events.set(e.jobId, list);
    });
    await subscriber.subscribe(sys.client.keys.eventsChannel);
    const flights = loadFlights();
    const handles = await Promise.all(
      [0, 20, 40, 60].map((from) =>
        sys.client.aggregate(flightsSpec({ records: flights.slice(from, from + 20) })),
      ),
    );
    for (const h of handles) {
      const envelope = await h.wait({ timeoutMs: 20_000 });
      assert.ok(envelope.rowCount > 0);
    }
    for (const h of handles) {
      // The completed event may still be on its way to this subscriber: wait for it, bounded.
      const deadline = Date.now() + 5000;
      while (events.get(h.jobId)?.at(-1)?.state !== 'completed' && Date.now() < deadline) {
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, deadline - Date.now());
          subscriber.once('message', () => {
            clearTimeout(timer);
            resolve(undefined);
          });
        });
      }
      assert.deepEqual(events.get(h.jobId), [
        { state: 'queued', phase: 'queued', attempts: 0 },
        { state: 'active', phase: 'load', attempts: 1 },
        { state: 'completed', phase: 'done', attempts: 1 },
      ]);
      const status = await sys.client.status(h.jobId);
      assert.equal(status?.state, 'completed');
      assert.equal(status?.resultKey, h.resultKey);
      assert.equal(await dataAtCompletion.get(h.jobId), 0, 'the inline data went with the completion');
    }
  });
});
