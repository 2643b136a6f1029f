// Starts real redis-server processes on free ports for integration tests. Each server runs
// from a temp directory, without persistence unless asked, and is killed by stop() (and on
// process exit, so a failing test never leaves one behind).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

/**
 * Ports handed out here come from below the kernel's ephemeral range, where `listen(0)` and
 * outgoing connections never land, and are reserved across the test processes running side by
 * side (one file per port under RESERVED_DIR, made with O_EXCL, holding the owner's pid) for
 * the owner's life. So a Redis a test stops and restarts on its port (outage, failover) finds
 * the port still its own: once, a server that another test file started with listen(0) took a
 * stopped Redis's port, ioredis read "HTTP/1.1 400" from it, and the run hung for 80 minutes.
 * The range is 10,000 wide so that a Cluster node's bus port (port + 10,000) is never a port of
 * the range, and stays below the ephemeral range too.
 */
const RESERVED_DIR = path.join(os.tmpdir(), 'quarry-test-ports');
const RANGE = { low: 12_000, high: 22_000 };
const reserved: string[] = [];
process.on('exit', () => {
  for (const file of reserved) rmSync(file, { force: true });
});

function ephemeralLow(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    return 32_768;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes `port` for this process unless a live process holds it; a dead owner's file is taken over. */
function reserve(port: number): boolean {
  const file = path.join(RESERVED_DIR, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      reserved.push(file);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number(readFileSync(file, 'utf8'));
      if (owner === process.pid || alive(owner)) return false;
      rmSync(file, { force: true });
    }
  }
  return false;
}

function listenable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function kernelPort(): Promise<number> {
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

export async function freePort(): Promise<number> {
  mkdirSync(RESERVED_DIR, { recursive: true });
  if (ephemeralLow() >= RANGE.high + 10_000) {
    for (let attempt = 0; attempt < 500; attempt++) {
      const port = randomInt(RANGE.low, RANGE.high);
      if (reserve(port) && (await listenable(port))) return port;
    }
  }
  // A kernel whose ephemeral range reaches down here: its ports, still reserved among tests.
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await kernelPort();
    if (reserve(port)) return port;
  }
  throw new Error('freePort: no free port found');
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
