// What an operator found wrong with Quarry's logs, metrics and API document, each as the attack
// that showed it, against real processes (redis-server, the API app via inject, a worker and its
// metrics server over HTTP, workers/main.ts as a subprocess, promtool and Redocly as installed).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { buildApp } from '../../api/app.ts';
import { ACCESS_LOG_MESSAGE } from '../../api/request-log.ts';
import { createQuarry, type QuarryClient } from '../../producers/client.ts';
import { API_SCOPES, loadConfig } from '../../shared/config.ts';
import { QuarryError } from '../../shared/errors.ts';
import { QUEUE_NAMES } from '../../shared/keys.ts';
import { createLogger, resolveLogFormat, silentLogger } from '../../shared/logger.ts';
import { createMetrics, DROPPED_DEFAULT_METRICS, METRIC_NAMES } from '../../shared/metrics.ts';
import { tsExecArgv } from '../../shared/ts-runtime.ts';
import { failAttempt } from '../../workers/job-failure.ts';
import { jobScope } from '../../workers/job-scope.ts';
import { createQueueProbe } from '../../workers/queue-metrics.ts';
import { startWorker, type WorkerHandle } from '../../workers/worker.ts';
import { lintExposition, promtoolCheck } from '../helpers/prometheus-lint.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { testConfig, uniquePrefix } from '../helpers/system.ts';

const root = path.resolve(import.meta.dirname, '../..');
const KEY = 'ops-attack-key-0123456789';
const API_KEYS = JSON.stringify([{ key: KEY, tenant: 'acme', scopes: [...API_SCOPES] }]);
const auth = { authorization: `Bearer ${KEY}` };
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

type Line = Record<string, unknown>;

/** A pino destination that keeps each record, parsed: what a log collector would see. */
function collector(): { lines: Line[]; write(line: string): void } {
  const lines: Line[] = [];
  return { lines, write: (line: string) => void lines.push(JSON.parse(line) as Line) };
}

describe('attacks: operations (logs, metrics, API document)', () => {
  let redis: RedisServer;
  let client: QuarryClient;
  let app: FastifyInstance;
  let worker: WorkerHandle;
  const log = collector();

  before(async () => {
    redis = await startRedis();
    const config = testConfig({ QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_API_KEYS: API_KEYS });
    const logger = createLogger({ level: 'debug', name: 'quarry-api', destination: log });
    client = createQuarry({ config, logger, failFast: true });
    await client.ready();
    app = buildApp({ config, client, registry: await client.indexRegistry(), logger });
    // A route that faults the way a bug would: what a 500 must look like in the log.
    app.get('/test/fault', { config: { scope: 'public' } }, async () => {
      throw new TypeError('cannot read properties of undefined');
    });
    await app.ready();
    worker = await startWorker(config, silentLogger());
    await worker.ready;
  });

  after(async () => {
    await app?.close();
    await client?.close();
    await worker?.close();
    await redis?.stop();
  });

  test('numeric levels and epoch times: every record says "level":"info" and an ISO time, in json and pretty', () => {
    const json = collector();
    createLogger({ level: 'info', name: 'n', format: 'json', destination: json }).info({ a: 1 }, 'hello');
    assert.equal(json.lines[0]?.level, 'info');
    assert.match(String(json.lines[0]?.time), ISO_TIME);

    const pretty: string[] = [];
    const logger = createLogger({
      level: 'info',
      name: 'quarry-api',
      format: 'pretty',
      destination: { write: (line: string) => void pretty.push(line) },
    });
    logger.info({ route: '/v1/jobs/:jobId', tenant: 'acme' }, 'request');
    logger.error({ err: new Error('engine crashed') }, 'job attempt failed');
    assert.match(
      pretty[0]!,
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}quarry-api: request route=\/v1\/jobs\/:jobId tenant=acme\n$/,
    );
    assert.match(pretty[1]!, /^\S+ ERROR quarry-api: job attempt failed\n {4}Error: engine crashed\n {8}at /);

    // Pretty at a terminal, JSON into a pipe; QUARRY_LOG_FORMAT overrides, and is checked.
    assert.equal(resolveLogFormat(undefined, true), 'pretty');
    assert.equal(resolveLogFormat(undefined, false), 'json');
    assert.equal(resolveLogFormat('json', true), 'json');
    assert.equal(loadConfig({ QUARRY_LOG_FORMAT: 'pretty' }).logFormat, 'pretty');
    assert.throws(
      () => loadConfig({ QUARRY_LOG_FORMAT: 'colour' }),
      (e: unknown) =>
        e instanceof QuarryError && e.code === 'QUARRY_ERR_CONFIG' && e.field === 'QUARRY_LOG_FORMAT',
    );
  });

  test('12 lines over 150 requests: each request writes one access line (route pattern, status, ms, tenant, id echoed in x-request-id)', async () => {
    const before = log.lines.length;
    const n = 30;
    const answers: Awaited<ReturnType<typeof app.inject>>[] = [];
    for (let i = 0; i < n; i++) {
      answers.push(
        await app.inject({ method: 'GET', url: `/v1/jobs/agg-${'0'.repeat(31)}${i % 10}`, headers: auth }),
      );
    }
    const access = log.lines.slice(before).filter((l) => l.msg === ACCESS_LOG_MESSAGE);
    assert.equal(access.length, n, 'one access line per request');
    for (const [i, line] of access.entries()) {
      const res = answers[i]!;
      assert.equal(res.statusCode, 404);
      assert.equal(line.level, 'info');
      assert.equal(line.method, 'GET');
      assert.equal(line.route, '/v1/jobs/:jobId', 'the pattern, not the URL');
      assert.equal(line.status, 404);
      assert.equal(line.tenant, 'acme');
      assert.equal(line.code, 'QUARRY_ERR_JOB_NOT_FOUND');
      assert.equal(typeof line.ms, 'number');
      assert.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/);
      assert.equal(line.reqId, res.headers['x-request-id'], 'the id the client got is the one logged');
    }
    assert.equal(new Set(access.map((l) => l.reqId)).size, n, 'ids are unique');
    // A not-found is an expected outcome: nothing of that request carries a stack.
    assert.ok(!log.lines.slice(before).some((l) => l.err !== undefined), 'no stack for a 404');
  });

  test('x-request-id: a sane incoming id is echoed and logged; a hostile one (spaces, newline, 2 KB) is replaced', async () => {
    const sane = await app.inject({
      method: 'GET',
      url: '/healthz',
      headers: { 'x-request-id': 'lb-7f3a:42' },
    });
    assert.equal(sane.headers['x-request-id'], 'lb-7f3a:42');
    assert.ok(
      log.lines.some((l) => l.msg === ACCESS_LOG_MESSAGE && l.reqId === 'lb-7f3a:42' && l.level === 'debug'),
    );
    for (const hostile of ['a b', 'x\u2028y"}', 'x'.repeat(2048)]) {
      const res = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': hostile } });
      assert.notEqual(res.headers['x-request-id'], hostile);
      assert.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    }
    // Answers given before any route runs (no key, no route) carry the id too.
    const unauthorized = await app.inject({ method: 'GET', url: '/v1/schedules' });
    assert.equal(unauthorized.statusCode, 401);
    assert.ok(unauthorized.headers['x-request-id']);
    const unmatched = await app.inject({ method: 'GET', url: '/wp-login.php', headers: auth });
    assert.equal(unmatched.statusCode, 404);
    assert.ok(
      log.lines.some(
        (l) => l.msg === ACCESS_LOG_MESSAGE && l.route === 'unmatched' && l.url === '/wp-login.php',
      ),
    );
  });

  test('validation errors logged as warnings with stacks: a 400 is info/debug without a stack; a 500 is error with it', async () => {
    const before = log.lines.length;
    const bad = await app.inject({
      method: 'POST',
      url: '/v1/aggregations',
      headers: { ...auth, 'content-type': 'application/json' },
      payload: { dataset: { records: [{ a: 1 }] }, metrics: [{ op: 'sum' }] },
    });
    assert.equal(bad.statusCode, 400);
    const refused = log.lines.slice(before);
    assert.ok(refused.length >= 1);
    for (const line of refused) {
      assert.ok(['debug', 'info'].includes(String(line.level)), `a 400 logs at ${line.level}`);
      assert.equal(line.err, undefined, 'no stack for bad input');
    }

    const mark = log.lines.length;
    const fault = await app.inject({ method: 'GET', url: '/test/fault' });
    assert.equal(fault.statusCode, 500);
    assert.equal(JSON.parse(fault.body).error.code, 'QUARRY_ERR_INTERNAL');
    const faultLines = log.lines.slice(mark);
    const error = faultLines.find((l) => l.level === 'error');
    assert.ok(error, 'a fault is logged at error');
    assert.match(
      String((error.err as { stack?: string }).stack),
      /TypeError: cannot read properties[\s\S]*\n\s+at /,
    );
    assert.equal(error.reqId, fault.headers['x-request-id'], 'the error line joins the access line');
    assert.ok(
      faultLines.some(
        (l) => l.msg === ACCESS_LOG_MESSAGE && l.status === 500 && l.code === 'QUARRY_ERR_INTERNAL',
      ),
    );
  });

  test('worker failures all warn with stacks: a user-input failure is info without a stack; an engine crash is error with it', async () => {
    const queueRedis = new Redis(redis.url);
    try {
      const config = testConfig({ QUARRY_QUEUE_REDIS_URL: redis.url });
      const deps = { ...jobScope(config, queueRedis, undefined), queueRedis };
      const job = { id: `agg-${'1'.repeat(32)}`, attemptsMade: 0, opts: { attempts: 3 } };
      const lines = collector();
      const logger = createLogger({ level: 'debug', name: 'quarry-worker', destination: lines });
      type FailArgs = Parameters<typeof failAttempt>;
      const bad = new QuarryError('QUARRY_ERR_SPEC_UNKNOWN_COLUMN', 'metrics.0.column: no column "x"');
      await failAttempt(deps, job as unknown as FailArgs[1], bad, logger);
      await failAttempt(deps, job as unknown as FailArgs[1], new RangeError('duckdb: out of bounds'), logger);
      const [user, crash] = lines.lines.filter((l) => l.msg === 'job attempt failed');
      assert.equal(user?.level, 'info');
      assert.equal(user?.code, 'QUARRY_ERR_SPEC_UNKNOWN_COLUMN');
      assert.equal(user?.err, undefined, 'no stack for bad input');
      assert.equal(crash?.level, 'error');
      assert.equal(crash?.code, 'QUARRY_ERR_ENGINE');
      assert.match(
        String((crash?.err as { stack?: string } | undefined)?.stack),
        /RangeError: duckdb: out of bounds\n\s+at /,
      );
    } finally {
      queueRedis.disconnect();
    }
  });

  test("BullMQ's plain-text warnings between the JSON lines: a worker on an evicting Redis prints only JSON, the warning included", {
    timeout: 60_000,
  }, async () => {
    const evicting = await startRedis(['--maxmemory', '64mb', '--maxmemory-policy', 'allkeys-lru']);
    let child: ChildProcess | undefined;
    try {
      child = spawn(process.execPath, [...tsExecArgv(), 'workers/main.ts'], {
        cwd: root,
        env: {
          ...process.env,
          QUARRY_QUEUE_REDIS_URL: evicting.url,
          QUARRY_CACHE_REDIS_URL: evicting.url,
          QUARRY_PREFIX: uniquePrefix(),
          QUARRY_WORKER_METRICS_PORT: '0',
          QUARRY_DUCKDB_THREADS: '1',
          QUARRY_LOG_LEVEL: 'info',
          QUARRY_LOG_FORMAT: '',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => {
        stderr += chunk;
      });
      const exited = new Promise<number | null>((resolve) => child?.once('exit', (code) => resolve(code)));
      // Ready, and BullMQ's own eviction warning seen (it comes from the worker's connection).
      await new Promise<void>((resolve, reject) => {
        child?.stdout?.on('data', (chunk: Buffer) => {
          stdout += chunk;
          if (stdout.includes('"worker ready"') && stdout.includes('IMPORTANT! Eviction policy')) resolve();
        });
        // Ready without the warning in the log means it went elsewhere (stderr): fail, not hang.
        child?.stderr?.on('data', () => {
          if (stderr.includes('Eviction policy')) reject(new Error(`printed outside the log: ${stderr}`));
        });
        void exited.then((code) => reject(new Error(`worker exited (${code}): ${stderr.slice(-2000)}`)));
      });
      // SIGTERM may land before main.ts installs its handler (it logs ready first): then the
      // default action ends it. Either way the process is gone and its output complete.
      child.kill('SIGTERM');
      await exited;
      const lines = stdout.split('\n').filter((l) => l !== '');
      for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `not a JSON record: ${line}`);
      const records = lines.map((l) => JSON.parse(l) as Line);
      const bull = records.find((r) => String(r.msg).startsWith('IMPORTANT! Eviction policy'));
      assert.equal(bull?.level, 'warn');
      assert.equal(bull?.source, 'console');
      assert.ok(records.every((r) => typeof r.level === 'string' && ISO_TIME.test(String(r.time))));
      assert.ok(!stderr.includes('Eviction policy'), 'nothing of it on stderr');
    } finally {
      if (child?.exitCode === null) child.kill('SIGKILL');
      await evicting.stop();
    }
  });

  test('promtool check metrics exited 3 (gauges named _total): the API and the worker pass promtool and the in-repo lint', async () => {
    const api = await app.inject({ method: 'GET', url: '/metrics', headers: auth });
    assert.equal(api.statusCode, 200);
    assert.ok(worker.metricsUrl);
    const res = await fetch(worker.metricsUrl);
    assert.equal(res.status, 200);
    const workerText = await res.text();
    for (const [who, text] of [
      ['api', api.body],
      ['worker', workerText],
    ] as const) {
      assert.deepEqual(lintExposition(text), [], `${who}: in-repo lint`);
      for (const dropped of DROPPED_DEFAULT_METRICS)
        assert.ok(!text.includes(`${dropped} `), `${who}: ${dropped}`);
      const promtool = promtoolCheck(text);
      if (promtool !== null) assert.equal(promtool.status, 0, `${who}: promtool says\n${promtool.output}`);
    }
    // What operators alert on is there: queue depth by state and oldest wait, per queue.
    for (const queue of Object.values(QUEUE_NAMES)) {
      for (const state of ['waiting', 'active', 'delayed']) {
        assert.match(
          workerText,
          new RegExp(`^${METRIC_NAMES.queueJobs}\\{queue="${queue}",state="${state}"\\} \\d+$`, 'm'),
        );
      }
      assert.match(
        workerText,
        new RegExp(`^${METRIC_NAMES.queueOldestWaitingAge}\\{queue="${queue}"\\} `, 'm'),
      );
    }
    assert.match(workerText, new RegExp(`^# TYPE ${METRIC_NAMES.jobsFailed} counter$`, 'm'));
    assert.match(workerText, new RegExp(`^# TYPE ${METRIC_NAMES.jobStalls} counter$`, 'm'));
    assert.match(api.body, new RegExp(`^${METRIC_NAMES.indexesLoaded} 0$`, 'm'));
  });

  test('the metrics checks can fail: the old default gauges are rejected by the lint and by promtool', () => {
    const old =
      '# HELP nodejs_active_handles_total Total number of active handles.\n# TYPE nodejs_active_handles_total gauge\nnodejs_active_handles_total 3\n';
    assert.ok(lintExposition(old).some((p) => p.includes('must not end in _total')));
    assert.ok(
      lintExposition('# HELP x_ms Time.\n# TYPE x_ms gauge\nx_ms 1\n').some((p) => p.includes('base units')),
    );
    assert.ok(lintExposition('# TYPE jobs counter\njobs 1\n').length >= 2, 'no HELP, no _total');
    assert.ok(lintExposition('').length > 0, 'an empty scrape is not clean');
    const promtool = promtoolCheck(old);
    if (promtool !== null) assert.notEqual(promtool.status, 0);
    // The registry as prom-client builds it by default still has them: the drop is what fixes it.
    assert.ok(!createMetrics('api').registry.getSingleMetric(DROPPED_DEFAULT_METRICS[0]));
  });

  test('queue depth and oldest wait come from Redis: one job waiting in a queue no worker takes', async () => {
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const prefix = uniquePrefix();
    const queue = new Queue('aggregate', { connection, prefix });
    const probe = createQueueProbe({ connection, prefix, queues: ['aggregate', 'index'] });
    try {
      const added = await queue.add('x', {}, { timestamp: Date.now() - 5000 });
      await queue.add('later', {}, { delay: 60_000 });
      assert.ok(added.id);
      const [aggregate, index] = await probe.snapshot();
      assert.deepEqual(aggregate?.jobs, { waiting: 1, active: 0, delayed: 1 });
      assert.ok(aggregate!.oldestWaitingAgeS >= 5, `oldest waited ${aggregate?.oldestWaitingAgeS}s`);
      assert.deepEqual(index, {
        queue: 'index',
        jobs: { waiting: 0, active: 0, delayed: 0 },
        oldestWaitingAgeS: 0,
      });
    } finally {
      await probe.close();
      await queue.close();
      connection.disconnect();
    }
  });

  test('Redocly found 17 errors (no security scheme, no 401/403/422/429/500, anonymous schemas): the document lints clean', async () => {
    const res = await app.inject({ method: 'GET', url: '/openapi.json' });
    const doc = JSON.parse(res.body);
    assert.deepEqual(doc.components.securitySchemes.apiKey, {
      type: 'http',
      scheme: 'bearer',
      description: doc.components.securitySchemes.apiKey.description,
    });
    for (const name of [
      'AggregationSpec',
      'JobStatus',
      'ResultEnvelope',
      'SearchResult',
      'Error',
      'IndexInfo',
    ]) {
      assert.ok(doc.components.schemas[name], `named schema ${name}`);
    }
    assert.ok(doc.servers?.length > 0 && doc.info.license?.name);
    const operations = Object.values(
      doc.paths as Record<string, Record<string, Record<string, unknown>>>,
    ).flatMap((ops) => Object.values(ops));
    assert.equal(
      new Set(operations.map((o) => o.operationId)).size,
      operations.length,
      'unique operationIds',
    );
    for (const op of operations) {
      const statuses = Object.keys(op.responses as object);
      const isPublic = Array.isArray(op.security) && op.security.length === 0;
      const required = isPublic ? ['500'] : ['401', '403', '429', '500'];
      for (const status of required)
        assert.ok(statuses.includes(status), `${op.operationId} answers ${status}`);
      if (!isPublic) assert.deepEqual(op.security, [{ apiKey: [] }]);
    }
    const aggregate = doc.paths['/v1/aggregations'].post.responses;
    for (const status of ['400', '404', '408', '409', '413', '415', '422', '503'])
      assert.ok(aggregate[status], status);
    assert.deepEqual(doc.paths['/healthz'].get.security, []);

    const dir = mkdtempSync(path.join(os.tmpdir(), 'quarry-openapi-'));
    try {
      writeFileSync(path.join(dir, 'openapi.json'), res.body);
      const lint = spawnSync(
        process.execPath,
        [path.join(root, 'node_modules/@redocly/cli/bin/cli.js'), 'lint', '--format', 'json', 'openapi.json'],
        { cwd: dir, encoding: 'utf8', timeout: 120_000, env: { ...process.env, REDOCLY_TELEMETRY: 'off' } },
      );
      const report = JSON.parse(lint.stdout.slice(lint.stdout.indexOf('{'))) as {
        totals: { errors: number; warnings: number };
        problems: { ruleId: string; severity: string; message: string }[];
      };
      const errors = report.problems.filter((p) => p.severity === 'error');
      assert.deepEqual(errors, [], 'Redocly recommended rules: no errors');
      assert.equal(report.totals.errors, 0);
      assert.equal(lint.status, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
