// OpenTelemetry traces end to end: the API and a worker run as their own processes (their real
// entrypoints) exporting to a loopback OTLP/HTTP receiver in http/json. Requests carry a W3C
// `traceparent`; after a graceful stop (which flushes the spans), each request's trace is checked
// whole: one trace id, each span's parent, names, kinds and attributes, across both processes.
// With the OTLP variables unset (or OTEL_SDK_DISABLED=true) nothing is exported and jobs carry
// no trace context.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { silentLogger } from '../../shared/logger.ts';
import { startTracing, traced, tracer } from '../../shared/tracing.ts';
import { tracingConfig } from '../../shared/tracing-config.ts';
import { tsExecArgv } from '../../shared/ts-runtime.ts';
import { type ReceivedSpan, startOtlpReceiver } from '../helpers/otlp-receiver.ts';
import { freePort, type RedisServer, startRedis } from '../helpers/redis.ts';
import { uniquePrefix } from '../helpers/system.ts';
import { spawnWorker, type WorkerProcess } from '../helpers/worker-process.ts';

const root = path.resolve(import.meta.dirname, '../..');
const KIND = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 } as const;

interface ApiProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly ready: Promise<void>;
  readonly exited: Promise<number | null>;
}

function spawnApi(env: Record<string, string>, port: number): ApiProcess {
  const child = spawn(process.execPath, [...tsExecArgv(), 'api/main.ts'], {
    cwd: root,
    env: { ...process.env, ...env, QUARRY_API_HOST: '127.0.0.1', QUARRY_API_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    let pending = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      pending += chunk;
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const part of parts) if (/Server listening/.test(part)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the API exited (${code}): ${stderr.slice(-2000)}`)));
  });
  ready.catch(() => undefined);
  return { child, url: `http://127.0.0.1:${port}`, ready, exited };
}

/** SIGTERM: the graceful path, which exports the buffered spans before exiting. */
async function stop(p: { child: ChildProcess; exited: Promise<unknown> } | undefined): Promise<void> {
  if (p === undefined) return;
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  await p.exited;
}

function traceparent(): { header: string; traceId: string; spanId: string } {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { header: `00-${traceId}-${spanId}-01`, traceId, spanId };
}

async function call(url: string, method: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** The one span of `trace` named `name` (asserting there is exactly one). */
function only(spans: ReceivedSpan[], traceId: string, name: string): ReceivedSpan {
  const found = spans.filter((s) => s.traceId === traceId && s.name === name);
  const names = spans.filter((s) => s.traceId === traceId).map((s) => `${s.service}:${s.name}`);
  assert.equal(found.length, 1, `one "${name}" in trace ${traceId}; it has ${names.join(', ')}`);
  return found[0]!;
}

function childOf(span: ReceivedSpan, parent: ReceivedSpan | string, what: string): void {
  const id = typeof parent === 'string' ? parent : parent.spanId;
  assert.equal(span.parentSpanId, id, `${what}: "${span.name}" should be a child of ${id}`);
}

async function waitForState(api: string, jobId: string, states: string[]): Promise<string> {
  // Bounded polling of the record: the job may end before a subscription would be up.
  for (let i = 0; i < 600; i++) {
    const { body } = await call(`${api}/v1/jobs/${jobId}`, 'GET');
    if (states.includes(String(body.state))) return String(body.state);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`job ${jobId} never reached ${states.join('/')}`);
}

describe('OpenTelemetry traces', () => {
  let redis: RedisServer;
  let dataDir: string;
  before(async () => {
    redis = await startRedis();
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-otel-'));
  });
  after(async () => {
    await redis?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('a request, its job in the worker and an index build form one trace each', async () => {
    const receiver = await startOtlpReceiver();
    const env = {
      QUARRY_QUEUE_REDIS_URL: redis.url,
      QUARRY_PREFIX: uniquePrefix(),
      QUARRY_DATA_DIR: dataDir,
      QUARRY_LOG_LEVEL: 'info',
      QUARRY_LOG_FORMAT: 'json',
      QUARRY_API_KEYS: '',
      QUARRY_WORKER_METRICS_PORT: '0',
      QUARRY_DUCKDB_THREADS: '1',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-otlp-token=s3cr%3Dt',
    };
    const api = spawnApi(env, await freePort());
    let worker: WorkerProcess | undefined;
    try {
      await api.ready;
      // A file job enqueued while no worker runs, then changed: its attempt fails (to retry it).
      writeFileSync(path.join(dataDir, 'sales.csv'), 'region,amount\neu,1\nus,2\n');
      const first = traceparent();
      const failing = await call(
        `${api.url}/v1/aggregations`,
        'POST',
        { dataset: { path: 'sales.csv' }, groupBy: ['region'], metrics: [{ op: 'count' }] },
        { traceparent: first.header },
      );
      assert.equal(failing.status, 202, JSON.stringify(failing.body));
      writeFileSync(path.join(dataDir, 'sales.csv'), 'region,amount\neu,1\nus,2\nap,3\n');

      worker = spawnWorker(env);
      await worker.ready;
      const failedId = String(failing.body.jobId);
      assert.equal(await waitForState(api.url, failedId, ['failed', 'completed']), 'failed');

      const agg = traceparent();
      const done = await call(
        `${api.url}/v1/aggregations?wait=20000`,
        'POST',
        {
          dataset: {
            records: [
              { origin: 'LAX', delay: 5 },
              { origin: 'SFO', delay: 12 },
            ],
          },
          groupBy: ['origin'],
          metrics: [{ op: 'count' }, { op: 'avg', column: 'delay' }],
          engine: 'duckdb',
        },
        { traceparent: agg.header },
      );
      assert.equal(done.status, 200, JSON.stringify(done.body));
      const resultKey = String(done.body.resultKey);

      const idx = traceparent();
      const built = await call(
        `${api.url}/v1/indexes/otel-docs?wait=20000`,
        'POST',
        {
          documents: [
            { id: 'a', title: 'trace the request' },
            { id: 'b', title: 'spans from the worker' },
          ],
          idField: 'id',
          fields: ['title'],
          store: ['title'],
        },
        { traceparent: idx.header },
      );
      assert.equal(built.status, 200, JSON.stringify(built.body));
      const version = Number((built.body.index as { version: number }).version);

      const batch = traceparent();
      const batched = await call(
        `${api.url}/v1/aggregations/batch`,
        'POST',
        { items: [{ dataset: { records: [{ k: 'x', n: 3 }] }, metrics: [{ op: 'sum', column: 'n' }] }] },
        { traceparent: batch.header },
      );
      assert.equal(batched.status, 200, JSON.stringify(batched.body));
      const batchJob = String((batched.body.items as { body: { jobId: string } }[])[0]!.body.jobId);
      assert.equal(await waitForState(api.url, batchJob, ['completed', 'failed']), 'completed');

      const again = traceparent();
      const retried = await call(`${api.url}/v1/jobs/${failedId}/retry`, 'POST', undefined, {
        traceparent: again.header,
      });
      assert.equal(retried.status, 202, JSON.stringify(retried.body));
      assert.equal(await waitForState(api.url, failedId, ['failed', 'completed']), 'failed');

      await Promise.all([stop(api), stop(worker)]);
      const spans = receiver.spans;

      // The export itself: OTLP/HTTP JSON to /v1/traces with the configured (decoded) header.
      assert.ok(receiver.requests.length > 0);
      for (const r of receiver.requests) {
        assert.equal(r.path, '/v1/traces');
        assert.match(String(r.headers['content-type']), /application\/json/);
        assert.equal(r.headers['x-otlp-token'], 's3cr=t');
      }

      // Aggregation: request → enqueue → wait → attempt → engine, store.
      const request = only(spans, agg.traceId, 'POST /v1/aggregations');
      assert.equal(request.service, 'quarry-api');
      assert.equal(request.kind, KIND.server);
      childOf(request, agg.spanId, 'the caller’s span is the request’s parent');
      assert.equal(request.attributes['http.request.method'], 'POST');
      assert.equal(request.attributes['http.route'], '/v1/aggregations');
      assert.equal(request.attributes['http.response.status_code'], 200);
      const send = only(spans, agg.traceId, 'send aggregate');
      assert.equal(send.service, 'quarry-api');
      assert.equal(send.kind, KIND.producer);
      childOf(send, request, 'enqueue');
      assert.equal(send.attributes['messaging.system'], 'bullmq');
      assert.equal(send.attributes['messaging.destination.name'], 'aggregate');
      assert.equal(send.attributes['quarry.result_key'], resultKey);
      const jobId = send.attributes['quarry.job.id'];
      assert.match(String(jobId), /^agg-/);
      assert.equal(send.attributes['messaging.message.id'], jobId);
      const wait = only(spans, agg.traceId, 'wait aggregate');
      assert.equal(wait.service, 'quarry-worker');
      childOf(wait, send, 'queue wait');
      assert.equal(wait.attributes['quarry.job.id'], jobId);
      assert.ok(wait.startNs >= send.startNs, 'the wait starts at the enqueue');
      const attempt = only(spans, agg.traceId, 'process aggregate');
      assert.equal(attempt.service, 'quarry-worker');
      assert.equal(attempt.kind, KIND.consumer);
      childOf(attempt, wait, 'attempt');
      assert.equal(attempt.attributes['quarry.attempt'], 1);
      assert.equal(attempt.attributes['messaging.operation.type'], 'process');
      assert.equal(attempt.statusCode, 0);
      const engine = only(spans, agg.traceId, 'engine duckdb');
      childOf(engine, attempt, 'engine');
      assert.equal(engine.attributes['quarry.engine'], 'duckdb');
      assert.equal(engine.attributes['quarry.rows'], 2);
      const store = only(spans, agg.traceId, 'store result');
      childOf(store, attempt, 'store');
      assert.equal(store.kind, KIND.client);
      assert.equal(store.attributes['db.system'], 'redis');
      assert.equal(store.attributes['quarry.result_key'], resultKey);
      assert.ok(store.startNs > engine.startNs, 'the result is stored after the engine ran');

      // Index build: request → enqueue → wait → attempt → build, store; then the API loads it.
      const indexRequest = only(spans, idx.traceId, 'POST /v1/indexes/:collection');
      childOf(indexRequest, idx.spanId, 'index request');
      const indexSend = only(spans, idx.traceId, 'send index');
      childOf(indexSend, indexRequest, 'index enqueue');
      assert.equal(indexSend.attributes['quarry.collection'], 'otel-docs');
      const indexWait = only(spans, idx.traceId, 'wait index');
      childOf(indexWait, indexSend, 'index wait');
      const indexAttempt = only(spans, idx.traceId, 'process index');
      childOf(indexAttempt, indexWait, 'index attempt');
      const build = only(spans, idx.traceId, 'build index');
      childOf(build, indexAttempt, 'build');
      assert.equal(build.service, 'quarry-worker');
      assert.equal(build.attributes['quarry.collection'], 'otel-docs');
      assert.equal(build.attributes['quarry.version'], version);
      const publish = only(spans, idx.traceId, 'store index');
      childOf(publish, indexAttempt, 'index store');
      assert.equal(publish.attributes['quarry.index.outcome'], 'live');
      const load = only(spans, idx.traceId, 'load index');
      assert.equal(load.service, 'quarry-api');
      childOf(load, indexRequest, 'the API loads the version it answers with');
      assert.equal(load.attributes['quarry.version'], version);

      // A batch's jobs join the batch request's trace (no send span of their own).
      const batchRequest = only(spans, batch.traceId, 'POST /v1/aggregations/batch');
      const batchWait = only(spans, batch.traceId, 'wait aggregate');
      childOf(batchWait, batchRequest, 'a batch job’s wait');
      assert.equal(batchWait.attributes['quarry.job.id'], batchJob);
      childOf(only(spans, batch.traceId, 'process aggregate'), batchWait, 'a batch job’s attempt');

      // The failed job: its attempt recorded the error; its retry runs in the retry's trace,
      // linked to the enqueue of the first one.
      const firstSend = only(spans, first.traceId, 'send aggregate');
      const firstAttempt = only(spans, first.traceId, 'process aggregate');
      assert.equal(firstAttempt.statusCode, 2);
      assert.equal(firstAttempt.attributes['error.type'], 'QUARRY_ERR_DATASET_CHANGED');
      const retryRequest = only(spans, again.traceId, 'POST /v1/jobs/:jobId/retry');
      const retryWait = only(spans, again.traceId, 'wait aggregate');
      childOf(retryWait, retryRequest, 'the retry’s wait');
      const retryAttempt = only(spans, again.traceId, 'process aggregate');
      childOf(retryAttempt, retryWait, 'the retry’s attempt');
      assert.deepEqual(retryAttempt.links, [{ traceId: first.traceId, spanId: firstSend.spanId }]);
    } finally {
      await stop(api);
      await stop(worker);
      await receiver.close();
    }
  });

  test('with the OTLP variables unset, or the SDK disabled, nothing is exported or carried', async () => {
    const receiver = await startOtlpReceiver();
    const base = {
      QUARRY_QUEUE_REDIS_URL: redis.url,
      QUARRY_DATA_DIR: dataDir,
      QUARRY_API_KEYS: '',
      QUARRY_LOG_LEVEL: 'info',
      QUARRY_LOG_FORMAT: 'json',
      QUARRY_WORKER_METRICS_PORT: '0',
      QUARRY_DUCKDB_THREADS: '1',
      // Everything but an endpoint: still off.
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: 'should-not-export',
    };
    const admin = new Redis(redis.url);
    try {
      const variants: Record<string, string>[] = [
        {},
        { OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url },
      ];
      for (const extra of variants) {
        const prefix = uniquePrefix();
        const env = { ...base, ...extra, QUARRY_PREFIX: prefix };
        const api = spawnApi(env, await freePort());
        let worker: WorkerProcess | undefined;
        try {
          await api.ready;
          const queued = await call(
            `${api.url}/v1/aggregations`,
            'POST',
            { dataset: { records: [{ a: 1 }, { a: 2 }] }, metrics: [{ op: 'sum', column: 'a' }] },
            { traceparent: traceparent().header },
          );
          assert.equal(queued.status, 202, JSON.stringify(queued.body));
          // Queued, no worker yet: the record keeps the job's payload, without a trace context.
          const payload = await admin.hget(`${prefix}:job:${queued.body.jobId}`, 'payload');
          assert.ok(payload, 'the queued record keeps its payload');
          assert.equal(JSON.parse(payload).trace, undefined);
          worker = spawnWorker(env);
          await worker.ready;
          assert.equal(
            await waitForState(api.url, String(queued.body.jobId), ['completed', 'failed']),
            'completed',
          );
          assert.equal(
            worker.lines.some((l) => l.msg === 'exporting traces'),
            false,
            'the worker started no exporter',
          );
        } finally {
          await Promise.all([stop(api), stop(worker)]);
        }
      }
      assert.equal(receiver.requests.length, 0, 'nothing reached the receiver');
    } finally {
      admin.disconnect();
      await receiver.close();
    }
  });

  test('http/protobuf (the default protocol) exports too; shutdown flushes and unregisters', async () => {
    const receiver = await startOtlpReceiver();
    try {
      const config = tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
      const traces = await startTracing(config, { serviceName: 'quarry-probe', logger: silentLogger() });
      assert.ok(traces !== undefined && tracer() === traces);
      const carried = await traced('probe-parent', {}, () =>
        traced('probe-child', {}, async () => traces.jobTrace()),
      );
      assert.match(String(carried?.parent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      await traces.shutdown();
      assert.equal(tracer(), undefined);
      assert.equal(receiver.requests.length, 1, 'one batch, sent at shutdown');
      const [sent] = receiver.requests;
      assert.equal(sent!.path, '/v1/traces');
      assert.equal(sent!.headers['content-type'], 'application/x-protobuf');
      for (const name of ['probe-parent', 'probe-child', 'quarry-probe']) {
        assert.ok(sent!.body.includes(name), `the protobuf body names ${name}`);
      }
      // The child's trace context went out with the export: its trace id is in the body.
      const traceId = Buffer.from(String(carried?.parent).split('-')[1]!, 'hex');
      assert.ok(sent!.body.includes(traceId));
    } finally {
      await receiver.close();
    }
  });
});
