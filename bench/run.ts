// `npm run bench -- <name> [--iterations N]`: runs one benchmark, prints its table and writes
// bench/results/<name>.json.
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    iterations: { type: 'string', default: '200' },
    scale: { type: 'string', default: '1' },
    sizes: { type: 'string', default: '10000,100000' },
    jobs: { type: 'string' },
    cases: { type: 'string' },
    small: { type: 'string' },
    heavy: { type: 'string' },
    'rtt-ms': { type: 'string', default: '0' },
    processes: { type: 'string' },
    concurrencies: { type: 'string' },
    profile: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    connections: { type: 'string' },
  },
});
const name = positionals[0];
const iterations = Number(values.iterations);

const benches: Record<string, () => Promise<void>> = {
  'aggregate-5k': async () => (await import('./aggregate-5k.ts')).runAggregate5k({ iterations }),
  formats: async () => (await import('./formats.ts')).runFormats({ iterations }),
  'js-engine': async () => (await import('./js-engine.ts')).runJsEngine({ iterations }),
  engines: async () =>
    (await import('./engines.ts')).runEngines({
      scale: Number(values.scale),
      ...(values.cases === undefined ? {} : { cases: values.cases }),
    }),
  batch: async () =>
    (await import('./batch.ts')).runBatch({ scale: Number(values.scale), rttMs: Number(values['rtt-ms']) }),
  scale: async () =>
    (await import('./scale.ts')).runScale({
      scale: Number(values.scale),
      profile: values.profile,
      ...(values.jobs === undefined ? {} : { jobs: Number(values.jobs) }),
      ...(values.processes === undefined ? {} : { processes: values.processes.split(',').map(Number) }),
      ...(values.concurrencies === undefined
        ? {}
        : { concurrencies: values.concurrencies.split(',').map(Number) }),
    }),
  soak: async () =>
    (await import('./soak.ts')).runSoak({
      jobs: values.jobs === undefined ? Math.round(50_000 * Number(values.scale)) : Number(values.jobs),
    }),
  fairness: async () =>
    (await import('./fairness.ts')).runFairness({
      ...(values.small === undefined ? {} : { small: Number(values.small) }),
      ...(values.heavy === undefined ? {} : { heavy: Number(values.heavy) }),
    }),
  webhooks: async () =>
    (await import('./webhooks.ts')).runWebhooks({
      iterations,
      ...(values.jobs === undefined ? {} : { burst: Number(values.jobs) }),
    }),
  replicas: async () => (await import('./replicas.ts')).runReplicas(),
  objects: async () =>
    (await import('./objects.ts')).runObjects({
      ...(values.jobs === undefined ? {} : { jobs: Number(values.jobs) }),
      ...(values.small === undefined ? {} : { small: true }),
    }),
  latency: async () =>
    (await import('./latency.ts')).runLatency({
      iterations: values.iterations === '200' ? 50 : iterations,
      parquetRuns: Math.max(3, Math.round(10 * Number(values.scale))),
    }),
  reads: async () =>
    (await import('./reads.ts')).runReads({
      rounds: Number(values.rounds ?? 5),
      seconds: Number(values.seconds ?? 5),
      connections: Number(values.connections ?? 10),
      profile: values.profile,
    }),
  search: async () =>
    (await import('./search.ts')).runSearch({
      sizes: values.sizes.split(',').map(Number) as (10_000 | 100_000)[],
      ...(values.cases === undefined ? {} : { parts: values.cases }),
    }),
};

if (name === undefined || benches[name] === undefined) {
  console.error(
    `usage: npm run bench -- <${Object.keys(benches).join(' | ')}> [--iterations N] [--scale F (engines: runs × F; scale, soak: jobs × F)] [--jobs N (soak, scale: jobs per setting; webhooks: the burst)] [--processes 1,2,4 --concurrencies 1,4,16 --profile (scale)] [--cases TEXT (engines: only cases whose name contains it; search: core,queries,threads,system)] [--small N --heavy N (fairness)] [--jobs N --small 1 (objects: jobs per burst; only the 5k object)] [--rtt-ms D (batch: a delay each way to Redis)] [--iterations N --scale F (latency: 5k runs; 3M parquet runs × F)] [--rounds N --seconds S --connections C --profile (reads: wrk rounds)]`,
  );
  process.exit(2);
}
await benches[name]();
process.exit(0);
