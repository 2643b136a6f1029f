// A raw BullMQ worker that does nothing: the floor for a queue round trip.
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';

const connection = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: null });
const worker = new Worker('noop', async () => 'ok', {
  connection,
  prefix: process.env.PREFIX!,
  concurrency: 1,
});
await worker.waitUntilReady();
console.log('noop worker ready');
process.on('SIGTERM', async () => {
  await worker.close();
  connection.disconnect();
  process.exit(0);
});
