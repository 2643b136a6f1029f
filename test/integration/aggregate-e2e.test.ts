// Aggregations end to end through real Redis, a real worker with DuckDB, the SDK and the HTTP
// API; results held to the TS reference on flights-5k and its Parquet/CSV/NDJSON forms.
import assert from 'node:assert/strict';
import { appendFileSync, copyFileSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { buildApp } from '../../api/app.ts';
import { addressAggregation, parseAggregation, type ResultEnvelope } from '../../shared/aggregation.ts';
import { QuarryError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logger.ts';
import { flightsSpec, loadFlights, makeFlightsDataDir } from '../helpers/flights.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';
import { referenceAggregate } from '../reference/aggregate.ts';
import { assertSameResult } from '../reference/compare.ts';

/** Rows equal to the reference's (floats within 1e-9), judged by the envelope's column types. */
function assertRowsClose(
  actual: readonly Record<string, unknown>[],
  expected: readonly Record<string, unknown>[],
  message = '',
  columns = inferColumns(expected),
): void {
  assertSameResult({ columns, rows: actual }, { columns, rows: expected }, message);
}

function inferColumns(rows: readonly Record<string, unknown>[]) {
  const first = rows[0] ?? {};
  return Object.keys(first).map((name) => ({
    name,
    type: rows.some((r) => typeof r[name] === 'number' && !Number.isInteger(r[name]))
      ? ('float' as const)
      : ('string' as const),
  }));
}

const records = loadFlights();

/** The reference answer for an inline spec (file specs: pass the same rows inline). */
function expected(spec: unknown) {
  const parsed = parseAggregation(spec, { maxInlineBytes: 1e9, maxResultRows: 1e6 });
  assert.equal(parsed.dataset.kind, 'inline');
  if (parsed.dataset.kind !== 'inline') throw new Error('inline only');
  return referenceAggregate(parsed.spec, JSON.parse(parsed.dataset.data.json), parsed.dataset.data.columns);
}

describe('aggregations end to end', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let raw: Redis;
  let dataDir: string;

  before(async () => {
    redis = await startRedis();
    dataDir = await makeFlightsDataDir();
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_DATA_DIR: dataDir } });
    raw = new Redis(redis.url);
  });

  after(async () => {
    await sys?.close();
    raw?.disconnect();
    await redis?.stop();
  });

  const eventsKey = () => `${sys.config.prefix}:aggregate:events`;
  async function addedEvents(jobId: string): Promise<number> {
    const entries = await raw.xrange(eventsKey(), '-', '+');
    return entries.filter(([, f]) => f[1] === 'added' && f.includes(jobId)).length;
  }

  test('SDK: inline flights-5k equals the reference, then hits the cache without touching the queue', async () => {
    const spec = flightsSpec({ records });
    const handle = await sys.client.aggregate(spec);
    assert.equal(handle.cached, false);
    assert.match(handle.jobId, /^agg-[0-9a-f]{32}$/);
    const envelope = await handle.wait({ timeoutMs: 20_000 });
    const ref = expected(spec);
    assert.deepEqual(envelope.columns, ref.columns);
    assertRowsClose(envelope.rows, ref.rows);
    assert.equal(envelope.rowCount, 20);
    assert.equal(envelope.engine, 'js', 'auto computes 5k inline records with the JS engine');
    assert.equal(envelope.resultKey, handle.resultKey);

    const again = await sys.client.aggregate(JSON.parse(JSON.stringify(spec)));
    assert.equal(again.cached, true);
    assert.equal(again.resultKey, handle.resultKey);
    assert.deepEqual(await again.wait(), envelope);
    assert.equal(await addedEvents(handle.jobId), 1, 'a cache hit adds nothing to the queue');

    const status = await sys.client.status(handle.jobId);
    assert.equal(status?.state, 'completed');
    assert.equal(status?.resultKey, handle.resultKey);
    assert.equal(status?.attempts, 1);
    assert.ok(status?.createdAt && status.startedAt && status.finishedAt);
    assert.equal(status?.error, null);
  });

  for (const file of ['flights.parquet', 'flights.csv', 'flights.ndjson']) {
    test(`SDK: ${file} equals the reference`, async () => {
      const spec = {
        ...flightsSpec({ path: file }),
        filters: [
          { column: 'distance', op: 'gte', value: 300 },
          { column: 'origin', op: 'in', value: ['LAX', 'SFO', 'ORD', 'DFW', 'LAS', 'PHX'] },
        ],
        metrics: [
          ...flightsSpec(null).metrics,
          { op: 'quantile', column: 'delay', q: 0.5, method: 'nearest_rank' },
        ],
      };
      const envelope = await (await sys.client.aggregate(spec)).wait({ timeoutMs: 20_000 });
      const ref = expected({ ...spec, dataset: { records } });
      assertRowsClose(envelope.rows, ref.rows, file);
      assert.deepEqual(
        envelope.columns.map((c) => c.name),
        ref.columns.map((c) => c.name),
      );
    });
  }

  test('file fingerprints: a changed file is a new key; with content hashing, touching it is not', async () => {
    const file = path.join(dataDir, 'fp.csv');
    copyFileSync(path.join(dataDir, 'flights.csv'), file);
    for (const fingerprint of ['stat', 'content'] as const) {
      const spec = flightsSpec({ path: 'fp.csv', fingerprint });
      const first = await sys.client.aggregate(spec);
      await first.wait({ timeoutMs: 20_000 });
      const again = await sys.client.aggregate(spec);
      assert.equal(again.cached, true, fingerprint);
      assert.equal(again.resultKey, first.resultKey);
      // Same bytes, new mtime.
      const later = new Date(Date.now() + 60_000 * (fingerprint === 'stat' ? 1 : 2));
      utimesSync(file, later, later);
      const touched = await sys.client.aggregate(spec);
      assert.equal(touched.cached, fingerprint === 'content', `touched, ${fingerprint}`);
      await touched.wait({ timeoutMs: 20_000 });
      // New bytes.
      appendFileSync(file, `2001/12/31 23:59,${fingerprint === 'stat' ? 5 : 6},100,LAX,SFO\n`);
      const changed = await sys.client.aggregate(spec);
      assert.equal(changed.cached, false, `changed, ${fingerprint}`);
      assert.notEqual(changed.resultKey, touched.resultKey);
      const envelope = await changed.wait({ timeoutMs: 20_000 });
      assert.equal(envelope.rows.reduce((n, r) => n + (r.count as number), 0) > 0, true);
    }
  });

  test('HTTP: 202 with links, status, then the result; then a 200 hit', async () => {
    const spec = flightsSpec({ records: records.slice(0, 1000) });
    const miss = await sys.app.inject({ method: 'POST', url: '/v1/aggregations', payload: spec });
    assert.equal(miss.statusCode, 202, miss.body);
    assert.equal(miss.headers['x-quarry-cache'], 'miss');
    const body = miss.json() as {
      jobId: string;
      resultKey: string;
      status: string;
      links: Record<string, string>;
    };
    assert.equal(body.status, 'queued');
    assert.equal(body.links.status, `/v1/jobs/${body.jobId}`);
    assert.equal(body.links.result, `/v1/results/${body.resultKey}`);

    await sys.client.waitForJob(body.jobId, { timeoutMs: 20_000 });
    const status = await sys.app.inject({ method: 'GET', url: body.links.status });
    assert.equal(status.statusCode, 200);
    const s = status.json();
    assert.deepEqual(Object.keys(s).sort(), [
      'attempts',
      'createdAt',
      'dataset',
      'error',
      'finishedAt',
      'jobId',
      'priority',
      'progress',
      'resultKey',
      'startedAt',
      'state',
      'summary',
      'type',
    ]);
    assert.equal(s.state, 'completed');
    assert.equal(s.type, 'aggregate');
    assert.equal(
      s.summary,
      'by origin · count(*), avg(delay), max(distance), count_distinct(destination), quantile(delay, q 0.95) · order by count desc · limit 20',
    );
    assert.match(s.dataset, /^inline: 1000 rows, \d+ columns$/);

    const result = await sys.app.inject({ method: 'GET', url: body.links.result });
    assert.equal(result.statusCode, 200);
    assert.match(String(result.headers['content-type']), /application\/json/);
    const envelope = result.json() as ResultEnvelope;
    assertRowsClose(envelope.rows, expected({ ...spec }).rows);
    assert.equal(typeof envelope.durationMs, 'number');
    assert.ok(!Number.isNaN(Date.parse(envelope.computedAt)));

    const hit = await sys.app.inject({ method: 'POST', url: '/v1/aggregations', payload: spec });
    assert.equal(hit.statusCode, 200);
    assert.equal(hit.headers['x-quarry-cache'], 'hit');
    assert.equal(hit.body, result.body, 'the stored bytes are served as they are');
    // Other bytes, same spec (whitespace, key order): parsed, canonicalized, still a hit.
    const pretty = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations',
      payload: JSON.stringify({ ...spec, groupBy: spec.groupBy }, null, 2),
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    assert.equal(pretty.statusCode, 200);
    assert.equal(pretty.headers['x-quarry-cache'], 'hit');
    assert.equal(pretty.body, result.body);
  });

  test('HTTP: ?wait answers 200 with the envelope once computed', async () => {
    const spec = flightsSpec({ records: records.slice(0, 2000) });
    const res = await sys.app.inject({ method: 'POST', url: '/v1/aggregations?wait=20000', payload: spec });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers['x-quarry-cache'], 'miss');
    assertRowsClose((res.json() as ResultEnvelope).rows, expected(spec).rows);
    const bad = await sys.app.inject({ method: 'POST', url: '/v1/aggregations?wait=40000', payload: spec });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.field, 'wait');
  });

  test('GET /v1/jobs/:id/events streams status changes as SSE and ends with the final state', async () => {
    const spec = flightsSpec({ records: records.slice(0, 2500) });
    const handle = await sys.client.aggregate(spec);
    const res = await sys.app.inject({ method: 'GET', url: `/v1/jobs/${handle.jobId}/events` });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /text\/event-stream/);
    const events = res.body
      .trim()
      .split('\n\n')
      .map((block) => {
        const [name, data] = block.split('\n');
        return { name: name!.replace('event: ', ''), data: JSON.parse(data!.replace('data: ', '')) };
      });
    assert.equal(events[0]!.name, 'status');
    assert.equal(events.at(-1)!.name, 'end');
    assert.equal(events.at(-2)!.data.state, 'completed');
    assert.equal(
      (await sys.app.inject({ method: 'GET', url: '/v1/jobs/agg-nope0000/events' })).statusCode,
      404,
    );
    // The SDK's iterator sees the same: a finished job yields its status and ends.
    const seen = [];
    for await (const e of sys.client.watch(handle.jobId)) seen.push(e.state);
    assert.deepEqual(seen, ['completed']);
  });

  test('20 identical concurrent requests share one computation', async () => {
    const spec = flightsSpec({ records: records.slice(0, 3000) });
    const responses = await Promise.all(
      Array.from({ length: 20 }, () =>
        sys.app.inject({ method: 'POST', url: '/v1/aggregations?wait=20000', payload: spec }),
      ),
    );
    const bodies = new Set(responses.map((r) => r.body));
    assert.deepEqual(
      responses.map((r) => r.statusCode),
      Array(20).fill(200),
    );
    assert.equal(bodies.size, 1, 'every request got the same envelope');
    const envelope = JSON.parse([...bodies][0]!) as ResultEnvelope;
    const jobId = `agg-${envelope.resultKey}`;
    assert.equal(await addedEvents(jobId), 1, 'one job was added to the queue, so one computation');
    assert.equal((await sys.client.status(jobId))?.attempts, 1);
  });

  test('a bad spec is a 400 naming the field, and nothing is queued', async () => {
    const eventsBefore = await raw.xlen(eventsKey());
    const cases: [unknown, string][] = [
      [{ ...flightsSpec({ records }), extra: 1 }, 'extra'],
      [{ ...flightsSpec({ records }), metrics: [{ op: 'mode', column: 'delay' }] }, 'metrics.0.op'],
      [{ ...flightsSpec({ records }), metrics: [] }, 'metrics'],
      [{ ...flightsSpec({ records }), orderBy: [{ column: 'nope' }] }, 'orderBy.0.column'],
      [{ ...flightsSpec({ records }), groupBy: ['nope'] }, 'groupBy.0'],
      [
        { ...flightsSpec({ records }), metrics: [{ op: 'avg', column: 'origin' }], orderBy: [] },
        'metrics.0.column',
      ],
      [flightsSpec({ records: [{ a: 1 }, { a: 'x' }] }), 'dataset.records.1.a'],
      [flightsSpec({ path: '../etc/passwd.csv' }), 'dataset.path'],
      [flightsSpec({ path: 'missing.parquet' }), 'dataset.path'],
      [
        { ...flightsSpec({ records }), filters: [{ column: 'delay', op: 'gt', value: 'x' }] },
        'filters.0.value',
      ],
    ];
    for (const [payload, field] of cases) {
      const res = await sys.app.inject({
        method: 'POST',
        url: '/v1/aggregations',
        payload: payload as object,
      });
      assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${field}: ${res.statusCode} ${res.body}`);
      const error = res.json().error;
      assert.match(error.code, /^QUARRY_ERR_/);
      assert.equal(error.field, field, res.body);
    }
    const notJson = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations',
      payload: '{"dataset":',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(notJson.statusCode, 400);
    assert.equal(notJson.json().error.code, 'QUARRY_ERR_BODY_INVALID_JSON');
    const text = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations',
      payload: 'hello',
      headers: { 'content-type': 'text/plain' },
    });
    assert.equal(text.statusCode, 415);
    assert.equal(await raw.xlen(eventsKey()), eventsBefore, 'nothing was queued');
  });

  test('a failing job is failed with its code, at once, without retries', async () => {
    // Without Parquet's magic bytes the file is refused at enqueue; with them, only DuckDB can tell.
    writeFileSync(path.join(dataDir, 'text.parquet'), 'this is not parquet');
    await assert.rejects(sys.client.aggregate(flightsSpec({ path: 'text.parquet' })), {
      code: 'QUARRY_ERR_DATASET_UNREADABLE',
    });
    writeFileSync(path.join(dataDir, 'broken.parquet'), 'PAR1 this is not parquet PAR1');
    const handle = await sys.client.aggregate(flightsSpec({ path: 'broken.parquet' }));
    await assert.rejects(handle.wait({ timeoutMs: 20_000 }), (error: unknown) => {
      assert.ok(error instanceof QuarryError);
      assert.equal(error.code, 'QUARRY_ERR_DATASET_UNREADABLE');
      return true;
    });
    const status = await sys.client.status(handle.jobId);
    assert.equal(status?.state, 'failed');
    assert.equal(status?.attempts, 1);
    assert.equal(status?.error?.code, 'QUARRY_ERR_DATASET_UNREADABLE');

    // A column only the file can reveal is missing: its Parquet footer says so at enqueue.
    const missing = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations?wait=20000',
      payload: { ...flightsSpec({ path: 'flights.parquet' }), groupBy: ['carrier'], orderBy: [] },
    });
    assert.equal(missing.statusCode, 400, missing.body);
    assert.equal(missing.json().error.code, 'QUARRY_ERR_SPEC_UNKNOWN_COLUMN');
  });

  test('bodies and inline data past their limits are refused with 413', async () => {
    const small = buildApp({
      config: { ...sys.config, maxBodyBytes: 4096, maxInlineBytes: 1024 },
      client: sys.client,
      registry: await sys.client.indexRegistry(),
      logger: silentLogger(),
    });
    try {
      const tooBig = await small.inject({
        method: 'POST',
        url: '/v1/aggregations',
        payload: flightsSpec({ records: records.slice(0, 200) }),
      });
      assert.equal(tooBig.statusCode, 413);
      assert.equal(tooBig.json().error.code, 'QUARRY_ERR_BODY_TOO_LARGE');
    } finally {
      await small.close();
    }
    const inline = await sys.client
      .aggregate(flightsSpec({ records: records.map((r) => ({ ...r, pad: 'x'.repeat(2000) })) }))
      .catch((e: unknown) => e);
    assert.ok(inline instanceof QuarryError);
    assert.equal(inline.code, 'QUARRY_ERR_DATASET_TOO_LARGE');
    assert.equal(inline.field, 'dataset.records');
  });

  test('unknown job and result ids are 404; health and readiness answer', async () => {
    for (const url of ['/v1/jobs/agg-00000000000000000000000000000000', '/v1/jobs/nope', '/v1/results/abc']) {
      const res = await sys.app.inject({ method: 'GET', url });
      assert.equal(res.statusCode, 404, url);
      assert.match(res.json().error.code, /NOT_FOUND$/);
    }
    assert.equal((await sys.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    const ready = await sys.app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 200);
    assert.deepEqual(ready.json().redis, { queue: true, cache: true });
  });

  test('content addressing: key order and whitespace do not matter; groupBy and metric order do', () => {
    const limits = { maxInlineBytes: 1e9, maxResultRows: 1e6 };
    const key = (s: unknown) => addressAggregation(parseAggregation(s, limits)).resultKey;
    const spec = flightsSpec({ records: records.slice(0, 50) });
    const reordered = JSON.parse(
      JSON.stringify({
        limit: spec.limit,
        orderBy: spec.orderBy,
        metrics: spec.metrics,
        groupBy: spec.groupBy,
        dataset: spec.dataset,
      }),
    );
    assert.equal(key(reordered), key(spec));
    assert.equal(key(JSON.parse(JSON.stringify(spec, null, 2))), key(spec));
    assert.notEqual(key({ ...spec, metrics: [...spec.metrics].reverse() }), key(spec));
    assert.notEqual(
      key({ ...spec, groupBy: ['origin', 'destination'] }),
      key({ ...spec, groupBy: ['destination', 'origin'] }),
    );
    assert.notEqual(key(flightsSpec({ records: records.slice(0, 51) })), key(spec));
  });
});
