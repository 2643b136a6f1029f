// Prometheus metrics: every metric name Quarry exports, and createMetrics(role), which builds the
// metrics of one process part on a registry of its own. Never prom-client's global registry: an
// API and a worker may share a process (the tests run both in one), and each reports only itself.
// The API serves its registry at GET /metrics; a worker on QUARRY_WORKER_METRICS_PORT.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export const METRIC_NAMES = {
  /** API: request duration by method, route pattern and status code. */
  httpRequestDuration: 'quarry_http_request_duration_seconds',
  /** API: aggregation requests answered from a stored result. */
  cacheHits: 'quarry_cache_hits_total',
  /** API: aggregation requests that had to be computed (joined or enqueued). */
  cacheMisses: 'quarry_cache_misses_total',
  /** API: the index version loaded in this process, per collection (at most MAX_COLLECTION_SERIES). */
  indexLoadedVersion: 'quarry_index_loaded_version',
  /** API: how many collections this process has an index loaded for (all of them). */
  indexesLoaded: 'quarry_indexes_loaded',
  /** API: age of the oldest loaded index version, from its build: a stuck refresh shows here. */
  indexLoadedAgeMax: 'quarry_index_loaded_age_max_seconds',
  /** Worker: jobs by type and final state (completed, failed, cancelled). */
  jobs: 'quarry_jobs_total',
  /** Worker: time from enqueue to the start of a job's first attempt. */
  jobWait: 'quarry_job_wait_seconds',
  /** Worker: processing time of each attempt, whatever its outcome. */
  jobRun: 'quarry_job_run_seconds',
  /** Worker: size of each computed result envelope. */
  resultBytes: 'quarry_result_bytes',
  /** Worker: time to build an index on its thread. */
  indexBuild: 'quarry_index_build_seconds',
  /** Worker: time to get an s3:// object into the host's cache, by cache hit or miss. */
  objectFetch: 'quarry_object_fetch_seconds',
  /** Worker: jobs that failed for good, by type and error code (a bounded set: shared/errors.ts). */
  jobsFailed: 'quarry_jobs_failed_total',
  /** Worker: jobs found stalled (their worker died or blocked past the lock), by queue. */
  jobStalls: 'quarry_job_stalls_total',
  /** Worker: webhook delivery attempts by outcome (delivered, retry, failed, dropped). */
  webhookAttempts: 'quarry_webhook_attempts_total',
  /** Worker: jobs in each queue by state (waiting, active, delayed), read from Redis per scrape. */
  queueJobs: 'quarry_queue_jobs',
  /** Worker: age of the job that has waited longest in each queue (0 when none waits). */
  queueOldestWaitingAge: 'quarry_queue_oldest_waiting_age_seconds',
  /** Worker: each tenant's queued and running jobs (tenants from QUARRY_API_KEYS only). */
  tenantJobs: 'quarry_tenant_jobs',
} as const;

/**
 * prom-client's default metrics include gauges named `_total` (nodejs_active_handles_total,
 * …_requests_total, …_resources_total), which Prometheus reserves for counters: `promtool check
 * metrics` rejects them. They are dropped; the same numbers are `sum(nodejs_active_handles)`.
 */
export const DROPPED_DEFAULT_METRICS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
] as const;

/** Per-collection series are capped (by name order): the count and max age cover the rest. */
export const MAX_COLLECTION_SERIES = 100;
/** The queue states quarry_queue_jobs reports; `waiting` includes prioritized jobs. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed'] as const;
export type QueueState = (typeof QUEUE_STATES)[number];

export interface QueueSnapshot {
  readonly queue: string;
  readonly jobs: Readonly<Record<QueueState, number>>;
  /** Seconds the oldest waiting job has waited; 0 when none waits. */
  readonly oldestWaitingAgeS: number;
}

export type MetricsRole = 'api' | 'worker';
/** The final states quarry_jobs_total counts; an attempt followed by a retry counts in none. */
export type JobFinalState = 'completed' | 'failed' | 'cancelled';

// Seconds. HTTP answers are often sub-millisecond (searches, cache hits); jobs run up to minutes.
const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const JOB_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
// 1 KiB to 64 MiB (QUARRY_MAX_RESULT_BYTES' default), by 4×.
/** Within this, both queue gauges of one scrape share one read of Redis. */
const SNAPSHOT_REUSE_MS = 1000;
const BYTE_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16_384, 65_536].map((k) => k * 1024);

interface MetricsBase {
  readonly role: MetricsRole;
  readonly registry: Registry;
}

export interface LoadedVersion {
  readonly collection: string;
  readonly version: number;
  /** ISO time the version was built (IndexInfo.builtAt); empty or unparsable counts as unknown. */
  readonly builtAt?: string;
}

export interface ApiMetrics extends MetricsBase {
  readonly role: 'api';
  readonly httpRequestDuration: Histogram<'method' | 'route' | 'status_code'>;
  readonly cacheHits: Counter;
  readonly cacheMisses: Counter;
  /**
   * Reports `source()` as quarry_index_loaded_version at each scrape, so the gauge always
   * matches what is loaded (versions swapped in or dropped between scrapes included).
   */
  trackLoadedIndexes(source: () => Iterable<LoadedVersion>): void;
}

export interface WorkerMetrics extends MetricsBase {
  readonly role: 'worker';
  readonly jobs: Counter<'type' | 'state'>;
  readonly jobWait: Histogram<'type'>;
  readonly jobRun: Histogram<'type'>;
  readonly resultBytes: Histogram;
  readonly indexBuild: Histogram;
  readonly objectFetch: Histogram<'cache'>;
  readonly jobsFailed: Counter<'type' | 'code'>;
  readonly jobStalls: Counter<'queue'>;
  readonly webhookAttempts: Counter<'outcome'>;
  /**
   * Reads `source()` once per scrape for quarry_queue_jobs and the oldest waiting age; when it
   * fails (Redis away) the scrape still answers, without those two metrics.
   */
  trackQueues(source: () => Promise<readonly QueueSnapshot[]>): void;
  /**
   * Reads `source()` once per scrape for quarry_tenant_jobs{tenant,state}; the tenants are the
   * key list's (bounded labels). A failing read leaves the metric out of that scrape.
   */
  trackTenants(source: () => Promise<readonly TenantSnapshot[]>): void;
}

/** One tenant's counts as a scrape reads them. */
export interface TenantSnapshot {
  readonly tenant: string;
  readonly queued: number;
  readonly active: number;
}

export type QuarryMetrics = ApiMetrics | WorkerMetrics;

export function createMetrics(role: 'api'): ApiMetrics;
export function createMetrics(role: 'worker'): WorkerMetrics;
export function createMetrics(role: MetricsRole): QuarryMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const name of DROPPED_DEFAULT_METRICS) registry.removeSingleMetric(name);
  const registers = [registry];
  if (role === 'api') {
    let loaded: (() => Iterable<LoadedVersion>) | undefined;
    new Gauge({
      name: METRIC_NAMES.indexLoadedVersion,
      help: `Version of each collection index loaded in this API process (the first ${MAX_COLLECTION_SERIES} collections by name).`,
      labelNames: ['collection'],
      registers,
      collect() {
        if (loaded === undefined) return;
        this.reset();
        const all = [...loaded()].sort((a, b) => (a.collection < b.collection ? -1 : 1));
        for (const { collection, version } of all.slice(0, MAX_COLLECTION_SERIES)) {
          this.set({ collection }, version);
        }
      },
    });
    new Gauge({
      name: METRIC_NAMES.indexesLoaded,
      help: 'Collections with an index loaded in this API process.',
      registers,
      collect() {
        if (loaded !== undefined) this.set([...loaded()].length);
      },
    });
    new Gauge({
      name: METRIC_NAMES.indexLoadedAgeMax,
      help: 'Seconds since the oldest loaded index version was built (0 when none is loaded).',
      registers,
      collect() {
        if (loaded === undefined) return;
        const now = Date.now();
        let max = 0;
        for (const { builtAt } of loaded()) {
          const at = builtAt === undefined ? Number.NaN : Date.parse(builtAt);
          if (Number.isFinite(at)) max = Math.max(max, (now - at) / 1000);
        }
        this.set(max);
      },
    });
    return {
      role,
      registry,
      httpRequestDuration: new Histogram({
        name: METRIC_NAMES.httpRequestDuration,
        help: 'HTTP request duration by method, route pattern and status code.',
        labelNames: ['method', 'route', 'status_code'],
        buckets: HTTP_BUCKETS,
        registers,
      }),
      cacheHits: new Counter({
        name: METRIC_NAMES.cacheHits,
        help: 'Aggregation requests answered from a stored result.',
        registers,
      }),
      cacheMisses: new Counter({
        name: METRIC_NAMES.cacheMisses,
        help: 'Aggregation requests with no stored result (joined a running job or enqueued one).',
        registers,
      }),
      trackLoadedIndexes(source) {
        loaded = source;
      },
    };
  }
  // One read of the queues per scrape, shared by the two gauges prom-client collects in parallel.
  let queues: (() => Promise<readonly QueueSnapshot[]>) | undefined;
  let pending: { at: number; snapshot: Promise<readonly QueueSnapshot[] | undefined> } | undefined;
  const snapshot = (): Promise<readonly QueueSnapshot[] | undefined> => {
    if (queues === undefined) return Promise.resolve(undefined);
    const now = Date.now();
    if (pending === undefined || now - pending.at > SNAPSHOT_REUSE_MS) {
      pending = { at: now, snapshot: queues().catch(() => undefined) };
    }
    return pending.snapshot;
  };
  let tenants: (() => Promise<readonly TenantSnapshot[]>) | undefined;
  new Gauge({
    name: METRIC_NAMES.tenantJobs,
    help: "Each tenant's queued and running (active) jobs across all workers, read from Redis per scrape.",
    labelNames: ['tenant', 'state'],
    registers,
    async collect() {
      const snap = tenants === undefined ? undefined : await tenants().catch(() => undefined);
      this.reset();
      for (const { tenant, queued, active } of snap ?? []) {
        this.set({ tenant, state: 'queued' }, queued);
        this.set({ tenant, state: 'active' }, active);
      }
    },
  });
  new Gauge({
    name: METRIC_NAMES.queueJobs,
    help: 'Jobs in each queue by state (waiting includes prioritized), as Redis holds them now.',
    labelNames: ['queue', 'state'],
    registers,
    async collect() {
      const snap = await snapshot();
      this.reset();
      for (const { queue, jobs } of snap ?? []) {
        for (const state of QUEUE_STATES) this.set({ queue, state }, jobs[state]);
      }
    },
  });
  new Gauge({
    name: METRIC_NAMES.queueOldestWaitingAge,
    help: 'Seconds the oldest waiting job of each queue has waited (0 when none waits).',
    labelNames: ['queue'],
    registers,
    async collect() {
      const snap = await snapshot();
      this.reset();
      for (const { queue, oldestWaitingAgeS } of snap ?? []) this.set({ queue }, oldestWaitingAgeS);
    },
  });
  return {
    role,
    registry,
    trackQueues(source) {
      queues = source;
    },
    trackTenants(source) {
      tenants = source;
    },
    jobsFailed: new Counter({
      name: METRIC_NAMES.jobsFailed,
      help: 'Jobs that failed for good (no retry follows), by type and error code.',
      labelNames: ['type', 'code'],
      registers,
    }),
    jobStalls: new Counter({
      name: METRIC_NAMES.jobStalls,
      help: 'Jobs found stalled (lock lapsed: worker died or blocked), by queue.',
      labelNames: ['queue'],
      registers,
    }),
    webhookAttempts: new Counter({
      name: METRIC_NAMES.webhookAttempts,
      help: 'Webhook delivery attempts by outcome: delivered, retry (failed, tried again), failed (given up), dropped (webhook deleted).',
      labelNames: ['outcome'],
      registers,
    }),
    jobs: new Counter({
      name: METRIC_NAMES.jobs,
      help: 'Jobs by type and final state.',
      labelNames: ['type', 'state'],
      registers,
    }),
    jobWait: new Histogram({
      name: METRIC_NAMES.jobWait,
      help: "Seconds from enqueue to the start of a job's first attempt.",
      labelNames: ['type'],
      buckets: JOB_BUCKETS,
      registers,
    }),
    jobRun: new Histogram({
      name: METRIC_NAMES.jobRun,
      help: 'Seconds each job attempt ran, whatever its outcome.',
      labelNames: ['type'],
      buckets: JOB_BUCKETS,
      registers,
    }),
    resultBytes: new Histogram({
      name: METRIC_NAMES.resultBytes,
      help: 'Bytes of each computed result envelope.',
      buckets: BYTE_BUCKETS,
      registers,
    }),
    indexBuild: new Histogram({
      name: METRIC_NAMES.indexBuild,
      help: 'Seconds to build an index (on its worker thread).',
      buckets: JOB_BUCKETS,
      registers,
    }),
    objectFetch: new Histogram({
      name: METRIC_NAMES.objectFetch,
      help: "Seconds to get an s3:// dataset or source into the host's object cache, by cache (hit, miss).",
      labelNames: ['cache'],
      buckets: JOB_BUCKETS,
      registers,
    }),
  };
}
