// The engine's own cost for the scale bench's jobs: the same specs computed by Quarry's DuckDB
// engine in this process (its files written beforehand, none of the queue, status or result
// work), at the bench's concurrency, with the thread count a worker would use. What a worker
// spends per job beyond this is Quarry's.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addressAggregation, parseAggregation } from '../../shared/aggregation.ts';
import { loadConfig } from '../../shared/config.ts';
import { createDuckDBEngine } from '../../workers/engines/duckdb.ts';

export interface EngineFloor {
  jobs: number;
  concurrency: number;
  threads: number;
  jobsPerS: number;
  /** This process's CPU per job (all threads: DuckDB's too), ms. */
  cpuMs: number;
}

export async function engineFloor(specs: unknown[], concurrency: number): Promise<EngineFloor> {
  const config = loadConfig({ QUARRY_DATA_DIR: os.tmpdir() });
  const spoolDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-floor-'));
  const engine = await createDuckDBEngine({ threads: config.duckdbThreads, dataDir: spoolDir, spoolDir });
  try {
    const inputs = specs.map((spec, i) => {
      const addressed = addressAggregation(parseAggregation(spec, config));
      if (addressed.spec.dataset.kind !== 'inline') throw new Error('the floor takes inline specs');
      const file = path.join(spoolDir, `${i}.json`);
      writeFileSync(file, addressed.inlineJson!);
      return {
        spec: addressed.spec,
        source: { kind: 'inline' as const, file, columns: addressed.spec.dataset.columns },
        maxRows: config.maxResultRows,
      };
    });
    const run = async (from: number, to: number) => {
      let next = from;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < to) await engine.run(inputs[next++]!);
        }),
      );
    };
    const warm = Math.min(100, Math.floor(inputs.length / 5));
    await run(0, warm);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await run(warm, inputs.length);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const jobs = inputs.length - warm;
    return {
      jobs,
      concurrency,
      threads: config.duckdbThreads,
      jobsPerS: Math.round(jobs / seconds),
      cpuMs: Math.round(((cpu.user + cpu.system) / 1000 / jobs) * 1000) / 1000,
    };
  } finally {
    await engine.close();
    rmSync(spoolDir, { recursive: true, force: true });
  }
}
