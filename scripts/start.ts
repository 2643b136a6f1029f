// `npm start`: the whole system on one machine. Uses the Redis servers at the configured URLs
// when they answer; otherwise, with redis-server on the PATH, starts a queue Redis (AOF,
// noeviction) and a cache Redis (maxmemory, allkeys-lru) under ./.quarry; then a worker and the
// API. Ctrl-C (or SIGTERM) stops all of it: children first, Redis last.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { loadConfig } from '../shared/config.ts';
import { createLogger } from '../shared/logger.ts';

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
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
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
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    stdio: 'inherit',
    env: { ...process.env, ...env },
  });
  children.push({ name, child });
  child.once('exit', (code, signal) => {
    if (!stopping) {
      logger.error({ name, code, signal }, 'a process exited: stopping everything');
      void stop(1);
    }
  });
}

let stopping = false;
async function stop(exitCode: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  const exited = (c: ChildProcess) =>
    c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((r) => c.once('exit', r));
  for (const { child } of children) child.kill('SIGTERM');
  await Promise.race([
    Promise.all(children.map(({ child }) => exited(child))),
    new Promise((r) => setTimeout(r, config.shutdownTimeoutMs + 2000)),
  ]);
  for (const { child } of children) if (child.exitCode === null) child.kill('SIGKILL');
  // redis-server saves (AOF fsync) and exits cleanly on SIGTERM.
  for (const { child } of redisServers.reverse()) child.kill('SIGTERM');
  await Promise.all(redisServers.map(({ child }) => exited(child)));
  logger.info('stopped');
  process.exit(exitCode);
}

process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

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
