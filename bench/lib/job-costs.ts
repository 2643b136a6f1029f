// What one completed job costs during a timed burst of the scale bench: both Redis servers'
// commands (INFO commandstats) and CPU, the worker processes' CPU (process.cpuUsage, read from
// each worker before and after) and the producer's (this process: the SDK's enqueues and waits,
// or the no-op's addBulk and QueueEvents), divided by the jobs completed. All of them share the
// machine's cores, so each is part of what a burst's rate costs.
import type { Redis } from 'ioredis';
import { type RedisDelta, redisDelta, redisSnapshot } from './redis-stats.ts';

/** What one completed job cost during a timed burst (warm-up left out). */
export interface Cost {
  queueCommands: number;
  cacheCommands: number;
  /** Queue-Redis commands per job by name. */
  queueByCommand: Record<string, number>;
  cacheByCommand: Record<string, number>;
  /** Both redis-servers' CPU per job, ms. */
  redisCpuMs: number;
  /** The worker processes' CPU per job (all their threads), ms. */
  workerCpuMs: number;
  /** This process's CPU per job (the producer and the waiter), ms. */
  producerCpuMs: number;
}

/** Reads the CPU time (ms) a worker process has used so far. */
export type CpuProbe = () => Promise<number>;

/** Snapshots both Redis servers and the workers' CPU at begin(); end() gives the cost per job. */
export async function meter(
  queue: Redis,
  cache: Redis,
  probes: readonly CpuProbe[],
): Promise<{ end(jobs: number): Promise<Cost> }> {
  const cpu = () => Promise.all(probes.map((p) => p())).then((ms) => ms.reduce((a, b) => a + b, 0));
  const [q0, c0, w0] = await Promise.all([redisSnapshot(queue), redisSnapshot(cache), cpu()]);
  const p0 = process.cpuUsage();
  return {
    async end(jobs) {
      const p1 = process.cpuUsage(p0);
      const [q1, c1, w1] = await Promise.all([redisSnapshot(queue), redisSnapshot(cache), cpu()]);
      const q = redisDelta(q0, q1);
      const c = redisDelta(c0, c1);
      const perJob = (d: RedisDelta) =>
        Object.fromEntries(Object.entries(d.byCommand).map(([k, v]) => [k, round2(v / jobs)]));
      return {
        queueCommands: round1(q.commands / jobs),
        cacheCommands: round1(c.commands / jobs),
        queueByCommand: perJob(q),
        cacheByCommand: perJob(c),
        redisCpuMs: round3((q.cpuMs + c.cpuMs) / jobs),
        workerCpuMs: round3((w1 - w0) / jobs),
        producerCpuMs: round3((p1.user + p1.system) / 1000 / jobs),
      };
    },
  };
}

/** A Quarry worker's CPU so far, from process_cpu_seconds_total on its metrics endpoint. */
export const quarryCpuProbe =
  (port: number): CpuProbe =>
  async () => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const seconds = /^process_cpu_seconds_total (\S+)$/m.exec(text)?.[1];
    if (seconds === undefined) throw new Error(`no process_cpu_seconds_total on port ${port}`);
    return Number(seconds) * 1000;
  };

/** The no-op worker's CPU so far, from its process.cpuUsage() endpoint (CPU_PORT). */
export const noopCpuProbe =
  (port: number): CpuProbe =>
  async () => {
    const usage = (await (await fetch(`http://127.0.0.1:${port}/`)).json()) as {
      user: number;
      system: number;
    };
    return (usage.user + usage.system) / 1000;
  };

const round1 = (x: number) => Math.round(x * 10) / 10;
const round2 = (x: number) => Math.round(x * 100) / 100;
const round3 = (x: number) => Math.round(x * 1000) / 1000;
