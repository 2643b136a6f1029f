// `npm run hosts-test -- [--seed N] [--worker-hosts N] [--inline N] [--files N] [--heavy N]
//   [--settle-seconds S] [--isolation nft|routes] [--max-stalled-count K] [--skip-unavailable]`:
// Quarry on several hosts, simulated on this machine with network namespaces (scripts/netns.ts;
// root and `ip netns` needed): the queue and cache Redis on one host, the API on another, a worker
// on each of two more, each host reaching only what it must. The operator (this process) sends a
// mixed burst through the API (inline aggregations, file aggregations over a folder every host
// sees at the same path, multi-second ones over 3M rows, two index builds), waits until a worker
// host holds a multi-second job, cuts that host off the network (every packet silently dropped,
// as a partition does; its worker keeps running and believes it holds the job), and kills its
// worker once the job has ended elsewhere. The job's lock lapses in Redis and the other host's
// stall check hands it on (docs/RELIABILITY.md: QUARRY_LOCK_DURATION_MS + QUARRY_STALLED_INTERVAL_MS).
// Prints a table per host, the recovery of each job the cut host held, the totals and the JSON;
// exits 1 when an acknowledged job is lost (not completed), an answer is wrong, a recovery takes
// longer than the bound, the network lets through what it must not, or no job was caught mid-run.
// Namespaces are deleted on every exit (signals included), and stale ones of a killed run at start.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { printTable } from '../bench/lib/stats.ts';
import { loadConfig } from '../shared/config.ts';
import { QUEUE_NAMES } from '../shared/keys.ts';
import { isFinalState, type JobStatus } from '../shared/status.ts';
import { makeFlightsDataDir, VEGA_DATA_DIR } from '../test/helpers/flights.ts';
import { checkAnswer, documents, type Planned, planBurst } from './hosts-burst.ts';
import { buildNetwork, type Host, type Network, netnsUnavailable, sweepStale } from './netns.ts';

const root = path.resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    seed: { type: 'string' },
    'worker-hosts': { type: 'string', default: '2' },
    inline: { type: 'string', default: '60' },
    files: { type: 'string', default: '6' },
    heavy: { type: 'string', default: '3' },
    'settle-seconds': { type: 'string', default: '60' },
    isolation: { type: 'string' },
    // The workers' QUARRY_MAX_STALLED_COUNT: 0 makes the cut host's jobs fail, so the run must fail.
    'max-stalled-count': { type: 'string' },
    'skip-unavailable': { type: 'boolean', default: false },
  },
});

const unavailable = netnsUnavailable();
if (unavailable !== null) {
  const skipped = args['skip-unavailable'] ? 'skipped: ' : '';
  console.log(`hosts-test: ${skipped}cannot build the hosts: ${unavailable}`);
  process.exit(args['skip-unavailable'] ? 0 : 2);
}

const seed = args.seed === undefined ? Math.floor(Math.random() * 1e6) : Number(args.seed);
const defaults = loadConfig({});
// The recovery bound (docs/RELIABILITY.md): a cut worker's lock lapses at most
// QUARRY_LOCK_DURATION_MS after its last renewal, and a live worker's stall check, every
// QUARRY_STALLED_INTERVAL_MS, then moves the job back to wait, where an idle slot takes it at
// once; 4 s for timers firing late on a loaded machine (crash-recovery.test.ts allows the same).
const LOCK_MS = defaults.lockDurationMs;
const STALLED_MS = defaults.stalledIntervalMs;
const BOUND_MS = LOCK_MS + STALLED_MS + 4000;
const PORTS = { queue: 6379, cache: 6380, api: 3000, metrics: 9464 } as const;
// OBJECT STORE (branch h-s3): an s3rver on the Redis host goes here. Add its port to
// REDIS_HOST_PORTS (the firewalls then let the API and workers reach it), start it in
// startServices beside the two redis-servers, pass AWS_ENDPOINT_URL_S3 (http://<service>:<port>),
// the credentials and QUARRY_S3_FORCE_PATH_STYLE in quarryEnv, upload the burst's files to it and
// let planBurst (scripts/hosts-burst.ts) name `{ url: 's3://…' }` datasets beside the `path` ones.
const REDIS_HOST_PORTS = [PORTS.queue, PORTS.cache];
const TENANT = 'hosts';
const KEY = randomBytes(24).toString('hex');
const PASSWORD = randomBytes(16).toString('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (line: string) => console.log(`hosts-test: ${line}`);

// ---------------------------------------------------------------------------------------------
// Clean-up, whatever ends the run.

let net: Network | undefined;
const dirs: string[] = [];
function cleanUp(): void {
  net?.destroy();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanUp);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    log(`${signal}: removing the hosts`);
    cleanUp();
    process.exit(1);
  });
}

// ---------------------------------------------------------------------------------------------
// Processes on the hosts.

interface Proc {
  readonly host: Host;
  readonly child: ChildProcess;
  /** Worker log lines with a jobId, as they come (pino JSON on stdout). */
  readonly jobLines: { jobId: string; msg: string; reused?: boolean; at: number }[];
  output: string;
}

function startIn(host: Host, argv: string[], env: NodeJS.ProcessEnv, ready: string): Promise<Proc> {
  const child = net!.spawn(host, argv, env);
  const proc: Proc = { host, child, jobLines: [], output: '' };
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
          const entry = JSON.parse(line) as { jobId?: string; msg: string; reused?: boolean };
          if (entry.jobId !== undefined) proc.jobLines.push({ ...entry, jobId: entry.jobId, at: Date.now() });
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
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('QUARRY_')) env[name] = value;
  return {
    ...env,
    QUARRY_QUEUE_REDIS_URL: `redis://:${PASSWORD}@${net!.service}:${PORTS.queue}`,
    QUARRY_CACHE_REDIS_URL: `redis://:${PASSWORD}@${net!.service}:${PORTS.cache}`,
    QUARRY_API_KEYS: JSON.stringify([{ key: KEY, tenant: TENANT, scopes: ['admin'], dataDir }]),
    QUARRY_DATA_DIR: dataDir,
    QUARRY_LOG_FORMAT: 'json',
    QUARRY_LOG_LEVEL: 'info',
    QUARRY_LOCK_DURATION_MS: String(LOCK_MS),
    QUARRY_STALLED_INTERVAL_MS: String(STALLED_MS),
    // Two worker hosts and the API on this machine's cores: one engine thread each.
    QUARRY_DUCKDB_THREADS: '1',
    QUARRY_POLARS_THREADS: '1',
    ...(args['max-stalled-count'] === undefined
      ? {}
      : { QUARRY_MAX_STALLED_COUNT: args['max-stalled-count'] }),
    ...own,
  };
}

const nodeArgv = (entry: string) => [
  process.execPath,
  '--import',
  path.join(root, 'scripts/register-ts.mjs'),
  path.join(root, entry),
];

async function startServices(work: string, dataDir: string) {
  const redisHost = net!.host('redis');
  const redisArgs = (port: number, dir: string, extra: string[]) => [
    'redis-server',
    ...['--port', String(port), '--bind', '127.0.0.1', net!.service, '--requirepass', PASSWORD],
    ...['--dir', dir, ...extra],
  ];
  mkdirSync(path.join(work, 'queue'));
  mkdirSync(path.join(work, 'cache'));
  const redisEnv = { PATH: process.env.PATH };
  await Promise.all([
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
        ...['--save', '', '--appendonly', 'no', '--maxmemory', '256mb', '--maxmemory-policy', 'allkeys-lru'],
      ]),
      redisEnv,
      'Ready to accept connections',
    ),
  ]);
  const api = net!.host('api');
  const apiEnv = quarryEnv(dataDir, { QUARRY_API_HOST: net!.apiAddress, QUARRY_API_PORT: String(PORTS.api) });
  const workerHosts = net!.hosts.filter((h) => h.role === 'worker');
  const [, ...workers] = await Promise.all([
    startIn(api, nodeArgv('api/main.ts'), apiEnv, 'Server listening at'),
    ...workerHosts.map((host) => {
      const spool = path.join(work, `spool-${host.name}`);
      return startIn(
        host,
        nodeArgv('workers/main.ts'),
        quarryEnv(dataDir, {
          QUARRY_SPOOL_DIR: spool,
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

interface Probe {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly expect: 'open' | 'closed';
  got?: 'open' | 'closed';
}

async function checkReachability(): Promise<Probe[]> {
  const n = net!;
  const address = (name: string) =>
    name === 'operator' ? n.operatorAddress : name === 'api' ? n.apiAddress : n.host(name).address;
  const workers = n.hosts.filter((h) => h.role === 'worker').map((h) => h.name);
  const probes: Probe[] = [
    { from: 'operator', to: 'api', port: PORTS.api, expect: 'open' },
    { from: 'operator', to: 'redis', port: PORTS.queue, expect: 'closed' },
    { from: 'operator', to: workers[0]!, port: PORTS.metrics, expect: 'closed' },
    { from: 'api', to: 'redis', port: PORTS.queue, expect: 'open' },
    { from: 'api', to: 'redis', port: PORTS.cache, expect: 'open' },
    { from: 'api', to: workers[0]!, port: PORTS.metrics, expect: 'closed' },
    ...workers.flatMap((w): Probe[] => [
      { from: w, to: 'redis', port: PORTS.queue, expect: 'open' },
      { from: w, to: 'redis', port: PORTS.cache, expect: 'open' },
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
  return net!.run(net!.host('redis'), [...argv, ...command]);
}
const queueKeys = () => Object.values(QUEUE_NAMES).map((q) => `${defaults.prefix}:${q}`);

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
  fetch(`http://${net!.apiAddress}:${PORTS.api}${route}`, {
    ...init,
    headers: {
      authorization: `Bearer ${KEY}`,
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    signal: AbortSignal.timeout(20_000),
  });

interface Tracked {
  readonly job: Planned;
  jobId?: string;
  /** A 200: the result was cached already (answered at once, nothing queued). */
  cachedKey?: string;
  /** 503s (and failed connections) sent again after Retry-After: not acknowledgements. */
  retried: number;
  status?: JobStatus;
  problem?: string;
}

/** POSTs until acknowledged (202, or 200 from the cache); a 503/429 is sent again after Retry-After. */
async function submit(t: Tracked, deadline: number): Promise<void> {
  const body = JSON.stringify(t.job.body);
  while (Date.now() < deadline) {
    const res = await api(t.job.route, { method: 'POST', body }).catch(() => null);
    const json = ((await res?.json().catch(() => null)) ?? {}) as { jobId?: string; resultKey?: string };
    if (res?.status === 202) {
      t.jobId = json.jobId!;
      return;
    }
    if (res?.status === 200) {
      t.cachedKey = json.resultKey!;
      return;
    }
    if (res !== null && res.status !== 503 && res.status !== 429) {
      t.problem = `POST ${t.job.route} answered ${res.status}: ${JSON.stringify(json).slice(0, 300)}`;
      return;
    }
    t.retried++;
    await sleep(1000 * Number(res?.headers.get('retry-after') ?? '1'));
  }
  t.problem = `POST ${t.job.route} not acknowledged before the deadline`;
}

async function poll(tracked: readonly Tracked[]): Promise<number> {
  let finished = 0;
  const pending = tracked.filter((t) => t.jobId !== undefined && !(t.status && isFinalState(t.status.state)));
  for (let i = 0; i < pending.length; i += 20) {
    await Promise.all(
      pending.slice(i, i + 20).map(async (t) => {
        const res = await api(`/v1/jobs/${t.jobId}`).catch(() => null);
        if (res?.status !== 200) return;
        t.status = (await res.json()) as JobStatus;
        if (isFinalState(t.status.state)) finished++;
      }),
    );
  }
  return finished;
}

/** Until every acknowledged job is final, or none became final for `quietMs` (a lost job never does). */
async function settle(tracked: readonly Tracked[], quietMs: number): Promise<void> {
  let progress = Date.now();
  const cap = Date.now() + 15 * 60_000;
  for (;;) {
    if ((await poll(tracked)) > 0) progress = Date.now();
    const open = tracked.filter((t) => t.jobId !== undefined && !(t.status && isFinalState(t.status.state)));
    if (open.length === 0 || Date.now() - progress > quietMs || Date.now() > cap) return;
    await sleep(250);
  }
}

const hostOf = (by: string, workers: readonly Proc[]) =>
  workers.find((w) => by.startsWith(`quarry-${w.host.name}:`));
const doneLine = (msg: string) => msg === 'aggregation done' || msg === 'index built';

// ---------------------------------------------------------------------------------------------
// The run.

async function main(): Promise<number> {
  const swept = sweepStale();
  if (swept.length > 0) log(`removed the namespaces of a run that is gone: ${swept.join(', ')}`);
  const workerHostCount = Math.max(2, Number(args['worker-hosts']));
  log(`seed ${seed}; ${workerHostCount} worker hosts`);

  const dataDir = await makeFlightsDataDir();
  dirs.push(dataDir);
  copyFileSync(path.join(VEGA_DATA_DIR, 'flights-3m.parquet'), path.join(dataDir, 'flights-3m.parquet'));
  const docs = documents(seed + 1, 2000, 'f');
  writeFileSync(path.join(dataDir, 'docs.ndjson'), `${docs.map((d) => JSON.stringify(d)).join('\n')}\n`);
  const work = mkdtempSync(path.join(os.tmpdir(), 'quarry-hosts-'));
  dirs.push(work);

  const isolation = args.isolation === undefined ? undefined : args.isolation === 'routes' ? 'routes' : 'nft';
  net = buildNetwork({
    workerHosts: workerHostCount,
    redisHostPorts: REDIS_HOST_PORTS,
    apiPort: PORTS.api,
    ...(isolation === undefined ? {} : { isolation }),
  });
  log(`hosts built (isolation: ${net.isolation === 'nft' ? 'routes and nft firewalls' : 'routes alone'})`);
  const workers = await startServices(work, dataDir);
  log('Redis, the API and the workers are up');

  const probes = await checkReachability();
  const leaks = probes.filter((p) => p.got !== p.expect);

  const plan = planBurst(seed, {
    inline: Number(args.inline),
    files: Number(args.files),
    heavy: Number(args.heavy),
  });
  const tracked: Tracked[] = plan.map((job) => ({ job, retried: 0 }));
  const submitDeadline = Date.now() + 120_000;
  const started = Date.now();
  let next = 0;
  const submitting = Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < tracked.length) await submit(tracked[next++]!, submitDeadline);
    }),
  );

  // Cut the first worker host seen holding a multi-second job, while it runs.
  let caught: { victim: Proc; jobId: string } | undefined;
  const catchDeadline = Date.now() + 90_000;
  while (caught === undefined && Date.now() < catchDeadline) {
    const heavy = new Set(tracked.filter((t) => t.job.kind === 'heavy').map((t) => t.jobId));
    for (const a of await activeJobs().catch(() => [])) {
      const victim = hostOf(a.by, workers);
      if (heavy.has(a.jobId) && victim !== undefined) caught = { victim, jobId: a.jobId };
    }
    if (caught === undefined) await sleep(100);
  }
  if (caught === undefined) {
    log('no worker host was seen running a multi-second job: nothing to cut');
    return 1;
  }
  const { victim } = caught;
  net.cut(victim.host);
  const cutAt = Date.now();
  const held = (await activeJobs()).filter((a) => hostOf(a.by, workers) === victim).map((a) => a.jobId);
  log(`cut ${victim.host.name} off the network at +${cutAt - started} ms, holding ${held.join(', ')}`);

  // Its worker keeps running, cut off; it is killed once its jobs have ended elsewhere.
  const byId = new Map(tracked.map((t) => [t.jobId, t]));
  while (Date.now() < cutAt + BOUND_MS + 30_000) {
    await poll(held.flatMap((id) => byId.get(id) ?? []));
    if (held.every((id) => byId.get(id)?.status && isFinalState(byId.get(id)!.status!.state))) break;
    await sleep(250);
  }
  victim.child.kill('SIGKILL');
  const killedAt = Date.now();
  log(`killed ${victim.host.name}'s worker at +${killedAt - started} ms`);

  await submitting;
  await settle(tracked, Number(args['settle-seconds']) * 1000);
  const finishedAt = Date.now();

  // Every answer checked; every acknowledged job must have completed.
  const problems: string[] = leaks.map(
    (p) => `${p.from} -> ${p.to}:${p.port} is ${p.got}, must be ${p.expect}`,
  );
  let wrong = 0;
  let lost = 0;
  for (const t of tracked) {
    if (t.problem !== undefined) problems.push(t.problem);
    if (t.jobId === undefined) continue;
    if (t.status?.state !== 'completed') {
      lost++;
      const error = t.status?.error ? ` ${t.status.error.code}: ${t.status.error.message}` : '';
      problems.push(`${t.job.kind} job ${t.jobId} ended ${t.status?.state ?? 'unknown'}${error}`);
      continue;
    }
    try {
      await checkAnswer(t.job, t.status, api);
    } catch (error) {
      wrong++;
      problems.push(`${t.job.kind} job ${t.jobId}: wrong answer: ${(error as Error).message.slice(0, 300)}`);
    }
  }
  for (const t of tracked.filter((t) => t.cachedKey !== undefined)) {
    await checkAnswer(t.job, { resultKey: t.cachedKey! }, api).catch((error: Error) => {
      wrong++;
      problems.push(`${t.job.kind} cached answer ${t.cachedKey}: ${error.message.slice(0, 300)}`);
    });
  }

  // Recovery of the cut host's jobs, from the queues' event streams (the Redis host's clock).
  const events = await queueEvents();
  const after = (jobId: string, event: string) =>
    events.find((e) => e.jobId === jobId && e.event === event && e.at >= cutAt)?.at;
  const recoveries = held.map((jobId) => {
    const stalled = after(jobId, 'stalled');
    const active = after(jobId, 'active');
    const end = after(jobId, 'completed') ?? after(jobId, 'failed');
    const finishedOn = workers
      .filter(
        (w) => w !== victim && w.jobLines.some((l) => l.jobId === jobId && doneLine(l.msg) && l.at >= cutAt),
      )
      .map((w) => w.host.name);
    const ms = (at: number | undefined) => (at === undefined ? null : at - cutAt);
    return {
      jobId,
      kind: byId.get(jobId)?.job.kind ?? 'unknown',
      stalledMs: ms(stalled),
      pickupMs: ms(active),
      endMs: ms(end),
      state: byId.get(jobId)?.status?.state ?? 'unknown',
      finishedOn,
    };
  });
  for (const r of recoveries) {
    if (r.pickupMs === null || r.pickupMs > BOUND_MS) {
      problems.push(
        `job ${r.jobId} was taken again ${r.pickupMs ?? 'never'} ms after the cut (bound ${BOUND_MS} ms)`,
      );
    }
    if (r.state === 'completed' && r.finishedOn.length === 0) {
      problems.push(`job ${r.jobId} completed, but no other host logged its run`);
    }
  }

  const acknowledged = tracked.filter((t) => t.jobId !== undefined || t.cachedKey !== undefined).length;
  const hostRows = net.hosts.map((h) => {
    const proc = workers.find((w) => w.host === h);
    const computed = new Set(proc?.jobLines.filter((l) => doneLine(l.msg)).map((l) => l.jobId));
    const failedAttempts = proc?.jobLines.filter((l) => l.msg === 'job attempt failed').length;
    return {
      host: h.name,
      role: h.role,
      address: h.role === 'api' ? `${h.address}, ${net!.apiAddress}` : h.address,
      'jobs run': proc === undefined ? '' : computed.size,
      'failed attempts': failedAttempts ?? '',
      fault: proc === victim ? `cut +${cutAt - started} ms, killed +${killedAt - started} ms` : '',
    };
  });
  const longest = (key: 'pickupMs' | 'endMs') =>
    recoveries.some((r) => r[key] === null) ? null : Math.max(...recoveries.map((r) => r[key]!));
  const summary = {
    seed,
    isolation: net.isolation,
    submitted: tracked.length,
    acknowledged,
    retried503: tracked.reduce((n, t) => n + t.retried, 0),
    completed:
      tracked.filter((t) => t.status?.state === 'completed').length +
      tracked.filter((t) => t.cachedKey).length,
    lost,
    wrong,
    heldAtCut: held.length,
    longestPickupMs: longest('pickupMs'),
    longestRecoveryMs: longest('endMs'),
    boundMs: BOUND_MS,
    wallMs: finishedAt - started,
    reachability: `${probes.length - leaks.length}/${probes.length} as required`,
  };
  printTable('Hosts', hostRows);
  printTable(
    `Jobs ${victim.host.name} held when cut (ms after the cut)`,
    recoveries.map((r) => ({
      job: r.jobId,
      kind: r.kind,
      stalled: r.stalledMs,
      'taken again': r.pickupMs,
      ended: r.endMs,
      state: r.state,
      'run to the end on': r.finishedOn.join(', '),
    })),
  );
  printTable('Totals', [summary]);
  const passed = problems.length === 0 && held.length > 0;
  for (const p of problems.slice(0, 30)) log(`PROBLEM: ${p}`);
  console.log(JSON.stringify({ passed, ...summary, hosts: hostRows, recoveries, probes, problems }));
  log(passed ? `passed: lost 0 of ${acknowledged} acknowledged` : `FAILED (seed ${seed})`);
  return passed ? 0 : 1;
}

main().then(
  (code) => {
    cleanUp();
    process.exit(code);
  },
  (error: unknown) => {
    log(`error: ${(error as Error).stack ?? error}`);
    cleanUp();
    process.exit(1);
  },
);
