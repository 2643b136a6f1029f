// Operations end to end: after one aggregation (a miss, then a hit) and one index build through
// the HTTP API, the API's /metrics and the worker's own metrics endpoint (scraped over real HTTP)
// report them; the bull-board dashboard lists both queues; /openapi.json is an OpenAPI 3 document
// whose paths cover the README's route table and whose request schemas are the zod ones.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { buildApp } from '../../api/app.ts';
import { createQuarry } from '../../producers/client.ts';
import { AggregationSpecSchema } from '../../shared/aggregation.ts';
import { QUEUE_NAMES } from '../../shared/keys.ts';
import { silentLogger } from '../../shared/logger.ts';
import { METRIC_NAMES } from '../../shared/metrics.ts';
import { freePort, type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem, testConfig } from '../helpers/system.ts';

const root = path.resolve(import.meta.dirname, '../..');

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text format → samples (enough of the format for these assertions). */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    assert.ok(match, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key!] = value!;
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The value of the one sample with this name and (at least) these labels; 0 when absent. */
function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value ?? 0;
}

/** `METHOD /path` of every route in README.md's HTTP API table, in OpenAPI's `{param}` form. */
function readmeRoutes(): string[] {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## HTTP API'));
  const table = section.slice(0, section.indexOf('\n## ', 1));
  const routes = new Set<string>();
  for (const line of table.split('\n').filter((l) => l.startsWith('| `'))) {
    const firstCell = line.split(' | ')[0]!;
    for (const [, method, url] of firstCell.matchAll(/`(GET|POST|PUT|PATCH|DELETE) (\/[^`?[\s]*)/g)) {
      routes.add(`${method} ${url!.replace(/:(\w+)/g, '{$1}')}`);
    }
  }
  return [...routes];
}

/** Every op of the aggregation spec's metric union, read from the zod schema itself. */
function zodMetricOps(): string[] {
  return AggregationSpecSchema.shape.metrics.element.options.flatMap((option) => {
    const op = option.shape.op;
    return 'options' in op ? [...(op.options as string[])] : [...op.values];
  });
}

/** Resolves when BullMQ reports the job finished: its processor (and its metrics) are done. */
async function bullFinished(
  redisUrl: string,
  prefix: string,
  queue: string,
  jobId: string,
): Promise<'completed' | 'failed'> {
  const { port } = new URL(redisUrl);
  // From the start of the events stream, so a completion before we listen still counts.
  const events = new QueueEvents(queue, {
    connection: { host: '127.0.0.1', port: Number(port), maxRetriesPerRequest: null },
    prefix,
    lastEventId: '0-0',
  });
  try {
    return await new Promise((resolve) => {
      events.on('completed', ({ jobId: id }) => {
        if (id === jobId) resolve('completed');
      });
      events.on('failed', ({ jobId: id }) => {
        if (id === jobId) resolve('failed');
      });
    });
  } finally {
    await events.close();
  }
}

describe('operations: metrics, dashboard, OpenAPI', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let raw: Redis;
  const spec = {
    dataset: {
      records: [
        { origin: 'LAX', delay: 5 },
        { origin: 'LAX', delay: -3 },
        { origin: 'SFO', delay: 12 },
      ],
    },
    groupBy: ['origin'],
    metrics: [{ op: 'count' }, { op: 'avg', column: 'delay' }],
  };
  let dataDir: string;
  let resultKey: string;
  let indexVersion: number;

  before(async () => {
    redis = await startRedis();
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-ops-'));
    // Parquet's magic bytes pass the enqueue check; only DuckDB finds the file broken, at the worker.
    writeFileSync(path.join(dataDir, 'broken.parquet'), 'PAR1 this is not parquet PAR1');
    sys = await startSystem({
      env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_DATA_DIR: dataDir, QUARRY_WORKER_METRICS_PORT: '0' },
    });
    raw = new Redis(redis.url);

    const miss = await sys.app.inject({ method: 'POST', url: '/v1/aggregations?wait=20000', payload: spec });
    assert.equal(miss.statusCode, 200, miss.body);
    assert.equal(miss.headers['x-quarry-cache'], 'miss');
    resultKey = miss.json().resultKey;
    const hit = await sys.app.inject({ method: 'POST', url: '/v1/aggregations', payload: spec });
    assert.equal(hit.headers['x-quarry-cache'], 'hit');

    const built = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/ops-docs?wait=20000',
      payload: {
        documents: [
          { id: '1', title: 'Red apples' },
          { id: '2', title: 'Green pears' },
        ],
        idField: 'id',
        fields: ['title'],
      },
    });
    assert.equal(built.statusCode, 200, built.body);
    indexVersion = built.json().index.version;
    const found = await sys.app.inject({ method: 'GET', url: '/v1/indexes/ops-docs/search?q=red' });
    assert.equal(found.json().hits[0].id, '1');

    // One job that fails for good (unreadable file: no retries).
    const broken = await sys.client.aggregate({ ...spec, dataset: { path: 'broken.parquet' } });
    await assert.rejects(broken.wait({ timeoutMs: 20_000 }));

    const finished = await Promise.all([
      bullFinished(redis.url, sys.config.prefix, QUEUE_NAMES.aggregate, `agg-${resultKey}`),
      bullFinished(redis.url, sys.config.prefix, QUEUE_NAMES.index, built.json().jobId),
      bullFinished(redis.url, sys.config.prefix, QUEUE_NAMES.aggregate, broken.jobId),
    ]);
    assert.deepEqual(finished, ['completed', 'completed', 'failed']);
  });

  after(async () => {
    await sys?.close();
    raw?.disconnect();
    await redis?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('API /metrics: cache miss and hit, durations by route pattern, the loaded index version', async () => {
    const res = await sys.app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    const samples = parseMetrics(res.body);
    assert.equal(sampleValue(samples, METRIC_NAMES.cacheMisses), 1);
    assert.equal(sampleValue(samples, METRIC_NAMES.cacheHits), 1);

    const duration = `${METRIC_NAMES.httpRequestDuration}_count`;
    assert.equal(
      sampleValue(samples, duration, { method: 'POST', route: '/v1/aggregations', status_code: '200' }),
      2,
    );
    assert.equal(
      sampleValue(samples, duration, {
        method: 'POST',
        route: '/v1/indexes/:collection',
        status_code: '200',
      }),
      1,
    );
    assert.equal(
      sampleValue(samples, duration, {
        method: 'GET',
        route: '/v1/indexes/:collection/search',
        status_code: '200',
      }),
      1,
    );
    const routes = new Set(samples.filter((s) => s.name === duration).map((s) => s.labels.route));
    assert.ok(
      ![...routes].some((r) => r?.includes('ops-docs')),
      `raw URLs leaked into labels: ${[...routes]}`,
    );

    assert.equal(
      sampleValue(samples, METRIC_NAMES.indexLoadedVersion, { collection: 'ops-docs' }),
      indexVersion,
    );
    assert.ok(
      samples.some((s) => s.name === 'process_cpu_user_seconds_total'),
      'default process metrics',
    );
    // The API reports only itself: no worker metric in its registry.
    assert.ok(!samples.some((s) => s.name.startsWith(METRIC_NAMES.jobs)));
  });

  test('worker metrics over HTTP: jobs by type and state, run and wait times, index build time', async () => {
    const url = sys.worker?.metricsUrl;
    assert.ok(url, 'the worker serves metrics');
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const samples = parseMetrics(await res.text());
    const expected = { aggregate: { completed: 1, failed: 1 }, index: { completed: 1, failed: 0 } };
    for (const [type, counts] of Object.entries(expected)) {
      for (const [state, count] of Object.entries(counts)) {
        assert.equal(sampleValue(samples, METRIC_NAMES.jobs, { type, state }), count, `${type} ${state}`);
      }
      const attempts = counts.completed + counts.failed;
      assert.equal(sampleValue(samples, `${METRIC_NAMES.jobRun}_count`, { type }), attempts, type);
      assert.equal(sampleValue(samples, `${METRIC_NAMES.jobWait}_count`, { type }), attempts, type);
      assert.ok(sampleValue(samples, `${METRIC_NAMES.jobRun}_sum`, { type }) > 0, type);
    }
    assert.equal(sampleValue(samples, `${METRIC_NAMES.indexBuild}_count`), 1);
    const stored = await raw.strlen(`${sys.config.prefix}:result:${resultKey}`);
    assert.equal(sampleValue(samples, `${METRIC_NAMES.resultBytes}_sum`), stored);
    assert.ok(!samples.some((s) => s.name === METRIC_NAMES.cacheHits), 'the worker reports only itself');

    const missing = await fetch(new URL('/nope', url));
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
  });

  test('the dashboard serves its page, and its API lists both queues', async () => {
    const page = await sys.app.inject({ method: 'GET', url: '/admin/queues' });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.match(page.body, /<html/i);
    const api = await sys.app.inject({ method: 'GET', url: '/admin/queues/api/queues' });
    assert.equal(api.statusCode, 200, api.body);
    const names = (api.json() as { queues: { name: string }[] }).queues.map((q) => q.name).sort();
    assert.deepEqual(names, Object.values(QUEUE_NAMES).sort());
  });

  test('the dashboard API answers 503 at once while the queue Redis is down; its page still loads', async () => {
    const config = testConfig({ QUARRY_QUEUE_REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    const client = createQuarry({ config, failFast: true });
    // The running system's registry: this client's would wait for its Redis to subscribe.
    const registry = await sys.client.indexRegistry();
    const app = buildApp({ config, client, registry, logger: silentLogger() });
    try {
      assert.equal((await app.inject({ method: 'GET', url: '/admin/queues' })).statusCode, 200);
      const api = await app.inject({ method: 'GET', url: '/admin/queues/api/queues' });
      assert.equal(api.statusCode, 503);
      assert.equal(api.json().error.code, 'QUARRY_ERR_REDIS_UNAVAILABLE');
    } finally {
      await app.close();
      await client.close();
    }
  });

  test('/openapi.json is OpenAPI 3 covering every README route; request schemas are the zod ones', async () => {
    const res = await sys.app.inject({ method: 'GET', url: '/openapi.json' });
    assert.equal(res.statusCode, 200);
    const doc = res.json();
    assert.match(doc.openapi, /^3\.\d+\.\d+$/);
    assert.equal(typeof doc.info.title, 'string');
    assert.equal(typeof doc.info.version, 'string');

    const routes = readmeRoutes();
    assert.ok(routes.length >= 8, `README table parsed: ${routes}`);
    for (const route of [
      ...routes,
      'DELETE /v1/jobs/{jobId}',
      'GET /v1/jobs/{jobId}/events',
      'GET /metrics',
    ]) {
      const [method, url] = route.split(' ') as [string, string];
      const operation = doc.paths[url]?.[method.toLowerCase()];
      assert.ok(operation, `${route} is in the document`);
      assert.ok(operation.summary, `${route} has a summary`);
      // Structure OpenAPI requires: path parameters declared, every response described.
      for (const [, name] of url.matchAll(/\{(\w+)\}/g)) {
        assert.ok(
          operation.parameters?.some((p: { in: string; name: string }) => p.in === 'path' && p.name === name),
          `${route} declares path parameter ${name}`,
        );
      }
      const responses = Object.entries(operation.responses as Record<string, Record<string, unknown>>);
      assert.ok(responses.length > 0, route);
      for (const [status, response] of responses) {
        assert.match(status, /^[1-5](\d\d|XX)$/, route);
        assert.equal(typeof response.description, 'string', `${route} ${status}`);
      }
      // An example for each route: its request (when it has a body) and its first success.
      const media = (content: unknown) => Object.values(content as Record<string, { example?: unknown }>)[0];
      if (operation.requestBody) assert.ok(media(operation.requestBody.content)?.example, `${route} request`);
      const [successStatus, success] = responses.find(([status]) => status.startsWith('2'))!;
      if (successStatus !== '204') {
        assert.ok(media(success.content)?.example !== undefined, `${route} response example`);
      }
    }
    for (const ref of JSON.stringify(doc).matchAll(/"\$ref":"#\/([^"]+)"/g)) {
      const target = ref[1]!.split('/').reduce((node, key) => node?.[key], doc);
      assert.ok(target, `$ref #/${ref[1]} resolves`);
    }

    // Bodies are named schemas (components.schemas), referenced from the operations.
    const named = (schema: { $ref?: string }) => {
      assert.match(schema.$ref ?? '', /^#\/components\/schemas\/\w+$/);
      return doc.components.schemas[schema.$ref!.split('/').pop()!];
    };
    const aggregation = named(
      doc.paths['/v1/aggregations'].post.requestBody.content['application/json'].schema,
    );
    const metricItems = JSON.stringify(aggregation.properties.metrics.items);
    for (const op of zodMetricOps()) {
      assert.ok(metricItems.includes(`"${op}"`), `metric op ${op} is documented`);
    }
    assert.ok(zodMetricOps().includes('quantile'));
    assert.equal(aggregation.additionalProperties, false, 'unknown fields are refused, as zod does');
    const index = named(
      doc.paths['/v1/indexes/{collection}'].post.requestBody.content['application/json'].schema,
    );
    assert.deepEqual(index.required.sort(), ['fields', 'idField']);

    // Hidden: the dashboard's and the docs' own routes.
    assert.ok(!Object.keys(doc.paths).some((p) => p.startsWith('/admin') || p.startsWith('/docs')));
  });

  test('/docs serves Swagger UI', async () => {
    const res = await sys.app.inject({ method: 'GET', url: '/docs' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assert.match(res.body, /swagger/i);
    const css = await sys.app.inject({ method: 'GET', url: '/docs/static/swagger-ui.css' });
    assert.equal(css.statusCode, 200);
  });

  test('the documentation schemas never validate or serialize: errors and bytes are as before', async () => {
    const bad = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations',
      payload: { ...spec, extra: 1 },
    });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, 'QUARRY_ERR_VALIDATION');
    assert.equal(bad.json().error.field, 'extra');
    const search = await sys.app.inject({ method: 'GET', url: '/v1/indexes/ops-docs/search?q=red&k=0' });
    assert.equal(search.json().error.field, 'k', 'the route, not a schema, judged k');

    const result = await sys.app.inject({ method: 'GET', url: `/v1/results/${resultKey}` });
    assert.equal(result.statusCode, 200);
    const stored = await raw.getBuffer(`${sys.config.prefix}:result:${resultKey}`);
    assert.ok(stored);
    assert.equal(result.rawPayload.equals(stored), true, 'the stored bytes, unchanged');
  });
});
