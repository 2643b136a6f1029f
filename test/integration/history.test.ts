// Job history and redrive through the API with real Redis and a real worker: GET /v1/jobs lists
// every kept record newest first, filtered and paged by cursor; POST /v1/jobs/:jobId/retry runs a
// failed aggregation and index build (their files away while they ran, back afterwards) and a
// cancelled job (its inline data kept) again under the same id and result key, answers 409 / 404
// / 410 where it must, and two retries at once make one run; GET /v1/activity counts what ended.
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { silentLogger } from '../../shared/logger.ts';
import type { JobStatus } from '../../shared/status.ts';
import { startWorker, type WorkerHandle } from '../../workers/worker.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem } from '../helpers/system.ts';

const inlineSpec = (i: number) => ({
  dataset: { records: [{ g: 'a', v: i }] },
  groupBy: ['g'],
  metrics: [{ op: 'sum', column: 'v' }],
});

describe('job history and retry', () => {
  let redis: RedisServer;
  let raw: Redis;
  let dataDir: string;
  before(async () => {
    redis = await startRedis();
    raw = new Redis(redis.url);
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-history-'));
    writeFileSync(path.join(dataDir, 'sales.csv'), 'g,v\na,1\nb,2\na,3\n');
  });
  after(async () => {
    raw?.disconnect();
    await redis?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('lists every job newest first, with filters and cursor paging', async () => {
    const sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url }, worker: false });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) ids.push((await sys.client.aggregate(inlineSpec(i))).jobId);
      await sys.client.cancel(ids[2]!);
      const all = await sys.app.inject({ method: 'GET', url: '/v1/jobs' });
      assert.equal(all.statusCode, 200, all.body);
      const body = all.json() as { jobs: JobStatus[]; nextCursor: string | null };
      assert.deepEqual(
        body.jobs.map((j) => j.jobId),
        [...ids].reverse(),
        'newest first',
      );
      assert.equal(body.nextCursor, null);
      const single = await sys.app.inject({ method: 'GET', url: `/v1/jobs/${ids[3]}` });
      assert.deepEqual(
        body.jobs.find((j) => j.jobId === ids[3]),
        single.json(),
        'each entry is the record GET /v1/jobs/:jobId answers',
      );

      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const url: string = `/v1/jobs?limit=3${cursor === null ? '' : `&cursor=${cursor}`}`;
        const page: { statusCode: number; body: string; json(): unknown } = await sys.app.inject({
          method: 'GET',
          url,
        });
        assert.equal(page.statusCode, 200, page.body);
        const p = page.json() as { jobs: JobStatus[]; nextCursor: string | null };
        assert.ok(p.jobs.length <= 3);
        seen.push(...p.jobs.map((j) => j.jobId));
        cursor = p.nextCursor;
        pages++;
      } while (cursor !== null && pages < 10);
      assert.deepEqual(seen, [...ids].reverse(), 'pages cover every job once, in order');
      assert.equal(pages, 3);

      const cancelled = await sys.app.inject({ method: 'GET', url: '/v1/jobs?state=cancelled' });
      assert.deepEqual(
        cancelled.json().jobs.map((j: JobStatus) => j.jobId),
        [ids[2]],
      );
      const byCode = await sys.app.inject({
        method: 'GET',
        url: '/v1/jobs?errorCode=QUARRY_ERR_JOB_CANCELLED',
      });
      assert.deepEqual(
        byCode.json().jobs.map((j: JobStatus) => j.jobId),
        [ids[2]],
      );
      const indexes = await sys.app.inject({ method: 'GET', url: '/v1/jobs?type=index' });
      assert.deepEqual(indexes.json().jobs, []);
      const future = new Date(Date.now() + 60_000).toISOString();
      const since = await sys.app.inject({ method: 'GET', url: `/v1/jobs?since=${future}` });
      assert.deepEqual(since.json(), { jobs: [], nextCursor: null });

      for (const [query, field] of [
        ['state=done', 'state'],
        ['type=sql', 'type'],
        ['limit=0', 'limit'],
        ['limit=501', 'limit'],
        ['limit=ten', 'limit'],
        ['since=yesterday', 'since'],
        ['cursor=%21%21', 'cursor'],
        ['cursor=bm9wZQ', 'cursor'],
        ['errorCode=boom', 'errorCode'],
        ['colour=red', 'colour'],
      ] as const) {
        const res = await sys.app.inject({ method: 'GET', url: `/v1/jobs?${query}` });
        assert.equal(res.statusCode, 400, `${query}: ${res.body}`);
        assert.equal(res.json().error.code, 'QUARRY_ERR_VALIDATION', query);
        assert.equal(res.json().error.field, field, query);
      }

      // A record that expired is skipped and its entry removed.
      await raw.del(sys.client.keys.status(ids[0]!));
      const after = await sys.client.jobs.list({ limit: 500 });
      assert.equal(after.jobs.length, 6);
      assert.equal(await raw.zscore(sys.client.keys.history, ids[0]!), null, 'the stale entry is removed');
    } finally {
      await sys.close();
    }
  });

  test('a failed job runs again under the same id and completes; 409, 404 and 410 where due', async () => {
    const env = { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_DATA_DIR: dataDir };
    const idle = await startSystem({ env, worker: false });
    let worker: WorkerHandle | undefined;
    try {
      const file = path.join(dataDir, 'sales.csv');
      const spec = { dataset: { path: 'sales.csv' }, groupBy: ['g'], metrics: [{ op: 'sum', column: 'v' }] };
      // The file is away while the job runs: it fails (QUARRY_ERR_DATASET_NOT_FOUND, not retried).
      const handle = await idle.client.aggregate(spec);
      renameSync(file, `${file}.away`);
      // An index build whose source file was away: retried, it builds and goes live.
      const source = path.join(dataDir, 'notes.ndjson');
      writeFileSync(source, `${JSON.stringify({ id: '1', text: 'red apples' })}\n`);
      const build = await idle.client.index('notes', {
        source: { path: 'notes.ndjson' },
        idField: 'id',
        fields: ['text'],
      });
      renameSync(source, `${source}.away`);
      worker = await startWorker(idle.config, silentLogger());
      await worker.ready;
      const failed = await idle.client.waitForJob(handle.jobId, { timeoutMs: 20_000 });
      assert.equal(failed.state, 'failed', JSON.stringify(failed));
      const code = failed.error?.code;
      assert.ok(code === 'QUARRY_ERR_DATASET_NOT_FOUND' || code === 'QUARRY_ERR_DATASET_CHANGED', code);
      // The index build failed the same way.
      const buildFailed = await idle.client.waitForJob(build.jobId, { timeoutMs: 20_000 });
      assert.equal(buildFailed.state, 'failed', JSON.stringify(buildFailed));
      const listed = await idle.app.inject({ method: 'GET', url: '/v1/jobs?state=failed' });
      assert.deepEqual(
        listed.json().jobs.map((j: JobStatus) => j.jobId),
        [build.jobId, handle.jobId],
      );
      const failedIndexes = await idle.app.inject({ method: 'GET', url: '/v1/jobs?state=failed&type=index' });
      assert.deepEqual(
        failedIndexes.json().jobs.map((j: JobStatus) => j.jobId),
        [build.jobId],
      );
      renameSync(`${file}.away`, file);

      const retried = await idle.app.inject({ method: 'POST', url: `/v1/jobs/${handle.jobId}/retry` });
      assert.equal(retried.statusCode, 202, retried.body);
      assert.equal(retried.json().jobId, handle.jobId);
      assert.equal(retried.json().resultKey, handle.resultKey);
      assert.deepEqual(retried.json().links, {
        status: `/v1/jobs/${handle.jobId}`,
        result: `/v1/results/${handle.resultKey}`,
      });
      const done = await idle.client.waitForJob(handle.jobId, { timeoutMs: 20_000 });
      assert.equal(done.state, 'completed', JSON.stringify(done));
      assert.equal(done.error, null);
      assert.ok(await idle.client.result(handle.resultKey), 'the result is stored under the same key');

      const again = await idle.app.inject({ method: 'POST', url: `/v1/jobs/${handle.jobId}/retry` });
      assert.equal(again.statusCode, 409, again.body);
      assert.equal(again.json().error.code, 'QUARRY_ERR_JOB_NOT_RETRYABLE');
      renameSync(`${source}.away`, source);
      const rebuilt = await idle.app.inject({ method: 'POST', url: `/v1/jobs/${build.jobId}/retry` });
      assert.equal(rebuilt.statusCode, 202, rebuilt.body);
      assert.deepEqual(rebuilt.json(), {
        jobId: build.jobId,
        status: 'queued',
        links: { status: `/v1/jobs/${build.jobId}`, index: '/v1/indexes/notes' },
      });
      const built = await idle.client.waitForJob(build.jobId, { timeoutMs: 20_000 });
      assert.equal(built.state, 'completed', JSON.stringify(built));
      assert.equal((await idle.client.indexInfo('notes'))?.version, built.version);

      for (const id of ['agg-00000000000000000000000000000000', 'nope']) {
        const unknown = await idle.app.inject({ method: 'POST', url: `/v1/jobs/${id}/retry` });
        assert.equal(unknown.statusCode, 404, unknown.body);
        assert.equal(unknown.json().error.code, 'QUARRY_ERR_JOB_NOT_FOUND');
      }
    } finally {
      await worker?.close();
      await idle.close();
    }
  });

  test('a cancelled job is retried from its kept inline data; two retries at once make one run', async () => {
    const sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url }, worker: false });
    let worker: WorkerHandle | undefined;
    try {
      // A cancelled inline job whose data is gone cannot run again: 410, and its record stays.
      const lost = await sys.client.aggregate(inlineSpec(100));
      await sys.client.cancel(lost.jobId);
      await raw.del(sys.client.keys.inlineData(lost.jobId));
      const gone = await sys.app.inject({ method: 'POST', url: `/v1/jobs/${lost.jobId}/retry` });
      assert.equal(gone.statusCode, 410, gone.body);
      assert.equal(gone.json().error.code, 'QUARRY_ERR_RETRY_DATA_GONE');
      assert.equal((await sys.client.status(lost.jobId))?.state, 'cancelled');

      const handle = await sys.client.aggregate(inlineSpec(200));
      const cancelled = await sys.client.cancel(handle.jobId);
      assert.equal(cancelled.state, 'cancelled');
      const answers = await Promise.all(
        Array.from({ length: 4 }, () =>
          sys.app.inject({ method: 'POST', url: `/v1/jobs/${handle.jobId}/retry` }),
        ),
      );
      assert.deepEqual(
        answers.map((a) => a.statusCode).sort(),
        [202, 409, 409, 409],
        answers.map((a) => a.body).join('\n'),
      );
      const queue = sys.config.prefix;
      assert.equal(await raw.llen(`${queue}:aggregate:wait`), 1, 'one BullMQ job');
      assert.equal((await sys.client.status(handle.jobId))?.state, 'queued');
      worker = await startWorker(sys.config, silentLogger());
      await worker.ready;
      const done = await sys.client.waitForJob(handle.jobId, { timeoutMs: 20_000 });
      assert.equal(done.state, 'completed', JSON.stringify(done));
      assert.equal(done.attempts, 1);
      assert.deepEqual((await sys.client.result(handle.resultKey))?.rows, [{ g: 'a', sum_v: 200 }]);
    } finally {
      await worker?.close();
      await sys.close();
    }
  });

  test('activity counts the jobs that ended, by final state, with run-time percentiles', async () => {
    const sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url }, worker: false });
    let worker: WorkerHandle | undefined;
    try {
      const handles = await Promise.all([0, 1, 2].map((i) => sys.client.aggregate(inlineSpec(300 + i))));
      const queued = await sys.client.aggregate(inlineSpec(400));
      await sys.client.cancel(queued.jobId);
      worker = await startWorker(sys.config, silentLogger());
      await worker.ready;
      await Promise.all(handles.map((h) => h.wait({ timeoutMs: 20_000 })));
      const res = await sys.app.inject({ method: 'GET', url: '/v1/activity' });
      assert.equal(res.statusCode, 200, res.body);
      const activity = res.json();
      assert.equal(activity.windowS, sys.config.activityWindowS);
      const sum = (field: 'completed' | 'failed' | 'cancelled') =>
        activity.minutes.reduce((n: number, m: Record<string, number>) => n + m[field]!, 0);
      assert.equal(sum('completed'), 3);
      assert.equal(sum('failed'), 0);
      assert.equal(sum('cancelled'), 1);
      const withRuns = activity.minutes.filter((m: { runMs: unknown }) => m.runMs !== null);
      assert.ok(withRuns.length >= 1);
      for (const m of withRuns) {
        assert.ok(
          m.runMs.p50 > 0 && m.runMs.p50 <= m.runMs.p95 && m.runMs.p95 <= m.runMs.p99,
          JSON.stringify(m),
        );
      }
      assert.deepEqual(Object.keys(activity.depth).sort(), ['aggregate', 'index']);
      assert.deepEqual(activity.depth.index, { waiting: 0, active: 0, delayed: 0 });
      // Every job was taken (none waits); BullMQ may not have moved the last one out of active yet:
      // a record says completed before BullMQ records the completion.
      assert.equal(activity.depth.aggregate.waiting, 0);
      assert.equal(activity.depth.aggregate.delayed, 0);
      assert.ok(activity.depth.aggregate.active <= handles.length);
      // The raw counters, against docs/KEYS.md's formula applied to the records' own times.
      const expected = new Map<string, number>();
      for (const h of handles) {
        const r = await raw.hgetall(sys.client.keys.status(h.jobId));
        const ms = Number(r.finishedAt) - Number(r.startedAt);
        const bucket = ms <= 1 ? 0 : Math.min(63, Math.ceil(8 * Math.log10(ms)));
        expected.set(`b${bucket}`, (expected.get(`b${bucket}`) ?? 0) + 1);
      }
      const counted = new Map<string, number>();
      const minuteKeys = await raw.keys(`${sys.config.prefix}:activity:*`);
      for (const key of minuteKeys) {
        for (const [field, value] of Object.entries(await raw.hgetall(key))) {
          if (field.startsWith('b')) counted.set(field, (counted.get(field) ?? 0) + Number(value));
        }
        const ttl = await raw.ttl(key);
        assert.ok(ttl > 0 && ttl <= sys.config.activityWindowS + 60, `${key}: ttl ${ttl}`);
      }
      assert.deepEqual(counted, expected, 'one histogram count per run, in its bucket');
      const bad = await sys.app.inject({ method: 'GET', url: '/v1/activity?all=maybe' });
      assert.equal(bad.statusCode, 400);
      assert.equal(bad.json().error.field, 'all');
    } finally {
      await worker?.close();
      await sys.close();
    }
  });

  test('the index stays bounded: count cap, age trim of expired records, and a bounded scan per page', async () => {
    const sys = await startSystem({
      env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_HISTORY_MAX_JOBS: '100' },
      worker: false,
    });
    try {
      const keys = sys.client.keys;
      // Entries past the status TTL whose records are gone: the next enqueue removes them.
      const old = Date.now() - (sys.config.statusTtlS + 60) * 1000;
      const stale = Array.from({ length: 5 }, (_, i) => `agg-${String(i).padStart(32, 'f')}`);
      await raw.zadd(keys.history, ...stale.flatMap((id, i) => [old + i, id]));
      await sys.client.aggregate(inlineSpec(500));
      for (const id of stale) assert.equal(await raw.zscore(keys.history, id), null, `${id} trimmed by age`);
      assert.equal(await raw.zcard(keys.history), 1);

      for (let i = 0; i < 110; i++) await sys.client.aggregate(inlineSpec(600 + i));
      assert.equal(await raw.zcard(keys.history), 100, 'QUARRY_HISTORY_MAX_JOBS');
      assert.equal(await raw.zcard(keys.historyAll), 100);

      // A filter that matches only an old job: the first page stops after MAX_SCANNED_PER_PAGE
      // records with a cursor; paging on reaches it.
      const failedId = `agg-${'e'.repeat(32)}`;
      const base = Date.now() - 3_600_000;
      const seed = raw.pipeline();
      const record = (state: string, created: number) => ({
        type: 'aggregate',
        state,
        progress: '{"phase":"done","percent":100}',
        attempts: '1',
        createdAt: String(created),
        startedAt: String(created),
        finishedAt: String(created + 5),
        resultKey: 'e'.repeat(32),
        errorCode: state === 'failed' ? 'QUARRY_ERR_ENGINE' : '',
        errorMessage: state === 'failed' ? 'boom' : '',
        collection: '',
        version: '',
      });
      seed.hset(keys.status(failedId), record('failed', base));
      seed.zadd(keys.history, base, failedId);
      for (let i = 1; i <= 5200; i++) {
        const id = `agg-${String(i).padStart(32, '0')}`;
        seed.hset(keys.status(id), record('completed', base + i));
        seed.zadd(keys.history, base + i, id);
      }
      await seed.exec();
      const first = await sys.client.jobs.list({ state: 'failed' });
      assert.deepEqual(first.jobs, []);
      assert.ok(first.nextCursor !== null, 'a cursor: the scan stopped, not the history');
      const second = await sys.client.jobs.list({ state: 'failed', cursor: first.nextCursor });
      assert.deepEqual(
        second.jobs.map((j) => j.jobId),
        [failedId],
      );
      assert.equal(second.nextCursor, null);
    } finally {
      await sys.close();
    }
  });
});
