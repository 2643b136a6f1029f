// Attacks on file datasets and index sources (Quarry issue "Trust", items 3, 4 and 7), each
// against real Redis, a real worker with DuckDB and Polars, the SDK and the HTTP API: glob
// characters, symlinks out of the root (also swapped in after enqueue), FIFOs, sockets, devices,
// directories, oversized sources, Parquet declared as text, and one tenant reaching for another's files.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { QuarryError } from '../../shared/errors.ts';
import { silentLogger } from '../../shared/logger.ts';
import { createDuckDBEngine } from '../../workers/engines/duckdb.ts';
import { startWorker } from '../../workers/worker.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const ENGINES = ['duckdb', 'polars'] as const;
const KEYS = { A: 'key-of-tenant-A-0001', B: 'key-of-tenant-B-0001', C: 'key-of-tenant-C-0001' };
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const SOURCE_LIMIT = 4096;

const sumSpec = (p: string, engine: string, format?: string) => ({
  dataset: { path: p, ...(format === undefined ? {} : { format }) },
  metrics: [
    { op: 'sum', column: 'x', as: 'total' },
    { op: 'count', as: 'rows' },
  ],
  engine,
});

const indexRequest = (p: string) => ({ source: { path: p }, idField: 'id', fields: ['text'] });
const docs = (n: number) =>
  `${Array.from({ length: n }, (_, i) => JSON.stringify({ id: `d${i}`, text: `word${i} common` })).join('\n')}\n`;

describe('attacks on files: literal, regular, inside the tenant root', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let late: TestSystem;
  let dataDir: string;
  let outside: string;
  let cRoot: string;
  let socket: Server;
  let env: Record<string, string>;

  before(async () => {
    redis = await startRedis();
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-attack-data-'));
    outside = mkdtempSync(path.join(os.tmpdir(), 'quarry-attack-outside-'));
    cRoot = mkdtempSync(path.join(os.tmpdir(), 'quarry-attack-c-'));
    const A = path.join(dataDir, 'A');
    const B = path.join(dataDir, 'B');
    mkdirSync(path.join(B, 'sub'), { recursive: true });
    mkdirSync(path.join(B, 'dir.csv'));
    mkdirSync(A);
    writeFileSync(path.join(A, 'x.csv'), 'x\n7000\n');
    writeFileSync(path.join(outside, 'secret.csv'), 'x\n999\n');
    writeFileSync(path.join(outside, 'secret.ndjson'), docs(2));
    writeFileSync(path.join(B, 'sub', 'r1.csv'), 'x\n1\n');
    writeFileSync(path.join(B, 'sub', 'r2.csv'), 'x\n2\n');
    writeFileSync(path.join(B, 'sub', 'r*.csv'), 'x\n100\n');
    writeFileSync(path.join(B, 'sub', 'r{1,2}.csv'), 'x\n200\n');
    symlinkSync(path.join(outside, 'secret.csv'), path.join(B, 'sub', 'r3.csv'));
    symlinkSync(path.join(outside, 'secret.ndjson'), path.join(B, 'out.ndjson'));
    symlinkSync(path.join(A, 'x.csv'), path.join(B, 'a-link.csv'));
    execFileSync('mkfifo', [path.join(B, 'fifo.csv')]);
    execFileSync('mkfifo', [path.join(B, 'fifo.ndjson')]);
    try {
      execFileSync('mknod', [path.join(B, 'zero.csv'), 'c', '1', '5'], { stdio: 'ignore' });
    } catch {
      symlinkSync('/dev/zero', path.join(B, 'zero.csv')); // no CAP_MKNOD: a link to one
    }
    socket = createServer();
    await new Promise<void>((resolve) => socket.listen(path.join(B, 'sock.csv'), resolve));
    writeFileSync(path.join(B, 'docs.ndjson'), docs(3));
    writeFileSync(path.join(B, 'big.ndjson'), docs(200));
    writeFileSync(path.join(cRoot, 'c.csv'), 'x\n30\n');
    const duck = await DuckDBInstance.create(':memory:');
    const c = await duck.connect();
    await c.run(`COPY (SELECT 5 AS x UNION ALL SELECT 6) TO '${path.join(B, 'p.csv')}' (FORMAT parquet)`);
    await c.run(`COPY (SELECT 5 AS x) TO '${path.join(B, 'p.ndjson')}' (FORMAT parquet)`);
    c.closeSync();
    duck.closeSync();
    writeFileSync(path.join(B, 'text.parquet'), 'x\n1\n');
    env = {
      QUARRY_QUEUE_REDIS_URL: redis.url,
      QUARRY_DATA_DIR: dataDir,
      QUARRY_MAX_INDEX_SOURCE_BYTES: String(SOURCE_LIMIT),
      QUARRY_API_KEYS: JSON.stringify([
        { key: KEYS.A, tenant: 'A', scopes: ['enqueue', 'read'] },
        { key: KEYS.B, tenant: 'B', scopes: ['enqueue', 'read'] },
        { key: KEYS.C, tenant: 'C', scopes: ['enqueue', 'read'], dataDir: cRoot },
      ]),
    };
    sys = await startSystem({ env });
    late = await startSystem({ env, worker: false });
  });

  after(async () => {
    await late?.close();
    await sys?.close();
    await new Promise((resolve) => socket?.close(resolve));
    await redis?.stop();
    for (const d of [dataDir, outside, cRoot]) rmSync(d, { recursive: true, force: true });
  });

  async function post(key: string, url: string, payload: object) {
    const res = await sys.app.inject({ method: 'POST', url, headers: bearer(key), payload });
    return { status: res.statusCode, body: res.json() as { error?: { code: string; field?: string } } };
  }

  async function refused(key: string, payload: object, status: number, code: string, field = 'dataset.path') {
    const res = await post(key, '/v1/aggregations?wait=20000', payload);
    assert.equal(res.status, status, JSON.stringify(res.body));
    assert.equal(res.body.error?.code, code);
    assert.equal(res.body.error?.field, field);
  }

  test('a literal file named r*.csv (or r{1,2}.csv) beside r1.csv and r2.csv: only the literal one is read, by both engines', async () => {
    const B = sys.client.forTenant('B');
    for (const engine of ENGINES) {
      for (const [name, total] of [
        ['sub/r*.csv', 100],
        ['sub/r{1,2}.csv', 200],
      ] as const) {
        const result = await (await B.aggregate(sumSpec(name, engine))).wait({ timeoutMs: 20_000 });
        assert.deepEqual(result.rows, [{ total, rows: 1 }], `${engine} ${name}`);
        assert.equal(result.engine, engine);
      }
    }
  });

  test('glob characters ? [ ] { } * in a name with no such literal file: 404 not found, never a globbed read', async () => {
    for (const engine of ENGINES) {
      for (const name of ['sub/r?.csv', 'sub/r[12].csv', 'sub/r{1,3}.csv', 'sub/*.csv', '**/r1.csv']) {
        await refused(KEYS.B, sumSpec(name, engine, 'csv'), 404, 'QUARRY_ERR_DATASET_NOT_FOUND');
      }
    }
  });

  test('a symlink inside the root pointing outside it is refused at enqueue (dataset and index source)', async () => {
    for (const engine of ENGINES) {
      await refused(KEYS.B, sumSpec('sub/r3.csv', engine), 400, 'QUARRY_ERR_DATASET_PATH');
    }
    const res = await post(KEYS.B, '/v1/indexes/leak', indexRequest('out.ndjson'));
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error?.code, 'QUARRY_ERR_DATASET_PATH');
  });

  test('a FIFO, a socket, a device and a directory are refused at enqueue with QUARRY_ERR_DATASET_NOT_REGULAR', async () => {
    for (const engine of ENGINES) {
      for (const name of ['fifo.csv', 'sock.csv', 'zero.csv', 'dir.csv', 'sub']) {
        await refused(KEYS.B, sumSpec(name, engine, 'csv'), 400, 'QUARRY_ERR_DATASET_NOT_REGULAR');
      }
    }
    for (const name of ['fifo.ndjson', 'sub']) {
      const res = await post(KEYS.B, '/v1/indexes/special', {
        ...indexRequest(name),
        source: { path: name, format: 'ndjson' },
      });
      assert.equal(res.status, 400, `${name}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error?.code, 'QUARRY_ERR_DATASET_NOT_REGULAR');
      assert.equal(res.body.error?.field, 'source.path');
    }
  });

  test('an index source over QUARRY_MAX_INDEX_SOURCE_BYTES is refused at enqueue with 413', async () => {
    const res = await post(KEYS.B, '/v1/indexes/big', indexRequest('big.ndjson'));
    assert.equal(res.status, 413, JSON.stringify(res.body));
    assert.equal(res.body.error?.code, 'QUARRY_ERR_SOURCE_TOO_LARGE');
    assert.equal(res.body.error?.field, 'source.path');
    // A source under the limit, beside it, builds.
    const ok = await post(KEYS.B, '/v1/indexes/small?wait=30000', indexRequest('docs.ndjson'));
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  });

  test('a Parquet file declared csv or ndjson (and text declared parquet) gets the same refusal on both engines', async () => {
    for (const engine of ENGINES) {
      await refused(KEYS.B, sumSpec('p.csv', engine), 422, 'QUARRY_ERR_DATASET_UNREADABLE');
      await refused(KEYS.B, sumSpec('p.ndjson', engine), 422, 'QUARRY_ERR_DATASET_UNREADABLE');
      await refused(KEYS.B, sumSpec('text.parquet', engine), 422, 'QUARRY_ERR_DATASET_UNREADABLE');
      // Declared as what it is, the same file reads on both.
      const result = await (
        await sys.client.forTenant('B').aggregate(sumSpec('p.csv', engine, 'parquet'))
      ).wait({
        timeoutMs: 20_000,
      });
      assert.deepEqual(result.rows, [{ total: 11, rows: 2 }], engine);
    }
  });

  test('tenant B cannot read tenant A’s file: not by ../A/x.csv, an absolute path, or a symlink', async () => {
    for (const engine of ENGINES) {
      await refused(KEYS.B, sumSpec('../A/x.csv', engine), 400, 'QUARRY_ERR_DATASET_PATH');
      await refused(KEYS.B, sumSpec('sub/../../A/x.csv', engine), 400, 'QUARRY_ERR_DATASET_PATH');
      await refused(
        KEYS.B,
        sumSpec(path.join(dataDir, 'A', 'x.csv'), engine),
        400,
        'QUARRY_ERR_DATASET_PATH',
      );
      await refused(KEYS.B, sumSpec('a-link.csv', engine), 400, 'QUARRY_ERR_DATASET_PATH');
      // B's root is its own folder: A's file is not even there under its own name.
      await refused(KEYS.B, sumSpec('x.csv', engine), 404, 'QUARRY_ERR_DATASET_NOT_FOUND');
      // The owner reads it.
      const own = await post(KEYS.A, '/v1/aggregations?wait=20000', sumSpec('x.csv', engine));
      assert.equal(own.status, 200, JSON.stringify(own.body));
    }
    const res = await post(KEYS.B, '/v1/indexes/steal', indexRequest('../A/x.ndjson'));
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error?.code, 'QUARRY_ERR_DATASET_PATH');
  });

  test('a key’s own dataDir is its tenant’s root, readable by both engines and by no one else', async () => {
    for (const engine of ENGINES) {
      const own = await post(KEYS.C, '/v1/aggregations?wait=20000', sumSpec('c.csv', engine));
      assert.equal(own.status, 200, JSON.stringify(own.body));
      await refused(KEYS.B, sumSpec(path.join(cRoot, 'c.csv'), engine), 400, 'QUARRY_ERR_DATASET_PATH');
      await refused(
        KEYS.C,
        sumSpec(path.join('..', path.basename(dataDir), 'B', 'docs.ndjson'), engine),
        400,
        'QUARRY_ERR_DATASET_PATH',
        'dataset.path',
      );
    }
  });

  test('a spec naming a column the file lacks is a 400 at enqueue (CSV header, Parquet footer), on both engines', async () => {
    for (const engine of ENGINES) {
      for (const [name, format] of [
        ['sub/r1.csv', undefined],
        ['p.csv', 'parquet'],
      ] as const) {
        const spec = { ...sumSpec(name, engine, format), groupBy: ['nope'] };
        await refused(KEYS.B, spec, 400, 'QUARRY_ERR_SPEC_UNKNOWN_COLUMN', 'groupBy.0');
      }
    }
  });

  test('DuckDB still confines a descriptor path: /proc/self/fd/<n> of a file outside every root is refused', async (t) => {
    const engine = await createDuckDBEngine({ dataDir, spoolDir: path.join(outside, 'spool') });
    const handle = await open(path.join(outside, 'secret.csv'), 'r');
    t.after(async () => {
      await handle.close();
      await engine.close();
    });
    const spec = {
      filters: [],
      groupBy: [],
      metrics: [{ op: 'sum' as const, column: 'x', as: 'total' }],
      orderBy: [],
      engine: 'duckdb' as const,
    };
    await assert.rejects(
      engine.run({
        // biome-ignore lint/suspicious/noExplicitAny: a minimal spec; the engine only reads what it names
        spec: spec as any,
        source: { kind: 'file', file: `/proc/self/fd/${handle.fd}`, format: 'csv' },
        maxRows: 10,
      }),
      (error: unknown) => error instanceof QuarryError && error.code === 'QUARRY_ERR_DATASET_UNREADABLE',
    );
  });

  test('files swapped after enqueue (symlink out, FIFO, grown past the limit) fail at read with their code, once, and the index slot stays free', async () => {
    const B = late.client.forTenant('B');
    const root = path.join(dataDir, 'B');
    const aggregations: { name: string; engine: string; jobId: string; code: string }[] = [];
    const swap = (name: string, make: (p: string) => void) => {
      const p = path.join(root, name);
      unlinkSync(p);
      make(p);
    };
    for (const engine of ENGINES) {
      for (const [name, code] of [
        [`late-link-${engine}.csv`, 'QUARRY_ERR_DATASET_PATH'],
        [`late-fifo-${engine}.csv`, 'QUARRY_ERR_DATASET_NOT_REGULAR'],
      ] as const) {
        writeFileSync(path.join(root, name), 'x\n1\n');
        const handle = await B.aggregate(sumSpec(name, engine));
        aggregations.push({ name, engine, jobId: handle.jobId, code });
      }
    }
    writeFileSync(path.join(root, 'late-fifo.ndjson'), docs(2));
    writeFileSync(path.join(root, 'late-grow.ndjson'), docs(2));
    const fifoIndex = await B.index('late-fifo', indexRequest('late-fifo.ndjson'));
    const grownIndex = await B.index('late-grow', indexRequest('late-grow.ndjson'));
    const goodIndex = await B.index('late-good', indexRequest('docs.ndjson'));

    // Swap everything while no worker runs: the worker finds the new files.
    for (const engine of ENGINES) {
      swap(`late-link-${engine}.csv`, (p) => symlinkSync(path.join(outside, 'secret.csv'), p));
      swap(`late-fifo-${engine}.csv`, (p) => execFileSync('mkfifo', [p]));
    }
    swap('late-fifo.ndjson', (p) => execFileSync('mkfifo', [p]));
    appendFileSync(path.join(root, 'late-grow.ndjson'), docs(200));
    // A rename over the original is a swap as well (a new inode under the old name).
    writeFileSync(path.join(root, 'late-good.tmp'), docs(3));
    renameSync(path.join(root, 'late-good.tmp'), path.join(root, 'docs.ndjson'));

    const worker = await startWorker(late.config, silentLogger());
    try {
      await worker.ready;
      for (const a of aggregations) {
        const final = await late.client.forTenant('B').waitForJob(a.jobId, { timeoutMs: 20_000 });
        assert.equal(final.state, 'failed', `${a.engine} ${a.name}`);
        assert.equal(final.error?.code, a.code, `${a.engine} ${a.name}`);
        const status = await late.client.forTenant('B').status(a.jobId);
        assert.equal(status?.attempts, 1, `${a.name}: unrecoverable, not retried`);
      }
      await assert.rejects(fifoIndex.wait({ timeoutMs: 20_000 }), { code: 'QUARRY_ERR_DATASET_NOT_REGULAR' });
      await assert.rejects(grownIndex.wait({ timeoutMs: 20_000 }), { code: 'QUARRY_ERR_SOURCE_TOO_LARGE' });
      // The single index slot was given back: the next build completes.
      const info = await goodIndex.wait({ timeoutMs: 30_000 });
      assert.equal(info.documents, 3);
    } finally {
      await worker.close();
    }
  });
});
