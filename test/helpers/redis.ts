// Starts real redis-server processes on free ports for integration tests. Each server runs
// from a temp directory, without persistence unless asked, and is killed by stop() (and on
// process exit, so a failing test never leaves one behind).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  readonly process: ChildProcess;
  /** Kills the server (SIGKILL unless told otherwise); removes its data unless `keepData`. */
  stop(options?: { keepData?: boolean; signal?: NodeJS.Signals }): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Starts redis-server. Give `port` and `dir` of a stopped server to restart it on its data
 * (with `--appendonly yes`, what it acknowledged survives).
 */
export async function startRedis(
  extraArgs: string[] = [],
  port?: number,
  dir?: string,
): Promise<RedisServer> {
  const keepDir = dir !== undefined;
  dir ??= mkdtempSync(path.join(os.tmpdir(), 'quarry-redis-'));
  const chosen = port ?? (await freePort());
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(chosen),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  running.add(child);
  await new Promise<void>((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        child.stdout?.off('data', onData);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code) =>
      reject(new Error(`redis-server exited with ${code}: ${output.slice(-500)}`)),
    );
  });
  child.stdout?.resume();
  child.stderr?.resume();
  return {
    url: `redis://127.0.0.1:${chosen}`,
    port: chosen,
    dir,
    process: child,
    async stop(options: { keepData?: boolean; signal?: NodeJS.Signals } = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill(options.signal ?? 'SIGKILL');
        await exited;
      }
      running.delete(child);
      if (!options.keepData && !keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function usedMemory(admin: Redis): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1]);
}

/**
 * Sets maxmemory `headroomBytes` above what the server uses (noeviction) and fills it with
 * padding keys until it answers OOM; returns their names, for the test to delete.
 */
export async function fillToMaxmemory(admin: Redis, headroomBytes: number): Promise<string[]> {
  await admin.config('SET', 'maxmemory-policy', 'noeviction');
  await admin.config('SET', 'maxmemory', String((await usedMemory(admin)) + headroomBytes));
  const pads: string[] = [];
  for (let i = 0; i < 10_000; i++) {
    try {
      await admin.set(`pad:${i}`, 'x'.repeat(4096));
      pads.push(`pad:${i}`);
    } catch (error) {
      assert.match((error as Error).message, /^OOM/, 'the padding stops at maxmemory');
      return pads;
    }
  }
  assert.fail('the Redis never reached maxmemory');
}
