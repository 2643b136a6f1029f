// A raw BullMQ worker that does nothing: the floor for a queue round trip. Environment:
// REDIS_URL, PREFIX, CONCURRENCY (default 1: jobs processed at once by this process).
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';

const connection = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: null });
const worker = new Worker('noop', async () => 'ok', {
  connection,
  prefix: process.env.PREFIX!,
  concurrency: Number(process.env.CONCURRENCY ?? 1),
});
await worker.waitUntilReady();
console.log('noop worker ready');
process.on('SIGTERM', async () => {
  await worker.close();
  connection.disconnect();
  process.exit(0);
});
