// `npm start`: the whole system on one machine. Uses the Redis servers at the configured URLs
// when they answer; otherwise, with redis-server on the PATH, starts a queue Redis (AOF,
// noeviction) and a cache Redis (maxmemory, allkeys-lru) under ./.quarry; then a worker and the
// API. Ctrl-C (or SIGTERM) stops all of it: children first, Redis last.
//
// Every child runs in a process group of its own (`detached`), so a Ctrl-C, which the terminal
// sends to the whole foreground group, reaches only this starter (and npm above it, which
// forwards a copy: onShutdownSignals treats that as the same request). The starter then sends
// each child one SIGTERM: workers finish their jobs within QUARRY_SHUTDOWN_TIMEOUT_MS, and Redis
// keeps serving until they are done. A second Ctrl-C is forwarded once more and forces them. The
// exit code is 0 only when every child stopped by itself with 0.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { loadConfig } from '../shared/config.ts';
import { createLogger } from '../shared/logger.ts';
import { onShutdownSignals } from '../shared/shutdown-signals.ts';
import { tsExecArgv } from '../shared/ts-runtime.ts';

const config = loadConfig();
const logger = createLogger({ level: config.logLevel, name: 'quarry-start', format: config.logFormat });
const workers = Math.max(1, Number(process.argv[process.argv.indexOf('--workers') + 1]) || 1);

function answers(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname || '127.0.0.1', port: Number(port || 6379) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) =>
      done(data.toString().startsWith('+PONG') || data.toString().startsWith('-NOAUTH')),
    );
  });
}

const children: { name: string; child: ChildProcess }[] = [];
const redisServers: { name: string; child: ChildProcess }[] = [];

function startRedis(name: string, url: string, args: string[]): Promise<void> {
  const { port } = new URL(url);
  const dir = path.resolve('.quarry', name);
  mkdirSync(dir, { recursive: true });
  const child = spawn(
    'redis-server',
    ['--port', port || '6379', '--bind', '127.0.0.1', '--dir', dir, ...args],
    { stdio: ['ignore', 'pipe', 'inherit'], detached: true },
  );
  redisServers.push({ name, child });
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        logger.info({ server: name, url, dir }, 'started redis-server');
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) =>
      reject(new Error(`redis-server (${name}) exited with ${code}: ${output.slice(-400)}`)),
    );
  });
}

async function ensureRedis(): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  const queueUp = await answers(config.queueRedisUrl);
  const cacheUrl = config.cacheSharesQueue
    ? (() => {
        const u = new URL(config.queueRedisUrl);
        u.port = String(Number(u.port || 6379) + 1);
        return u.toString().replace(/\/$/, '');
      })()
    : config.cacheRedisUrl;
  const cacheUp = await answers(cacheUrl);
  const needed = !queueUp || !cacheUp;
  if (needed && spawnSync('redis-server', ['--version']).status !== 0) {
    logger.fatal(
      { queue: config.queueRedisUrl, cache: cacheUrl },
      'no Redis answers and redis-server is not installed: install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) or set QUARRY_QUEUE_REDIS_URL / QUARRY_CACHE_REDIS_URL',
    );
    process.exit(1);
  }
  if (!queueUp) {
    await startRedis('redis-queue', config.queueRedisUrl, [
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
      '--maxmemory-policy',
      'noeviction',
    ]);
  }
  if (!cacheUp) {
    await startRedis('redis-cache', cacheUrl, [
      '--save',
      '',
      '--appendonly',
      'no',
      '--maxmemory',
      '256mb',
      '--maxmemory-policy',
      'allkeys-lru',
    ]);
  }
  env.QUARRY_CACHE_REDIS_URL = cacheUrl;
  return env;
}

function startChild(name: string, entry: string, env: Record<string, string>): void {
  const child = spawn(process.execPath, [...tsExecArgv(), entry], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, ...env },
    detached: true,
  });
  children.push({ name, child });
  child.once('exit', (code, signal) => {
    if (!stopping) {
      logger.error({ process: name, code, signal }, 'a process exited: stopping everything');
      void stop(1);
    } else {
      logger.info({ process: name, code, signal }, 'process stopped');
    }
  });
}

let stopping = false;
const exited = (c: ChildProcess) =>
  c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((r) => c.once('exit', r));
const stoppedCleanly = (c: ChildProcess) => c.exitCode === 0;

async function stop(exitCode: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  for (const { child } of children) child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(children.map(({ child }) => exited(child))),
    new Promise((r) => {
      timer = setTimeout(r, config.shutdownTimeoutMs + 2000);
    }),
  ]);
  clearTimeout(timer);
  for (const { name, child } of children) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    logger.error({ process: name }, 'did not stop in time: killing it');
    child.kill('SIGKILL');
  }
  await Promise.all(children.map(({ child }) => exited(child)));
  // redis-server saves (AOF fsync) and exits cleanly on SIGTERM.
  for (const { child } of redisServers.reverse()) child.kill('SIGTERM');
  await Promise.all(redisServers.map(({ child }) => exited(child)));
  const clean = children.every(({ child }) => stoppedCleanly(child));
  logger.info({ clean }, 'stopped');
  process.exit(clean ? exitCode : 1);
}

onShutdownSignals({
  graceful: () => void stop(0),
  duplicate: (signal) => logger.debug({ signal, shutdown: 'duplicate' }, 'the same stop request again'),
  // A second Ctrl-C: each child gets a second signal, which makes it exit at once.
  forced(signal) {
    logger.warn({ signal, shutdown: 'forced' }, 'second signal: forcing every process to exit');
    for (const { child } of children) if (child.exitCode === null) child.kill('SIGTERM');
  },
});
// Children live in process groups of their own and would outlive a starter that crashed.
process.on('exit', () => {
  for (const { child } of [...children, ...redisServers]) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  }
});

const env = await ensureRedis();
// Each worker serves its metrics on its own port: the configured one, then the next ones.
for (let i = 0; i < workers; i++) {
  startChild(`worker-${i + 1}`, 'workers/main.ts', {
    ...env,
    QUARRY_WORKER_METRICS_PORT: String(config.workerMetricsPort === 0 ? 0 : config.workerMetricsPort + i),
  });
}
startChild('api', 'api/main.ts', env);
logger.info(
  { api: `http://${config.apiHost}:${config.apiPort}`, workers, ...env },
  'Quarry is running: Ctrl-C stops it',
);
if (config.cacheSharesQueue) {
  logger.info(
    `the CLI and SDK need the cache URL too: export QUARRY_CACHE_REDIS_URL=${env.QUARRY_CACHE_REDIS_URL}`,
  );
}
