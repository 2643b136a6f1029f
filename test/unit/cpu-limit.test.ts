// The CPUs a container may use, read from cgroup files the way the kernel writes them (v2
// `cpu.max`, v1 quota and period), in temp directories standing in for /sys/fs/cgroup; and the
// DuckDB thread default that follows them.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { loadConfig } from '../../shared/config.ts';
import { cgroupCpuQuota, usableCpus } from '../../shared/cpu-limit.ts';

const dirs: string[] = [];
function cgroup(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'quarry-cgroup-'));
  dirs.push(root);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    writeFileSync(path.join(root, name), `${text}\n`);
  }
  return root;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('cpu limit', () => {
  test('cgroup v2: a quota of 1.5 CPUs rounds up to 2 threads; "max" means the cores', () => {
    assert.equal(cgroupCpuQuota(cgroup({ 'cpu.max': '150000 100000' })), 1.5);
    assert.equal(usableCpus(cgroup({ 'cpu.max': '150000 100000' }), 64), 2);
    assert.equal(usableCpus(cgroup({ 'cpu.max': '50000 100000' }), 64), 1);
    assert.equal(cgroupCpuQuota(cgroup({ 'cpu.max': 'max 100000' })), undefined);
    assert.equal(usableCpus(cgroup({ 'cpu.max': 'max 100000' }), 64), 64);
  });

  test('cgroup v1: quota over period; -1 is no limit', () => {
    const limited = cgroup({ 'cpu/cpu.cfs_quota_us': '400000', 'cpu/cpu.cfs_period_us': '100000' });
    assert.equal(usableCpus(limited, 64), 4);
    const unlimited = cgroup({ 'cpu/cpu.cfs_quota_us': '-1', 'cpu/cpu.cfs_period_us': '100000' });
    assert.equal(usableCpus(unlimited, 64), 64);
  });

  test('a quota above the schedulable cores is capped by them; no cgroup files at all is the cores', () => {
    assert.equal(usableCpus(cgroup({ 'cpu.max': '800000 100000' }), 2), 2);
    assert.equal(usableCpus(cgroup({}), 3), 3);
  });

  test('QUARRY_DUCKDB_THREADS defaults to the CPUs this process may use', () => {
    assert.equal(loadConfig({}).duckdbThreads, usableCpus());
    assert.ok(usableCpus() <= os.availableParallelism());
    assert.equal(loadConfig({ QUARRY_DUCKDB_THREADS: '3' }).duckdbThreads, 3);
  });
});
