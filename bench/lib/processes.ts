// Starts Quarry's processes (worker, API) and helper servers as real child processes for
// benchmarks, waits for them to be ready, and stops them.
import { type ChildProcess, spawn } from 'node:child_process';
import { tsExecArgv } from '../../shared/ts-runtime.ts';

export interface Child {
  readonly process: ChildProcess;
  /** What the process printed up to and including its ready line. */
  readonly output: string;
  stop(): Promise<void>;
}

const alive = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of alive) c.kill('SIGKILL');
});

/**
 * Spawns `node --import tsx <entry>` and resolves once a stdout line contains `readyText`;
 * `nodeArgs` go to node itself (`--cpu-prof`, …), before the entry.
 */
export function startNode(
  entry: string,
  env: Record<string, string>,
  readyText: string,
  args: string[] = [],
  nodeArgs: string[] = [],
): Promise<Child> {
  const child = spawn(process.execPath, [...nodeArgs, ...tsExecArgv(), entry, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  alive.add(child);
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(readyText)) {
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve({
          process: child,
          output,
          async stop() {
            if (child.exitCode !== null || child.signalCode !== null) return;
            const exited = new Promise((r) => child.once('exit', r));
            child.kill('SIGTERM');
            const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
            await exited;
            clearTimeout(timer);
            alive.delete(child);
          },
        });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once('exit', (code) => reject(new Error(`${entry} exited with ${code}: ${output.slice(-2000)}`)));
  });
}
