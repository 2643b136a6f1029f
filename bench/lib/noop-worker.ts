// A raw BullMQ worker that does nothing: the floor for a queue round trip. Environment:
// REDIS_URL, PREFIX, CONCURRENCY (default 1: jobs processed at once by this process), CPU_PORT
// (optional: GET on it answers this process's process.cpuUsage() as JSON, for the scale bench).
import { createServer } from 'node:http';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';

const connection = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: null });
const worker = new Worker('noop', async () => 'ok', {
  connection,
  prefix: process.env.PREFIX!,
  concurrency: Number(process.env.CONCURRENCY ?? 1),
});
const cpuServer =
  process.env.CPU_PORT === undefined
    ? undefined
    : createServer((_request, response) => response.end(JSON.stringify(process.cpuUsage()))).listen(
        Number(process.env.CPU_PORT),
        '127.0.0.1',
      );
await worker.waitUntilReady();
console.log('noop worker ready');
process.on('SIGTERM', async () => {
  cpuServer?.close();
  await worker.close();
  connection.disconnect();
  process.exit(0);
});
