// `npm run chaos -- --seeds N`: N chaos runs one after another, each a fresh process (its own
// Redis servers, workers, API and ports) on its own random seed, so one run's leftovers cannot
// help or hurt the next. Prints a table and the JSON of every run; fails if any run failed or did
// not finish in its time. `--seeds 200846,7` replays those seeds instead.
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { printTable } from '../bench/lib/stats.ts';
import { tsExecArgv } from '../shared/ts-runtime.ts';
import type { ChaosReport } from './chaos.ts';

export interface SeedRun {
  seed: number;
  /** Null when the run crashed or ran out of time (no report). */
  report: Omit<ChaosReport, 'recoveries'> | null;
  exitCode: number | null;
  seconds: number;
}

/** The seeds `--seeds` names: a count of random ones, or a comma-separated list. */
export function seedsFrom(arg: string): number[] {
  if (arg.includes(',')) return arg.split(',').map((s) => Number(s.trim()));
  const n = Number(arg);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--seeds: a count >= 1 or a list of seeds, not ${arg}`);
  return Array.from({ length: n }, () => randomInt(1_000_000));
}

/**
 * Runs scripts/chaos.ts once per seed with `args` (its other options), each bounded by
 * `timeoutMs`: past it the run gets SIGINT (which stops its servers), then SIGKILL.
 */
export async function runSeeds(
  seeds: readonly number[],
  args: readonly string[],
  timeoutMs: number,
  log: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
): Promise<SeedRun[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'quarry-chaos-seeds-'));
  const runs: SeedRun[] = [];
  try {
    for (const [k, seed] of seeds.entries()) {
      log(`\nchaos seeds: run ${k + 1}/${seeds.length}, seed ${seed}`);
      const file = path.join(dir, `${seed}.json`);
      const started = Date.now();
      const child = spawn(
        process.execPath,
        [
          ...tsExecArgv(),
          path.join(import.meta.dirname, 'chaos.ts'),
          ...args,
          '--seed',
          String(seed),
          '--report-file',
          file,
        ],
        { stdio: ['ignore', 'inherit', 'inherit'] },
      );
      const kill = setTimeout(() => {
        log(`chaos seeds: seed ${seed} ran past ${timeoutMs / 1000} s: stopping it`);
        child.kill('SIGINT');
        setTimeout(() => child.kill('SIGKILL'), 30_000).unref();
      }, timeoutMs);
      const exitCode = await new Promise<number | null>((resolve) =>
        child.once('exit', (code) => resolve(code)),
      );
      clearTimeout(kill);
      let report: SeedRun['report'] = null;
      try {
        const { recoveries: _, ...rest } = JSON.parse(readFileSync(file, 'utf8')) as ChaosReport;
        report = rest;
      } catch {
        // No report: the run crashed or was stopped; its verdict is a failure.
      }
      runs.push({ seed, report, exitCode, seconds: Math.round((Date.now() - started) / 1000) });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return runs;
}

export function seedsPassed(runs: readonly SeedRun[]): boolean {
  return runs.every((r) => r.exitCode === 0 && r.report?.passed === true);
}

export function printSeedRuns(runs: readonly SeedRun[]): void {
  printTable(
    'Chaos runs by seed',
    runs.map(({ seed, report: r, exitCode, seconds }) => ({
      seed,
      acknowledged: r?.acknowledged ?? '-',
      completed: r?.completed ?? '-',
      'expected-stalled': r?.expectedStalled ?? '-',
      lost: r?.lost ?? '-',
      wrong: r?.wrong ?? '-',
      duplicates: r?.duplicateComputations ?? '-',
      'most hits': r?.mostHitsOnOneJob ?? '-',
      seconds,
      verdict:
        r?.passed === true && exitCode === 0 ? 'pass' : r === null ? `FAIL (exit ${exitCode})` : 'FAIL',
    })),
  );
  process.stdout.write(`${JSON.stringify(runs)}\n`);
}
