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
  /** API: the index version loaded in this process, per collection. */
  indexLoadedVersion: 'quarry_index_loaded_version',
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
} as const;

export type MetricsRole = 'api' | 'worker';
/** The final states quarry_jobs_total counts; an attempt followed by a retry counts in none. */
export type JobFinalState = 'completed' | 'failed' | 'cancelled';

// Seconds. HTTP answers are often sub-millisecond (searches, cache hits); jobs run up to minutes.
const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const JOB_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
// 1 KiB to 64 MiB (QUARRY_MAX_RESULT_BYTES' default), by 4×.
const BYTE_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16_384, 65_536].map((k) => k * 1024);

interface MetricsBase {
  readonly role: MetricsRole;
  readonly registry: Registry;
}

export interface LoadedVersion {
  readonly collection: string;
  readonly version: number;
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
}

export type QuarryMetrics = ApiMetrics | WorkerMetrics;

export function createMetrics(role: 'api'): ApiMetrics;
export function createMetrics(role: 'worker'): WorkerMetrics;
export function createMetrics(role: MetricsRole): QuarryMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  if (role === 'api') {
    let loaded: (() => Iterable<LoadedVersion>) | undefined;
    new Gauge({
      name: METRIC_NAMES.indexLoadedVersion,
      help: 'Version of each collection index loaded in this API process.',
      labelNames: ['collection'],
      registers,
      collect() {
        if (loaded === undefined) return;
        this.reset();
        for (const { collection, version } of loaded()) this.set({ collection }, version);
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
  return {
    role,
    registry,
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
  };
}
