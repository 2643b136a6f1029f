// A real replicated Redis for failover tests: a primary, its replicas and three Sentinels
// (`redis-server --sentinel`, the binary Debian's redis-sentinel is), each on a free port from a
// temp directory, with a short down-after (1 s: at 300 ms a loaded 2-core machine made Sentinels
// flap and promote twice) so a failover takes two or three seconds. stop() kills
// everything; process exit does too (startRedis' children, and the Sentinels here).
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort, type RedisServer, startRedis } from './redis.ts';

export const SENTINEL_NAME = 'quarry-primary';

export interface ReplicatedRedis {
  readonly primary: RedisServer;
  readonly replicas: readonly RedisServer[];
  readonly sentinelPorts: readonly number[];
  /** For QUARRY_QUEUE_REDIS_SENTINELS. */
  readonly sentinels: string;
  /** Asks a Sentinel which port it names primary now. */
  primaryPort(): Promise<number>;
  /**
   * Resolves with the port every Sentinel names primary once they agree on one other than
   * `oldPort` (a failover happened); rejects after `timeoutMs`.
   */
  waitForNewPrimary(oldPort: number, timeoutMs?: number): Promise<number>;
  stop(): Promise<void>;
}

const sentinels = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of sentinels) child.kill('SIGKILL');
});

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface SentinelIdentity {
  readonly port: number;
  /** A Sentinel's run id (`sentinel myid`): given, so each can be told of the others up front. */
  readonly id: string;
}

async function startSentinel(
  self: SentinelIdentity,
  others: readonly SentinelIdentity[],
  primaryPort: number,
  downAfterMs: number,
): Promise<{ port: number; stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'quarry-sentinel-'));
  const { port } = self;
  const conf = path.join(dir, 'sentinel.conf');
  // Sentinel rewrites its config file (what it learns: replicas, other Sentinels, epochs).
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${SENTINEL_NAME} 127.0.0.1 ${primaryPort} 2`,
      `sentinel down-after-milliseconds ${SENTINEL_NAME} ${downAfterMs}`,
      // A failed election is retried after twice this: keep it short.
      `sentinel failover-timeout ${SENTINEL_NAME} 2000`,
      `sentinel parallel-syncs ${SENTINEL_NAME} 1`,
      `sentinel myid ${self.id}`,
      // Without these they would find each other by hello messages, sent every 2 s.
      ...others.map((o) => `sentinel known-sentinel ${SENTINEL_NAME} 127.0.0.1 ${o.port} ${o.id}`),
      '',
    ].join('\n'),
  );
  const child = spawn('redis-server', [conf, '--sentinel'], { stdio: ['ignore', 'pipe', 'pipe'] });
  sentinels.add(child);
  await new Promise<void>((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('+monitor master')) {
        child.stdout?.off('data', onData);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`sentinel exited with ${code}: ${output.slice(-500)}`)));
  });
  // QUARRY_TEST_SENTINEL_LOGS=1 keeps each Sentinel's log (its dir is printed at stop) to read
  // how a failover went.
  if (process.env.QUARRY_TEST_SENTINEL_LOGS)
    child.stdout?.on('data', (c: Buffer) => appendFileSync(path.join(dir, 'log'), c));
  child.stdout?.resume();
  child.stderr?.resume();
  return {
    port,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
      sentinels.delete(child);
      if (process.env.QUARRY_TEST_SENTINEL_LOGS) console.log(`sentinel log: ${path.join(dir, 'log')}`);
      else rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts a primary (no persistence, `noeviction`), `replicas` replicas of it, and three Sentinels
 * with quorum 2; resolves once the replicas are in sync and every Sentinel knows the replicas
 * and the other two Sentinels (they find each other through hello messages every 2 s).
 */
export async function startReplicatedRedis(
  options: { replicas?: number; downAfterMs?: number } = {},
): Promise<ReplicatedRedis> {
  // A replica syncs at once, not after diskless sync's default 5 s wait for more replicas.
  const flags = ['--maxmemory-policy', 'noeviction', '--repl-diskless-sync-delay', '0'];
  const primary = await startRedis(flags);
  const replicas = await Promise.all(
    Array.from({ length: options.replicas ?? 1 }, () =>
      startRedis([...flags, '--replicaof', '127.0.0.1', String(primary.port)]),
    ),
  );
  const admin = new Redis(primary.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await until('the replicas to sync', 10_000, async () => {
      const info = await admin.info('replication');
      return (info.match(/state=online/g)?.length ?? 0) === replicas.length;
    });
  } finally {
    admin.disconnect();
  }
  const identities = await Promise.all(
    [0, 1, 2].map(async () => ({ port: await freePort(), id: randomBytes(20).toString('hex') })),
  );
  const started = await Promise.all(
    identities.map((self) =>
      startSentinel(
        self,
        identities.filter((o) => o !== self),
        primary.port,
        options.downAfterMs ?? 1000,
      ),
    ),
  );
  const ask = async <T>(port: number, work: (sentinel: Redis) => Promise<T>): Promise<T> => {
    const sentinel = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      return await work(sentinel);
    } finally {
      sentinel.disconnect();
    }
  };
  const masterField = async (port: number, field: string): Promise<string | undefined> => {
    const flat = (await ask(port, (s) => s.call('SENTINEL', 'MASTER', SENTINEL_NAME))) as string[];
    const at = flat.indexOf(field);
    return at < 0 ? undefined : flat[at + 1];
  };
  await until('the Sentinels to know the replicas and each other', 15_000, async () => {
    for (const s of started) {
      if (Number(await masterField(s.port, 'num-other-sentinels')) !== 2) return false;
      if (Number(await masterField(s.port, 'num-slaves')) !== replicas.length) return false;
    }
    return true;
  });
  const primaryPortOf = async (port: number) =>
    Number(
      ((await ask(port, (s) => s.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_NAME))) as string[])[1],
    );
  return {
    primary,
    replicas,
    sentinelPorts: started.map((s) => s.port),
    sentinels: started.map((s) => `127.0.0.1:${s.port}`).join(','),
    primaryPort: () => primaryPortOf(started[0]!.port),
    async waitForNewPrimary(oldPort, timeoutMs = 20_000) {
      let agreed = oldPort;
      await until(`the Sentinels to name a primary other than ${oldPort}`, timeoutMs, async () => {
        const ports = new Set(await Promise.all(started.map((s) => primaryPortOf(s.port))));
        agreed = [...ports][0]!;
        return ports.size === 1 && agreed !== oldPort;
      });
      return agreed;
    },
    async stop() {
      await Promise.all([...started.map((s) => s.stop()), primary.stop(), ...replicas.map((r) => r.stop())]);
    },
  };
}
