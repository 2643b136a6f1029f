// Real worker processes for tests about crashes: spawn `workers/main.ts`, read its pino lines as
// they arrive, wait for it to be ready, SIGKILL it; and wait for a job's next run to start.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import type { QuarryClient } from '../../producers/client.ts';
import { tsExecArgv } from '../../shared/ts-runtime.ts';

const root = path.resolve(import.meta.dirname, '../..');

export interface WorkerProcess {
  readonly child: ChildProcess;
  /** The worker's pino lines, parsed, as they arrive. */
  readonly lines: Record<string, unknown>[];
  readonly ready: Promise<void>;
  readonly exited: Promise<void>;
}

export function spawnWorker(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, [...tsExecArgv(), 'workers/main.ts'], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let pending = '';
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      pending += chunk;
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const part of parts) {
        try {
          const line = JSON.parse(part) as Record<string, unknown>;
          lines.push(line);
          if (line.msg === 'worker ready') resolve();
        } catch {
          // Not a log line (a native library's output): irrelevant here.
        }
      }
    });
    child.once('exit', (code, signal) =>
      reject(new Error(`worker exited before it was ready (${code ?? signal}): ${stderr.slice(-2000)}`)),
    );
  });
  // The rejection matters only while waiting for readiness; a later exit is expected.
  ready.catch(() => undefined);
  return { child, lines, ready, exited };
}

/** SIGKILLs the worker (if it still runs) and waits for it to be gone. */
export async function killWorker(worker: WorkerProcess | undefined): Promise<void> {
  if (worker === undefined) return;
  if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
  await worker.exited;
}

/**
 * Polls the job's status record until a run starts that is not `previous` (its startedAt
 * differs); throws when the job ends first. Polling, not events: the job may start before a
 * waiter's subscription is up.
 */
export async function nextStart(
  client: QuarryClient,
  jobId: string,
  previous: string | null,
  timeoutMs = 30_000,
): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const status = await client.status(jobId);
    if (status?.state === 'active' && status.startedAt !== null && status.startedAt !== previous) {
      return status.startedAt;
    }
    if (status !== null && status.state !== 'active' && status.state !== 'queued') {
      throw new Error(`job ${jobId} is ${status.state} before it was seen running`);
    }
    if (performance.now() > deadline) throw new Error(`job ${jobId} did not start within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
