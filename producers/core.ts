// The connections and queues a client owns, shared by its tenant views, and small helpers the
// client's methods share.
import { Queue } from 'bullmq';
import { loadConfig, type QuarryConfig } from '../shared/config.ts';
import { isErrorCode, QuarryError } from '../shared/errors.ts';
import { QUEUE_NAMES } from '../shared/keys.ts';
import { type Logger, silentLogger } from '../shared/logger.ts';
import type { ObjectStore } from '../shared/object-store.ts';
import { createObjectStore } from '../shared/object-store.ts';
import {
  type CacheConnection,
  type Cluster,
  createCacheConnection,
  createRoleConnection,
  type Redis,
} from '../shared/redis.ts';
import type { JobStatus } from '../shared/status.ts';
import { ReplicaWait } from './replica-wait.ts';

/** What createCore reads of the client's options. */
export interface CoreOptions {
  config?: QuarryConfig;
  env?: Record<string, string | undefined>;
  logger?: Logger;
  failFast?: boolean;
  redisTimeoutMs?: number;
}

/** What every tenant view of one client shares: connections and queues. */
export interface ClientCore {
  readonly config: QuarryConfig;
  readonly logger: Logger;
  /** Set when the client waits for Redis: the bound on one enqueue. */
  readonly redisTimeoutMs: number | undefined;
  readonly queueRedis: Redis;
  readonly cacheRedis: CacheConnection;
  readonly aggregateQueue: Queue;
  readonly indexQueue: Queue;
  /**
   * Where enqueues write: queueRedis and the queues above, unless QUARRY_QUEUE_MIN_REPLICAS asks
   * for replicas. Then a connection of its own, since WAIT blocks the connection it runs on and
   * counts only that connection's writes (producers/replica-wait.ts).
   */
  readonly enqueue: {
    readonly redis: Redis;
    readonly queues: { readonly aggregate: Queue; readonly index: Queue };
    readonly replicas: ReplicaWait;
  };
  /** s3:// datasets and sources are fingerprinted through this (HEAD); made on first use. */
  readonly objects: ObjectStore;
  /** Tenant views, by tenant ('' for none), closed with the owner. */
  readonly views: Map<string, { close(): Promise<void> }>;
}

export function createCore(options: CoreOptions): ClientCore {
  const config = options.config ?? loadConfig(options.env);
  const logger = options.logger ?? silentLogger();
  const failFast = options.failFast ?? false;
  const redisTimeoutMs = failFast ? undefined : (options.redisTimeoutMs ?? 10_000);
  // Waiting clients keep commands queued across reconnects (no per-command retry cap); each
  // command is bounded by redisTimeoutMs instead of the fail-fast command timeout (ioredis
  // counts time in the offline queue too), so a frozen Redis fails their calls as well.
  const connectionOptions = {
    failFast,
    blocking: !failFast,
    commandTimeoutMs: redisTimeoutMs ?? config.redisCommandTimeoutMs,
  };
  const queueRedis = createRoleConnection(config, 'queue', connectionOptions);
  const cacheRedis = createCacheConnection(config, connectionOptions);
  const logErrors = (role: string, redis: { on(event: 'error', listener: (err: Error) => void): unknown }) =>
    redis.on('error', (err) => logger.warn({ err, role }, 'redis connection error'));
  logErrors('queue', queueRedis);
  logErrors('cache', cacheRedis);
  const queue = (name: string, connection = queueRedis) => {
    const q = new Queue(name, {
      connection,
      prefix: config.prefix,
      streams: { events: { maxLen: 1000 } },
    });
    q.on('error', (err) => logger.warn({ err, queue: name }, 'queue error'));
    return q;
  };
  const aggregateQueue = queue(QUEUE_NAMES.aggregate);
  const indexQueue = queue(QUEUE_NAMES.index);
  const minReplicas = config.queueMinReplicas;
  let enqueue: ClientCore['enqueue'];
  if (minReplicas === 0) {
    enqueue = {
      redis: queueRedis,
      queues: { aggregate: aggregateQueue, index: indexQueue },
      replicas: new ReplicaWait(queueRedis, queueRedis, { replicas: 0, timeoutMs: 0 }),
    };
  } else {
    // Its writes may wait behind a running WAIT and then their own: up to twice its timeout.
    const timeoutMs = config.queueMinReplicasTimeoutMs;
    const redis = createRoleConnection(config, 'queue', {
      failFast,
      blocking: !failFast,
      connectionName: 'quarry-enqueue',
      commandTimeoutMs: (redisTimeoutMs ?? config.redisCommandTimeoutMs) + 2 * timeoutMs,
    });
    redis.on('error', (err) => logger.warn({ err, role: 'queue' }, 'redis connection error'));
    enqueue = {
      redis,
      queues: { aggregate: queue(QUEUE_NAMES.aggregate, redis), index: queue(QUEUE_NAMES.index, redis) },
      replicas: new ReplicaWait(redis, queueRedis, { replicas: minReplicas, timeoutMs }),
    };
  }
  return {
    config,
    logger,
    redisTimeoutMs,
    queueRedis,
    cacheRedis,
    aggregateQueue,
    indexQueue,
    enqueue,
    objects: createObjectStore(config),
    views: new Map(),
  };
}

/** The error a failed job's waiter sees: the job's own code when it is a Quarry code. */
export function jobError(jobId: string, error: JobStatus['error']): QuarryError {
  const code = error && isErrorCode(error.code) ? error.code : 'QUARRY_ERR_JOB_FAILED';
  return new QuarryError(
    code,
    `job ${jobId} failed: ${error?.message ?? 'unknown error'}`,
    error?.field === undefined ? {} : { field: error.field },
  );
}

export function waitReady(redis: Redis | Cluster): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onReady = () => {
      redis.off('end', onEnd);
      resolve();
    };
    const onEnd = () => {
      redis.off('ready', onReady);
      reject(new QuarryError('QUARRY_ERR_REDIS_UNAVAILABLE', 'the Redis connection was closed'));
    };
    redis.once('ready', onReady);
    redis.once('end', onEnd);
  });
}
