// The Redis key scheme as docs/KEYS.md documents it, used by an app that knows nothing else: a
// Python program with a plain Redis client (test/python/poll_keys.py) computes result keys
// itself, enqueues over HTTP, follows the events channel and polls the keys, against a real
// Quarry (two real redis-servers, a worker, the API listening on a port).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { STATUS_FIELDS } from '../../shared/status.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const root = path.resolve(import.meta.dirname, '../..');
// Debian's python3-redis is installed for the system interpreter, not for pyenv's shims.
const PYTHON = '/usr/bin/python3';
const pythonRedis = spawnSync(PYTHON, ['-c', 'import redis'], { stdio: 'ignore' }).status === 0;
const inCi = Boolean(process.env.CI);
if (!pythonRedis && !inCi) {
  process.stderr.write(
    `\n*** key-scheme.test.ts: SKIPPED: ${PYTHON} cannot import redis (apt-get install python3-redis). CI must run it. ***\n\n`,
  );
}

describe('key scheme (docs/KEYS.md) from a plain Python Redis client', {
  skip: !pythonRedis && !inCi,
}, () => {
  let queueRedis: RedisServer;
  let cacheRedis: RedisServer;
  let sys: TestSystem;
  let dataDir: string;
  let api: string;

  before(async () => {
    [queueRedis, cacheRedis] = await Promise.all([startRedis(), startRedis()]);
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-keys-'));
    // Not Parquet at all: accepted at enqueue (its stat is its fingerprint), failed by the worker.
    writeFileSync(path.join(dataDir, 'broken.parquet'), 'PAR1 this is not parquet PAR1');
    sys = await startSystem({
      env: {
        QUARRY_QUEUE_REDIS_URL: queueRedis.url,
        QUARRY_CACHE_REDIS_URL: cacheRedis.url,
        QUARRY_DATA_DIR: dataDir,
        QUARRY_JOB_BACKOFF_MS: '50',
      },
    });
    api = await sys.app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await sys?.close();
    await Promise.all([queueRedis?.stop(), cacheRedis?.stop()]);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('poll_keys.py computes the result keys, reads every documented field and message shape, and agrees with Quarry', async () => {
    assert.ok(pythonRedis, `${PYTHON} cannot import redis: CI must install python3-redis`);
    const child = spawn(
      PYTHON,
      [
        'test/python/poll_keys.py',
        queueRedis.url,
        cacheRedis.url,
        sys.config.prefix,
        api,
        dataDir,
        'broken.parquet',
      ],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c;
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c;
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 0, `poll_keys.py failed:\n${stderr}`);
    const summary = JSON.parse(stdout) as {
      aggregation: { resultKey: string; states: string[] };
      failed: { resultKey: string; errorCode: string };
      index: { collection: string; version: number; states: string[] };
    };
    // What Python computed and saw, held against Quarry's own view through the SDK.
    const status = await sys.client.status(`agg-${summary.aggregation.resultKey}`);
    assert.equal(status?.state, 'completed');
    assert.deepEqual(summary.aggregation.states.slice(0, 2), ['queued', 'active']);
    assert.equal(summary.aggregation.states.at(-1), 'completed');
    assert.match(summary.failed.errorCode, /^QUARRY_ERR_/);
    assert.equal((await sys.client.status(`agg-${summary.failed.resultKey}`))?.state, 'failed');
    assert.equal((await sys.client.indexInfo(summary.index.collection))?.version, summary.index.version);
  });

  test('docs/KEYS.md names every status hash field the code writes', () => {
    const doc = readFileSync(path.join(root, 'docs/KEYS.md'), 'utf8');
    for (const field of STATUS_FIELDS) assert.ok(doc.includes(`| \`${field}\` |`), `KEYS.md lacks ${field}`);
  });
});
