// Configuration: the environment, parsed once by one zod schema, frozen, passed down.
// No other module reads process.env.
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { usableCpus } from './cpu-limit.ts';
import { QuarryError } from './errors.ts';
import { type TracingConfig, tracingConfig } from './tracing-config.ts';
import { describeIssue } from './zod-messages.ts';

const int = (min: number, max: number, fallback: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

const redisUrl = z
  .string()
  .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
  .refine((value) => URL.canParse(value), 'must be a valid URL');

/** A server's address (a Sentinel's, a Cluster node's), from `host:port` (IPv6 as `[::1]:26379`). */
export interface RedisAddress {
  readonly host: string;
  readonly port: number;
}

/** A Redis found through Sentinel: the Sentinels to ask, and the name they monitor it by. */
export interface SentinelSetup {
  readonly sentinels: readonly RedisAddress[];
  readonly name: string;
}

const addressList = z.string().transform((text, ctx) => {
  const addresses: RedisAddress[] = [];
  for (const item of text.split(',').map((s) => s.trim())) {
    const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(item);
    const port = Number(match?.[3]);
    if (match === null || port < 1 || port > 65535) {
      ctx.addIssue({ code: 'custom', message: `"${item}" is not host:port (a comma-separated list)` });
      return z.NEVER;
    }
    addresses.push({ host: match[1] ?? match[2]!, port });
  }
  return addresses;
});
const sentinelName = z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, '1-128 letters, digits, ., - or _');

/**
 * `admin` implies every other scope; `metrics` is for scrapers and opens only GET /metrics;
 * `webhooks` manages the tenant's webhooks (/v1/webhooks).
 */
export const API_SCOPES = ['enqueue', 'read', 'metrics', 'webhooks', 'admin'] as const;
export type ApiScope = (typeof API_SCOPES)[number];
export interface ApiKey {
  readonly key: string;
  readonly tenant: string;
  readonly scopes: readonly ApiScope[];
  /** The tenant's data root; default `<QUARRY_DATA_DIR>/<tenant>`. Keys of one tenant agree. */
  readonly dataDir?: string;
  /** Fair dispatch: the tenant's share relative to others (default 1; shared/fairness.ts). */
  readonly weight?: number;
  /** Jobs of the tenant running at once across all workers; default QUARRY_TENANT_MAX_ACTIVE. */
  readonly maxActive?: number;
  /** Jobs of the tenant queued at once (past it: 429); default QUARRY_TENANT_MAX_QUEUED. */
  readonly maxQueued?: number;
  /** Object-store datasets the tenant may read: `bucket` or `bucket/prefix` (none: no bucket). */
  readonly buckets?: readonly string[];
}

/** `bucket` or `bucket/key-prefix`: an S3 bucket name (3-63 of a-z 0-9 . -), then any prefix. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
export const BUCKET_SCOPE_PATTERN = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/[^\u0000-\u001f\u007f]{0,1024})?$/;

const ApiKeysSchema = z
  .string()
  .transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be JSON: [{"key","tenant","scopes"}]' });
      return z.NEVER;
    }
  })
  .pipe(
    z
      .array(
        z.strictObject({
          key: z.string().min(16, 'keys need at least 16 characters').max(512),
          tenant: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'tenant: 1-64 letters, digits, - or _'),
          scopes: z.array(z.enum(API_SCOPES)).min(1),
          dataDir: z.string().min(1).max(4096).optional(),
          weight: z.number().int().min(1).max(100).optional(),
          maxActive: z.number().int().min(0).max(1_000_000).optional(),
          maxQueued: z.number().int().min(0).max(100_000_000).optional(),
          buckets: z
            .array(
              z
                .string()
                .transform((b) => b.replace(/^s3:\/\//, ''))
                .pipe(z.string().regex(BUCKET_SCOPE_PATTERN, 'a bucket name, or bucket/prefix')),
            )
            .max(256)
            .optional(),
        }),
      )
      .refine((keys) => new Set(keys.map((k) => k.key)).size === keys.length, 'keys must be distinct')
      .refine(
        (keys) =>
          keys.every((k) =>
            keys.every(
              (o) =>
                o.tenant !== k.tenant ||
                (o.dataDir === undefined ? undefined : path.resolve(o.dataDir)) ===
                  (k.dataDir === undefined ? undefined : path.resolve(k.dataDir)),
            ),
          ),
        'keys of one tenant must give the same dataDir (or none)',
      )
      .refine(
        (keys) =>
          keys.every((k) =>
            keys.every(
              (o) =>
                o.tenant !== k.tenant ||
                (o.weight === k.weight && o.maxActive === k.maxActive && o.maxQueued === k.maxQueued),
            ),
          ),
        'keys of one tenant must give the same weight, maxActive and maxQueued (or none)',
      )
      .refine(
        (keys) =>
          keys.every((k) => keys.every((o) => o.tenant !== k.tenant || sameList(o.buckets, k.buckets))),
        'keys of one tenant must give the same buckets (or none)',
      ),
  );

function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  const x = [...(a ?? [])].sort();
  const y = [...(b ?? [])].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

const httpUrl = z
  .string()
  .regex(/^https?:\/\//, 'must start with http:// or https://')
  .refine((value) => URL.canParse(value), 'must be a valid URL');

const EnvSchema = z.object({
  QUARRY_QUEUE_REDIS_URL: redisUrl.default('redis://127.0.0.1:6379'),
  QUARRY_CACHE_REDIS_URL: redisUrl.optional(),
  QUARRY_QUEUE_REDIS_SENTINELS: addressList.optional(),
  QUARRY_QUEUE_REDIS_SENTINEL_NAME: sentinelName.optional(),
  QUARRY_CACHE_REDIS_SENTINELS: addressList.optional(),
  QUARRY_CACHE_REDIS_SENTINEL_NAME: sentinelName.optional(),
  QUARRY_CACHE_REDIS_CLUSTER: addressList.optional(),
  QUARRY_QUEUE_MIN_REPLICAS: int(0, 16, 0),
  QUARRY_QUEUE_MIN_REPLICAS_TIMEOUT_MS: int(10, 60_000, 1000),
  QUARRY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, - and _ only')
    .default('quarry'),
  QUARRY_DATA_DIR: z.string().min(1).default('./data'),
  QUARRY_API_HOST: z.string().min(1).default('127.0.0.1'),
  QUARRY_API_PORT: int(0, 65535, 3000),
  QUARRY_WORKER_CONCURRENCY: int(1, 256, 4),
  // Unset: every slot but one (all of them at concurrency 1); 0: no limit.
  QUARRY_WORKER_HEAVY_SLOTS: z.coerce.number().int().min(0).max(256).optional(),
  QUARRY_HEAVY_JOB_BYTES: int(1, Number.MAX_SAFE_INTEGER, 8 * 1024 * 1024),
  QUARRY_WORKER_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  QUARRY_WORKER_METRICS_PORT: int(0, 65535, 9464),
  QUARRY_INDEX_CONCURRENCY: int(1, 64, 1),
  QUARRY_MAX_INDEX_DOCUMENTS: int(1, 100_000_000, 1_000_000),
  // The builder holds the source, its JSON array and the parsed documents at once (a 1.5 GB
  // NDJSON peaked at 7.7 GB RSS); Node cannot read a file past 2 GiB into one buffer at all.
  QUARRY_MAX_INDEX_SOURCE_BYTES: int(1024, 1536 * 1024 ** 2, 256 * 1024 ** 2),
  QUARRY_INDEX_GRACE_S: int(1, 86400, 60),
  QUARRY_RESULT_TTL_S: int(1, 365 * 86400, 3600),
  QUARRY_STATUS_TTL_S: int(1, 365 * 86400, 86400),
  QUARRY_INLINE_DATA_TTL_S: int(60, 365 * 86400, 86400),
  QUARRY_RETRY_DATA_TTL_S: int(60, 365 * 86400, 86400),
  QUARRY_HISTORY_MAX_JOBS: int(100, 100_000_000, 100_000),
  QUARRY_ACTIVITY_WINDOW_S: int(60, 7 * 86400, 6 * 3600),
  QUARRY_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  QUARRY_LOG_FORMAT: z.enum(['pretty', 'json']).optional(),
  QUARRY_MAX_BODY_BYTES: int(1024, 1024 ** 3, 16 * 1024 ** 2),
  QUARRY_MAX_INLINE_BYTES: int(1024, 1024 ** 3, 8 * 1024 ** 2),
  QUARRY_MAX_BATCH_ITEMS: int(1, 10_000, 100),
  QUARRY_MAX_RESULT_ROWS: int(1, 100_000_000, 100_000),
  QUARRY_MAX_RESULT_BYTES: int(1024, 1024 ** 3, 64 * 1024 ** 2),
  QUARRY_JOB_ATTEMPTS: int(1, 100, 3),
  QUARRY_JOB_BACKOFF_MS: int(0, 3_600_000, 500),
  QUARRY_LOCK_DURATION_MS: int(1000, 3_600_000, 8_000),
  QUARRY_STALLED_INTERVAL_MS: int(1000, 3_600_000, 3_000),
  QUARRY_SHUTDOWN_TIMEOUT_MS: int(100, 3_600_000, 10_000),
  QUARRY_MAX_STALLED_COUNT: int(0, 100, 5),
  QUARRY_AGGREGATE_TIMEOUT_MS: int(100, 24 * 3_600_000, 300_000),
  QUARRY_INDEX_TIMEOUT_MS: int(100, 24 * 3_600_000, 600_000),
  QUARRY_DUCKDB_THREADS: int(1, 1024, usableCpus()),
  QUARRY_POLARS_THREADS: int(1, 64, 2),
  QUARRY_THREAD_HEAP_MB: int(32, 65_536, 2048),
  QUARRY_DUCKDB_MEMORY_LIMIT: z
    .string()
    .regex(/^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i, 'a size such as 2GB')
    .optional(),
  QUARRY_SPOOL_DIR: z.string().min(1).optional(),
  // Object storage (shared/object-store.ts): the standard AWS variables, read here like the rest.
  AWS_ENDPOINT_URL_S3: httpUrl.optional(),
  AWS_ENDPOINT_URL: httpUrl.optional(),
  AWS_REGION: z.string().min(1).max(64).optional(),
  AWS_DEFAULT_REGION: z.string().min(1).max(64).optional(),
  AWS_ACCESS_KEY_ID: z.string().min(1).max(256).optional(),
  AWS_SECRET_ACCESS_KEY: z.string().min(1).max(1024).optional(),
  AWS_SESSION_TOKEN: z.string().min(1).max(8192).optional(),
  QUARRY_S3_FORCE_PATH_STYLE: z.enum(['true', 'false', '1', '0']).optional(),
  QUARRY_OBJECT_CACHE_DIR: z.string().min(1).optional(),
  QUARRY_OBJECT_CACHE_BYTES: int(0, Number.MAX_SAFE_INTEGER, 4 * 1024 ** 3),
  QUARRY_API_RESULT_CACHE_BYTES: int(0, 16 * 1024 ** 3, 64 * 1024 ** 2),
  QUARRY_API_FORMAT_CACHE_BYTES: int(0, 16 * 1024 ** 3, 32 * 1024 ** 2),
  QUARRY_API_FAST_READS: z.enum(['true', 'false', '1', '0']).optional(),
  QUARRY_API_KEYS: ApiKeysSchema.optional(),
  QUARRY_CONSOLE_SECRET: z.string().min(32, 'at least 32 characters').max(1024).optional(),
  QUARRY_CONSOLE_SESSION_TTL_S: int(60, 30 * 86400, 8 * 3600),
  QUARRY_RATE_LIMIT_RPS: int(0, 1_000_000, 200),
  QUARRY_RATE_LIMIT_BURST: int(1, 1_000_000, 400),
  QUARRY_TENANT_MAX_ACTIVE: int(0, 1_000_000, 0),
  QUARRY_TENANT_MAX_QUEUED: int(0, 100_000_000, 100_000),
  QUARRY_HTTP_REQUEST_TIMEOUT_MS: int(100, 3_600_000, 30_000),
  QUARRY_HTTP_HEADERS_TIMEOUT_MS: int(100, 3_600_000, 10_000),
  QUARRY_HTTP_KEEPALIVE_TIMEOUT_MS: int(100, 3_600_000, 5_000),
  QUARRY_REDIS_COMMAND_TIMEOUT_MS: int(50, 600_000, 1000),
  QUARRY_RECONCILE_INTERVAL_MS: int(100, 24 * 3_600_000, 30_000),
  QUARRY_WEBHOOK_ALLOW: z.string().max(4096).optional(),
  QUARRY_WEBHOOK_RETRY_FOR_S: int(1, 30 * 86400, 86400),
  QUARRY_WEBHOOK_FIRST_RETRY_MS: int(10, 3_600_000, 2000),
  QUARRY_WEBHOOK_TIMEOUT_MS: int(100, 120_000, 10_000),
  QUARRY_WEBHOOK_LOG_SIZE: int(1, 10_000, 100),
});

export interface QuarryConfig {
  readonly queueRedisUrl: string;
  readonly cacheRedisUrl: string;
  /**
   * When set (QUARRY_QUEUE_REDIS_SENTINELS), the queue Redis is whichever server these Sentinels
   * name primary; the URL then gives only credentials, database and TLS.
   */
  readonly queueSentinel: SentinelSetup | null;
  /** The same for the cache; the queue's when the cache shares the queue server. */
  readonly cacheSentinel: SentinelSetup | null;
  /**
   * When set (QUARRY_CACHE_REDIS_CLUSTER), results live on this Redis Cluster (its seed nodes);
   * the cache URL then gives only credentials and TLS.
   */
  readonly cacheCluster: readonly RedisAddress[] | null;
  /** True when neither QUARRY_CACHE_REDIS_URL nor _SENTINELS was set: the cache shares the queue server. */
  readonly cacheSharesQueue: boolean;
  /** An enqueue is acknowledged once this many replicas have its writes (Redis WAIT); 0: no wait. */
  readonly queueMinReplicas: number;
  /** How long an enqueue waits for those replicas before it answers 503 QUARRY_ERR_REDIS_NOT_REPLICATED. */
  readonly queueMinReplicasTimeoutMs: number;
  readonly prefix: string;
  /** Absolute path of the data root; file datasets must resolve inside it (or a tenant's root). */
  readonly dataDir: string;
  /** Tenants whose API keys name a `dataDir` of their own (absolute); the others use `<dataDir>/<tenant>`. */
  readonly tenantDataDirs: Readonly<Record<string, string>>;
  readonly apiHost: string;
  readonly apiPort: number;
  readonly workerConcurrency: number;
  /** Heavy aggregations (a file of at least heavyJobBytes) running at once per worker; 0: any number. */
  readonly workerHeavySlots: number;
  readonly heavyJobBytes: number;
  /** Where a worker serves Prometheus metrics (GET /metrics); port 0 picks a free one. */
  readonly workerMetricsHost: string;
  readonly workerMetricsPort: number;
  /** Index builds at once per worker process (each takes a thread and a core). */
  readonly indexConcurrency: number;
  readonly maxIndexDocuments: number;
  /** Largest index source file (and JSON read from a Parquet source), in bytes. */
  readonly maxIndexSourceBytes: number;
  /** How long a replaced index version stays readable. */
  readonly indexGraceS: number;
  readonly resultTtlS: number;
  readonly statusTtlS: number;
  /** How long a queued job's inline records wait for a worker before they expire. */
  readonly inlineDataTtlS: number;
  /** How long a failed or cancelled job's inline data is kept so the job can be retried. */
  readonly retryDataTtlS: number;
  /** Most jobs the history index of one tenant (and the all-tenants one) holds. */
  readonly historyMaxJobs: number;
  /** How far back the per-minute activity counters reach (GET /v1/activity). */
  readonly activityWindowS: number;
  readonly logLevel: string;
  /** `pretty` or `json`; unset: pretty when stdout is a terminal, JSON otherwise. */
  readonly logFormat: 'pretty' | 'json' | undefined;
  readonly maxBodyBytes: number;
  readonly maxInlineBytes: number;
  /** Specs one POST /v1/aggregations/batch may carry (and the SDK's aggregateMany chunk). */
  readonly maxBatchItems: number;
  readonly maxResultRows: number;
  readonly maxResultBytes: number;
  readonly jobAttempts: number;
  readonly jobBackoffMs: number;
  readonly lockDurationMs: number;
  readonly stalledIntervalMs: number;
  readonly shutdownTimeoutMs: number;
  /** How often a job may lose its worker (crash) and be recovered before it fails. */
  readonly maxStalledCount: number;
  /** Hard limits per job type: past them the work is stopped, QUARRY_ERR_JOB_TIMEOUT. */
  readonly aggregateTimeoutMs: number;
  readonly indexTimeoutMs: number;
  readonly duckdbThreads: number;
  readonly duckdbMemoryLimit: string | undefined;
  /** Worker threads running Polars plans (Polars jobs computed at once per worker process). */
  readonly polarsThreads: number;
  /** JS heap limit of each worker thread (index builds, Polars), in MB. */
  readonly threadHeapMb: number;
  /** Where workers write inline datasets for the engines to read (tmpfs when available). */
  readonly spoolDir: string;
  /** Object storage: the S3 endpoint, region and static credentials (else the SDK's chain). */
  readonly s3: S3Settings;
  /** Each worker host's cache of fetched objects (workers/object-cache.ts), and its bound. */
  readonly objectCacheDir: string;
  readonly objectCacheBytes: number;
  /** The buckets (or bucket/prefix) each tenant's keys list; a tenant not listed reads none. */
  readonly tenantBuckets: Readonly<Record<string, readonly string[]>>;
  readonly apiResultCacheBytes: number;
  /** The API's in-process cache of results converted to CSV, NDJSON or Arrow, in bytes. */
  readonly apiFormatCacheBytes: number;
  /**
   * Whether the API answers authorized hits of its in-process result cache for
   * `GET /v1/results/:key` before Fastify's router (api/fast-reads.ts); everything else, and
   * everything when false, goes through Fastify.
   */
  readonly apiFastReads: boolean;
  /** API keys; empty means single-tenant and unauthenticated (loopback only). */
  readonly apiKeys: readonly ApiKey[];
  /**
   * The key console session cookies are signed with (HMAC-SHA256); every API process behind one
   * address needs the same. Undefined: each process draws a random one (sessions do not survive
   * a restart and are not accepted by another process).
   */
  readonly consoleSecret: string | undefined;
  /** How long a console sign-in lasts. */
  readonly consoleSessionTtlS: number;
  /** Requests per second per API key (0 = unlimited), and the burst allowed. */
  readonly rateLimitPerSecond: number;
  readonly rateLimitBurst: number;
  /** A tenant's running jobs at once, unless its key says (0 = no limit). */
  readonly tenantMaxActive: number;
  /** A tenant's queued jobs at once, unless its key says (0 = no limit). */
  readonly tenantMaxQueued: number;
  /**
   * How long a client may take to send a whole request (headers and body), and its headers
   * alone; past either the API answers 408 and closes the connection. Neither limits the
   * response: SSE streams and `?wait` run as long as they need once the request is in.
   */
  readonly httpRequestTimeoutMs: number;
  readonly httpHeadersTimeoutMs: number;
  /** How long an idle keep-alive connection stays open between requests. */
  readonly httpKeepAliveTimeoutMs: number;
  /**
   * How long a command on a non-blocking Redis connection may go unanswered before it fails
   * (QUARRY_ERR_REDIS_REFUSED): a frozen Redis accepts connections and never answers.
   */
  readonly redisCommandTimeoutMs: number;
  /** How often (at most, fleet-wide) a worker looks for status records left without a queue entry. */
  readonly reconcileIntervalMs: number;
  /** Webhooks (shared/webhooks.ts): hosts and CIDR ranges a webhook may reach although private. */
  readonly webhookAllow: readonly string[];
  /** How long a delivery is retried before it is given up, from its event on. */
  readonly webhookRetryForS: number;
  /** The first retry's delay; each next one doubles (with jitter). */
  readonly webhookFirstRetryMs: number;
  /** One attempt's limit: connect, send, and the answer's status and head of body. */
  readonly webhookTimeoutMs: number;
  /** Deliveries kept in each webhook's log. */
  readonly webhookLogSize: number;
  /** OpenTelemetry trace export (OTEL_* variables, shared/tracing-config.ts); null: off. */
  readonly tracing: TracingConfig | null;
}

/** The variable names the schema knows: the compose-file check and the README table use it. */
export interface S3Settings {
  /** AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL; unset: AWS's own endpoints. */
  readonly endpoint?: string;
  readonly region: string;
  readonly forcePathStyle: boolean;
  /** Both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; unset: the SDK's default chain. */
  readonly credentials?: {
    readonly accessKeyId: string;
    readonly secretAccessKey: string;
    readonly sessionToken?: string;
  };
}

export const CONFIG_VARIABLES = Object.keys(EnvSchema.shape) as readonly (keyof typeof EnvSchema.shape)[];

function s3Settings(e: z.infer<typeof EnvSchema>): S3Settings {
  const endpoint = e.AWS_ENDPOINT_URL_S3 ?? e.AWS_ENDPOINT_URL;
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = e;
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    const missing = accessKeyId === undefined ? 'AWS_ACCESS_KEY_ID' : 'AWS_SECRET_ACCESS_KEY';
    throw new QuarryError(
      'QUARRY_ERR_CONFIG',
      `${missing}: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together`,
      { field: missing },
    );
  }
  return Object.freeze({
    ...(endpoint === undefined ? {} : { endpoint }),
    region: e.AWS_REGION ?? e.AWS_DEFAULT_REGION ?? 'us-east-1',
    forcePathStyle: e.QUARRY_S3_FORCE_PATH_STYLE === 'true' || e.QUARRY_S3_FORCE_PATH_STYLE === '1',
    ...(accessKeyId === undefined || secretAccessKey === undefined
      ? {}
      : {
          credentials: Object.freeze({
            accessKeyId,
            secretAccessKey,
            ...(e.AWS_SESSION_TOKEN === undefined ? {} : { sessionToken: e.AWS_SESSION_TOKEN }),
          }),
        }),
  });
}

function defaultSpoolDir(): string {
  const base = existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  return path.join(base, `quarry-${process.getuid?.() ?? 'u'}`);
}

/** Sentinels and their name go together: one without the other is a configuration error. */
function sentinelSetup(
  sentinels: readonly RedisAddress[] | undefined,
  name: string | undefined,
  role: 'QUEUE' | 'CACHE',
): SentinelSetup | null {
  if (sentinels === undefined && name === undefined) return null;
  if (sentinels === undefined || name === undefined) {
    const missing = `QUARRY_${role}_REDIS_${sentinels === undefined ? 'SENTINELS' : 'SENTINEL_NAME'}`;
    const given = `QUARRY_${role}_REDIS_${sentinels === undefined ? 'SENTINEL_NAME' : 'SENTINELS'}`;
    throw new QuarryError('QUARRY_ERR_CONFIG', `${missing}: required when ${given} is set`, {
      field: missing,
    });
  }
  return Object.freeze({ sentinels: Object.freeze(sentinels), name });
}

export function loadConfig(env: Record<string, string | undefined> = process.env): QuarryConfig {
  const known: Record<string, string> = {};
  for (const name of CONFIG_VARIABLES) {
    const value = env[name];
    if (value !== undefined && value !== '') known[name] = value;
  }
  const parsed = EnvSchema.safeParse(known);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = String(issue.path[0] ?? '');
    throw new QuarryError('QUARRY_ERR_CONFIG', describeIssue(issue), { field });
  }
  const e = parsed.data;
  // Node refuses a headers timeout longer than the request timeout; say so by name instead.
  if (e.QUARRY_HTTP_HEADERS_TIMEOUT_MS > e.QUARRY_HTTP_REQUEST_TIMEOUT_MS) {
    throw new QuarryError(
      'QUARRY_ERR_CONFIG',
      'QUARRY_HTTP_HEADERS_TIMEOUT_MS: must not exceed QUARRY_HTTP_REQUEST_TIMEOUT_MS',
      { field: 'QUARRY_HTTP_HEADERS_TIMEOUT_MS' },
    );
  }
  const queueSentinel = sentinelSetup(
    e.QUARRY_QUEUE_REDIS_SENTINELS,
    e.QUARRY_QUEUE_REDIS_SENTINEL_NAME,
    'QUEUE',
  );
  const cacheOwnSentinel = sentinelSetup(
    e.QUARRY_CACHE_REDIS_SENTINELS,
    e.QUARRY_CACHE_REDIS_SENTINEL_NAME,
    'CACHE',
  );
  const cacheCluster = e.QUARRY_CACHE_REDIS_CLUSTER ?? null;
  if (cacheCluster !== null && cacheOwnSentinel !== null) {
    throw new QuarryError(
      'QUARRY_ERR_CONFIG',
      'QUARRY_CACHE_REDIS_CLUSTER: a Cluster is not found through Sentinels; set one or the other',
      { field: 'QUARRY_CACHE_REDIS_CLUSTER' },
    );
  }
  const cacheSharesQueue =
    e.QUARRY_CACHE_REDIS_URL === undefined && cacheOwnSentinel === null && cacheCluster === null;
  const cacheSentinel = cacheSharesQueue ? queueSentinel : cacheOwnSentinel;
  return Object.freeze({
    queueRedisUrl: e.QUARRY_QUEUE_REDIS_URL,
    cacheRedisUrl: e.QUARRY_CACHE_REDIS_URL ?? e.QUARRY_QUEUE_REDIS_URL,
    queueSentinel,
    cacheSentinel,
    cacheCluster: cacheCluster === null ? null : Object.freeze(cacheCluster),
    cacheSharesQueue,
    queueMinReplicas: e.QUARRY_QUEUE_MIN_REPLICAS,
    queueMinReplicasTimeoutMs: e.QUARRY_QUEUE_MIN_REPLICAS_TIMEOUT_MS,
    prefix: e.QUARRY_PREFIX,
    dataDir: path.resolve(e.QUARRY_DATA_DIR),
    tenantDataDirs: Object.freeze(
      Object.fromEntries(
        (e.QUARRY_API_KEYS ?? []).flatMap((k) =>
          k.dataDir === undefined ? [] : [[k.tenant, path.resolve(k.dataDir)] as const],
        ),
      ),
    ),
    apiHost: e.QUARRY_API_HOST,
    apiPort: e.QUARRY_API_PORT,
    workerConcurrency: e.QUARRY_WORKER_CONCURRENCY,
    workerHeavySlots: e.QUARRY_WORKER_HEAVY_SLOTS ?? Math.max(1, e.QUARRY_WORKER_CONCURRENCY - 1),
    heavyJobBytes: e.QUARRY_HEAVY_JOB_BYTES,
    workerMetricsHost: e.QUARRY_WORKER_METRICS_HOST,
    workerMetricsPort: e.QUARRY_WORKER_METRICS_PORT,
    indexConcurrency: e.QUARRY_INDEX_CONCURRENCY,
    maxIndexDocuments: e.QUARRY_MAX_INDEX_DOCUMENTS,
    maxIndexSourceBytes: e.QUARRY_MAX_INDEX_SOURCE_BYTES,
    indexGraceS: e.QUARRY_INDEX_GRACE_S,
    resultTtlS: e.QUARRY_RESULT_TTL_S,
    statusTtlS: e.QUARRY_STATUS_TTL_S,
    inlineDataTtlS: e.QUARRY_INLINE_DATA_TTL_S,
    retryDataTtlS: e.QUARRY_RETRY_DATA_TTL_S,
    historyMaxJobs: e.QUARRY_HISTORY_MAX_JOBS,
    activityWindowS: e.QUARRY_ACTIVITY_WINDOW_S,
    logLevel: e.QUARRY_LOG_LEVEL,
    logFormat: e.QUARRY_LOG_FORMAT,
    maxBodyBytes: e.QUARRY_MAX_BODY_BYTES,
    maxInlineBytes: e.QUARRY_MAX_INLINE_BYTES,
    maxBatchItems: e.QUARRY_MAX_BATCH_ITEMS,
    maxResultRows: e.QUARRY_MAX_RESULT_ROWS,
    maxResultBytes: e.QUARRY_MAX_RESULT_BYTES,
    jobAttempts: e.QUARRY_JOB_ATTEMPTS,
    jobBackoffMs: e.QUARRY_JOB_BACKOFF_MS,
    lockDurationMs: e.QUARRY_LOCK_DURATION_MS,
    stalledIntervalMs: e.QUARRY_STALLED_INTERVAL_MS,
    shutdownTimeoutMs: e.QUARRY_SHUTDOWN_TIMEOUT_MS,
    maxStalledCount: e.QUARRY_MAX_STALLED_COUNT,
    aggregateTimeoutMs: e.QUARRY_AGGREGATE_TIMEOUT_MS,
    indexTimeoutMs: e.QUARRY_INDEX_TIMEOUT_MS,
    duckdbThreads: e.QUARRY_DUCKDB_THREADS,
    duckdbMemoryLimit: e.QUARRY_DUCKDB_MEMORY_LIMIT,
    polarsThreads: e.QUARRY_POLARS_THREADS,
    threadHeapMb: e.QUARRY_THREAD_HEAP_MB,
    spoolDir: e.QUARRY_SPOOL_DIR === undefined ? defaultSpoolDir() : path.resolve(e.QUARRY_SPOOL_DIR),
    s3: s3Settings(e),
    objectCacheDir:
      e.QUARRY_OBJECT_CACHE_DIR === undefined
        ? path.join(os.tmpdir(), `quarry-objects-${process.getuid?.() ?? 'u'}`)
        : path.resolve(e.QUARRY_OBJECT_CACHE_DIR),
    objectCacheBytes: e.QUARRY_OBJECT_CACHE_BYTES,
    tenantBuckets: Object.freeze(
      Object.fromEntries(
        (e.QUARRY_API_KEYS ?? []).map((k) => [k.tenant, Object.freeze([...(k.buckets ?? [])])] as const),
      ),
    ),
    apiResultCacheBytes: e.QUARRY_API_RESULT_CACHE_BYTES,
    apiFormatCacheBytes: e.QUARRY_API_FORMAT_CACHE_BYTES,
    apiFastReads: e.QUARRY_API_FAST_READS !== 'false' && e.QUARRY_API_FAST_READS !== '0',
    apiKeys: Object.freeze(e.QUARRY_API_KEYS ?? []),
    consoleSecret: e.QUARRY_CONSOLE_SECRET,
    consoleSessionTtlS: e.QUARRY_CONSOLE_SESSION_TTL_S,
    rateLimitPerSecond: e.QUARRY_RATE_LIMIT_RPS,
    rateLimitBurst: e.QUARRY_RATE_LIMIT_BURST,
    tenantMaxActive: e.QUARRY_TENANT_MAX_ACTIVE,
    tenantMaxQueued: e.QUARRY_TENANT_MAX_QUEUED,
    httpRequestTimeoutMs: e.QUARRY_HTTP_REQUEST_TIMEOUT_MS,
    httpHeadersTimeoutMs: e.QUARRY_HTTP_HEADERS_TIMEOUT_MS,
    httpKeepAliveTimeoutMs: e.QUARRY_HTTP_KEEPALIVE_TIMEOUT_MS,
    redisCommandTimeoutMs: e.QUARRY_REDIS_COMMAND_TIMEOUT_MS,
    reconcileIntervalMs: e.QUARRY_RECONCILE_INTERVAL_MS,
    webhookAllow: Object.freeze(
      (e.QUARRY_WEBHOOK_ALLOW ?? '')
        .split(',')
        .map((entry) => entry.trim())
        .filter((entry) => entry !== ''),
    ),
    webhookRetryForS: e.QUARRY_WEBHOOK_RETRY_FOR_S,
    webhookFirstRetryMs: e.QUARRY_WEBHOOK_FIRST_RETRY_MS,
    webhookTimeoutMs: e.QUARRY_WEBHOOK_TIMEOUT_MS,
    webhookLogSize: e.QUARRY_WEBHOOK_LOG_SIZE,
    tracing: tracingConfig(env),
  });
}
