// The deployment check, without a container engine: compose.yaml is read the way `docker
// compose` reads it (YAML, then ${VAR} substitution) and held to the configuration schema
// (shared/config.ts) and to the two-Redis design; the Dockerfile is held to its contract (slim
// Node 24 LTS pinned, production dependencies, non-root, every directory the runtime imports); and both
// healthchecks are run for real, as node subprocesses, against a live and a dead endpoint.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, loadConfig, type QuarryConfig } from '../../shared/config.ts';
import { startMetricsServer } from '../../workers/metrics-server.ts';
import { freePort } from '../helpers/redis.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// What an operator sets before `docker compose up` (shell or .env): only what compose requires.
const OPERATOR_ENV: Record<string, string> = {
  QUARRY_API_KEYS: JSON.stringify([{ key: 'deployment-check-key-0001', tenant: 'main', scopes: ['admin'] }]),
  QUARRY_CONSOLE_SECRET: 'deployment-check-console-secret-000000000000',
};

// ---------------------------------------------------------------- compose: reading

class MissingVariableError extends Error {
  readonly variable: string;
  constructor(variable: string) {
    super(`compose would refuse to start: ${variable} is required`);
    this.variable = variable;
  }
}

/** Compose's interpolation: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e}, ${VAR:+r}, ${VAR+r}. */
function interpolate(text: string, env: Record<string, string>): string {
  const out = text.replace(
    /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g,
    (
      _match: string,
      dollar: string | undefined,
      braced: string | undefined,
      op: string | undefined,
      arg: string | undefined,
      bare: string | undefined,
    ) => {
      if (dollar) return '\u0000';
      const name = (braced ?? bare)!;
      const value = env[name];
      const unset = value === undefined || (op?.startsWith(':') === true && value === '');
      switch (op?.replace(':', '')) {
        case '-':
          return unset ? arg! : value!;
        case '?':
          if (unset) throw new MissingVariableError(name);
          return value!;
        case '+':
          return unset ? '' : arg!;
        default:
          return value ?? '';
      }
    },
  );
  assert.ok(!out.includes('${'), `compose cannot interpolate "${text}"`);
  return out.replaceAll('\u0000', '$');
}

function interpolateTree(node: unknown, env: Record<string, string>): unknown {
  if (typeof node === 'string') return interpolate(node, env);
  if (Array.isArray(node)) return node.map((n) => interpolateTree(n, env));
  if (node !== null && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateTree(v, env)]));
  }
  return node;
}

interface Service {
  image?: string;
  build?: unknown;
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  env_file?: unknown;
  ports?: (string | number | { target: number; published?: string | number })[];
  expose?: (string | number)[];
  volumes?: (string | { type?: string; source?: string; target: string })[];
  container_name?: string;
  healthcheck?: { test: string | string[]; disable?: boolean };
  depends_on?: string[] | Record<string, { condition?: string }>;
  stop_grace_period?: string;
  shm_size?: string | number;
  restart?: string;
  deploy?: { resources?: { limits?: { cpus?: string | number; memory?: string } } };
}

interface Compose {
  services: Record<string, Service>;
  /** Named volumes. */
  volumes?: Record<string, unknown>;
}

const composeText = readFileSync(path.join(ROOT, 'compose.yaml'), 'utf8');
/** compose.yaml as compose runs it for an operator who set OPERATOR_ENV. */
function compose(env: Record<string, string> = OPERATOR_ENV): Compose {
  return interpolateTree(parse(composeText, { merge: true }), env) as Compose;
}

function environmentOf(service: Service): Record<string, string> {
  const raw = service.environment ?? {};
  const entries = Array.isArray(raw)
    ? raw.map((line) => {
        const at = line.indexOf('=');
        return at === -1 ? [line, null] : [line.slice(0, at), line.slice(at + 1)];
      })
    : Object.entries(raw);
  const env: Record<string, string> = {};
  for (const [name, value] of entries) {
    // A bare name passes the operator's value through; unset there, it is not set at all.
    const resolved = value === null ? OPERATOR_ENV[name as string] : String(value);
    if (resolved !== undefined) env[name as string] = resolved;
  }
  return env;
}

const argv = (command: string | string[] | undefined): string[] =>
  command === undefined ? [] : Array.isArray(command) ? command : command.trim().split(/\s+/);

/** The value after `--flag` in a redis-server command line. */
function redisFlag(service: Service, flag: string): string | undefined {
  const args = argv(service.command);
  const at = args.indexOf(`--${flag}`);
  return at === -1 ? undefined : args[at + 1];
}

function mounts(service: Service): { source: string | undefined; target: string }[] {
  return (service.volumes ?? []).map((v) => {
    if (typeof v !== 'string') return { source: v.source, target: v.target };
    const [source, target] = v.split(':');
    return target === undefined ? { source: undefined, target: source! } : { source, target };
  });
}

function containerPorts(service: Service): { published: string | undefined; target: number }[] {
  return (service.ports ?? []).map((p) => {
    if (typeof p === 'object') return { published: p.published?.toString(), target: Number(p.target) };
    const parts = String(p).split('/')[0]!.split(':');
    return { published: parts.length > 1 ? parts.at(-2) : undefined, target: Number(parts.at(-1)) };
  });
}

/** Go-style durations as compose writes them: 1m30s, 20s, 1500ms. */
function durationMs(text: string): number {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 1e-3, ns: 1e-6 };
  let total = 0;
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)/g))
    total += Number(n) * units[unit!]!;
  return total;
}

// Same rule as api/main.ts, which keeps it private to the entrypoint.
const isLoopback = (host: string) =>
  host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
/** Addresses a healthcheck on 127.0.0.1 inside the container reaches. */
const reachableFromLoopback = (host: string) => isLoopback(host) || host === '0.0.0.0' || host === '::';

// ---------------------------------------------------------------- Dockerfile: reading

interface Instruction {
  keyword: string;
  args: string;
}

const dockerfile: Instruction[] = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')
  .replace(/\\\r?\n/g, ' ')
  .split(/\r?\n/)
  .map((line) => line.trim())
  .filter((line) => line !== '' && !line.startsWith('#'))
  .map((line) => {
    const [keyword, ...rest] = line.split(/\s+/);
    return { keyword: keyword!.toUpperCase(), args: rest.join(' ') };
  });
/** The runtime stage: everything after the last FROM. */
const finalStage = dockerfile.slice(dockerfile.findLastIndex((i) => i.keyword === 'FROM'));
const workdir = finalStage
  .filter((i) => i.keyword === 'WORKDIR')
  .reduce((dir, i) => path.posix.resolve(dir, i.args), '/');

/** Exec form (JSON array) or shell form of a CMD/HEALTHCHECK command. */
function commandArgv(args: string): string[] {
  return args.startsWith('[') ? (JSON.parse(args) as string[]) : ['/bin/sh', '-c', args];
}

/** Repository-relative files reached from the entrypoints through relative imports and thread URLs. */
function runtimeFiles(entries: string[]): Set<string> {
  const seen = new Set<string>();
  const pending = [...entries];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    if (!file.endsWith('.ts')) continue;
    const text = readFileSync(path.join(ROOT, file), 'utf8');
    // Any relative .ts/.json literal: static and dynamic imports, and new URL('./x.ts', import.meta.url).
    for (const [, spec] of text.matchAll(/['"](\.\.?\/[^'"\s]+\.(?:ts|json))['"]/g)) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec!));
      if (existsSync(path.join(ROOT, target))) pending.push(target);
    }
  }
  return seen;
}

/** Where each COPY puts each of its sources, inside the image. */
function copies(): { source: string; target: string }[] {
  return finalStage
    .filter((i) => i.keyword === 'COPY')
    .flatMap((i) => {
      const parts = i.args.startsWith('[')
        ? (JSON.parse(i.args) as string[])
        : i.args.split(/\s+/).filter((a) => !a.startsWith('--'));
      const dest = parts.pop()!;
      return parts.map((src) => {
        const source = path.posix.normalize(src).replace(/\/$/, '');
        const isDir = source === '.' || !path.posix.extname(source);
        // A directory's contents land in dest; files land in dest/ when dest is a directory.
        const intoDir = !isDir && (parts.length > 1 || dest.endsWith('/') || dest === '.');
        const target = path.posix.resolve(workdir, dest, intoDir ? path.posix.basename(source) : '');
        return { source, target };
      });
    });
}

// ---------------------------------------------------------------- running healthchecks

/** Runs a healthcheck command as Docker would, with `env` added; resolves with its exit code. */
function runHealthcheck(command: string[], env: Record<string, string>): Promise<number> {
  const [file, ...args] = command;
  return new Promise((resolve) => {
    execFile(
      file === 'node' ? process.execPath : file!,
      args,
      {
        env: { ...process.env, ...env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH}` },
        timeout: 10_000,
      },
      (error) => resolve(error === null ? 0 : typeof error.code === 'number' ? error.code : 1),
    );
  });
}

/** Answers `status` to GET /healthz, 404 to anything else (a healthcheck asking elsewhere fails). */
function stubServer(status: number): Promise<Server> {
  const server = createServer((req, res) =>
    res.writeHead(req.method === 'GET' && req.url === '/healthz' ? status : 404).end(),
  );
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}
const portOf = (server: Server) => String((server.address() as AddressInfo).port);
const closeServer = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

function healthcheckArgv(service: Service): string[] {
  const t = service.healthcheck!.test;
  if (typeof t === 'string') return ['/bin/sh', '-c', t];
  if (t[0] === 'CMD-SHELL') return ['/bin/sh', '-c', t[1]!];
  assert.equal(t[0], 'CMD', `healthcheck test must start with CMD or CMD-SHELL, not ${t[0]}`);
  return t.slice(1);
}

// ---------------------------------------------------------------- compose checks

describe('compose.yaml', () => {
  const { services } = compose();
  const config = (name: string): QuarryConfig => loadConfig(environmentOf(services[name]!));

  test('has the four services', () => {
    for (const name of ['redis-queue', 'redis-cache', 'worker', 'api']) {
      assert.ok(services[name], `service ${name} is missing`);
    }
  });

  test('every QUARRY_* variable a service sets is in the schema and parses', () => {
    for (const [name, service] of Object.entries(services)) {
      assert.equal(
        service.env_file,
        undefined,
        `${name}: env_file is not checked; use environment: with \${VAR:?}`,
      );
      const env = environmentOf(service);
      for (const variable of Object.keys(env).filter((v) => v.startsWith('QUARRY_'))) {
        assert.ok(
          (CONFIG_VARIABLES as readonly string[]).includes(variable),
          `${name}: ${variable} is not a configuration variable (shared/config.ts)`,
        );
      }
      assert.doesNotThrow(() => loadConfig(env), `${name}: its environment does not parse`);
    }
  });

  test('the queue Redis is durable and never evicts; the cache Redis evicts within a bound', () => {
    const queue = services['redis-queue']!;
    assert.equal(redisFlag(queue, 'appendonly'), 'yes', 'redis-queue: AOF must be on');
    assert.equal(redisFlag(queue, 'maxmemory-policy'), 'noeviction', 'redis-queue: BullMQ needs noeviction');
    // AOF is only durable if the directory it writes survives the container.
    const dir = redisFlag(queue, 'dir') ?? '/data';
    assert.ok(
      mounts(queue).some((m) => m.target === dir && m.source !== undefined),
      `redis-queue: no volume at ${dir}`,
    );
    const cache = services['redis-cache']!;
    assert.equal(
      redisFlag(cache, 'maxmemory-policy'),
      'allkeys-lru',
      'redis-cache: must evict (allkeys-lru)',
    );
    const maxmemory = redisFlag(cache, 'maxmemory');
    assert.ok(maxmemory !== undefined && !/^0+[a-z]*$/i.test(maxmemory), 'redis-cache: needs a maxmemory');
  });

  test('one image, built once, runs both Quarry services', () => {
    const worker = services.worker!;
    const api = services.api!;
    assert.ok(worker.image, 'worker: image must name what it builds');
    assert.equal(api.image, worker.image, 'api must run the image the worker builds');
    assert.ok(worker.build !== undefined, 'worker builds the image');
    assert.equal(api.build, undefined, 'api: a second build of the same image');
  });

  test('Redis images are pinned to a release', () => {
    for (const name of ['redis-queue', 'redis-cache']) {
      assert.match(services[name]!.image ?? '', /^redis:\d+\.\d+\.\d+(-[a-z0-9]+)?$/, name);
    }
  });

  test('every service restarts and has memory and CPU limits', () => {
    for (const [name, service] of Object.entries(services)) {
      assert.match(
        service.restart ?? 'no',
        /^(always|unless-stopped|on-failure(:\d+)?)$/,
        `${name}: restart`,
      );
      const limits = service.deploy?.resources?.limits;
      assert.ok(Number(limits?.cpus) > 0, `${name}: no CPU limit`);
      assert.match(String(limits?.memory), /^\d+(\.\d+)?[kmg]b?$/i, `${name}: no memory limit`);
    }
  });

  test("the worker's DuckDB threads follow its CPU limit, not the host's cores", () => {
    // Not pinned in the environment: the default is the cgroup quota the container sees.
    assert.equal(environmentOf(services.worker!).QUARRY_DUCKDB_THREADS, undefined);
    assert.ok(Number(services.worker!.deploy!.resources!.limits!.cpus) >= 1);
  });

  test('workers can be scaled: no container_name, no host port', () => {
    const worker = services.worker!;
    assert.equal(worker.container_name, undefined, 'worker: container_name prevents --scale');
    assert.deepEqual(worker.ports ?? [], [], 'worker: a published port prevents --scale');
  });

  test('worker and api reach the Redis servers by service name and port', () => {
    const portOfRedis = (name: string) => Number(redisFlag(services[name]!, 'port') ?? 6379);
    for (const name of ['worker', 'api']) {
      const c = config(name);
      assert.equal(c.cacheSharesQueue, false, `${name}: QUARRY_CACHE_REDIS_URL must be set`);
      for (const [url, redis] of [
        [c.queueRedisUrl, 'redis-queue'],
        [c.cacheRedisUrl, 'redis-cache'],
      ] as const) {
        const u = new URL(url);
        assert.equal(u.hostname, redis, `${name}: ${url} should point at ${redis}`);
        assert.equal(Number(u.port || 6379), portOfRedis(redis), `${name}: ${url} has the wrong port`);
      }
    }
  });

  test('the data root is mounted where QUARRY_DATA_DIR points', () => {
    for (const name of ['worker', 'api']) {
      const dataDir = path.posix.resolve(workdir, environmentOf(services[name]!).QUARRY_DATA_DIR ?? './data');
      assert.ok(
        mounts(services[name]!).some((m) => m.target === dataDir && m.source !== undefined),
        `${name}: nothing is mounted at ${dataDir} (QUARRY_DATA_DIR)`,
      );
    }
  });

  test("the API's published port is the one it listens on", () => {
    const c = config('api');
    const ports = containerPorts(services.api!);
    assert.ok(
      ports.some((p) => p.target === c.apiPort && p.published !== undefined),
      `api: no published port maps to QUARRY_API_PORT ${c.apiPort}`,
    );
    assert.ok(!isLoopback(c.apiHost), `api: QUARRY_API_HOST ${c.apiHost} cannot be reached through a port`);
  });

  test('the API binds a non-loopback address only with API keys', () => {
    const c = config('api');
    if (isLoopback(c.apiHost)) return;
    assert.ok(c.apiKeys.length > 0, 'api: QUARRY_API_KEYS is empty');
    // Without the operator's keys compose itself must refuse; otherwise the API exits at start.
    let withoutKeys: Record<string, string> | undefined;
    try {
      withoutKeys = environmentOf(
        compose({ QUARRY_CONSOLE_SECRET: OPERATOR_ENV.QUARRY_CONSOLE_SECRET! }).services.api!,
      );
    } catch (error) {
      assert.ok(error instanceof MissingVariableError, String(error));
      assert.equal(error.variable, 'QUARRY_API_KEYS');
    }
    if (withoutKeys !== undefined) {
      assert.ok(loadConfig(withoutKeys).apiKeys.length > 0, 'api: serves 0.0.0.0 without QUARRY_API_KEYS');
    }
  });

  test("console sessions are signed with the operator's secret, so they outlive a restart", () => {
    assert.equal(config('api').consoleSecret, OPERATOR_ENV.QUARRY_CONSOLE_SECRET);
    assert.throws(
      () => environmentOf(compose({ QUARRY_API_KEYS: OPERATOR_ENV.QUARRY_API_KEYS! }).services.api!),
      (e: unknown) => e instanceof MissingVariableError && e.variable === 'QUARRY_CONSOLE_SECRET',
    );
  });

  test("webhooks: the API (which checks a URL) and the worker (which delivers) share the operator's allow list", () => {
    const allow = (env: Record<string, string>) => {
      const { services } = compose(env);
      return ['api', 'worker'].map((name) => loadConfig(environmentOf(services[name]!)).webhookAllow);
    };
    assert.deepEqual(allow(OPERATOR_ENV), [[], []]);
    const both = allow({ ...OPERATOR_ENV, QUARRY_WEBHOOK_ALLOW: 'hooks.internal,10.1.0.0/16' });
    assert.deepEqual(both, [
      ['hooks.internal', '10.1.0.0/16'],
      ['hooks.internal', '10.1.0.0/16'],
    ]);
  });

  // What an operator may set for object storage and tracing (README: Deployment): each must reach
  // both Quarry services as set, and all of them are empty (off) unless set.
  const TO_BOTH: Record<string, string> = {
    AWS_ENDPOINT_URL_S3: 'http://minio:9000',
    AWS_ENDPOINT_URL: 'http://objects.internal:9000',
    AWS_ACCESS_KEY_ID: 'deployment-check-access-key',
    AWS_SECRET_ACCESS_KEY: 'deployment-check-secret-key',
    AWS_REGION: 'eu-west-1',
    QUARRY_S3_FORCE_PATH_STYLE: 'true',
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20abc',
    OTEL_SERVICE_NAME: 'quarry-staging',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=staging',
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: '0.25',
  };
  const TO_WORKER: Record<string, string> = { QUARRY_OBJECT_CACHE_BYTES: '1073741824' };

  test("object storage and tracing: the operator's AWS_*, QUARRY_S3_* and OTEL_* values reach the API and the worker", () => {
    const { services } = compose({ ...OPERATOR_ENV, ...TO_BOTH, ...TO_WORKER });
    for (const name of ['api', 'worker']) {
      const env = environmentOf(services[name]!);
      for (const [variable, value] of Object.entries(TO_BOTH)) {
        assert.equal(env[variable], value, `${name}: ${variable} is not passed through`);
      }
      // As Quarry reads them: the store and the exporter the operator named.
      const c = loadConfig(env);
      assert.deepEqual(c.s3, {
        endpoint: 'http://minio:9000',
        region: 'eu-west-1',
        forcePathStyle: true,
        credentials: {
          accessKeyId: 'deployment-check-access-key',
          secretAccessKey: 'deployment-check-secret-key',
        },
      });
      assert.equal(c.tracing?.url, 'http://collector:4318/v1/traces', `${name}: tracing`);
      assert.equal(c.tracing?.protocol, 'http/json');
      assert.deepEqual(c.tracing?.headers, { authorization: 'Bearer abc' });
      assert.equal(c.tracing?.serviceName, 'quarry-staging');
      assert.deepEqual(c.tracing?.resourceAttributes, { 'deployment.environment.name': 'staging' });
      assert.equal(c.tracing?.sampler, 'parentbased_traceidratio');
      assert.equal(c.tracing?.samplerRatio, 0.25);
    }
    assert.equal(loadConfig(environmentOf(services.worker!)).objectCacheBytes, 1024 ** 3);
  });

  test('object storage and tracing are off unless the operator sets them', () => {
    for (const name of ['api', 'worker']) {
      const env = environmentOf(services[name]!);
      for (const variable of [
        ...Object.keys(TO_BOTH),
        ...(name === 'worker' ? Object.keys(TO_WORKER) : []),
      ]) {
        // Empty, not absent: compose passes it, and Quarry (and the AWS SDK) read empty as unset.
        assert.equal(env[variable], '', `${name}: ${variable} must be passed, empty by default`);
      }
      const c = config(name);
      assert.equal(c.tracing, null, `${name}: tracing must be off by default`);
      assert.deepEqual(c.s3, { region: 'us-east-1', forcePathStyle: false }, `${name}: s3 defaults`);
    }
    assert.equal(config('worker').objectCacheBytes, loadConfig({}).objectCacheBytes);
  });

  test("the worker's object cache is a named volume at QUARRY_OBJECT_CACHE_DIR", () => {
    const { volumes } = compose();
    const dir = config('worker').objectCacheDir;
    const mount = mounts(services.worker!).find((m) => m.target === dir);
    assert.ok(mount?.source !== undefined, `worker: nothing is mounted at ${dir} (QUARRY_OBJECT_CACHE_DIR)`);
    assert.ok(
      volumes !== undefined && Object.hasOwn(volumes, mount.source),
      `worker: ${mount.source} is not a named volume (a bind mount of the host's folder)`,
    );
  });

  test('services waited for as healthy have a healthcheck', () => {
    for (const [name, service] of Object.entries(services)) {
      const deps = Array.isArray(service.depends_on) ? {} : (service.depends_on ?? {});
      for (const [dep, { condition }] of Object.entries(deps)) {
        if (condition === 'service_healthy') assert.ok(services[dep]?.healthcheck, `${name} waits on ${dep}`);
      }
    }
  });

  test('shutdown: Docker waits longer than QUARRY_SHUTDOWN_TIMEOUT_MS before SIGKILL', () => {
    for (const name of ['worker', 'api']) {
      const grace = durationMs(services[name]!.stop_grace_period ?? '10s');
      assert.ok(
        grace > config(name).shutdownTimeoutMs,
        `${name}: stop_grace_period ${grace} ms is too short`,
      );
    }
  });

  test("the worker's spool is not a container's 64 MiB /dev/shm", () => {
    const c = config('worker');
    if (!c.spoolDir.startsWith('/dev/shm')) return;
    const shm = services.worker!.shm_size;
    assert.ok(
      shm !== undefined,
      'worker: spool on /dev/shm (64 MiB in a container): set shm_size or QUARRY_SPOOL_DIR',
    );
  });

  describe('worker healthcheck', () => {
    const worker = services.worker!;
    const c = config('worker');
    let metrics: Awaited<ReturnType<typeof startMetricsServer>>;
    before(async () => {
      metrics = await startMetricsServer({ registry: new Registry(), host: '127.0.0.1', port: 0 });
    });
    after(() => metrics.close());

    test('exists and asks the metrics port the worker listens on', () => {
      assert.ok(
        worker.healthcheck && !worker.healthcheck.disable,
        'worker: the image healthcheck asks the API',
      );
      assert.notEqual(c.workerMetricsPort, 0, 'worker: metrics port 0 cannot be health-checked');
      assert.ok(reachableFromLoopback(c.workerMetricsHost), `worker: metrics on ${c.workerMetricsHost}`);
    });

    test('passes against a live metrics endpoint, fails when nothing listens', async () => {
      const port = new URL(metrics.url).port;
      const command = healthcheckArgv(worker);
      assert.equal(
        await runHealthcheck(command, { ...environmentOf(worker), QUARRY_WORKER_METRICS_PORT: port }),
        0,
      );
      const dead = String(await freePort());
      assert.notEqual(
        await runHealthcheck(command, { ...environmentOf(worker), QUARRY_WORKER_METRICS_PORT: dead }),
        0,
      );
    });
  });
});

// ---------------------------------------------------------------- Dockerfile checks

describe('Dockerfile', () => {
  const { services } = compose();

  test('runs on slim Node 24 LTS, pinned to a release', () => {
    const from = finalStage[0]!.args.split(/\s+/)[0]!;
    assert.match(from, /^node:24\.\d+\.\d+(-[a-z]+)?-slim(@sha256:[0-9a-f]{64})?$/, `FROM ${from}`);
  });

  test('runs the TypeScript sources on Node itself: no tsx, no loader flags', () => {
    const cmd = finalStage.find((i) => i.keyword === 'CMD');
    for (const command of [
      commandArgv(cmd?.args ?? '[]'),
      argv(services.worker!.command),
      argv(services.api!.command),
    ]) {
      assert.equal(command[0], 'node', command.join(' '));
      assert.equal(command.length, 2, `${command.join(' ')}: only node and the entry`);
      assert.match(command[1]!, /\.ts$/);
    }
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
      optionalDependencies: Record<string, string>;
    };
    assert.equal(pkg.dependencies.tsx, undefined, 'tsx is a production dependency');
    assert.ok(pkg.devDependencies.tsx, 'tsx runs the sources on Node 20: a devDependency');
  });

  test('Polars binaries for linux x64 and arm64 (glibc), pinned to the nodejs-polars version', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Record<
      string,
      Record<string, string>
    >;
    const all = { ...pkg.dependencies, ...pkg.optionalDependencies };
    const version = pkg.dependencies!['nodejs-polars']!;
    assert.match(version, /^\d+\.\d+\.\d+$/, 'nodejs-polars: an exact version');
    for (const binary of ['nodejs-polars-linux-x64-gnu', 'nodejs-polars-linux-arm64-gnu']) {
      assert.equal(all[binary], version, `${binary} must be ${version}`);
    }
    // On arm64 a plain dependency on the x64 binary would fail `npm ci`: the image moves it.
    const install = finalStage.findIndex((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args));
    assert.match(finalStage[install]!.args, /node scripts\/polars-per-platform\.mjs && npm ci\b/);
    assert.ok(
      copies().some((c) => c.source === 'scripts/polars-per-platform.mjs' && c.target.startsWith(workdir)),
      'scripts/polars-per-platform.mjs is not copied before the install',
    );
  });

  test('installs production dependencies only, from the lockfile', () => {
    const installs = finalStage.filter((i) => i.keyword === 'RUN' && /\bnpm (ci|install|i)\b/.test(i.args));
    assert.ok(installs.length > 0, 'no npm ci');
    for (const i of installs) assert.match(i.args, /\bnpm ci\b.*--omit=dev\b/, `RUN ${i.args}`);
  });

  test('runs as a non-root user', () => {
    const user = finalStage
      .filter((i) => i.keyword === 'USER')
      .at(-1)
      ?.args.split(':')[0];
    assert.ok(user !== undefined && user !== 'root' && user !== '0', `USER ${user ?? '(none: root)'}`);
  });

  test("the workers' object cache directory exists in the image, owned by its user", () => {
    // A new named volume takes the owner of the image's directory; without it, root's.
    const dir = loadConfig(environmentOf(services.worker!)).objectCacheDir;
    const userAt = finalStage.findLastIndex((i) => i.keyword === 'USER');
    const user = finalStage[userAt]!.args.split(':')[0]!;
    const made = finalStage.findIndex(
      (i) =>
        i.keyword === 'RUN' &&
        new RegExp(`\\bmkdir -p ${dir}(\\s|$)`).test(i.args) &&
        new RegExp(`\\bchown ${user}(:\\S+)? ${dir}(\\s|$)`).test(i.args),
    );
    assert.ok(made !== -1, `no RUN mkdir -p ${dir} && chown ${user} ${dir}`);
    assert.ok(made < userAt, 'the directory must be made (as root) before USER');
  });

  test('copies every directory the runtime imports', () => {
    const entries = new Set<string>();
    const cmd = finalStage.find((i) => i.keyword === 'CMD');
    for (const arg of [
      ...commandArgv(cmd?.args ?? '[]'),
      ...argv(services.worker!.command),
      ...argv(services.api!.command),
    ]) {
      if (arg.endsWith('.ts')) entries.add(path.posix.normalize(arg));
    }
    assert.deepEqual([...entries].sort(), ['api/main.ts', 'workers/main.ts']);
    const needed = new Set([...runtimeFiles([...entries])].map((f) => f.split('/')[0]!));
    for (const dir of ['shared', 'producers', 'workers', 'api'])
      assert.ok(needed.has(dir), `import graph misses ${dir}`);
    const copied = copies();
    for (const top of needed) {
      assert.ok(
        copied.some(
          (c) =>
            (c.source === top && c.target === path.posix.join(workdir, top)) ||
            (c.source === '.' && c.target === workdir),
        ),
        `${top} is imported at runtime but not copied to ${path.posix.join(workdir, top)}`,
      );
    }
  });

  describe('healthcheck', () => {
    const healthcheck = finalStage.find((i) => i.keyword === 'HEALTHCHECK');
    const command = () => commandArgv(healthcheck!.args.replace(/^(--\S+\s+)*CMD\s+/, ''));
    let ok: Server;
    let failing: Server;
    before(async () => {
      ok = await stubServer(200);
      failing = await stubServer(503);
    });
    after(() => Promise.all([closeServer(ok), closeServer(failing)]));

    test('exists', () => {
      assert.ok(healthcheck && !/^NONE\b/i.test(healthcheck.args), 'no HEALTHCHECK');
      assert.ok(reachableFromLoopback(loadConfig(environmentOf(services.api!)).apiHost));
    });

    test('passes on 200, fails on 503 and when nothing listens', async () => {
      assert.equal(await runHealthcheck(command(), { QUARRY_API_PORT: portOf(ok) }), 0);
      assert.notEqual(await runHealthcheck(command(), { QUARRY_API_PORT: portOf(failing) }), 0);
      assert.notEqual(await runHealthcheck(command(), { QUARRY_API_PORT: String(await freePort()) }), 0);
    });
  });
});
