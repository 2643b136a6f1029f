// The CPUs this process may really use: the cores it can be scheduled on, capped by a container's
// CPU quota (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`). A container
// limited to 2 CPUs on a 64-core host sees 64 cores in `os.availableParallelism()` on Node
// versions whose libuv ignores the quota; sizing DuckDB's thread pool by that would oversubscribe.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Where the cgroup filesystem is mounted inside a container (v2 unified, or v1's cpu controller). */
export const CGROUP_ROOT = '/sys/fs/cgroup';

function read(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** CPUs the cgroup quota allows (fractional, e.g. 1.5), or undefined when there is no quota. */
export function cgroupCpuQuota(root: string = CGROUP_ROOT): number | undefined {
  // v2: "max 100000" (no limit) or "<quota> <period>" in microseconds.
  const v2 = read(path.join(root, 'cpu.max'));
  if (v2 !== undefined) {
    const [quota, period] = v2.split(/\s+/);
    const q = Number(quota);
    const p = Number(period);
    return quota !== 'max' && q > 0 && p > 0 ? q / p : undefined;
  }
  // v1: a quota of -1 means no limit.
  for (const dir of [path.join(root, 'cpu'), path.join(root, 'cpu,cpuacct'), root]) {
    const q = Number(read(path.join(dir, 'cpu.cfs_quota_us')));
    const p = Number(read(path.join(dir, 'cpu.cfs_period_us')));
    if (Number.isFinite(q) && Number.isFinite(p) && p > 0) return q > 0 ? q / p : undefined;
  }
  return undefined;
}

/** Whole CPUs to size thread pools by: at least 1, at most the schedulable cores. */
export function usableCpus(root: string = CGROUP_ROOT, cores: number = os.availableParallelism()): number {
  const quota = cgroupCpuQuota(root);
  const limit = quota === undefined ? cores : Math.min(cores, Math.ceil(quota));
  return Math.max(1, limit);
}
