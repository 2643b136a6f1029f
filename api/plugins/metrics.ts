// Prometheus metrics of an API process at GET /metrics: request durations by route pattern and
// status code (an onResponse hook on the whole app), the index versions loaded (per collection up
// to a cap, a count and the oldest's age, read from the IndexRegistry at each scrape), and the
// default process metrics. Cache hits and misses
// are counted where they happen, in routes/aggregations.ts.
import type { FastifyInstance } from 'fastify';
import type { IndexRegistry } from '../../shared/index-registry.ts';
import type { ApiMetrics } from '../../shared/metrics.ts';
// Raw URLs would make a label per scanner probe: unmatched requests share one route label.
import { UNMATCHED_ROUTE } from '../request-log.ts';

export const METRICS_PATH = '/metrics';

export interface MetricsPluginOptions {
  metrics: ApiMetrics;
  registry: IndexRegistry;
}

export function registerMetrics(app: FastifyInstance, options: MetricsPluginOptions): void {
  const { metrics, registry } = options;
  metrics.trackLoadedIndexes(() =>
    registry.loadedCollections().map(({ collection, version, info }) => ({
      collection,
      version,
      builtAt: info.builtAt,
    })),
  );
  const { httpRequestDuration } = metrics;
  // A callback hook, not an async one: it runs on every request, searches included.
  app.addHook('onResponse', (request, reply, done) => {
    httpRequestDuration.observe(
      {
        method: request.method,
        route: request.routeOptions.url ?? UNMATCHED_ROUTE,
        status_code: reply.statusCode,
      },
      reply.elapsedTime / 1000,
    );
    done();
  });
  // In a plugin, so it is declared after the OpenAPI plugin has loaded and gets documented.
  app.register(async (instance) => {
    // Scrapers get a key with the `metrics` scope alone (admin implies it).
    instance.get(METRICS_PATH, { config: { scope: 'metrics' } }, async (_request, reply) =>
      reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
    );
  });
}
