// What an operator alerts on about the queues themselves: how many jobs wait, run and are
// delayed, and how long the oldest waiting one has waited. Read from the queue Redis when
// Prometheus scrapes (never on a timer), through BullMQ's own getters so the numbers mean what
// BullMQ means. Every worker reports the same queues: aggregate them with max(), not sum().
import { Queue } from 'bullmq';
import type { Logger } from '../shared/logger.ts';
import type { QueueSnapshot } from '../shared/metrics.ts';
import type { Redis } from '../shared/redis.ts';

export interface QueueProbeOptions {
  /** The queue Redis (a non-blocking connection; it is shared, not closed here). */
  connection: Redis;
  prefix: string;
  queues: readonly string[];
  /**
   * Where the Queue objects' errors go (at debug: they repeat the connection's own, which its
   * owner logs). Without a listener BullMQ would print them with console.error.
   */
  logger?: Logger;
  /** A scrape gives up on Redis after this long (default 2000 ms) rather than hang. */
  timeoutMs?: number;
}

export interface QueueProbe {
  snapshot(): Promise<QueueSnapshot[]>;
  /** Closes the Queue objects (not the connection); safe twice. */
  close(): Promise<void>;
}

export function createQueueProbe(options: QueueProbeOptions): QueueProbe {
  const timeoutMs = options.timeoutMs ?? 2000;
  const queues = options.queues.map((name) => {
    const queue = new Queue(name, { connection: options.connection, prefix: options.prefix });
    queue.on('error', (err) => options.logger?.debug({ err, queue: name }, 'queue metrics: queue error'));
    return queue;
  });
  const read = async (queue: Queue): Promise<QueueSnapshot> => {
    const [counts, oldest] = await Promise.all([
      queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed'),
      // Ascending: the job at the consuming end of the wait list, the one that waited longest.
      queue.getJobs(['waiting'], 0, 0, true),
    ]);
    const first = oldest[0];
    return {
      queue: queue.name,
      jobs: {
        waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
        active: counts.active ?? 0,
        delayed: counts.delayed ?? 0,
      },
      oldestWaitingAgeS: first === undefined ? 0 : Math.max(0, Date.now() - first.timestamp) / 1000,
    };
  };
  let closing: Promise<void> | undefined;
  return {
    async snapshot() {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`queue metrics: no answer from Redis in ${timeoutMs} ms`)),
          timeoutMs,
        );
      });
      try {
        return await Promise.race([Promise.all(queues.map(read)), timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    close() {
      closing ??= Promise.all(queues.map((q) => q.close())).then(() => undefined);
      return closing;
    },
  };
}
