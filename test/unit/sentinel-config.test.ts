// QUARRY_{QUEUE,CACHE}_REDIS_SENTINELS / _SENTINEL_NAME, QUARRY_QUEUE_MIN_REPLICAS and
// QUARRY_CACHE_REDIS_CLUSTER: parsed in shared/config.ts, each mistake naming its variable;
// connections made in Sentinel or Cluster mode when set (the behaviour on real servers:
// test/integration/sentinel-failover.test.ts, test/integration/cache-cluster.test.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Cluster } from 'ioredis';
import { loadConfig } from '../../shared/config.ts';
import { isQuarryError } from '../../shared/errors.ts';
import { createCacheConnection, createRoleConnection } from '../../shared/redis.ts';

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    assert.ok(isQuarryError(error), String(error));
    assert.equal(error.code, 'QUARRY_ERR_CONFIG');
    return error.field;
  }
  assert.fail('expected a configuration error');
}

describe('Sentinel configuration', () => {
  test('unset: no Sentinel, no replicas to wait for', () => {
    const c = loadConfig({});
    assert.equal(c.queueSentinel, null);
    assert.equal(c.cacheSentinel, null);
    assert.equal(c.queueMinReplicas, 0);
    assert.equal(c.queueMinReplicasTimeoutMs, 1000);
  });

  test('a list of host:port, IPv6 in brackets; the cache shares the queue setup unless given its own', () => {
    const c = loadConfig({
      QUARRY_QUEUE_REDIS_SENTINELS: 's1.internal:26379, 10.0.0.2:26380,[::1]:26381',
      QUARRY_QUEUE_REDIS_SENTINEL_NAME: 'quarry-queue',
    });
    assert.deepEqual(c.queueSentinel, {
      sentinels: [
        { host: 's1.internal', port: 26379 },
        { host: '10.0.0.2', port: 26380 },
        { host: '::1', port: 26381 },
      ],
      name: 'quarry-queue',
    });
    assert.equal(c.cacheSharesQueue, true);
    assert.deepEqual(c.cacheSentinel, c.queueSentinel);

    const own = loadConfig({
      QUARRY_QUEUE_REDIS_SENTINELS: 'a:1',
      QUARRY_QUEUE_REDIS_SENTINEL_NAME: 'q',
      QUARRY_CACHE_REDIS_SENTINELS: 'b:2',
      QUARRY_CACHE_REDIS_SENTINEL_NAME: 'c',
    });
    assert.equal(own.cacheSharesQueue, false);
    assert.deepEqual(own.cacheSentinel, { sentinels: [{ host: 'b', port: 2 }], name: 'c' });
    // A cache on a URL of its own is not behind the queue's Sentinels.
    const plain = loadConfig({
      QUARRY_QUEUE_REDIS_SENTINELS: 'a:1',
      QUARRY_QUEUE_REDIS_SENTINEL_NAME: 'q',
      QUARRY_CACHE_REDIS_URL: 'redis://cache:6379',
    });
    assert.equal(plain.cacheSentinel, null);
  });

  test('mistakes name their variable', () => {
    for (const bad of ['a', 'a:', ':1', 'a:0', 'a:65536', 'a:1,,b:2', 'a b:1']) {
      assert.equal(
        fieldOf(() =>
          loadConfig({ QUARRY_QUEUE_REDIS_SENTINELS: bad, QUARRY_QUEUE_REDIS_SENTINEL_NAME: 'q' }),
        ),
        'QUARRY_QUEUE_REDIS_SENTINELS',
        bad,
      );
    }
    assert.equal(
      fieldOf(() => loadConfig({ QUARRY_QUEUE_REDIS_SENTINELS: 'a:1' })),
      'QUARRY_QUEUE_REDIS_SENTINEL_NAME',
    );
    assert.equal(
      fieldOf(() => loadConfig({ QUARRY_CACHE_REDIS_SENTINEL_NAME: 'c' })),
      'QUARRY_CACHE_REDIS_SENTINELS',
    );
    assert.equal(
      fieldOf(() =>
        loadConfig({ QUARRY_QUEUE_REDIS_SENTINELS: 'a:1', QUARRY_QUEUE_REDIS_SENTINEL_NAME: 'a b' }),
      ),
      'QUARRY_QUEUE_REDIS_SENTINEL_NAME',
    );
    assert.equal(
      fieldOf(() => loadConfig({ QUARRY_QUEUE_MIN_REPLICAS: '-1' })),
      'QUARRY_QUEUE_MIN_REPLICAS',
    );
    assert.equal(
      fieldOf(() => loadConfig({ QUARRY_QUEUE_MIN_REPLICAS_TIMEOUT_MS: '0' })),
      'QUARRY_QUEUE_MIN_REPLICAS_TIMEOUT_MS',
    );
  });

  test('connections of a role behind Sentinel ask its Sentinels, with the URL for credentials only', () => {
    const config = loadConfig({
      QUARRY_QUEUE_REDIS_URL: 'redis://:s3cret@ignored-host:1/2',
      QUARRY_QUEUE_REDIS_SENTINELS: '127.0.0.1:1',
      QUARRY_QUEUE_REDIS_SENTINEL_NAME: 'quarry-queue',
      QUARRY_CACHE_REDIS_URL: 'redis://127.0.0.1:1',
    });
    const queue = createRoleConnection(config, 'queue', { blocking: true });
    const cache = createRoleConnection(config, 'cache');
    try {
      assert.deepEqual(queue.options.sentinels, [{ host: '127.0.0.1', port: 1 }]);
      assert.equal(queue.options.name, 'quarry-queue');
      assert.equal(queue.options.password, 's3cret');
      assert.equal(queue.options.db, 2);
      assert.equal(queue.options.maxRetriesPerRequest, null, 'blocking connections retry forever');
      assert.equal(cache.options.sentinels ?? null, null);
    } finally {
      queue.disconnect();
      cache.disconnect();
    }
  });

  test('QUARRY_CACHE_REDIS_CLUSTER: results on a Cluster, credentials and TLS from the cache URL', () => {
    const config = loadConfig({
      QUARRY_CACHE_REDIS_URL: 'rediss://ops:s3cret@ignored:1',
      QUARRY_CACHE_REDIS_CLUSTER: '127.0.0.1:1,127.0.0.1:2',
    });
    assert.deepEqual(config.cacheCluster, [
      { host: '127.0.0.1', port: 1 },
      { host: '127.0.0.1', port: 2 },
    ]);
    assert.equal(config.cacheSharesQueue, false);
    assert.equal(loadConfig({ QUARRY_CACHE_REDIS_CLUSTER: 'a:1' }).cacheSharesQueue, false);
    assert.equal(loadConfig({}).cacheCluster, null);
    const cache = createCacheConnection(config);
    try {
      assert.ok(cache instanceof Cluster);
      assert.equal(cache.options.redisOptions?.password, 's3cret');
      assert.equal(cache.options.redisOptions?.username, 'ops');
      assert.deepEqual(cache.options.redisOptions?.tls, {});
      assert.equal(cache.options.redisOptions?.commandTimeout, config.redisCommandTimeoutMs);
    } finally {
      cache.disconnect();
    }
    assert.equal(
      fieldOf(() => loadConfig({ QUARRY_CACHE_REDIS_CLUSTER: 'a' })),
      'QUARRY_CACHE_REDIS_CLUSTER',
    );
    assert.equal(
      fieldOf(() =>
        loadConfig({
          QUARRY_CACHE_REDIS_CLUSTER: 'a:1',
          QUARRY_CACHE_REDIS_SENTINELS: 'b:2',
          QUARRY_CACHE_REDIS_SENTINEL_NAME: 'c',
        }),
      ),
      'QUARRY_CACHE_REDIS_CLUSTER',
    );
  });
});
