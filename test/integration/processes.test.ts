// Process behaviour, tested in subprocesses: the worker entrypoint finishes a running job on
// SIGTERM and exits 0; Ctrl-C at `npm start` (the terminal's SIGINT to the whole process group,
// plus npm's forwarded copy) is one graceful stop, a later second Ctrl-C forces; the CLI prints
// results and exits with codes scripts can rely on.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createQuarry, type QuarryClient } from '../../producers/client.ts';
import type { QuarryConfig } from '../../shared/config.ts';
import { DUPLICATE_SIGNAL_WINDOW_MS } from '../../shared/shutdown-signals.ts';
import { tsExecArgv } from '../../shared/ts-runtime.ts';
import { slowFlightsSpec, VEGA_DATA_DIR } from '../helpers/flights.ts';
import { freePort, type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem, testConfig, uniquePrefix } from '../helpers/system.ts';
import { nextStart } from '../helpers/worker-process.ts';

const root = path.resolve(import.meta.dirname, '../..');

function run(
  entry: string,
  args: string[],
  env: Record<string, string>,
  input?: string,
): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, [...tsExecArgv(), entry, ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => {
    stdout += c;
  });
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c;
  });
  child.stdin?.end(input);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, done };
}

function envOf(config: QuarryConfig): Record<string, string> {
  return {
    QUARRY_QUEUE_REDIS_URL: config.queueRedisUrl,
    QUARRY_CACHE_REDIS_URL: config.cacheRedisUrl,
    QUARRY_PREFIX: config.prefix,
    QUARRY_DATA_DIR: config.dataDir,
    QUARRY_LOG_LEVEL: 'info',
  };
}

describe('processes', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis?.stop());

  test('worker: SIGTERM during a job lets it finish, then exits 0', async () => {
    const config = testConfig({ QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_DATA_DIR: VEGA_DATA_DIR });
    const worker = run('workers/main.ts', [], { ...envOf(config), QUARRY_SHUTDOWN_TIMEOUT_MS: '30000' });
    let client: QuarryClient | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        const onData = (c: Buffer) => {
          if (String(c).includes('worker ready')) {
            worker.child.stdout?.off('data', onData);
            resolve();
          }
        };
        worker.child.stdout?.on('data', onData);
        worker.child.once('exit', (code) => reject(new Error(`worker exited early: ${code}`)));
      });
      client = createQuarry({ config });
      // 3M rows grouped by date and origin with a median and a distinct count: seconds of work, so
      // the job is still running when the client sees it active (the plain 3M spec once finished
      // before the active event arrived, and the signal was never sent).
      const job = await client.aggregate({ ...slowFlightsSpec(5), engine: 'duckdb' });
      let signalled = false;
      const result = job.wait({
        timeoutMs: 60_000,
        onEvent: (event) => {
          if (event.state === 'active' && !signalled) {
            signalled = true;
            worker.child.kill('SIGTERM');
          }
        },
      });
      const envelope = await result;
      assert.ok(signalled, 'the signal was sent while the job was active');
      assert.equal(envelope.rowCount, 5);
      const { code, stdout } = await worker.done;
      assert.equal(code, 0, stdout.slice(-2000));
      assert.match(stdout, /worker stopped/);
    } finally {
      worker.child.kill('SIGKILL');
      await client?.close();
    }
  });

  describe('npm start: Ctrl-C', () => {
    /** scripts/start.ts in a process group of its own, as a shell runs it; its and its children's pino lines. */
    async function starter() {
      const config = testConfig({ QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_DATA_DIR: VEGA_DATA_DIR });
      const env = {
        ...envOf(config),
        // The test's Redis answers for both roles: the starter starts none.
        QUARRY_CACHE_REDIS_URL: redis.url,
        QUARRY_API_PORT: String(await freePort()),
        QUARRY_WORKER_METRICS_PORT: '0',
        QUARRY_DUCKDB_THREADS: '1',
        QUARRY_SHUTDOWN_TIMEOUT_MS: '30000',
      };
      const child = spawn(process.execPath, [...tsExecArgv(), 'scripts/start.ts'], {
        cwd: root,
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      const lines: Record<string, unknown>[] = [];
      const waiters: { match: (l: Record<string, unknown>) => boolean; resolve: () => void }[] = [];
      let pending = '';
      let stderr = '';
      child.stderr?.on('data', (c: Buffer) => {
        stderr += c;
      });
      child.stdout?.on('data', (c: Buffer) => {
        pending += c;
        const parts = pending.split('\n');
        pending = parts.pop() ?? '';
        for (const part of parts) {
          if (!part.startsWith('{')) continue;
          const line = JSON.parse(part) as Record<string, unknown>;
          lines.push(line);
          for (const w of waiters.filter((w) => w.match(line))) w.resolve();
        }
      });
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      const seen = (match: (l: Record<string, unknown>) => boolean) =>
        lines.some(match)
          ? Promise.resolve()
          : Promise.race([
              new Promise<void>((resolve) => waiters.push({ match, resolve })),
              exited.then((code) => {
                throw new Error(`the starter exited (${code}) first: ${stderr.slice(-2000)}`);
              }),
            ]);
      /** What a terminal does on Ctrl-C (the whole foreground group), and npm's forwarded copy. */
      const ctrlC = () => {
        process.kill(-child.pid!, 'SIGINT');
        child.kill('SIGINT');
      };
      await Promise.all([
        seen((l) => l.name === 'quarry-worker' && l.msg === 'worker ready'),
        seen((l) => typeof l.msg === 'string' && l.msg.startsWith('Server listening')),
      ]);
      return { child, lines, seen, exited, ctrlC, config, stderr: () => stderr };
    }

    /**
     * Seconds of work on one DuckDB thread, and `onActive` (a Ctrl-C) once its status record says
     * it runs (polled: a waiter's subscription may come up after the job's first event).
     */
    async function runningJob(config: QuarryConfig, onActive: () => void) {
      const client = createQuarry({ config });
      const job = await client.aggregate({ ...slowFlightsSpec(3), engine: 'duckdb' });
      const result = job.wait({ timeoutMs: 60_000 });
      result.catch(() => undefined);
      await nextStart(client, job.jobId, null);
      onActive();
      return { client, result };
    }

    test('one Ctrl-C (group SIGINT + npm copy): the worker finishes its job, every process exits 0', async () => {
      const s = await starter();
      let client: QuarryClient | undefined;
      try {
        const job = await runningJob(s.config, s.ctrlC);
        client = job.client;
        const envelope = await job.result;
        assert.equal(envelope.rowCount, 3, 'the running job completed after Ctrl-C');
        const code = await s.exited;
        const log = JSON.stringify(s.lines.slice(-30));
        assert.equal(code, 0, log);
        const worker = s.lines.filter((l) => l.name === 'quarry-worker');
        assert.ok(
          worker.some((l) => l.shutdown === 'graceful' && l.exitCode === 0),
          log,
        );
        assert.equal(worker.filter((l) => l.shutdown === 'forced').length, 0, log);
        // Each child got the stop request once (the starter forwards one), and stopped with 0.
        assert.equal(worker.filter((l) => l.shutdown === 'duplicate').length, 0, log);
        const stopped = s.lines.filter((l) => l.msg === 'process stopped');
        assert.deepEqual(stopped.map((l) => [l.process, l.code]).sort(), [
          ['api', 0],
          ['worker-1', 0],
        ]);
        assert.ok(
          s.lines.some((l) => l.msg === 'stopped' && l.clean === true),
          log,
        );
      } finally {
        if (s.child.exitCode === null) s.child.kill('SIGTERM');
        await s.exited;
        await client?.close();
      }
    });

    test('a second Ctrl-C later than the copy window forces the worker out at once', async () => {
      const s = await starter();
      let client: QuarryClient | undefined;
      try {
        let firstAt = 0;
        const job = await runningJob(s.config, () => {
          firstAt = performance.now();
          s.ctrlC();
        });
        client = job.client;
        await s.seen((l) => l.name === 'quarry-worker' && l.shutdown === 'graceful');
        // The rule under test is about time: a person's second Ctrl-C comes after the window.
        const wait = firstAt + DUPLICATE_SIGNAL_WINDOW_MS + 200 - performance.now();
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait)));
        assert.equal(
          s.child.exitCode,
          null,
          `still stopping gracefully at the second Ctrl-C: ${JSON.stringify(s.lines.slice(-12).map((l) => [l.time, l.name, l.msg, l.shutdown]))}`,
        );
        s.ctrlC();
        const code = await s.exited;
        const log = JSON.stringify(s.lines.slice(-30));
        assert.equal(code, 1, log);
        assert.ok(
          s.lines.some((l) => l.name === 'quarry-worker' && l.shutdown === 'forced' && l.exitCode === 1),
          log,
        );
        assert.ok(
          s.lines.some((l) => l.msg === 'process stopped' && l.process === 'worker-1' && l.code === 1),
        );
        assert.ok(
          s.lines.some((l) => l.msg === 'stopped' && l.clean === false),
          log,
        );
      } finally {
        if (s.child.exitCode === null) s.child.kill('SIGTERM');
        await s.exited;
        await client?.close();
      }
    });
  });

  describe('CLI', () => {
    let sys: TestSystem;
    let specFile: string;
    before(async () => {
      sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url } });
      specFile = path.join(os.tmpdir(), `quarry-cli-${uniquePrefix()}.json`);
      writeFileSync(
        specFile,
        JSON.stringify({
          dataset: {
            records: [
              { g: 'a', v: 1 },
              { g: 'a', v: 3 },
              { g: 'b', v: 10 },
            ],
          },
          groupBy: ['g'],
          metrics: [{ op: 'count' }, { op: 'sum', column: 'v' }],
        }),
      );
    });
    after(() => sys?.close());

    test('aggregate --wait prints the table; --json prints the envelope', async () => {
      const table = await run('producers/cli.ts', ['aggregate', specFile, '--wait'], envOf(sys.config)).done;
      assert.equal(table.code, 0, table.stderr);
      assert.deepEqual(
        table.stdout
          .trim()
          .split('\n')
          .map((l) => l.split(/\s+/)),
        [
          ['g', 'count', 'sum_v'],
          ['-', '-----', '-----'],
          ['a', '2', '4'],
          ['b', '1', '10'],
        ],
      );
      const json = await run(
        'producers/cli.ts',
        ['aggregate', '-', '--wait', '--json'],
        envOf(sys.config),
        '{"dataset":{"records":[{"x":2},{"x":4}]},"metrics":[{"op":"avg","column":"x"}]}',
      ).done;
      assert.equal(json.code, 0, json.stderr);
      assert.deepEqual(JSON.parse(json.stdout).rows, [{ avg_x: 3 }]);
    });

    test('index --wait, then search prints ranked hits', async () => {
      const request = JSON.stringify({
        documents: [
          { id: 'a', text: 'red apples and green pears' },
          { id: 'b', text: 'green green grass' },
          { id: 'c', text: 'blue sky' },
        ],
        idField: 'id',
        fields: ['text'],
        store: ['text'],
      });
      const built = await run(
        'producers/cli.ts',
        ['index', 'cli-docs', '-', '--wait', '--json'],
        envOf(sys.config),
        request,
      ).done;
      assert.equal(built.code, 0, built.stderr);
      assert.equal(JSON.parse(built.stdout).documents, 3);
      const found = await run(
        'producers/cli.ts',
        ['search', 'cli-docs', 'green', '--json'],
        envOf(sys.config),
      ).done;
      assert.equal(found.code, 0, found.stderr);
      assert.deepEqual(
        JSON.parse(found.stdout).hits.map((h: { id: string }) => h.id),
        ['b', 'a'],
      );
      const missing = await run('producers/cli.ts', ['search', 'no-such', 'green'], envOf(sys.config)).done;
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /QUARRY_ERR_INDEX_NOT_FOUND/);
    });

    test('exit codes: 2 for bad input, usage and an unknown job, 3 without Redis', async () => {
      const bad = await run('producers/cli.ts', ['aggregate', '-'], envOf(sys.config), '{"metrics":[]}').done;
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /QUARRY_ERR_VALIDATION/);
      const usage = await run('producers/cli.ts', ['frobnicate'], envOf(sys.config)).done;
      assert.equal(usage.code, 2);
      const unknown = await run('producers/cli.ts', ['status', 'agg-0000000000000000'], envOf(sys.config))
        .done;
      assert.equal(unknown.code, 2);
      const down = await run('producers/cli.ts', ['status', 'agg-0000000000000000'], {
        ...envOf(sys.config),
        QUARRY_QUEUE_REDIS_URL: 'redis://127.0.0.1:1',
        QUARRY_CACHE_REDIS_URL: 'redis://127.0.0.1:1',
      }).done;
      assert.equal(down.code, 3, down.stderr);
      const help = await run('producers/cli.ts', ['--help'], envOf(sys.config)).done;
      assert.equal(help.code, 0);
      assert.match(help.stdout, /Usage:/);
    });
  });
});
