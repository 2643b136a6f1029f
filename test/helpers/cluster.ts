// A real Redis Cluster for tests: three primaries (`redis-server --cluster-enabled yes`, each on a
// free port from a temp directory) joined by `redis-cli --cluster create`, no replicas. stop()
// kills them (startRedis' children, so process exit does too).
import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { type RedisServer, startRedis } from './redis.ts';

export interface RedisClusterServers {
  readonly nodes: readonly RedisServer[];
  /** For QUARRY_CACHE_REDIS_CLUSTER. */
  readonly seeds: string;
  /** Moves `slots` slots, keys included, from one node to another (`redis-cli --cluster reshard`). */
  reshard(from: RedisServer, to: RedisServer, slots: number): Promise<void>;
  /** The number of slots each node serves now. */
  slotCounts(): Promise<number[]>;
  stop(): Promise<void>;
}

function redisCli(args: string[]): string {
  const run = spawnSync('redis-cli', args, { encoding: 'utf8', timeout: 60_000 });
  if (run.status !== 0) throw new Error(`redis-cli ${args.join(' ')} failed: ${run.stderr}${run.stdout}`);
  return run.stdout;
}

async function ask<T>(server: RedisServer, work: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    return await work(redis);
  } finally {
    redis.disconnect();
  }
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function startRedisCluster(extraArgs: string[] = []): Promise<RedisClusterServers> {
  const nodes = await Promise.all(
    [0, 1, 2].map(() =>
      startRedis([
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-node-timeout',
        '5000',
        ...extraArgs,
      ]),
    ),
  );
  const address = (n: RedisServer) => `127.0.0.1:${n.port}`;
  redisCli(['--cluster', 'create', ...nodes.map(address), '--cluster-replicas', '0', '--cluster-yes']);
  const ready = async () => {
    for (const node of nodes) {
      const info = (await ask(node, (r) => r.cluster('INFO'))) as string;
      if (!/cluster_state:ok/.test(info) || !/cluster_known_nodes:3/.test(info)) return false;
    }
    return true;
  };
  await until('the cluster to be ok on every node', 20_000, ready);
  const slotsOf = async (node: RedisServer) => {
    const myself = ((await ask(node, (r) => r.cluster('NODES'))) as string)
      .split('\n')
      .find((line) => line.includes('myself'));
    return (myself ?? '')
      .split(' ')
      .slice(8)
      .reduce((sum, range) => {
        const [a, b] = range.split('-').map(Number);
        return Number.isFinite(a) ? sum + ((b ?? a!) - a! + 1) : sum;
      }, 0);
  };
  return {
    nodes,
    seeds: nodes.map(address).join(','),
    async reshard(from, to, slots) {
      const idOf = async (node: RedisServer) => (await ask(node, (r) => r.cluster('MYID'))) as string;
      redisCli([
        '--cluster',
        'reshard',
        address(from),
        '--cluster-from',
        await idOf(from),
        '--cluster-to',
        await idOf(to),
        '--cluster-slots',
        String(slots),
        '--cluster-yes',
      ]);
      await until('the cluster to be ok after the reshard', 20_000, ready);
    },
    slotCounts: () => Promise.all(nodes.map(slotsOf)),
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}
