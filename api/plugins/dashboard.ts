// The BullMQ dashboard (bull-board) at /admin/queues, over every Quarry queue. It reads through
// Queue objects of its own on a fail-fast connection to the queue Redis, so a Redis outage makes
// the dashboard answer errors at once instead of hanging. Its routes (page, assets, JSON API) are
// registered under DASHBOARD_PATH, which is how api/authorization.ts gives them the admin scope.
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { Queue } from 'bullmq';
import type { FastifyInstance, onRequestHookHandler } from 'fastify';
import type { QuarryConfig } from '../../shared/config.ts';
import { QuarryError } from '../../shared/errors.ts';
import { QUEUE_NAMES } from '../../shared/keys.ts';
import type { Logger } from '../../shared/logger.ts';
import { closeRedis, createRoleConnection, type Redis } from '../../shared/redis.ts';
import { sendError } from '../errors.ts';

export const DASHBOARD_PATH = '/admin/queues';
const API_PATH = `${DASHBOARD_PATH}/api/`;

export interface DashboardOptions {
  config: QuarryConfig;
  logger: Logger;
  /** Runs before every dashboard route (after the app's own authorization). */
  onRequest?: onRequestHookHandler;
  /**
   * Default true: no retrying, removing, adding or pausing from the dashboard. Such writes go
   * around Quarry's status records (a job removed here would stay `queued` to pollers).
   */
  readOnly?: boolean;
}

export interface Dashboard {
  /** Closes the dashboard's queues and connection; safe to call twice. */
  close(): Promise<void>;
}

export function registerDashboard(app: FastifyInstance, options: DashboardOptions): Dashboard {
  const { config, logger } = options;
  let redis: Redis | undefined;
  let queues: Queue[] = [];

  // Connected when the app loads its plugins, not here: an app built and never started holds
  // no connection.
  app.register(async (dashboard) => {
    redis = createRoleConnection(config, 'queue', { failFast: true, connectionName: 'quarry-dashboard' });
    redis.on('error', (err) => logger.warn({ err }, 'dashboard redis connection error'));
    const connection = redis;
    queues = Object.values(QUEUE_NAMES).map((name) => {
      const queue = new Queue(name, { connection, prefix: config.prefix });
      queue.on('error', (err) => logger.warn({ err, queue: name }, 'dashboard queue error'));
      return queue;
    });
    const serverAdapter = new FastifyAdapter();
    serverAdapter.setBasePath(DASHBOARD_PATH);
    createBullBoard({
      queues: queues.map((q) => new BullMQAdapter(q, { readOnlyMode: options.readOnly ?? true })),
      serverAdapter,
      options: { uiConfig: { boardTitle: 'Quarry' } },
    });

    // The app keeps JSON bodies as raw bytes (raw-json.ts); bull-board's API wants them parsed.
    dashboard.removeContentTypeParser('application/json');
    dashboard.addContentTypeParser(
      'application/json',
      { parseAs: 'string' },
      dashboard.getDefaultJsonParser('error', 'error'),
    );
    if (options.onRequest !== undefined) dashboard.addHook('onRequest', options.onRequest);
    // BullMQ waits for a connection that never came up instead of failing: answer its JSON API
    // with Quarry's 503 at once while the queue Redis is not there (the page itself needs none).
    dashboard.addHook('onRequest', (request, reply, done) => {
      if (connection.status === 'ready' || !request.routeOptions.url?.startsWith(API_PATH)) return done();
      sendError(
        new QuarryError('QUARRY_ERR_REDIS_UNAVAILABLE', 'the queue Redis is not reachable'),
        request,
        reply,
      );
    });
    await dashboard.register(serverAdapter.registerPlugin(), { prefix: DASHBOARD_PATH });
  });

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        for (const queue of queues) {
          try {
            await queue.close();
          } catch (err) {
            logger.warn({ err, queue: queue.name }, 'error closing a dashboard queue');
          }
        }
        if (redis !== undefined) await closeRedis(redis);
      })();
      return closing;
    },
  };
}
