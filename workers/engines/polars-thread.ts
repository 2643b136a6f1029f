// A Polars worker thread: the only place nodejs-polars is loaded. It runs the tasks the pool
// (polars-pool.ts) sends, one at a time, and posts back plain values, so Polars' blocking readers,
// eager calls and row conversion never hold the main event loop.
import { parentPort } from 'node:worker_threads';
import { runAggregation } from './polars-plan.ts';
import { type ThreadRequest, type ThreadResponse, toWireError } from './polars-protocol.ts';
import { readFileColumns } from './polars-source.ts';

const port = parentPort;
if (port === null) throw new Error('polars-thread.ts runs only as a worker thread');

port.on('message', (request: ThreadRequest) => {
  void handle(request);
});

async function handle({ id, task }: ThreadRequest): Promise<void> {
  const started = performance.now();
  let response: ThreadResponse;
  try {
    const value =
      task.kind === 'run'
        ? await runAggregation(task.input)
        : task.kind === 'columns'
          ? readFileColumns(task.source)
          : null;
    response = { id, ok: true, value, durationMs: performance.now() - started };
  } catch (error) {
    response = { id, ok: false, error: toWireError(error) };
  }
  try {
    port!.postMessage(response);
  } catch (error) {
    // A value structured clone cannot copy: report it rather than leave the task hanging.
    port!.postMessage({ id, ok: false, error: toWireError(error) } satisfies ThreadResponse);
  }
}
