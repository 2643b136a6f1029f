// The system `npm run hosts-test` runs (scripts/hosts-test.ts) on the hosts scripts/netns.ts
// builds: the queue and cache Redis and the object store (s3rver, started as the tests start it)
// on the Redis host, the API and the workers on theirs (each worker host its own object cache),
// the check of what each host reaches, and what the queue holds, read on the Redis host (the
// operator has no route to it).
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { QUEUE_NAMES } from '../shared/keys.ts';
import { S3RVER_READY, s3rverArgv, s3rverEnv, startS3 } from '../test/helpers/s3.ts';
import { BUCKET } from './hosts-burst.ts';
import type { Host, Network } from './netns.ts';

const root = path.resolve(import.meta.dirname, '..');
export const PORTS = { queue: 6379, cache: 6380, s3: 9000, api: 3000, metrics: 9464 } as const;
/** What the API and worker hosts may reach on the Redis host: the two Redis and the object store
 * (the API fingerprints objects at enqueue, workers fetch them). */
export const REDIS_HOST_PORTS = [PORTS.queue, PORTS.cache, PORTS.s3];
const TENANT = 'hosts';
const KEY = randomBytes(24).toString('hex');
const PASSWORD = randomBytes(16).toString('hex');

export interface SystemSettings {
  readonly lockMs: number;
  readonly stalledMs: number;
  /** The workers' QUARRY_MAX_STALLED_COUNT; unset: Quarry's default. */
  readonly maxStalledCount: string | undefined;
  readonly prefix: string;
  /** The workers' QUARRY_WORKER_CONCURRENCY; default 8. */
  readonly workerConcurrency?: number;
}

/** A file uploaded to the object store's bucket (BUCKET) under `key` before it starts. */
export interface StoredObject {
  readonly key: string;
  readonly file: string;
}

/** A process on a host, and what its log said about jobs. */
export interface Proc {
  readonly host: Host;
  readonly child: ChildProcess;
  /** Worker log lines with a jobId, as they come (pino JSON on stdout). */
  readonly jobLines: { jobId: string; msg: string; reused?: boolean; at: number }[];
  /** Objects the worker downloaded into its host's cache (a miss), as they come. */
  readonly fetches: { url: string; fetchMs: number; at: number }[];
  output: string;
}

export interface Probe {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly expect: 'open' | 'closed';
  got?: 'open' | 'closed';
}

/** The functions of the system on `net`; `startServices` starts it. */
export function systemOn(net: Network, settings: SystemSettings) {
  function startIn(host: Host, argv: string[], env: NodeJS.ProcessEnv, ready: string): Promise<Proc> {
    const child = net.spawn(host, argv, env);
    const proc: Proc = { host, child, jobLines: [], fetches: [], output: '' };
    let pending = '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${host.name}: not ready in 60 s: ${proc.output}`)),
        60_000,
      );
      const onData = (chunk: Buffer) => {
        const text = chunk.toString();
        if (proc.output.length < 20_000) proc.output += text;
        pending += text;
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) {
          if (line.includes(ready)) {
            clearTimeout(timer);
            resolve(proc);
          }
          if (!line.startsWith('{')) continue;
          try {
            const entry = JSON.parse(line) as {
              jobId?: string;
              msg: string;
              reused?: boolean;
              url?: string;
              fetchMs?: number;
            };
            if (entry.jobId !== undefined)
              proc.jobLines.push({ ...entry, jobId: entry.jobId, at: Date.now() });
            if (entry.msg === 'object fetched into the cache' && entry.url !== undefined)
              proc.fetches.push({ url: entry.url, fetchMs: entry.fetchMs ?? 0, at: Date.now() });
          } catch {
            // A line cut by SIGKILL.
          }
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(
          new Error(
            `${host.name}: exited (${code ?? signal}) before it was ready: ${proc.output.slice(-2000)}`,
          ),
        );
      });
    });
  }

  /** The environment of a Quarry process: this one's less any QUARRY_* variable, plus `own`. */
  function quarryEnv(dataDir: string, own: Record<string, string>): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [name, value] of Object.entries(process.env))
      if (!name.startsWith('QUARRY_')) env[name] = value;
    return {
      ...env,
      QUARRY_QUEUE_REDIS_URL: `redis://:${PASSWORD}@${net.service}:${PORTS.queue}`,
      QUARRY_CACHE_REDIS_URL: `redis://:${PASSWORD}@${net.service}:${PORTS.cache}`,
      QUARRY_API_KEYS: JSON.stringify([
        { key: KEY, tenant: TENANT, scopes: ['admin'], dataDir, buckets: [BUCKET] },
      ]),
      // The object store on the Redis host (no AWS_* of this process's environment reaches it).
      ...s3rverEnv(`http://${net.service}:${PORTS.s3}`),
      QUARRY_DATA_DIR: dataDir,
      QUARRY_LOG_FORMAT: 'json',
      QUARRY_LOG_LEVEL: 'info',
      QUARRY_LOCK_DURATION_MS: String(settings.lockMs),
      QUARRY_STALLED_INTERVAL_MS: String(settings.stalledMs),
      // Two worker hosts and the API on this machine's cores: one engine thread each.
      QUARRY_DUCKDB_THREADS: '1',
      QUARRY_POLARS_THREADS: '1',
      // Room for the cut host's jobs on the others when they come back: their pickup then shows
      // the recovery, not a queue (the CPU is shared all the same).
      QUARRY_WORKER_CONCURRENCY: String(settings.workerConcurrency ?? 8),
      ...(settings.maxStalledCount === undefined
        ? {}
        : { QUARRY_MAX_STALLED_COUNT: settings.maxStalledCount }),
      ...own,
    };
  }

  const nodeArgv = (entry: string) => [
    process.execPath,
    '--import',
    path.join(root, 'scripts/register-ts.mjs'),
    path.join(root, entry),
  ];

  async function startServices(work: string, dataDir: string, objects: readonly StoredObject[]) {
    const redisHost = net.host('redis');
    const redisArgs = (port: number, dir: string, extra: string[]) => [
      'redis-server',
      ...['--port', String(port), '--bind', '127.0.0.1', net.service, '--requirepass', PASSWORD],
      ...['--dir', dir, ...extra],
    ];
    mkdirSync(path.join(work, 'queue'));
    mkdirSync(path.join(work, 'cache'));
    const redisEnv = { PATH: process.env.PATH };
    // The store's folder is filled here first (the operator has no route to the Redis host): an
    // s3rver on this host's loopback takes the uploads, then the Redis host's serves the folder.
    const s3Folder = path.join(work, 's3');
    const fill = async () => {
      const loader = await startS3({ folder: s3Folder, buckets: [BUCKET] });
      try {
        for (const o of objects) await loader.put(BUCKET, o.key, readFileSync(o.file));
      } finally {
        await loader.stop({ keepFolder: true });
      }
      await startIn(
        redisHost,
        [
          process.execPath,
          ...s3rverArgv({ folder: s3Folder, address: net.service, port: PORTS.s3, buckets: [BUCKET] }),
        ],
        redisEnv,
        S3RVER_READY,
      );
    };
    await Promise.all([
      fill(),
      startIn(
        redisHost,
        redisArgs(PORTS.queue, path.join(work, 'queue'), [
          ...['--appendonly', 'yes', '--appendfsync', 'always', '--maxmemory-policy', 'noeviction'],
        ]),
        redisEnv,
        'Ready to accept connections',
      ),
      startIn(
        redisHost,
        redisArgs(PORTS.cache, path.join(work, 'cache'), [
          ...[
            '--save',
            '',
            '--appendonly',
            'no',
            '--maxmemory',
            '256mb',
            '--maxmemory-policy',
            'allkeys-lru',
          ],
        ]),
        redisEnv,
        'Ready to accept connections',
      ),
    ]);
    const api = net.host('api');
    const apiEnv = quarryEnv(dataDir, {
      QUARRY_API_HOST: net.apiAddress,
      QUARRY_API_PORT: String(PORTS.api),
    });
    const workerHosts = net.hosts.filter((h) => h.role === 'worker');
    const [, ...workers] = await Promise.all([
      startIn(api, nodeArgv('api/main.ts'), apiEnv, 'Server listening at'),
      ...workerHosts.map((host) => {
        const spool = path.join(work, `spool-${host.name}`);
        return startIn(
          host,
          nodeArgv('workers/main.ts'),
          quarryEnv(dataDir, {
            QUARRY_SPOOL_DIR: spool,
            // A cache per host: by default the hosts, which share this machine's disk, would share one.
            QUARRY_OBJECT_CACHE_DIR: path.join(work, `objects-${host.name}`),
            // On every address, so the reachability check below shows the network, not the bind,
            // keeping the other hosts out.
            QUARRY_WORKER_METRICS_HOST: '0.0.0.0',
            QUARRY_WORKER_METRICS_PORT: String(PORTS.metrics),
          }),
          'worker ready',
        );
      }),
    ]);
    return workers;
  }

  // ---------------------------------------------------------------------------------------------
  // The network's contract: what each host reaches, and what it must not.

  async function checkReachability(): Promise<Probe[]> {
    const n = net;
    const address = (name: string) =>
      name === 'operator' ? n.operatorAddress : name === 'api' ? n.apiAddress : n.host(name).address;
    const workers = n.hosts.filter((h) => h.role === 'worker').map((h) => h.name);
    const probes: Probe[] = [
      { from: 'operator', to: 'api', port: PORTS.api, expect: 'open' },
      { from: 'operator', to: 'redis', port: PORTS.queue, expect: 'closed' },
      { from: 'operator', to: 'redis', port: PORTS.s3, expect: 'closed' },
      { from: 'operator', to: workers[0]!, port: PORTS.metrics, expect: 'closed' },
      { from: 'api', to: 'redis', port: PORTS.queue, expect: 'open' },
      { from: 'api', to: 'redis', port: PORTS.cache, expect: 'open' },
      { from: 'api', to: 'redis', port: PORTS.s3, expect: 'open' },
      { from: 'api', to: workers[0]!, port: PORTS.metrics, expect: 'closed' },
      ...workers.flatMap((w): Probe[] => [
        { from: w, to: 'redis', port: PORTS.queue, expect: 'open' },
        { from: w, to: 'redis', port: PORTS.cache, expect: 'open' },
        { from: w, to: 'redis', port: PORTS.s3, expect: 'open' },
        { from: w, to: 'api', port: PORTS.api, expect: 'closed' },
      ]),
      { from: workers[0]!, to: workers[1]!, port: PORTS.metrics, expect: 'closed' },
      // The Redis host is the hub: it has a route to each host; only a firewall keeps it out.
      {
        from: 'redis',
        to: workers[0]!,
        port: PORTS.metrics,
        expect: n.isolation === 'nft' ? 'closed' : 'open',
      },
      { from: 'redis', to: 'api', port: PORTS.api, expect: 'closed' },
    ];
    await Promise.all(
      probes.map(async (p) => {
        const connect = ['timeout', '3', 'bash', '-c', `exec 3<>/dev/tcp/${address(p.to)}/${p.port}`];
        p.got = await n.run(p.from === 'operator' ? null : n.host(p.from), connect).then(
          () => 'open' as const,
          () => 'closed' as const,
        );
      }),
    );
    return probes;
  }

  // ---------------------------------------------------------------------------------------------
  // What the Redis host's queue holds, read on that host (the operator has no route to it).

  function redisCli(...command: string[]): Promise<string> {
    const argv = ['redis-cli', '--no-auth-warning', '-a', PASSWORD, '-p', String(PORTS.queue), '--raw'];
    return net.run(net.host('redis'), [...argv, ...command]);
  }
  const queueKeys = () => Object.values(QUEUE_NAMES).map((q) => `${settings.prefix}:${q}`);

  /** Active jobs of both queues and the worker BullMQ says took each (`processedBy`, hostname:pid). */
  async function activeJobs(): Promise<{ jobId: string; by: string }[]> {
    const lua = `local r = {}
for q = 1, #KEYS do
  for _, id in ipairs(redis.call('LRANGE', KEYS[q] .. ':active', 0, -1)) do
    r[#r + 1] = id .. ' ' .. (redis.call('HGET', KEYS[q] .. ':' .. id, 'pb') or '-')
  end
end
return r`;
    const out = await redisCli('EVAL', lua, '2', ...queueKeys());
    return out
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [jobId, by] = line.split(' ');
        return { jobId: jobId!, by: by! };
      });
  }

  /** The queues' event streams: `active`, `stalled`, `completed`, … per job, at the Redis clock. */
  async function queueEvents(): Promise<{ at: number; event: string; jobId: string }[]> {
    const lua = `local r = {}
for q = 1, #KEYS do
  for _, e in ipairs(redis.call('XRANGE', KEYS[q] .. ':events', '-', '+')) do
    local ev, id = '', ''
    for i = 1, #e[2], 2 do
      if e[2][i] == 'event' then ev = e[2][i + 1] elseif e[2][i] == 'jobId' then id = e[2][i + 1] end
    end
    r[#r + 1] = e[1] .. ' ' .. ev .. ' ' .. id
  end
end
return r`;
    const out = await redisCli('EVAL', lua, '2', ...queueKeys());
    return out
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [id, event, jobId] = line.split(' ');
        return { at: Number(id!.split('-')[0]), event: event!, jobId: jobId ?? '' };
      })
      .sort((a, b) => a.at - b.at);
  }

  // ---------------------------------------------------------------------------------------------
  // Through the API, as an app on another machine would.

  const api = (route: string, init: RequestInit = {}) =>
    fetch(`http://${net.apiAddress}:${PORTS.api}${route}`, {
      ...init,
      headers: {
        authorization: `Bearer ${KEY}`,
        ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      signal: AbortSignal.timeout(20_000),
    });

  return { startServices, checkReachability, activeJobs, queueEvents, api };
}
