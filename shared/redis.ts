// Connection factories for the two Redis roles (see DESIGN.md): `queue` holds BullMQ, status
// records and indexes and must never evict; `cache` holds results and may.
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { settleWithin } from './close-steps.ts';
import type { QuarryConfig, SentinelSetup } from './config.ts';
import type { Logger } from './logger.ts';
import { coalesceClusterWrites, coalesceWrites } from './redis-writes.ts';

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
function sentinelOptions(url: string, setup: SentinelSetup, gate: ReconnectGate): RedisOptions {
  return {
    sentinels: setup.sentinels.map((s) => ({ host: s.host, port: s.port })),
    name: setup.name,
    role: 'master',
    sentinelRetryStrategy: (times) => (gate.open ? Math.min(100 * times, 1000) : null),
    reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
    // rediss:// is TLS to the primary; the Sentinels are asked in plain text.
    enableTLSForSentinelMode: url.startsWith('rediss://'),
  };
}

interface ReconnectGate {
  open: boolean;
  /** The connection and the duplicates made of it (BullMQ's blocking connections are). */
  readonly members: Redis[];
}

/**
 * Each connection's reconnect gate, shared with its duplicates. Its retry strategies read it, so
 * closing it stops the whole family from reconnecting: a connection in its reconnect wait then
 * ends at its next attempt. Without it a connection could come back after close: a protocol
 * error (a peer that is not Redis) makes ioredis reconnect on its own, and BullMQ marks a
 * connection it failed to QUIT as ended while it still retries.
 */
const gates = new WeakMap<Redis, ReconnectGate>();

/** The parts of ioredis' connection that end one waiting to reconnect (not in its types). */
interface ReconnectWait {
  reconnectTimeout: NodeJS.Timeout | null;
  flushQueue(error: Error): void;
  setStatus(status: 'end'): void;
}

/**
 * Ends `redis` and every duplicate made of it, now, whatever the server does: nothing of them
 * reconnects, and their pending commands fail. ioredis' disconnect() (and quit(), which calls
 * it) on a connection waiting to reconnect clears the wait and leaves it "reconnecting" for
 * good, its pending commands never settled (BullMQ's close then waits forever, and its lock
 * timer keeps the process alive): such a connection is ended here as ioredis' own close does it.
 */
export function cutRedis(redis: Redis | Cluster): void {
  if (!(redis instanceof Redis)) {
    redis.disconnect();
    return;
  }
  const gate = gates.get(redis);
  if (gate !== undefined) gate.open = false;
  for (const member of gate?.members ?? [redis]) {
    if (member.status === 'end') continue;
    if (member.status !== 'reconnecting') {
      member.disconnect();
      continue;
    }
    const waiting = member as unknown as ReconnectWait;
    if (waiting.reconnectTimeout !== null) clearTimeout(waiting.reconnectTimeout);
    waiting.reconnectTimeout = null;
    waiting.setStatus('end');
    waiting.flushQueue(new Error('Connection is closed.'));
  }
}

export function createRedis(
  url: string,
  options: ConnectionOptions = {},
  sentinel: SentinelSetup | null = null,
): Redis {
  const gate: ReconnectGate = { open: true, members: [] };
  const redisOptions: RedisOptions = {
    ...(sentinel === null ? {} : sentinelOptions(url, sentinel, gate)),
    maxRetriesPerRequest: options.blocking ? null : 2,
    enableOfflineQueue: !options.failFast,
    connectionName: options.connectionName,
    ...(options.commandTimeoutMs === undefined ? {} : { commandTimeout: options.commandTimeoutMs }),
    // Reconnect quickly, then back off to at most 2 s between attempts.
    retryStrategy: (times) => (gate.open ? Math.min(50 * 2 ** Math.min(times, 6), 2000) : null),
    lazyConnect: false,
  };
  const redis = new Redis(url, redisOptions);
  join(redis, gate);
  return redis;
}

function join(redis: Redis, gate: ReconnectGate): void {
  coalesceWrites(redis);
  gates.set(redis, gate);
  gate.members.push(redis);
  const duplicate = redis.duplicate.bind(redis);
  redis.duplicate = (override) => {
    const copy = duplicate(override);
    join(copy, gate);
    return copy;
  };
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
  const cluster = new Cluster(
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
  coalesceClusterWrites(cluster);
  return cluster;
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

/** How long closeRedis waits for QUIT's reply before it cuts the connection. */
export const QUIT_TIMEOUT_MS = 1_000;

/**
 * Closes a connection gracefully, falling back to disconnect; safe to call twice. QUIT waits for
 * a reply that a frozen Redis (or a peer that is not Redis) never sends: past `timeoutMs` the
 * connection is cut.
 */
export async function closeRedis(redis: Redis | Cluster, timeoutMs = QUIT_TIMEOUT_MS): Promise<void> {
  if (redis.status === 'end') return;
  // QUIT on a connection that is not up would only disconnect it (see cutRedis).
  if (redis.status !== 'ready') {
    cutRedis(redis);
    return;
  }
  const quit = redis.quit().then(
    () => 'quit' as const,
    () => 'failed' as const,
  );
  if ((await settleWithin(quit, timeoutMs)) === 'timeout' || (await quit) === 'failed') cutRedis(redis);
}
