// Webhooks end to end with real receivers on loopback (QUARRY_WEBHOOK_ALLOW lets the deliverer
// reach 127.0.0.1): each event type arrives signed and in its documented shape; a receiver that
// fails (500, then a timeout, then 200) gets the same delivery again until it answers; a worker
// killed in the middle of an attempt, and events written while no worker runs, lose nothing.
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { silentLogger } from '../../shared/logger.ts';
import { WebhookDeliverer } from '../../workers/webhook-deliverer.ts';
import { startWorker, type WorkerHandle } from '../../workers/worker.ts';
import { cliEnv, lines, runCli } from '../helpers/cli.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';
import { type Received, signatureValid, startReceiver } from '../helpers/webhook-receiver.ts';
import { killWorker, spawnWorker, type WorkerProcess } from '../helpers/worker-process.ts';

const SECRET = 'whsec_test_0123456789abcdef';
const BODY_KEYS = ['at', 'collection', 'error', 'id', 'jobId', 'resultKey', 'state', 'type', 'version'];

async function putHook(sys: TestSystem, name: string, url: string, events: string[]) {
  const res = await sys.app.inject({
    method: 'PUT',
    url: `/v1/webhooks/${name}`,
    payload: { url, events, secret: SECRET },
  });
  assert.equal(res.statusCode, 200, res.body);
  return res.json();
}

const bodyOf = (r: Received) => JSON.parse(r.body) as Record<string, unknown>;

describe('webhooks', () => {
  let redis: RedisServer;
  let dataDir: string;
  const env = () => ({
    QUARRY_QUEUE_REDIS_URL: redis.url,
    QUARRY_DATA_DIR: dataDir,
    QUARRY_WEBHOOK_ALLOW: '127.0.0.1',
    QUARRY_WEBHOOK_FIRST_RETRY_MS: '200',
    QUARRY_WEBHOOK_TIMEOUT_MS: '1000',
  });
  before(async () => {
    redis = await startRedis();
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-hooks-'));
  });
  after(async () => {
    await redis?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('each event type arrives once, signed, in its shape; the log says delivered', async () => {
    const receiver = await startReceiver();
    // No worker yet: the events wait in the outbox until one runs.
    const idle = await startSystem({ env: env(), worker: false });
    let worker: WorkerHandle | undefined;
    try {
      const info = await putHook(idle, 'all', receiver.url, [
        'job.completed',
        'job.failed',
        'job.cancelled',
        'index.live',
      ]);
      assert.equal(info.secretHint, `…${SECRET.slice(-4)}`);
      assert.ok(!JSON.stringify(info).includes(SECRET), 'the secret is not answered back');
      // Cancelled while queued.
      const cancelled = await idle.client.aggregate({
        dataset: { records: [{ a: 1 }] },
        metrics: [{ op: 'sum', column: 'a' }],
      });
      assert.equal((await idle.client.cancel(cancelled.jobId)).state, 'cancelled');
      // Fails: its file is away when it runs.
      writeFileSync(path.join(dataDir, 'sales.csv'), 'g,v\na,1\n');
      const failing = await idle.client.aggregate({
        dataset: { path: 'sales.csv' },
        groupBy: ['g'],
        metrics: [{ op: 'sum', column: 'v' }],
      });
      renameSync(path.join(dataDir, 'sales.csv'), path.join(dataDir, 'sales.csv.away'));
      const completing = await idle.client.aggregate({
        dataset: { records: [{ g: 'x', v: 2 }] },
        groupBy: ['g'],
        metrics: [{ op: 'sum', column: 'v' }],
      });
      const build = await idle.client.index('notes', {
        documents: [{ id: '1', text: 'red apples' }],
        idField: 'id',
        fields: ['text'],
      });
      worker = await startWorker(idle.config, silentLogger());
      await worker.ready;
      const got = await receiver.waitFor(5);
      const byKey = new Map(got.map((r) => [`${bodyOf(r).type}/${bodyOf(r).jobId}`, r]));
      for (const r of got) {
        assert.equal(r.method, 'POST');
        assert.equal(r.url, '/hook');
        assert.equal(r.headers['content-type'], 'application/json');
        assert.ok(
          signatureValid(SECRET, r.headers['x-quarry-signature'], r.body),
          String(r.headers['x-quarry-signature']),
        );
        assert.ok(!signatureValid('another-secret-of-16+', r.headers['x-quarry-signature'], r.body));
        const body = bodyOf(r);
        assert.deepEqual(Object.keys(body).sort(), BODY_KEYS);
        assert.equal(r.headers['x-quarry-delivery'], body.id);
        assert.match(String(body.id), /^whd_[0-9a-f]{24}$/);
        assert.ok(Math.abs(Date.parse(String(body.at)) - Date.now()) < 60_000);
      }
      const c = bodyOf(byKey.get(`job.cancelled/${cancelled.jobId}`)!);
      assert.equal(c.state, 'cancelled');
      assert.deepEqual((c.error as { code: string }).code, 'QUARRY_ERR_JOB_CANCELLED');
      assert.equal(c.resultKey, cancelled.resultKey);
      const f = bodyOf(byKey.get(`job.failed/${failing.jobId}`)!);
      assert.equal(f.state, 'failed');
      assert.match((f.error as { code: string }).code, /^QUARRY_ERR_DATASET_(NOT_FOUND|CHANGED)$/);
      assert.equal((f.error as { field?: string }).field, 'dataset.path', 'the field the failure names');
      const ok = bodyOf(byKey.get(`job.completed/${completing.jobId}`)!);
      assert.deepEqual(
        {
          state: ok.state,
          resultKey: ok.resultKey,
          error: ok.error,
          collection: ok.collection,
          version: ok.version,
        },
        { state: 'completed', resultKey: completing.resultKey, error: null, collection: null, version: null },
      );
      const built = await build.wait({ timeoutMs: 20_000 });
      const done = bodyOf(byKey.get(`job.completed/${build.jobId}`)!);
      assert.deepEqual([done.collection, done.version, done.resultKey], ['notes', built.version, null]);
      const live = bodyOf(byKey.get(`index.live/${build.jobId}`)!);
      assert.deepEqual([live.collection, live.version, live.state], ['notes', built.version, null]);
      // Nothing more arrives (each event once), and the log says delivered after one attempt
      // (once the deliverer recorded the answers: the receiver has each POST a moment before).
      for (let i = 0; i < 200; i++) {
        const list = (await idle.client.webhooks.deliveries('all')) ?? [];
        if (list.length === 5 && list.every((d) => d.status === 'delivered')) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      const log = await idle.app.inject({ method: 'GET', url: '/v1/webhooks/all/deliveries' });
      assert.equal(log.statusCode, 200, log.body);
      const deliveries = log.json().deliveries as {
        id: string;
        status: string;
        attempts: number;
        lastStatus: number;
      }[];
      assert.equal(deliveries.length, 5);
      for (const d of deliveries)
        assert.deepEqual([d.status, d.attempts, d.lastStatus], ['delivered', 1, 200], JSON.stringify(d));
      assert.equal(receiver.received.length, 5);
    } finally {
      await worker?.close();
      await idle.close();
      await receiver.close();
    }
  });

  test('a failing receiver (500, then a timeout, then 200) gets the same delivery until it answers', async () => {
    const receiver = await startReceiver((i) => (i === 0 ? 500 : i === 1 ? 'hang' : 200));
    const sys = await startSystem({ env: env() });
    try {
      await putHook(sys, 'flaky', receiver.url, ['job.completed']);
      const handle = await sys.client.aggregate({
        dataset: { records: [{ a: 3 }] },
        metrics: [{ op: 'sum', column: 'a' }],
      });
      await handle.wait({ timeoutMs: 10_000 });
      const got = await receiver.waitFor(3);
      assert.equal(new Set(got.map((r) => r.headers['x-quarry-delivery'])).size, 1, 'one delivery id');
      assert.equal(new Set(got.map((r) => r.body)).size, 1, 'the same body');
      for (const r of got) assert.ok(signatureValid(SECRET, r.headers['x-quarry-signature'], r.body));
      // The first retry comes within a few seconds; the one after the timeout waits past it.
      assert.ok(got[1]!.at - got[0]!.at < 3000, `first retry after ${got[1]!.at - got[0]!.at} ms`);
      assert.ok(got[2]!.at - got[1]!.at >= 1000, `second retry after ${got[2]!.at - got[1]!.at} ms`);
      let delivered: Record<string, unknown> | undefined;
      for (let i = 0; i < 100 && delivered?.status !== 'delivered'; i++) {
        delivered = (await sys.client.webhooks.deliveries('flaky'))?.[0] as unknown as Record<
          string,
          unknown
        >;
        if (delivered?.status !== 'delivered') await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(
        [delivered?.status, delivered?.attempts, delivered?.lastStatus, delivered?.lastBody],
        ['delivered', 3, 200, 'ok'],
      );
      // The worker's /metrics counts each attempt by its outcome.
      const exposition = await (await fetch(`${sys.worker!.metricsUrl}`)).text();
      const count = (outcome: string) =>
        Number(
          new RegExp(`^quarry_webhook_attempts_total\\{outcome="${outcome}"\\} (\\d+)$`, 'm').exec(
            exposition,
          )?.[1],
        );
      assert.deepEqual([count('retry'), count('delivered')], [2, 1], exposition);
    } finally {
      await sys.close();
      await receiver.close();
    }
  });

  test('a worker killed mid-attempt, and events while no worker runs, lose no delivery', async () => {
    let hang = true;
    const receiver = await startReceiver(() => (hang ? 'hang' : 200));
    let sys = await startSystem({ env: env(), worker: false });
    const procEnv = {
      ...env(),
      QUARRY_PREFIX: sys.config.prefix,
      QUARRY_LOG_LEVEL: 'info',
      QUARRY_LOG_FORMAT: 'json',
      QUARRY_WORKER_METRICS_PORT: '0',
    };
    let proc: WorkerProcess | undefined = spawnWorker(procEnv);
    try {
      await proc.ready;
      await putHook(sys, 'durable', receiver.url, ['job.completed', 'job.cancelled']);
      const first = await sys.client.aggregate({
        dataset: { records: [{ a: 4 }] },
        metrics: [{ op: 'sum', column: 'a' }],
      });
      const [attempt] = await receiver.waitFor(1);
      await killWorker(proc); // in the middle of the attempt
      proc = undefined;
      // The API restarts too, and a job is cancelled while no worker runs.
      await sys.close();
      sys = await startSystem({ env: { ...env(), QUARRY_PREFIX: procEnv.QUARRY_PREFIX }, worker: false });
      const queued = await sys.client.aggregate({
        dataset: { records: [{ a: 5 }] },
        metrics: [{ op: 'sum', column: 'a' }],
      });
      await sys.client.cancel(queued.jobId);
      hang = false;
      proc = spawnWorker(procEnv);
      await proc.ready;
      const got = await receiver.waitFor(3, 30_000);
      const ids = got.map((r) => bodyOf(r).jobId);
      assert.equal(bodyOf(attempt!).jobId, first.jobId);
      assert.equal(
        got.filter((r) => r.headers['x-quarry-delivery'] === attempt!.headers['x-quarry-delivery']).length,
        2,
      );
      assert.ok(ids.includes(queued.jobId), JSON.stringify(ids));
      // The receiver has the POST a moment before the deliverer records its answer.
      let statuses: string[] = [];
      for (let i = 0; i < 200; i++) {
        statuses = ((await sys.client.webhooks.deliveries('durable')) ?? []).map((d) => d.status).sort();
        if (statuses.every((s) => s === 'delivered')) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.deepEqual(statuses, ['delivered', 'delivered']);
    } finally {
      await killWorker(proc);
      await sys.close();
      await receiver.close();
    }
  });

  test('an outbox entry a dead deliverer had read is dispatched by another', async () => {
    const receiver = await startReceiver();
    const sys = await startSystem({ env: env(), worker: false });
    const raw = new Redis(redis.url);
    const deliverer = new WebhookDeliverer({
      config: sys.config,
      redis: raw,
      logger: silentLogger(),
      claimIdleMs: 200,
    });
    try {
      await putHook(sys, 'taken', receiver.url, ['job.cancelled']);
      const queued = await sys.client.aggregate({
        dataset: { records: [{ a: 6 }] },
        metrics: [{ op: 'sum', column: 'a' }],
      });
      await sys.client.cancel(queued.jobId);
      // A deliverer reads the entry and dies before it made the delivery: the entry stays pending.
      const outbox = `${sys.config.prefix}:webhook-outbox`;
      await raw.xgroup('CREATE', outbox, 'deliver', '0', 'MKSTREAM');
      const read = (await raw.xreadgroup(
        'GROUP',
        'deliver',
        'dead',
        'COUNT',
        10,
        'STREAMS',
        outbox,
        '>',
      )) as [string, unknown[]][];
      assert.equal(read[0]![1].length, 1, 'the dead deliverer holds the one entry');
      deliverer.start();
      const [r] = await receiver.waitFor(1);
      assert.deepEqual([bodyOf(r!).type, bodyOf(r!).jobId], ['job.cancelled', queued.jobId]);
      assert.equal(await raw.xlen(outbox), 0, 'the entry is gone once dispatched');
    } finally {
      await deliverer.close();
      raw.disconnect();
      await sys.close();
      await receiver.close();
    }
  });

  test('quarry webhooks: put (secret from stdin), list, deliveries, rm; refusals exit 2 with one line', async () => {
    const receiver = await startReceiver();
    const sys = await startSystem({ env: env() });
    const cli = { ...cliEnv(sys.config), QUARRY_WEBHOOK_ALLOW: '127.0.0.1' };
    try {
      const put = await runCli(
        [
          'webhooks',
          'put',
          'ops',
          '--url',
          receiver.url,
          '--events',
          'job.completed,index.live',
          '--secret',
          '-',
          '--json',
        ],
        cli,
        `${SECRET}\n`,
      );
      assert.equal(put.code, 0, put.stderr);
      assert.deepEqual(JSON.parse(put.stdout).events, ['job.completed', 'index.live']);
      assert.ok(!put.stdout.includes(SECRET));
      await (
        await sys.client.aggregate({
          dataset: { records: [{ a: 9 }] },
          metrics: [{ op: 'sum', column: 'a' }],
        })
      ).wait({
        timeoutMs: 10_000,
      });
      const [r] = await receiver.waitFor(1);
      assert.ok(
        signatureValid(SECRET, r!.headers['x-quarry-signature'], r!.body),
        'signed with the secret read from stdin',
      );
      const list = await runCli(['webhooks', 'list', '--json'], cli);
      assert.deepEqual(
        JSON.parse(list.stdout).map((w: { name: string }) => w.name),
        ['ops'],
      );
      const log = await runCli(['webhooks', 'deliveries', 'ops', '--json'], cli);
      assert.equal(log.code, 0, log.stderr);
      assert.equal(JSON.parse(log.stdout)[0].id, r!.headers['x-quarry-delivery']);
      const refused = await runCli(
        [
          'webhooks',
          'put',
          'bad',
          '--url',
          'http://169.254.169.254/',
          '--events',
          'job.failed',
          '--secret',
          SECRET,
        ],
        cli,
      );
      assert.equal(refused.code, 2);
      assert.match(
        lines(refused.stderr).join('|'),
        /^QUARRY_ERR_WEBHOOK_TARGET: url: "169\.254\.169\.254" resolves to/,
      );
      assert.equal((await runCli(['webhooks', 'rm', 'ops'], cli)).code, 0);
      const again = await runCli(['webhooks', 'rm', 'ops'], cli);
      assert.deepEqual(
        [again.code, lines(again.stderr)],
        [2, ['QUARRY_ERR_WEBHOOK_NOT_FOUND: no webhook ops']],
      );
      assert.equal((await runCli(['webhooks', 'put', 'x', '--url', receiver.url], cli)).code, 2);
    } finally {
      await sys.close();
      await receiver.close();
    }
  });
});
