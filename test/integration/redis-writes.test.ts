// Quarry's Redis connections send the commands of one turn of the event loop in one write
// (shared/redis-writes.ts). Observed from the server's side: `total_reads_processed` (INFO stats)
// counts the reads a real redis-server made. A plain ioredis connection sending 50 commands at
// once is read 22-50 times here; a coalesced one, once. Replies, their order and reconnects are
// unchanged.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { loadConfig } from '../../shared/config.ts';
import { type CacheConnection, createCacheConnection, createRedis } from '../../shared/redis.ts';
import { type RedisClusterServers, startRedisCluster } from '../helpers/cluster.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';

async function readsOf(admin: Redis): Promise<number> {
  const match = /total_reads_processed:(\d+)/.exec(await admin.info('stats'));
  assert.ok(match, 'INFO stats has total_reads_processed');
  return Number(match[1]);
}

/** The server's reads while `send` runs, less the one read of the INFO that follows it. */
async function readsDuring(admin: Redis, send: () => Promise<unknown>): Promise<number> {
  const before = await readsOf(admin);
  await send();
  return (await readsOf(admin)) - before - 1;
}

const fifty = (redis: Redis | CacheConnection, key: (i: number) => string) =>
  Promise.all(Array.from({ length: 50 }, (_, i) => redis.set(key(i), 'x'.repeat(20))));

describe('Redis writes coalesced per turn', () => {
  let server: RedisServer;
  let admin: Redis;

  before(async () => {
    server = await startRedis();
    admin = new Redis(server.url);
  });
  after(async () => {
    admin?.disconnect();
    await server?.stop();
  });

  test('50 commands sent in one turn reach the server in one read; a plain connection takes many', async () => {
    const redis = createRedis(server.url);
    const plain = new Redis(server.url);
    try {
      await Promise.all([redis.ping(), plain.ping()]);
      const coalesced: number[] = [];
      const uncoalesced: number[] = [];
      for (let round = 0; round < 5; round++) {
        coalesced.push(await readsDuring(admin, () => fifty(redis, (i) => `c${i}`)));
        uncoalesced.push(await readsDuring(admin, () => fifty(plain, (i) => `p${i}`)));
      }
      assert.ok(
        coalesced.every((n) => n <= 2),
        `reads per 50 commands, coalesced: ${coalesced}`,
      );
      // The comparison that shows the measure can tell: without coalescing the server reads the
      // same 50 commands many times.
      assert.ok(Math.max(...uncoalesced) > 2, `reads per 50 commands, plain: ${uncoalesced}`);
    } finally {
      redis.disconnect();
      plain.disconnect();
    }
  });

  test('replies keep their commands and their order, across turns and a reconnect', async () => {
    const redis = createRedis(server.url, { connectionName: 'coalesce-order' });
    try {
      await redis.del('counter');
      const first = await Promise.all(Array.from({ length: 200 }, () => redis.incr('counter')));
      assert.deepEqual(
        first,
        Array.from({ length: 200 }, (_, i) => i + 1),
      );
      // A command per turn for a while: each leaves in its own turn, as before.
      for (let i = 0; i < 20; i++) assert.equal(await redis.incr('counter'), 201 + i);

      // The server drops the connection; ioredis makes a new socket, which coalesces too.
      const id = (await redis.client('ID')) as number;
      await admin.client('KILL', 'ID', String(id));
      await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
      assert.ok((await redis.client('ID')) !== id, 'a new connection');
      assert.ok(
        (await readsDuring(admin, () => fifty(redis, (i) => `r${i}`))) <= 2,
        'coalesced after reconnect',
      );
      const after = await Promise.all(Array.from({ length: 100 }, () => redis.incr('counter')));
      assert.deepEqual(
        after,
        Array.from({ length: 100 }, (_, i) => 221 + i),
      );
    } finally {
      redis.disconnect();
    }
  });
});

describe('Redis writes coalesced per turn on a Cluster cache', () => {
  let cluster: RedisClusterServers;

  before(async () => {
    cluster = await startRedisCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  test("each node's connection coalesces: 50 commands to one slot, one read", async () => {
    const config = loadConfig({ QUARRY_CACHE_REDIS_CLUSTER: cluster.seeds });
    const cache = createCacheConnection(config);
    try {
      // One hash tag: every key in one slot, so on one node.
      const key = (i: number) => `{coalesce}k${i}`;
      await cache.set(key(0), 'warm');
      const slot = (await cache.cluster('KEYSLOT', key(0))) as number;
      const owner = await findOwner(cluster, slot);
      const admin = new Redis(owner.url);
      try {
        const reads = await readsDuring(admin, () => fifty(cache, key));
        assert.ok(reads <= 2, `reads on the owning node per 50 commands: ${reads}`);
      } finally {
        admin.disconnect();
      }
    } finally {
      cache.disconnect();
    }
  });
});

async function findOwner(cluster: RedisClusterServers, slot: number): Promise<RedisServer> {
  for (const node of cluster.nodes) {
    const admin = new Redis(node.url);
    try {
      const count = (await admin.cluster('COUNTKEYSINSLOT', slot)) as number;
      if (count > 0) return node;
    } finally {
      admin.disconnect();
    }
  }
  throw new Error(`no node holds slot ${slot}`);
}
