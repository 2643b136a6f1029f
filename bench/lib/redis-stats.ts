// What a Redis server did between two moments: `INFO commandstats` (which counts the commands
// that Lua scripts call as well as the EVAL itself) and `INFO cpu`, read as deltas, so a bench
// can say how many commands and how much Redis CPU one completed job costs.
import type { Redis } from 'ioredis';

export interface RedisSnapshot {
  /** Calls per command name (lowercase, `cmdstat_` dropped; subcommands as `config|get`). */
  readonly calls: ReadonlyMap<string, number>;
  /** used_cpu_user + used_cpu_sys, ms. */
  readonly cpuMs: number;
}

export interface RedisDelta {
  /** Commands run between the snapshots, the INFO calls of the measurement left out. */
  readonly commands: number;
  readonly byCommand: Record<string, number>;
  readonly cpuMs: number;
}

export async function redisSnapshot(redis: Redis): Promise<RedisSnapshot> {
  const [stats, cpu] = await Promise.all([redis.info('commandstats'), redis.info('cpu')]);
  const calls = new Map<string, number>();
  for (const m of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1]!, Number(m[2]));
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(cpu)?.[1] ?? 0);
  return { calls, cpuMs: (field('used_cpu_user') + field('used_cpu_sys')) * 1000 };
}

export function redisDelta(before: RedisSnapshot, after: RedisSnapshot): RedisDelta {
  const byCommand: Record<string, number> = {};
  let commands = 0;
  for (const [name, n] of after.calls) {
    if (name === 'info') continue;
    const d = n - (before.calls.get(name) ?? 0);
    if (d <= 0) continue;
    byCommand[name] = d;
    commands += d;
  }
  return { commands, byCommand, cpuMs: after.cpuMs - before.cpuMs };
}

/** `byCommand` divided by `jobs`, largest first, as `HSET 5.0, PUBLISH 4.0, …` (top `n`). */
export function perJobBreakdown(byCommand: Record<string, number>, jobs: number, n = 12): string {
  return Object.entries(byCommand)
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, calls]) => `${name.toUpperCase()} ${(calls / jobs).toFixed(1)}`)
    .join(', ');
}
