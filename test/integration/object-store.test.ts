// Datasets and index sources in object storage, against a real S3-protocol server (s3rver on a
// free port, test/helpers/s3.ts): an object computes what the same file by path does, on both
// engines; a changed object is a new key, and a worker that finds it changed fails the job; two
// worker processes fetch one object once, safely; the host cache keeps its byte bound (LRU);
// API keys read only their buckets (403); bad URLs and missing objects are 4xx naming the field.
import assert from 'node:assert/strict';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../shared/config.ts';
import { QuarryError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logger.ts';
import { createObjectStore } from '../../shared/object-store.ts';
import { ObjectCache } from '../../workers/object-cache.ts';
import { startWorker } from '../../workers/worker.ts';
import { flightsSpec, makeFlightsDataDir } from '../helpers/flights.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { type S3Server, startS3 } from '../helpers/s3.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';
import { killWorker, spawnWorker } from '../helpers/worker-process.ts';

const KEY = 'k'.repeat(32);

describe('datasets and index sources in object storage', () => {
  let redis: RedisServer;
  let s3: S3Server;
  let dataDir: string;
  let cacheDir: string;
  let sys: TestSystem;
  let parquet: Buffer;

  before(async () => {
    [redis, s3, dataDir] = await Promise.all([
      startRedis(),
      startS3({ buckets: ['data', 'other', 'shared'] }),
      makeFlightsDataDir(),
    ]);
    cacheDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-objcache-'));
    parquet = readFileSync(path.join(dataDir, 'flights.parquet'));
    await s3.put('data', 'flights/flights.parquet', parquet);
    await s3.put('data', 'flights/flights.csv', readFileSync(path.join(dataDir, 'flights.csv')));
    sys = await startSystem({
      env: {
        ...s3.env,
        QUARRY_QUEUE_REDIS_URL: redis.url,
        QUARRY_DATA_DIR: dataDir,
        QUARRY_OBJECT_CACHE_DIR: cacheDir,
      },
    });
  });

  after(async () => {
    await sys?.close();
    await Promise.all([redis?.stop(), s3?.stop()]);
    for (const dir of [dataDir, cacheDir]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a Parquet (and a CSV) object aggregates to what the same file by path does, on both engines', async () => {
    for (const engine of ['duckdb', 'polars'] as const) {
      for (const [file, url] of [
        ['flights.parquet', 's3://data/flights/flights.parquet'],
        ['flights.csv', 's3://data/flights/flights.csv'],
      ]) {
        const byPath = await (await sys.client.aggregate({ ...flightsSpec({ path: file }), engine })).wait({
          timeoutMs: 20_000,
        });
        const handle = await sys.client.aggregate({ ...flightsSpec({ url }), engine });
        const byUrl = await handle.wait({ timeoutMs: 20_000 });
        assert.notEqual(byUrl.resultKey, byPath.resultKey);
        assert.equal(byUrl.engine, engine);
        assert.deepEqual(byUrl.columns, byPath.columns, `${engine} ${file}`);
        assert.deepEqual(byUrl.rows, byPath.rows, `${engine} ${file}`);
      }
    }
    // Through the API too: 202, then the same rows; the fetched object sits in the host cache.
    const res = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations?wait=20000',
      payload: { ...flightsSpec({ url: 's3://data/flights/flights.parquet' }), limit: 5 },
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().rowCount, 5);
    const cached = readdirSync(path.join(cacheDir, 'objects'));
    assert.equal(cached.length, 2, 'one file per object fetched');
  });

  test('an index from an NDJSON object equals the one from the same file', async () => {
    const docs = Array.from({ length: 200 }, (_, i) => ({
      id: `m${i}`,
      subject: i % 7 === 0 ? 'please reply soon' : `note ${i}`,
      body: `message body ${i} ${i % 3 === 0 ? 'reply' : 'later'}`,
    }));
    const text = `${docs.map((d) => JSON.stringify(d)).join('\n')}\n`;
    writeFileSync(path.join(dataDir, 'mail.ndjson'), text);
    await s3.put('data', 'mail/mail.ndjson', text);
    const options = { idField: 'id', fields: ['subject', 'body'], store: ['subject'] };
    const fromFile = await (
      await sys.client.index('mail-file', { source: { path: 'mail.ndjson' }, ...options })
    ).wait({ timeoutMs: 20_000 });
    const fromObject = await (
      await sys.client.index('mail-object', { source: { url: 's3://data/mail/mail.ndjson' }, ...options })
    ).wait({ timeoutMs: 20_000 });
    assert.equal(fromObject.documents, 200);
    assert.equal(fromObject.terms, fromFile.terms);
    const a = await sys.client.search('mail-file', 'please reply');
    const b = await sys.client.search('mail-object', 'please reply');
    assert.ok(b.hits.length > 0);
    assert.deepEqual(
      b.hits.map((h) => [h.id, h.fields]),
      a.hits.map((h) => [h.id, h.fields]),
    );
  });

  test('a changed object is a new result key; a worker that finds it changed fails with DATASET_CHANGED', async () => {
    await s3.put('data', 'moving.parquet', parquet);
    const spec = flightsSpec({ url: 's3://data/moving.parquet' });
    const first = await sys.client.address(spec);
    assert.equal(first.spec.dataset.kind, 'object');
    assert.equal((await sys.client.address(spec)).resultKey, first.resultKey, 'same object, same key');
    // Other bytes under the same key: another ETag and size, so another key.
    const csvBytes = readFileSync(path.join(dataDir, 'flights.csv'));
    await s3.put('data', 'moving.parquet', Buffer.concat([parquet, parquet]));
    const second = await sys.client.address(spec);
    assert.notEqual(second.resultKey, first.resultKey);

    // Enqueued against one object (under a prefix no worker serves yet), then the object
    // changes before a worker reads it.
    const producer = await startSystem({
      env: { ...s3.env, QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_DATA_DIR: dataDir },
      worker: false,
    });
    try {
      await s3.put('data', 'late.csv', csvBytes);
      const lateSpec = flightsSpec({ url: 's3://data/late.csv' });
      const addressed = await producer.client.address(lateSpec);
      const handle = await producer.client.aggregate(lateSpec);
      assert.equal(handle.resultKey, addressed.resultKey);
      // The same size, one byte different: only the ETag tells.
      const altered = Buffer.from(csvBytes);
      const at = altered.length - 2;
      altered[at] = altered[at] === 0x31 ? 0x32 : 0x31;
      await s3.put('data', 'late.csv', altered);
      // A worker with a cold cache of its own finds the object changed.
      const coldCache = mkdtempSync(path.join(os.tmpdir(), 'quarry-objcache-cold-'));
      const worker = await startWorker(
        loadConfig({
          ...s3.env,
          QUARRY_PREFIX: producer.config.prefix,
          QUARRY_QUEUE_REDIS_URL: redis.url,
          QUARRY_DATA_DIR: dataDir,
          QUARRY_OBJECT_CACHE_DIR: coldCache,
          QUARRY_LOG_LEVEL: 'silent',
          QUARRY_WORKER_METRICS_PORT: '0',
          QUARRY_JOB_ATTEMPTS: '1',
        }),
        silentLogger(),
      );
      try {
        await assert.rejects(
          handle.wait({ timeoutMs: 20_000 }),
          (e: unknown) => e instanceof QuarryError && e.code === 'QUARRY_ERR_DATASET_CHANGED',
        );
        assert.equal(readdirSync(path.join(coldCache, 'objects')).length, 0, 'nothing cached of it');
        assert.deepEqual(readdirSync(path.join(coldCache, 'tmp')), [], 'no temp file left');
      } finally {
        await worker.close();
        rmSync(coldCache, { recursive: true, force: true });
      }
    } finally {
      await producer.close();
    }
  });

  test('bad URLs are a 400 naming the field; a missing object a 404 naming it; http(s) is never fetched', async () => {
    const cases: [unknown, number, string, string][] = [
      [{ url: 'https://example.com/x.parquet' }, 400, 'QUARRY_ERR_VALIDATION', 'dataset.url'],
      [{ url: 's3://Bad_Bucket/x.parquet' }, 400, 'QUARRY_ERR_VALIDATION', 'dataset.url'],
      [{ url: 's3://data/' }, 400, 'QUARRY_ERR_VALIDATION', 'dataset.url'],
      [{ url: 's3://data/flights/flights.parquet', path: 'x' }, 400, 'QUARRY_ERR_VALIDATION', 'dataset'],
      [{ url: 's3://data/flights/noext' }, 400, 'QUARRY_ERR_VALIDATION', 'dataset.format'],
      [{ url: 's3://data/missing.parquet' }, 404, 'QUARRY_ERR_DATASET_NOT_FOUND', 'dataset.url'],
      [{ url: 's3://nobucket/missing.parquet' }, 404, 'QUARRY_ERR_DATASET_NOT_FOUND', 'dataset.url'],
      // Declared Parquet, but CSV bytes: refused when the worker reads it.
    ];
    for (const [dataset, status, code, field] of cases) {
      const res = await sys.app.inject({
        method: 'POST',
        url: '/v1/aggregations',
        payload: flightsSpec(dataset),
      });
      assert.equal(res.statusCode, status, `${JSON.stringify(dataset)}: ${res.body}`);
      assert.equal(res.json().error.code, code, JSON.stringify(dataset));
      assert.match(res.json().error.field ?? '', new RegExp(`^${field.replace('.', '\\.')}`), res.body);
    }
    const index = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/nope',
      payload: { source: { url: 's3://data/none.ndjson' }, idField: 'id', fields: ['a'] },
    });
    assert.equal(index.statusCode, 404, index.body);
    assert.equal(index.json().error.field, 'source.url');
  });

  test('API keys read only the buckets (or bucket/prefix) they list: anything else is a 403', async () => {
    await s3.put('shared', 'team-a/flights.parquet', parquet);
    await s3.put('shared', 'team-b/flights.parquet', parquet);
    await s3.put('other', 'flights.parquet', parquet);
    const keys = [
      { key: KEY, tenant: 'acme', scopes: ['enqueue', 'read'], buckets: ['data', 's3://shared/team-a/'] },
      { key: 'n'.repeat(32), tenant: 'none', scopes: ['enqueue', 'read'] },
    ];
    const tenants = await startSystem({
      env: {
        ...s3.env,
        QUARRY_QUEUE_REDIS_URL: redis.url,
        QUARRY_DATA_DIR: dataDir,
        QUARRY_OBJECT_CACHE_DIR: cacheDir,
        QUARRY_API_KEYS: JSON.stringify(keys),
      },
    });
    try {
      const post = (url: string, key = KEY) =>
        tenants.app.inject({
          method: 'POST',
          url: '/v1/aggregations?wait=20000',
          headers: { authorization: `Bearer ${key}` },
          payload: flightsSpec({ url }),
        });
      for (const url of ['s3://data/flights/flights.parquet', 's3://shared/team-a/flights.parquet']) {
        const ok = await post(url);
        assert.equal(ok.statusCode, 200, `${url}: ${ok.body}`);
      }
      for (const [url, key] of [
        ['s3://other/flights.parquet', KEY],
        ['s3://shared/team-b/flights.parquet', KEY],
        ['s3://shared/team-a-not/flights.parquet', KEY],
        ['s3://data/flights/flights.parquet', 'n'.repeat(32)],
      ] as const) {
        const res = await post(url, key);
        assert.equal(res.statusCode, 403, `${url}: ${res.body}`);
        assert.equal(res.json().error.code, 'QUARRY_ERR_FORBIDDEN');
        assert.equal(res.json().error.field, 'dataset.url');
      }
      const index = await tenants.app.inject({
        method: 'POST',
        url: '/v1/indexes/x',
        headers: { authorization: `Bearer ${KEY}` },
        payload: { source: { url: 's3://other/a.ndjson' }, idField: 'id', fields: ['a'] },
      });
      assert.equal(index.statusCode, 403, index.body);
      assert.equal(index.json().error.field, 'source.url');
    } finally {
      await tenants.close();
    }
  });

  test('the host cache keeps its byte bound, least recently used out first', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'quarry-objcache-lru-'));
    const store = createObjectStore(loadConfig(s3.env));
    const size = 10_000;
    const cache = new ObjectCache({ dir, maxBytes: Math.floor(size * 2.5), store });
    try {
      const fps = [];
      for (const name of ['a', 'b', 'c', 'd']) {
        await s3.put('data', `lru/${name}.csv`, `x\n${name.repeat(size - 3)}\n`);
        fps.push(await store.head(`s3://data/lru/${name}.csv`, 'csv', 'dataset.url'));
      }
      const [a, b, c, d] = fps as [(typeof fps)[0], (typeof fps)[0], (typeof fps)[0], (typeof fps)[0]];
      const use = async (fp: typeof a, t: number) => {
        const got = await cache.open(fp, { field: 'dataset.url', format: 'csv' });
        await got.file.close();
        // mtimes order the LRU: set them apart so the order does not rest on clock resolution.
        for (const name of readdirSync(path.join(dir, 'objects'))) {
          const file = path.join(dir, 'objects', name);
          if (statSync(file).mtimeMs > Date.now() - 60_000) utimesSync(file, t, t);
        }
        return got.hit;
      };
      const total = () =>
        readdirSync(path.join(dir, 'objects')).reduce(
          (sum, n) => sum + statSync(path.join(dir, 'objects', n)).size,
          0,
        );
      assert.equal(await use(a, 1000), false);
      assert.equal(await use(b, 2000), false);
      assert.equal(await use(a, 3000), true, 'a is cached: a hit, and now the most recent');
      assert.equal(await use(c, 4000), false);
      // a, b, c = 30,000 bytes > 25,000: the least recently used (b) went.
      assert.equal(total(), 2 * size);
      assert.equal(await use(a, 5000), true);
      assert.equal(await use(b, 6000), false, 'b was evicted');
      assert.ok(total() <= cache.maxBytes);
      assert.equal(await use(d, 7000), false);
      assert.ok(total() <= cache.maxBytes);
      assert.equal(await use(b, 8000), true, 'b (recent) stayed');
      assert.equal(await use(c, 9000), false, 'c (least recent) went');
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('two worker processes on one host fetch an object once, into one complete file', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'quarry-objcache-shared-'));
    const big = readFileSync(path.join(dataDir, 'flights.csv'));
    // ~20 copies of flights: a download that takes long enough to overlap.
    const rows = big.subarray(big.indexOf(10) + 1);
    await s3.put('data', 'shared/big.csv', Buffer.concat([big, ...Array.from({ length: 20 }, () => rows)]));
    const env = {
      ...s3.env,
      QUARRY_PREFIX: sys.config.prefix,
      QUARRY_QUEUE_REDIS_URL: redis.url,
      QUARRY_DATA_DIR: dataDir,
      QUARRY_OBJECT_CACHE_DIR: dir,
      QUARRY_LOG_LEVEL: 'info',
      QUARRY_LOG_FORMAT: 'json',
      QUARRY_WORKER_METRICS_PORT: '0',
      QUARRY_WORKER_CONCURRENCY: '3',
      QUARRY_DUCKDB_THREADS: '1',
    };
    const workers = [spawnWorker(env), spawnWorker(env)];
    try {
      await Promise.all(workers.map((w) => w.ready));
      // Stop the in-test worker from taking these jobs: only the two processes fetch.
      await sys.worker?.close();
      const specs = Array.from({ length: 6 }, (_, i) => ({
        ...flightsSpec({ url: 's3://data/shared/big.csv' }),
        limit: i + 1,
      }));
      const handles = await Promise.all(specs.map((s) => sys.client.aggregate(s)));
      const results = await Promise.all(handles.map((h) => h.wait({ timeoutMs: 60_000 })));
      results.forEach((r, i) => {
        assert.equal(r.rowCount, i + 1);
      });
      const fetched = workers.flatMap((w) =>
        w.lines.filter((l) => l.msg === 'object fetched into the cache'),
      );
      assert.equal(fetched.length, 1, 'one download for the host');
      const objects = readdirSync(path.join(dir, 'objects'));
      assert.equal(objects.length, 1);
      assert.equal(statSync(path.join(dir, 'objects', objects[0]!)).size, big.length + 20 * rows.length);
      assert.deepEqual(readdirSync(path.join(dir, 'tmp')), []);
      assert.deepEqual(readdirSync(path.join(dir, 'locks')), []);
      const ran = new Set(
        workers
          .map((w, i) => (w.lines.some((l) => l.msg === 'aggregation done') ? i : -1))
          .filter((i) => i >= 0),
      );
      assert.ok(ran.size >= 1);
    } finally {
      await Promise.all(workers.map((w) => killWorker(w)));
      rmSync(dir, { recursive: true, force: true });
      assert.ok(!existsSync(dir));
    }
  });
});
