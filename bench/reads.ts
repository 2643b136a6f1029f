// Cached reads under load: `wrk` (10 connections) against `GET /v1/results/:key` of the API,
// beside a bare node:http server in its own process sending the same bytes with the same headers
// (the floor), in alternating rounds of one run. The API runs as deployed: its own process,
// started as `npm start` starts it, with an API key (authentication and the key's rate limit,
// set high enough never to refuse), logs at info on its stdout (a pipe this process drains), the
// in-process result cache in front of the cache Redis. A second API at `warn` shows what the
// per-request log line costs, a third with QUARRY_API_FAST_READS=0 what the hit path in front of
// Fastify (api/fast-reads.ts) saves. Needs `wrk` (Debian's package).
//
// wrk runs asynchronously: a synchronous child call would stop this process from draining the
// APIs' stdout pipes, and an API whose pipe is full blocks on its next log line (stdout to a pipe
// is synchronous in Node on Linux), so it would answer nothing: an earlier draft of this bench
// measured 0 req/s that way.
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { addressAggregation, parseAggregation } from '../shared/aggregation.ts';
import { loadConfig } from '../shared/config.ts';
import { flightsSpec, loadFlights } from '../test/helpers/flights.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { type ProfileSummary, summarizeProfiles } from './lib/cpu-profile.ts';
import { type Child, startNode } from './lib/processes.ts';
import { printTable, type Row, writeResults } from './lib/stats.ts';

const run = promisify(execFile);
const KEY = 'bench-reads-key-0123456789abcdef';
const AUTH = `Bearer ${KEY}`;

interface WrkRun {
  rps: number;
  requests: number;
  /** CPU the server process spent (all threads, user + system) per request, µs. */
  cpuUsPerRequest?: number;
  p50Ms: number;
  p99Ms: number;
}

/** One wrk run; its figures from the `--latency` report. Any non-2xx answer or socket error throws. */
async function wrk(url: string, seconds: number, connections: number): Promise<WrkRun> {
  const { stdout: out } = await run(
    'wrk',
    ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-H', `Authorization: ${AUTH}`, url],
    { encoding: 'utf8' },
  );
  const ms = (label: string) => {
    const m = new RegExp(`^\\s*${label}\\s+([\\d.]+)(us|ms|s)\\b`, 'm').exec(out);
    if (m === null) throw new Error(`wrk printed no ${label} latency:\n${out}`);
    const v = Number(m[1]);
    return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
  };
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (rps === null) throw new Error(`wrk printed no Requests/sec:\n${out}`);
  if (/Non-2xx|Socket errors/.test(out)) throw new Error(`wrk saw failed requests:\n${out}`);
  if (Number(rps[1]) === 0) throw new Error(`wrk completed no request:\n${out}`);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  return { rps: Number(rps[1]), requests, p50Ms: ms('50%'), p99Ms: ms('99%') };
}

/**
 * CPU seconds a process has used (user + system, all threads) from /proc: less bent by the other
 * work on a shared machine than requests per second, since a server's time off the CPU is not in it.
 */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat(5), utime and stime, in clock ticks (100 a second on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** One wrk run, with the CPU the server process `pid` spent on it per request. */
async function measured(url: string, pid: number, seconds: number, connections: number): Promise<WrkRun> {
  const before = cpuSeconds(pid);
  const result = await wrk(url, seconds, connections);
  const cpu = cpuSeconds(pid) - before;
  return { ...result, cpuUsPerRequest: (cpu * 1e6) / result.requests };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

/** Resolves once `url` answers 200 (the API at `warn` prints no "listening" line). */
async function answers(url: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {}
    if (Date.now() > until) throw new Error(`${url} did not answer in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function runReads(options: {
  rounds: number;
  seconds: number;
  connections: number;
  /** Run the info API under `node --cpu-prof` and print its main thread's top self time. */
  profile?: boolean;
}): Promise<void> {
  if (spawnSync('wrk', ['--version']).error !== undefined) {
    throw new Error('this bench needs wrk: apt-get install wrk');
  }
  const queueRedis = await startRedis(['--maxmemory-policy', 'noeviction']);
  const cacheRedis = await startRedis(['--maxmemory', '1gb', '--maxmemory-policy', 'allkeys-lru']);
  const env = {
    QUARRY_QUEUE_REDIS_URL: queueRedis.url,
    QUARRY_CACHE_REDIS_URL: cacheRedis.url,
    QUARRY_PREFIX: 'bench',
    QUARRY_LOG_LEVEL: 'info',
    QUARRY_LOG_FORMAT: 'json',
    QUARRY_DATA_DIR: os.tmpdir(),
    QUARRY_API_KEYS: JSON.stringify([{ key: KEY, tenant: 'bench', scopes: ['read', 'enqueue'] }]),
    QUARRY_RATE_LIMIT_RPS: '1000000',
    QUARRY_RATE_LIMIT_BURST: '1000000',
  };
  const children: Child[] = [];
  const bytesFile = path.join(os.tmpdir(), `quarry-bench-reads-${process.pid}.json`);
  const headersFile = path.join(os.tmpdir(), `quarry-bench-reads-${process.pid}.headers.json`);
  const port = () => String(30000 + Math.floor(Math.random() * 20000));
  try {
    const worker = await startNode('workers/main.ts', env, 'worker ready');
    children.push(worker);
    const apiInfoPort = port();
    const apiWarnPort = port();
    const apiFastifyPort = port();
    const profileDir = path.resolve('bench/results/profiles/reads');
    if (options.profile) {
      rmSync(profileDir, { recursive: true, force: true });
      mkdirSync(profileDir, { recursive: true });
    }
    const apiInfo = await startNode(
      'api/main.ts',
      { ...env, QUARRY_API_PORT: apiInfoPort },
      'Server listening',
      [],
      options.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
    );
    children.push(apiInfo);
    const apiWarn = await startNode(
      'api/main.ts',
      { ...env, QUARRY_API_PORT: apiWarnPort, QUARRY_LOG_LEVEL: 'warn' },
      'API',
    );
    children.push(apiWarn);
    await answers(`http://127.0.0.1:${apiWarnPort}/healthz`);
    const apiFastify = await startNode(
      'api/main.ts',
      { ...env, QUARRY_API_PORT: apiFastifyPort, QUARRY_API_FAST_READS: '0' },
      'Server listening',
    );
    children.push(apiFastify);

    // The result, computed through the API by the key's tenant.
    const spec = flightsSpec({ records: loadFlights('flights-5k.json') });
    const post = await fetch(`http://127.0.0.1:${apiInfoPort}/v1/aggregations?wait=30000`, {
      method: 'POST',
      headers: { authorization: AUTH, 'content-type': 'application/json' },
      body: JSON.stringify(spec),
    });
    if (post.status !== 200) throw new Error(`the result job answered ${post.status}: ${await post.text()}`);
    await post.arrayBuffer();
    const { resultKey } = addressAggregation(parseAggregation(spec, loadConfig(env)), undefined, 'bench');
    const resultPath = `/v1/results/${resultKey}`;

    // The API's answer, headers and bytes, which the bare server repeats.
    const sample = await fetch(`http://127.0.0.1:${apiInfoPort}${resultPath}`, {
      headers: { authorization: AUTH },
    });
    if (sample.status !== 200) throw new Error(`GET ${resultPath} answered ${sample.status}`);
    const bytes = Buffer.from(await sample.arrayBuffer());
    const headers: Record<string, string> = {};
    for (const [name, value] of sample.headers) {
      if (!['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding'].includes(name))
        headers[name] = value;
    }
    writeFileSync(bytesFile, bytes);
    writeFileSync(headersFile, JSON.stringify(headers));
    const bare = await startNode('bench/lib/bare-server.ts', {}, 'listening', [bytesFile, headersFile]);
    children.push(bare);
    const barePort = Number(/listening (\d+)/.exec(bare.output)?.[1]);
    const bareAnswer = await fetch(`http://127.0.0.1:${barePort}/`);
    if (!Buffer.from(await bareAnswer.arrayBuffer()).equals(bytes))
      throw new Error('the bare server sends other bytes');
    // The worker's job is done: it would only take CPU from the servers measured.
    await worker.stop();
    children.splice(children.indexOf(worker), 1);

    const targets = {
      bare: `http://127.0.0.1:${barePort}/`,
      'api-info': `http://127.0.0.1:${apiInfoPort}${resultPath}`,
      'api-warn': `http://127.0.0.1:${apiWarnPort}${resultPath}`,
      'api-fastify': `http://127.0.0.1:${apiFastifyPort}${resultPath}`,
    };
    const pids: Record<keyof typeof targets, number> = {
      bare: bare.process.pid!,
      'api-info': apiInfo.process.pid!,
      'api-warn': apiWarn.process.pid!,
      'api-fastify': apiFastify.process.pid!,
    };
    const runs: Record<string, WrkRun[]> = { bare: [], 'api-info': [], 'api-warn': [], 'api-fastify': [] };
    // A short warm-up each (JIT, the APIs' in-process caches), then alternating rounds, the order
    // rotated each round so no target always runs right after another.
    for (const url of Object.values(targets)) await wrk(url, 2, options.connections);
    const names = Object.keys(targets) as (keyof typeof targets)[];
    for (let round = 0; round < options.rounds; round++) {
      for (let i = 0; i < names.length; i++) {
        const name = names[(i + round) % names.length]!;
        runs[name]!.push(await measured(targets[name], pids[name], options.seconds, options.connections));
      }
    }

    const summary = Object.fromEntries(
      Object.entries(runs).map(([name, r]) => [
        name,
        {
          rps: median(r.map((x) => x.rps)),
          p50Ms: median(r.map((x) => x.p50Ms)),
          p99Ms: median(r.map((x) => x.p99Ms)),
          // The ratio of each round to the bare server's in the same round, then their median.
          vsBare: median(r.map((x, i) => x.rps / runs.bare![i]!.rps)),
          cpuUsPerRequest: median(r.map((x) => x.cpuUsPerRequest!)),
          // Bare's CPU per request over this target's, round by round: the throughput ratio the
          // target would reach if both had the CPU to themselves.
          cpuVsBare: median(r.map((x, i) => runs.bare![i]!.cpuUsPerRequest! / x.cpuUsPerRequest!)),
          runs: r,
        },
      ]),
    );
    const what: Record<string, string> = {
      bare: 'bare node:http, same bytes and headers (own process)',
      'api-info': 'GET /v1/results/:key, API key, logs at info',
      'api-warn': 'GET /v1/results/:key, API key, logs at warn',
      'api-fastify': 'the same at info, QUARRY_API_FAST_READS=0 (Fastify only)',
    };
    const rows: Row[] = Object.entries(summary).map(([name, s]) => ({
      target: name,
      what: what[name]!,
      'req/s': Math.round(s.rps),
      'p50 ms': s.p50Ms,
      'p99 ms': s.p99Ms,
      'vs bare (per round)': Number(s.vsBare.toFixed(2)),
      'CPU µs/req': Math.round(s.cpuUsPerRequest),
      'bare CPU / this CPU': Number(s.cpuVsBare.toFixed(2)),
    }));
    const load = os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ');
    printTable(
      `cached reads: wrk -t1 -c${options.connections}, ${options.rounds} × ${options.seconds} s alternating, ${bytes.length} B result (medians; load average ${load})`,
      rows,
    );
    const apiVsBare = summary['api-info']!.vsBare;
    const cpuVsBare = summary['api-info']!.cpuVsBare;
    printTable('target', [
      {
        target: 'API (info) / bare by CPU per request ≥ 0.8',
        measured: Number(cpuVsBare.toFixed(2)),
        met: cpuVsBare >= 0.8 ? 'yes' : 'no',
      },
      {
        target: 'API (info) / bare req/s ≥ 0.8',
        measured: Number(apiVsBare.toFixed(2)),
        met: apiVsBare >= 0.8 ? 'yes' : 'no',
      },
    ]);
    let profile: ProfileSummary | undefined;
    if (options.profile) {
      // The profile is written when the process exits.
      await apiInfo.stop();
      children.splice(children.indexOf(apiInfo), 1);
      profile = summarizeProfiles(profileDir, 25);
      printTable(
        `API (info) main thread, top self time (${profile.busyMs} ms busy, profiles in ${profileDir})`,
        profile.top.map((t) => ({ frame: t.frame, 'self ms': t.selfMs })),
      );
    }
    const file = writeResults('reads', {
      ...(profile === undefined ? {} : { profile }),
      connections: options.connections,
      seconds: options.seconds,
      rounds: options.rounds,
      resultBytes: bytes.length,
      headers,
      loadAverage: os.loadavg(),
      summary,
      target: { apiVsBare: 0.8, met: apiVsBare >= 0.8, cpuVsBare },
    });
    console.log(`wrote ${file}`);
  } finally {
    for (const c of children.reverse()) await c.stop();
    rmSync(bytesFile, { force: true });
    rmSync(headersFile, { force: true });
    await Promise.all([queueRedis.stop(), cacheRedis.stop()]);
  }
}
