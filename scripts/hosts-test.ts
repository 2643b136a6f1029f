// `npm run hosts-test -- [--seed N] [--worker-hosts N] [--inline N] [--files N] [--heavy N]
//   [--settle-seconds S] [--isolation nft|routes] [--max-stalled-count K] [--skip-unavailable]`:
// Quarry on several hosts, simulated on this machine with network namespaces (scripts/netns.ts
// builds the hosts, scripts/hosts-system.ts starts Quarry on them, scripts/hosts-burst.ts plans the jobs;
// root and `ip netns` needed): the queue and cache Redis on one host, the API on another, a worker
// on each of two more, each host reaching only what it must; the object store (s3rver) on the
// Redis host too. The operator (this process) sends a mixed burst through the API (inline
// aggregations, file aggregations over a folder every host sees at the same path and over the
// same files as s3:// objects, multi-second ones over 3M rows by path and from the store, three
// index builds: inline, by path, from the store), waits until a worker host holds a multi-second
// job over an s3:// object, cuts that host off the network (every packet silently dropped,
// as a partition does; its worker keeps running and believes it holds the job), and kills its
// worker once the job has ended elsewhere. The job's lock lapses in Redis and the other host's
// stall check hands it on (docs/RELIABILITY.md: QUARRY_LOCK_DURATION_MS + QUARRY_STALLED_INTERVAL_MS).
// Prints a table per host, the recovery of each job the cut host held, the totals and the JSON;
// exits 1 when an acknowledged job is lost (not completed), an answer is wrong, a recovery takes
// longer than the bound, the network lets through what it must not, or no job was caught mid-run.
// Namespaces are deleted on every exit (signals included), and stale ones of a killed run at start.
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { printTable } from '../bench/lib/stats.ts';
import { loadConfig } from '../shared/config.ts';
import { isFinalState, type JobStatus } from '../shared/status.ts';
import { makeFlightsDataDir, VEGA_DATA_DIR } from '../test/helpers/flights.ts';
import { checkAnswer, documents, type Planned, planBurst, S3_OBJECTS } from './hosts-burst.ts';
import { PORTS, type Proc, REDIS_HOST_PORTS, systemOn } from './hosts-system.ts';
import { buildNetwork, type Network, netnsUnavailable, sweepStale } from './netns.ts';

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
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (line: string) => console.log(`hosts-test: ${line}`);

// ---------------------------------------------------------------------------------------------
// Clean-up, whatever ends the run.

let net: Network | undefined;
let system: ReturnType<typeof systemOn> | undefined;
const api = (route: string, init?: RequestInit) => system!.api(route, init);
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

const objectUrl = (job: Planned): string | undefined =>
  ((job.body.dataset ?? job.body.source) as { url?: string } | undefined)?.url;
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
  system = systemOn(net, {
    lockMs: LOCK_MS,
    stalledMs: STALLED_MS,
    maxStalledCount: args['max-stalled-count'],
    prefix: defaults.prefix,
  });
  const { activeJobs, queueEvents } = system;
  const objects = S3_OBJECTS.map((key) => ({ key, file: path.join(dataDir, key) }));
  const workers = await system.startServices(work, dataDir, objects);
  log('Redis, the API and the workers are up');

  const probes = await system.checkReachability();
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

  // Cut the first worker host seen holding a multi-second job over an object, while it runs: its
  // s3:// jobs must then finish on a host that fetches the object into a cache of its own.
  // A job counts once it is seen running on the same host in two polls in a row, and its record
  // says an attempt started: a heavy job a worker takes while its heavy slots are full is active
  // in BullMQ for a moment only and goes back unrun, without an attempt; on a busy host that
  // moment can outlast two polls (a CI run cut a host that had just handed its job back).
  let caught: { victim: Proc; jobId: string } | undefined;
  let before = new Map<string, Proc>();
  const catchDeadline = Date.now() + 90_000;
  while (caught === undefined && Date.now() < catchDeadline) {
    const heavy = new Set(
      tracked.filter((t) => t.job.kind === 'heavy' && t.job.data === 's3').map((t) => t.jobId),
    );
    const now = new Map<string, Proc>();
    for (const a of await activeJobs().catch(() => [])) {
      const victim = hostOf(a.by, workers);
      if (!heavy.has(a.jobId) || victim === undefined) continue;
      now.set(a.jobId, victim);
      if (before.get(a.jobId) !== victim) continue;
      const job = tracked.find((t) => t.jobId === a.jobId);
      if (job === undefined) continue;
      await poll([job]);
      if (job.status?.state === 'active') caught = { victim, jobId: a.jobId };
    }
    before = now;
    if (caught === undefined) await sleep(100);
  }
  if (caught === undefined) {
    log('no worker host was seen running a multi-second job over an s3:// object: nothing to cut');
    // A network that refuses what a host needs (the store, say) is the likely cause: say so.
    for (const p of leaks) log(`PROBLEM: ${p.from} -> ${p.to}:${p.port} is ${p.got}, must be ${p.expect}`);
    for (const t of tracked.filter((t) => t.problem !== undefined).slice(0, 5)) log(`PROBLEM: ${t.problem}`);
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
  // Aggregations running on the hosts still on the network at an instant (from the events: an
  // `active` not yet followed by an end, a stall or a hand-back), the cut host's jobs aside.
  const busyAt = (at: number) => {
    const open = new Set<string>();
    for (const e of events) {
      if (e.at > at) break;
      if (!e.jobId.startsWith('agg-') || (held.includes(e.jobId) && e.at < cutAt)) continue;
      if (e.event === 'active') open.add(e.jobId);
      else if (['completed', 'failed', 'stalled', 'delayed'].includes(e.event)) open.delete(e.jobId);
    }
    for (const id of held) open.delete(id);
    return open.size;
  };
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
    const job = byId.get(jobId)?.job;
    // Where the host that ran an s3:// job to the end got its object: fetched after the cut into
    // its own cache, or there already from an earlier job.
    const url = job?.data === 's3' ? objectUrl(job) : undefined;
    const object =
      url === undefined
        ? ''
        : finishedOn
            .map((name) => {
              const fetched = workers.find((w) => w.host.name === name)?.fetches.find((f) => f.url === url);
              if (fetched === undefined) return `${name}: not fetched`;
              return fetched.at >= cutAt
                ? `${name} fetched it +${fetched.at - cutAt} ms (${Math.round(fetched.fetchMs)} ms)`
                : `${name}'s cache had it`;
            })
            .join('; ');
    return {
      jobId,
      kind: job?.kind ?? 'unknown',
      data: job?.data ?? 'unknown',
      object,
      stalledMs: ms(stalled),
      busyAtStall: stalled === undefined ? null : busyAt(stalled),
      pickupMs: ms(active),
      endMs: ms(end),
      state: byId.get(jobId)?.status?.state ?? 'unknown',
      finishedOn,
    };
  });
  for (const r of recoveries) {
    // The bound is Quarry's part: the job handed back to the queue. Taken again is when a slot of
    // a host still on the network is free: at once with room, later on a saturated machine.
    if (r.stalledMs === null || r.stalledMs > BOUND_MS) {
      problems.push(
        `job ${r.jobId} was handed back ${r.stalledMs ?? 'never'} ms after the cut (bound ${BOUND_MS} ms)`,
      );
    }
    if (r.pickupMs === null) problems.push(`job ${r.jobId} was never taken again`);
    if (r.state === 'completed' && r.finishedOn.length === 0) {
      problems.push(`job ${r.jobId} completed, but no other host logged its run`);
    }
  }
  if (!recoveries.some((r) => r.data === 's3')) problems.push('the cut host held no s3:// job');

  const acknowledged = tracked.filter((t) => t.jobId !== undefined || t.cachedKey !== undefined).length;
  const hostRows = net.hosts.map((h) => {
    const proc = workers.find((w) => w.host === h);
    const computed = new Set(proc?.jobLines.filter((l) => doneLine(l.msg)).map((l) => l.jobId));
    const failedAttempts = proc?.jobLines.filter((l) => l.msg === 'job attempt failed').length;
    const s3Run = [...computed].filter((id) => byId.get(id)?.job.data === 's3').length;
    return {
      host: h.name,
      role: h.role,
      address: h.role === 'api' ? `${h.address}, ${net!.apiAddress}` : h.address,
      'jobs run': proc === undefined ? '' : computed.size,
      's3 jobs': proc === undefined ? '' : s3Run,
      'objects fetched': proc === undefined ? '' : proc.fetches.length,
      'failed attempts': failedAttempts ?? '',
      fault: proc === victim ? `cut +${cutAt - started} ms, killed +${killedAt - started} ms` : '',
    };
  });
  const longest = (key: 'stalledMs' | 'pickupMs' | 'endMs') =>
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
    s3Completed: tracked.filter((t) => t.job.data === 's3' && t.status?.state === 'completed').length,
    heldAtCut: held.length,
    heldS3: recoveries.filter((r) => r.data === 's3').length,
    longestHandBackMs: longest('stalledMs'),
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
      data: r.data,
      'handed back': r.stalledMs,
      'busy slots then': r.busyAtStall,
      'taken again': r.pickupMs,
      ended: r.endMs,
      state: r.state,
      'run to the end on': r.finishedOn.join(', '),
      's3 object there': r.object,
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
