// A Quarry worker process for benchmarks that also watches its own event loop
// (perf_hooks.monitorEventLoopDelay) and answers over IPC: `reset` before a job, `read` after.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loadConfig } from '../../shared/config.ts';
import { createLogger } from '../../shared/logger.ts';
import { startWorker } from '../../workers/worker.ts';

const histogram = monitorEventLoopDelay({ resolution: 2 });
histogram.enable();
const config = loadConfig();
const worker = await startWorker(config, createLogger({ level: config.logLevel, name: 'bench-worker' }));
await worker.ready;
process.send?.({ type: 'ready' });
process.on('message', (message: string) => {
  if (message === 'reset') {
    histogram.reset();
    process.send?.({ type: 'reset' });
  } else if (message === 'read') {
    process.send?.({ type: 'read', maxMs: histogram.max / 1e6, p99Ms: histogram.percentile(99) / 1e6 });
  } else if (message === 'stop') {
    void worker.close().then(() => process.exit(0));
  }
});
