// Runs the `quarry` CLI in a subprocess, as an operator would, and collects its exit code and
// output (the exit code and stderr are the contract: README "CLI").
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { QuarryConfig } from '../../shared/config.ts';
import { tsExecArgv } from '../../shared/ts-runtime.ts';

const root = path.resolve(import.meta.dirname, '../..');

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runCli(args: string[], env: Record<string, string>, input?: string): Promise<CliRun> {
  const child = spawn(process.execPath, [...tsExecArgv(), 'producers/cli.ts', ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c;
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c;
  });
  child.stdin.end(input);
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The environment that points the CLI at a test system's Redis servers and prefix. */
export function cliEnv(config: QuarryConfig): Record<string, string> {
  return {
    QUARRY_QUEUE_REDIS_URL: config.queueRedisUrl,
    QUARRY_CACHE_REDIS_URL: config.cacheRedisUrl,
    QUARRY_PREFIX: config.prefix,
    QUARRY_DATA_DIR: config.dataDir,
    QUARRY_LOG_LEVEL: 'silent',
  };
}

/** stderr's lines, without empty ones: a one-line message is exactly one. */
export function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}
