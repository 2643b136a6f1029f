// Connection factories for the two Redis roles (see DESIGN.md): `queue` holds BullMQ, status
// records and indexes and must never evict; `cache` holds results and may.
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { QuarryConfig, SentinelSetup } from './config.ts';
import type { Logger } from './logger.ts';

export type { Cluster, Redis };

/**
 * The cache role's connection: one server (or a Sentinel-found primary), or a Redis Cluster
 * (QUARRY_CACHE_REDIS_CLUSTER). The cache only ever gets single-key commands (GET, SET, EXISTS,
 * DEL) and PING, so no command can span slots (no CROSSSLOT).
 */
export type CacheConnection = Redis | Cluster;

export function isCluster(connection: CacheConnection): connection is Cluster {
  return connection instanceof Cluster;
}

export type RedisRole = 'queue' | 'cache';

export interface ConnectionOptions {
  /**
   * For BullMQ Workers and blocking subscribers: retry every command forever while
   * reconnecting (BullMQ requires `maxRetriesPerRequest: null`).
   */
  blocking?: boolean;
  /** Fail commands at once while disconnected instead of queueing them. */
  failFast?: boolean;
  connectionName?: string;
  /**
   * Fail a command unanswered after this long ("Command timed out", QUARRY_ERR_REDIS_REFUSED):
   * a SIGSTOPped or wedged Redis keeps its TCP connections open and never answers, so nothing
   * else notices. Never for blocking connections (BZPOPMIN, subscribers wait by design). ioredis
   * starts the timer when the command is issued, offline queue included, and keeps the command
   * in its reply queue, so a late reply is matched to it and the connection stays in step.
   */
  commandTimeoutMs?: number;
}

/**
 * ioredis' Sentinel mode: each (re)connect asks the Sentinels for the current primary and checks
 * its role. READONLY (a connection still on a primary that came back as a replica) reconnects
 * and resends the command, which was not run. Sentinels are asked again forever (BullMQ's
 * blocking connections must never give up). Not `failoverDetector`: its +switch-master handler
 * can fire while the connection is asking the Sentinels, and ioredis (6.0) then ends the
 * connection for good ("Connection is closed" forever: seen in a failover where the Sentinels
 * flapped). A SIGKILLed or restarted primary resets its connections, which is enough to notice.
 */
function sentinelOptions(url: string, setup: SentinelSetup): RedisOptions {
  return {
    sentinels: setup.sentinels.map((s) => ({ host: s.host, port: s.port })),
    name: setup.name,
    role: 'master',
    sentinelRetryStrategy: (times) => Math.min(100 * times, 1000),
    reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
    // rediss:// is TLS to the primary; the Sentinels are asked in plain text.
    enableTLSForSentinelMode: url.startsWith('rediss://'),
  };
}

export function createRedis(
  url: string,
  options: ConnectionOptions = {},
  sentinel: SentinelSetup | null = null,
): Redis {
  const redisOptions: RedisOptions = {
    ...(sentinel === null ? {} : sentinelOptions(url, sentinel)),
    maxRetriesPerRequest: options.blocking ? null : 2,
    enableOfflineQueue: !options.failFast,
    connectionName: options.connectionName,
    ...(options.commandTimeoutMs === undefined ? {} : { commandTimeout: options.commandTimeoutMs }),
    // Reconnect quickly, then back off to at most 2 s between attempts.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    lazyConnect: false,
  };
  return new Redis(url, redisOptions);
}

/**
 * A connection to one role. Non-blocking connections get QUARRY_REDIS_COMMAND_TIMEOUT_MS unless
 * `commandTimeoutMs` says otherwise; blocking ones get none unless asked.
 */
export function createRoleConnection(
  config: QuarryConfig,
  role: RedisRole,
  options: ConnectionOptions = {},
): Redis {
  return createRedis(
    role === 'queue' ? config.queueRedisUrl : config.cacheRedisUrl,
    {
      connectionName: `quarry-${role}`,
      ...(options.blocking ? {} : { commandTimeoutMs: config.redisCommandTimeoutMs }),
      ...options,
    },
    role === 'queue' ? config.queueSentinel : config.cacheSentinel,
  );
}

/**
 * The cache role's connection: a Cluster client when QUARRY_CACHE_REDIS_CLUSTER is set (it
 * follows MOVED/ASK redirections and refreshes its slot map, so slot moves are invisible to
 * callers), otherwise createRoleConnection(config, 'cache'). The cache URL gives the Cluster's
 * nodes their credentials and TLS.
 */
export function createCacheConnection(
  config: QuarryConfig,
  options: ConnectionOptions = {},
): CacheConnection {
  if (config.cacheCluster === null) return createRoleConnection(config, 'cache', options);
  const url = new URL(config.cacheRedisUrl);
  const commandTimeoutMs =
    options.commandTimeoutMs ?? (options.blocking ? undefined : config.redisCommandTimeoutMs);
  return new Cluster(
    config.cacheCluster.map((node) => ({ host: node.host, port: node.port })),
    {
      enableOfflineQueue: !options.failFast,
      clusterRetryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
      scaleReads: 'master',
      redisOptions: {
        maxRetriesPerRequest: options.blocking ? null : 2,
        connectionName: options.connectionName ?? 'quarry-cache',
        ...(url.username === '' ? {} : { username: decodeURIComponent(url.username) }),
        ...(url.password === '' ? {} : { password: decodeURIComponent(url.password) }),
        ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
        ...(commandTimeoutMs === undefined ? {} : { commandTimeout: commandTimeoutMs }),
      },
    },
  );
}

/**
 * A Redis URL fit to print or log: the password (and a user's secret in `user:pass@`) replaced by
 * `***`, so an error message naming the server tried never leaks credentials.
 */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    else if (u.username !== '' && u.protocol.startsWith('redis')) u.username = '***'; // redis://secret@host
    return u.toString();
  } catch {
    // Unparsable: drop whatever stands between the scheme and an `@`.
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}

/** Where a role's Redis is, fit to print: its redacted URL, the Sentinels that name it, or its Cluster. */
export function describeRoleRedis(config: QuarryConfig, role: RedisRole): string {
  if (role === 'cache' && config.cacheCluster !== null) {
    return `the Redis Cluster of ${config.cacheCluster.map((n) => `${n.host}:${n.port}`).join(',')}`;
  }
  const sentinel = role === 'queue' ? config.queueSentinel : config.cacheSentinel;
  if (sentinel === null)
    return redactRedisUrl(role === 'queue' ? config.queueRedisUrl : config.cacheRedisUrl);
  const at = sentinel.sentinels.map((s) =>
    s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`,
  );
  return `the primary "${sentinel.name}" of the Sentinels ${at.join(',')}`;
}

/** Logs the development-only setups DESIGN.md warns about. */
export function warnAboutRoles(config: QuarryConfig, logger: Logger): void {
  if (config.cacheSharesQueue) {
    logger.warn(
      { url: redactRedisUrl(config.queueRedisUrl), sentinel: config.queueSentinel?.name },
      'QUARRY_CACHE_REDIS_URL is not set: results share the queue Redis. Fine for development; in production give the cache its own evicting Redis.',
    );
  }
}

/**
 * Checks the queue Redis does not evict keys: BullMQ on an evicting Redis loses jobs silently.
 * Returns the policy found; logs an error when it is not `noeviction`.
 */
export async function checkQueueEvictionPolicy(queue: Redis, logger: Logger): Promise<string> {
  const reply = (await queue.config('GET', 'maxmemory-policy')) as string[];
  const policy = reply[1] ?? 'unknown';
  if (policy !== 'noeviction') {
    logger.error(
      { policy },
      'the queue Redis evicts keys (maxmemory-policy is not noeviction): jobs and status records can be lost',
    );
  }
  return policy;
}

/**
 * Checks the queue Redis is not a Redis Cluster node, which Quarry does not support there (README
 * "Results on a Redis Cluster"): its scripts' keys span slots. Returns true, and logs an error,
 * when it is one.
 */
export async function checkQueueNotCluster(queue: Redis, logger: Logger): Promise<boolean> {
  const clustered = /^cluster_enabled:1\r?$/m.test(await queue.info('cluster'));
  if (clustered) {
    logger.error(
      'the queue Redis is a Redis Cluster node: not supported (the queue needs one primary, with Sentinel to fail over); only results can live on a Cluster (QUARRY_CACHE_REDIS_CLUSTER)',
    );
  }
  return clustered;
}

/** Closes a connection gracefully, falling back to disconnect; safe to call twice. */
export async function closeRedis(redis: Redis | Cluster): Promise<void> {
  if (redis.status === 'end') return;
  try {
    await redis.quit();
  } catch {
    redis.disconnect();
  }
}
