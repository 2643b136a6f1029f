// The chaos run (scripts/chaos.ts) in short form: 100 mixed jobs through HTTP while a worker is
// SIGKILLed mid-computation and the queue Redis is restarted on its AOF. The verdict is the full
// run's: every acknowledged job completes with the answer a clean in-process computation gives,
// except a job hit by more kills than QUARRY_MAX_STALLED_COUNT, which must fail
// QUARRY_ERR_JOB_STALLED (scripts/chaos-verdict.ts; test/attacks/chaos.test.ts replays seed
// 200846). Also here: what a waiter sees when its event subscription drops while its job finishes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { createQuarry, type QuarryClient } from '../../producers/client.ts';
import { printReport, runChaos } from '../../scripts/chaos.ts';
import { keyScheme } from '../../shared/keys.ts';
import { StatusStore } from '../../shared/status.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { testConfig } from '../helpers/system.ts';

describe('chaos', () => {
  test('100 jobs, a worker killed mid-job, the queue Redis restarted: none lost, none wrong, by the rule', async (t) => {
    const progress: string[] = [];
    const report = await runChaos({
      jobs: 100,
      seconds: 20,
      maxKills: 1,
      redisRestarts: 1,
      settleSeconds: 60,
      seed: 20_261_127,
      log: (line) => progress.push(line),
    });
    const summary = JSON.stringify({ ...report, recoveries: undefined }, null, 1);
    t.diagnostic(summary);
    if (report.lost > 0 || report.wrong > 0) {
      console.log(progress.join('\n'));
      printReport(report);
    }
    assert.equal(report.seed, 20_261_127, 'the seed is reported, so a failure can be replayed');
    assert.ok(report.passed, summary);
    assert.equal(report.acknowledged, 100, summary);
    assert.equal(report.lost, 0, report.problems.join('\n'));
    assert.equal(report.wrong, 0, report.problems.join('\n'));
    assert.equal(report.completed, 100);
    assert.equal(report.duplicateComputations, 0);
    assert.equal(report.kills, 1);
    assert.equal(report.redisRestarts, 1);
    // A 503 during the outage was answered by sending the request again after Retry-After.
    assert.ok(report.retried503 > 0, 'some POSTs met the outage');
    // The kill caught work in progress, and that work came back on the other worker.
    assert.ok(report.interruptedJobs >= 1, 'the kill interrupted a running job');
    // The run itself saw which jobs the killed worker held; one kill is within the rule (5).
    assert.ok(report.mostHitsOnOneJob >= 1, 'the kill hit a job the worker held');
    assert.equal(report.mostHitsOnOneJob, 1);
    assert.equal(report.jobsHitPastRule, 0);
    assert.equal(report.expectedStalled, 0);
    // A stall no kill explains is a live worker that renewed its lock late (2 loaded cores): BullMQ
    // hands the job on, and it must still complete once, with the right answer (the verdict above).
    // More than a few means the workers miss their renewals routinely, which is a defect.
    assert.ok(report.stallsWithoutKill <= 3, `stalls without a kill: ${report.stallsWithoutKill}`);
    for (const r of report.recoveries) assert.equal(r.outcome, 'completed', JSON.stringify(r));
  });

  describe('event subscription dropped', () => {
    let redis: RedisServer;
    let raw: Redis;
    let client: QuarryClient;
    before(async () => {
      redis = await startRedis();
      raw = new Redis(redis.url);
      client = createQuarry({ config: testConfig({ QUARRY_QUEUE_REDIS_URL: redis.url }) });
    });
    after(async () => {
      await client?.close();
      raw?.disconnect();
      await redis?.stop();
    });

    test('a waiter still sees a completion published while its subscription reconnects', async () => {
      // No worker: the job stays queued until this test completes it by hand.
      const handle = await client.aggregate({
        dataset: { records: [{ a: 1 }, { a: 2 }] },
        metrics: [{ op: 'sum', column: 'a' }],
      });
      const outcome = client.waitForJob(handle.jobId, { timeoutMs: 3000 }).then(
        (status) => status.state,
        (error: unknown) => (error as { code?: string }).code,
      );
      // Until the waiter's subscription is up (one subscriber on the events channel).
      const channel = keyScheme(client.config.prefix).eventsChannel;
      const deadline = Date.now() + 5000;
      while (((await raw.call('PUBSUB', 'NUMSUB', channel)) as [string, number])[1] < 1) {
        assert.ok(Date.now() < deadline, 'the waiter subscribed');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      // The subscription drops (a failover, a proxy restart); the job completes before it is back.
      await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      const status = new StatusStore(raw, keyScheme(client.config.prefix), 60);
      await status.completed(handle.jobId, handle.resultKey);
      assert.equal((await client.status(handle.jobId))?.state, 'completed');
      assert.equal(await outcome, 'completed');
    });
  });
});
