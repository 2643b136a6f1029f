// Results on a Redis Cluster (issue 14, part 3): QUARRY_CACHE_REDIS_CLUSTER points the cache role
// at a real three-primary cluster (test/helpers/cluster.ts) while the queue stays one server.
// Jobs' results spread over every shard; the API's and the SDK's reads hit them (a repeated
// request is a cache hit, answered from the cluster); after slots move between nodes (keys
// included), old results are still read and new ones written, through MOVED/ASK redirections.
// And a queue Redis that is a cluster node is told apart at a worker's start (not supported).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { checkQueueNotCluster } from '../../shared/redis.ts';
import { type RedisClusterServers, startRedisCluster } from '../helpers/cluster.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const spec = (seed: number) => ({
  dataset: { records: [0, 1, 2].map((i) => ({ g: `k${i % 2}`, x: seed * 10 + i })) },
  groupBy: ['g'],
  metrics: [{ op: 'sum', column: 'x' }],
});

/** The result keys each node holds, read straight from it (a SCAN is one node's keys). */
async function resultKeysByNode(cluster: RedisClusterServers, prefix: string): Promise<Set<string>[]> {
  return Promise.all(
    cluster.nodes.map(async (node) => {
      const redis = new Redis(node.url);
      try {
        const keys = new Set<string>();
        let cursor = '0';
        do {
          const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:result:*`, 'COUNT', 1000);
          for (const key of batch) keys.add(key);
          cursor = next;
        } while (cursor !== '0');
        return keys;
      } finally {
        redis.disconnect();
      }
    }),
  );
}

describe('results on a Redis Cluster (QUARRY_CACHE_REDIS_CLUSTER)', () => {
  let queue: RedisServer;
  let cluster: RedisClusterServers;
  let sys: TestSystem;
  const resultKeys = new Map<number, string>();

  const compute = async (seeds: number[]) => {
    for (const seed of seeds) {
      const res = await sys.app.inject({
        method: 'POST',
        url: '/v1/aggregations?wait=20000',
        payload: spec(seed),
      });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.headers['x-quarry-cache'], 'miss', `seed ${seed} is computed`);
      resultKeys.set(seed, (res.json() as { resultKey: string }).resultKey);
    }
  };

  before(async () => {
    [queue, cluster] = await Promise.all([
      startRedis(),
      startRedisCluster(['--maxmemory-policy', 'allkeys-lru']),
    ]);
    sys = await startSystem({
      env: { QUARRY_QUEUE_REDIS_URL: queue.url, QUARRY_CACHE_REDIS_CLUSTER: cluster.seeds },
    });
  });
  after(async () => {
    await sys?.close();
    await Promise.all([queue?.stop(), cluster?.stop()]);
  });

  test('results land on every shard, and reads hit them', async () => {
    const seeds = Array.from({ length: 48 }, (_, i) => i);
    await compute(seeds);
    const byNode = await resultKeysByNode(cluster, sys.config.prefix);
    assert.deepEqual(
      byNode.map((keys) => keys.size > 0),
      [true, true, true],
      `results per shard: ${byNode.map((k) => k.size)}`,
    );
    assert.equal(
      byNode.reduce((sum, keys) => sum + keys.size, 0),
      seeds.length,
      'each result is on exactly one shard',
    );
    for (const seed of seeds.slice(0, 12)) {
      const again = await sys.app.inject({ method: 'POST', url: '/v1/aggregations', payload: spec(seed) });
      assert.equal(again.statusCode, 200, again.body);
      assert.equal(again.headers['x-quarry-cache'], 'hit', `seed ${seed} is read from the cluster`);
    }
    // A batch (the SDK's: the API's own result cache is not in the way) looks its results up on
    // every shard at once; a Cluster refuses one pipeline across nodes.
    const items = await sys.client.aggregateMany([...seeds.slice(0, 24).map(spec), spec(5000)]);
    assert.deepEqual(
      items.map((item) => (item.ok ? `cached ${item.handle.cached}` : item.error.message)),
      [...seeds.slice(0, 24).map(() => 'cached true'), 'cached false'],
      'the batch finds each computed result on its shard; the new spec is queued',
    );
    const queued = items[24]!;
    assert.ok(queued.ok);
    await queued.handle.wait({ timeoutMs: 20_000 });
    resultKeys.set(5000, queued.handle.resultKey);
    for (const [seed, key] of resultKeys) {
      const bytes = await sys.client.resultBytes(key);
      assert.ok(bytes !== null, `the SDK reads seed ${seed}'s result`);
      const rows = (JSON.parse(bytes.toString('utf8')) as { rows: { g: string; sum_x: number }[] }).rows;
      assert.equal(rows.find((r) => r.g === 'k0')?.sum_x, seed * 20 + 2, `seed ${seed}'s sum`);
    }
  });

  test('after slots move between nodes, old results are read and new ones written', async () => {
    const [from, to] = [cluster.nodes[0]!, cluster.nodes[1]!];
    const before = await cluster.slotCounts();
    const keysBefore = await resultKeysByNode(cluster, sys.config.prefix);
    await cluster.reshard(from, to, 3000);
    const afterMove = await cluster.slotCounts();
    assert.equal(afterMove[0], before[0]! - 3000, `slots per node ${before} -> ${afterMove}`);
    const keysAfter = await resultKeysByNode(cluster, sys.config.prefix);
    assert.ok(keysAfter[0]!.size < keysBefore[0]!.size, 'some results moved with their slots');

    for (const [seed, key] of resultKeys) {
      assert.ok((await sys.client.resultBytes(key)) !== null, `seed ${seed}'s result is read after the move`);
      const res = await sys.app.inject({ method: 'POST', url: '/v1/aggregations', payload: spec(seed) });
      assert.equal(res.headers['x-quarry-cache'], 'hit', `seed ${seed} still hits`);
    }
    const fresh = Array.from({ length: 24 }, (_, i) => 1000 + i);
    await compute(fresh);
    for (const seed of fresh) {
      assert.ok((await sys.client.resultBytes(resultKeys.get(seed)!)) !== null, `new result ${seed} is read`);
    }
    const landed = await resultKeysByNode(cluster, sys.config.prefix);
    assert.equal(
      landed.reduce((sum, keys) => sum + keys.size, 0),
      resultKeys.size,
      'every result, old and new, is on one shard',
    );
  });

  test('a worker tells a queue Redis that is a cluster node apart, and logs an error', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => lines.push(line) });
    const node = new Redis(cluster.nodes[0]!.url);
    const plain = new Redis(queue.url);
    try {
      assert.equal(await checkQueueNotCluster(plain, logger), false);
      assert.equal(lines.length, 0);
      assert.equal(await checkQueueNotCluster(node, logger), true);
      assert.match(lines[0] ?? '', /Redis Cluster node: not supported/);
    } finally {
      node.disconnect();
      plain.disconnect();
    }
  });
});
