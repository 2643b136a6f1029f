// buildApp(deps): the status API as a Fastify instance, apart from listen() so tests can use
// inject(). Every body is JSON kept as bytes; every error is Quarry's error body.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { QuarryClient } from '../producers/client.ts';
import type { QuarryConfig } from '../shared/config.ts';
import { QuarryError } from '../shared/errors.ts';
import type { IndexRegistry } from '../shared/index-registry.ts';
import { JOB_ID_PATTERN } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import { type ApiMetrics, createMetrics } from '../shared/metrics.ts';
import { tracer } from '../shared/tracing.ts';
import { Authenticator } from './auth.ts';
import { READ, registerAuthorization } from './authorization.ts';
import { ConsoleSessions } from './console-session.ts';
import { sendError } from './errors.ts';
import { FastReads, fastReadsServer } from './fast-reads.ts';
import { httpLimits } from './http-limits.ts';
import { registerDashboard } from './plugins/dashboard.ts';
import { registerMetrics } from './plugins/metrics.ts';
import { registerOpenApi } from './plugins/openapi.ts';
import { RawJson } from './raw-json.ts';
import { AccessLogController, registerRequestIds, requestId } from './request-log.ts';
import { registerRequestTracing } from './request-tracing.ts';
import { ResultCache } from './result-cache.ts';
import { ResultConversions } from './result-conversions.ts';
import { aggregationRoutes } from './routes/aggregations.ts';
import { aggregationBatchRoutes } from './routes/aggregations-batch.ts';
import { consoleRoutes } from './routes/console.ts';
import { eventRoutes } from './routes/events.ts';
import { indexRoutes } from './routes/indexes.ts';
import { jobRoutes } from './routes/jobs.ts';
import { scheduleRoutes } from './routes/schedules.ts';
import { tenantRoutes } from './routes/tenants.ts';
import { webhookRoutes } from './routes/webhooks.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The client acting for the request's tenant (the API's own when keys are off). */
    quarry: QuarryClient;
  }
  interface FastifyInstance {
    /** The hit path in front of the router, when QUARRY_API_FAST_READS is on (fast-reads.ts). */
    readonly fastReads?: FastReads;
  }
}

export interface AppDeps {
  config: QuarryConfig;
  /** The producer the API enqueues with (its connections should be fail-fast). */
  client: QuarryClient;
  /** Search indexes loaded in this process (client.indexRegistry()). */
  registry: IndexRegistry;
  logger: Logger;
  /** This process's API metrics; by default a registry of the app's own. */
  metrics?: ApiMetrics;
}

export function buildApp(deps: AppDeps): FastifyInstance {
  const { config, client, registry, logger } = deps;
  // Cached result reads answered before the router (fast-reads.ts); set once the cache exists.
  let fastReads: FastReads | undefined;
  const app = Fastify({
    ...(config.apiFastReads ? { serverFactory: fastReadsServer(() => fastReads) } : {}),
    loggerInstance: logger as FastifyBaseLogger,
    // One access line per request (request-log.ts); ids from a sane x-request-id, else random.
    logController: new AccessLogController(),
    requestIdHeader: false,
    genReqId: requestId,
    bodyLimit: config.maxBodyBytes,
    return503OnClosing: true,
    ...httpLimits(config),
  });

  // Every body is JSON, kept as bytes (see raw-json.ts); anything else is a 415.
  app.removeContentTypeParser(['text/plain', 'application/json']);
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => {
    done(null, new RawJson(body as Buffer));
  });
  app.setErrorHandler((error, request, reply) => sendError(error, request, reply));
  registerRequestIds(app);
  // Traces (shared/tracing.ts): a span per request, only when this process exports them.
  const traces = tracer();
  if (traces !== undefined) registerRequestTracing(app, traces);

  // Who is asking, and for which tenant: every route reads through request.quarry. Installed
  // before any route is declared, so that every route, plugins' included, gets its scope.
  const auth = new Authenticator(config.apiKeys, {
    perSecond: config.rateLimitPerSecond,
    burst: config.rateLimitBurst,
  });
  const sessions = new ConsoleSessions({
    secret: config.consoleSecret,
    ttlS: config.consoleSessionTtlS,
    auth,
    logger,
  });
  app.decorateRequest('quarry', null as unknown as QuarryClient);
  registerAuthorization(app, { auth, client, sessions });
  app.setNotFoundHandler((request, reply) =>
    sendError(
      new QuarryError('QUARRY_ERR_NOT_FOUND', `no route ${request.method} ${request.url}`),
      request,
      reply,
    ),
  );

  // Operations: the OpenAPI document and Swagger UI, metrics (its onResponse hook times every
  // route) and the queue dashboard. Fastify runs onRoute hooks as a route is declared, so the
  // routes are declared in a plugin registered after the docs plugin: that is when it sees them.
  const metrics = deps.metrics ?? createMetrics('api');
  registerOpenApi(app);
  registerMetrics(app, { metrics, registry });
  const dashboard = registerDashboard(app, { config, logger });
  app.addHook('onClose', async () => {
    await dashboard.close();
  });

  const localTtlMs = Math.min(config.resultTtlS, 300) * 1000;
  const results = new ResultCache({ maxBytes: config.apiResultCacheBytes, ttlMs: localTtlMs });
  const conversions = new ResultConversions({ maxBytes: config.apiFormatCacheBytes, ttlMs: localTtlMs });
  if (config.apiFastReads) {
    const reads = new FastReads({ auth, results, ownTenant: client.tenant, metrics, logger });
    app.decorate('fastReads', reads);
    app.addHook('preClose', (done) => {
      reads.close();
      done();
    });
    fastReads = reads;
  }

  app.register(async (app) => {
    aggregationRoutes(app, { results, conversions, metrics });
    aggregationBatchRoutes(app, { config, results, metrics });
    indexRoutes(app, { client, registry });
    eventRoutes(app);
    scheduleRoutes(app, { conversions });
    consoleRoutes(app, { auth, sessions });
    jobRoutes(app);
    tenantRoutes(app, { config, client });
    webhookRoutes(app);

    app.get<{ Params: { jobId: string } }>('/v1/jobs/:jobId', READ, async (request) => {
      const { jobId } = request.params;
      const status = JOB_ID_PATTERN.test(jobId) ? await request.quarry.status(jobId) : null;
      if (status === null) throw new QuarryError('QUARRY_ERR_JOB_NOT_FOUND', `no job ${jobId}`);
      return status;
    });

    app.delete<{ Params: { jobId: string } }>(
      '/v1/jobs/:jobId',
      { config: { scope: 'enqueue' } },
      async (request) => {
        const { jobId } = request.params;
        if (!JOB_ID_PATTERN.test(jobId)) throw new QuarryError('QUARRY_ERR_JOB_NOT_FOUND', `no job ${jobId}`);
        return request.quarry.cancel(jobId);
      },
    );

    app.get('/healthz', { config: { scope: 'public' } }, async () => ({ status: 'ok' }));

    app.get('/readyz', { config: { scope: 'public' } }, async (_request, reply) => {
      const redis = await client.ping();
      const ready = redis.queue && redis.cache;
      return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', redis });
    });
  });

  return app;
}
