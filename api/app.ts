// buildApp(deps): the status API as a Fastify instance, apart from listen() so tests can use
// inject(). Routes: aggregations, jobs, results, health.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { QuarryClient } from '../producers/client.ts';
import type { QuarryConfig } from '../shared/config.ts';
import { QuarryError } from '../shared/errors.ts';
import { contentHash } from '../shared/hashing.ts';
import { JOB_ID_PATTERN, RESULT_KEY_PATTERN } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import { sendError } from './errors.ts';
import { BodyIndex, RawJson } from './raw-json.ts';
import { ResultCache } from './result-cache.ts';

export interface AppDeps {
  config: QuarryConfig;
  /** The producer the API enqueues with (its connections should be fail-fast). */
  client: QuarryClient;
  logger: Logger;
}

const MAX_WAIT_MS = 30_000;
const JSON_TYPE = 'application/json; charset=utf-8';

function parseWait(value: unknown): number {
  if (value === undefined || value === '') return 0;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > MAX_WAIT_MS) {
    throw new QuarryError(
      'QUARRY_ERR_VALIDATION',
      `wait: must be a whole number of milliseconds from 0 to ${MAX_WAIT_MS}`,
      {
        field: 'wait',
      },
    );
  }
  return n;
}

export function buildApp(deps: AppDeps): FastifyInstance {
  const { config, client, logger } = deps;
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    disableRequestLogging: true,
    bodyLimit: config.maxBodyBytes,
    return503OnClosing: true,
  });
  const results = new ResultCache({
    maxBytes: config.apiResultCacheBytes,
    ttlMs: Math.min(config.resultTtlS, 300) * 1000,
  });

  // Every body is JSON, kept as bytes (see raw-json.ts); anything else is a 415.
  app.removeContentTypeParser(['text/plain', 'application/json']);
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => {
    done(null, new RawJson(body as Buffer));
  });
  const bodies = new BodyIndex(10_000);
  app.setErrorHandler((error, request, reply) => sendError(error, request, reply));
  app.setNotFoundHandler((request, reply) =>
    sendError(
      new QuarryError('QUARRY_ERR_NOT_FOUND', `no route ${request.method} ${request.url}`),
      request,
      reply,
    ),
  );

  app.post('/v1/aggregations', async (request, reply) => {
    const wait = parseWait((request.query as Record<string, unknown>).wait);
    if (!(request.body instanceof RawJson)) {
      throw new QuarryError('QUARRY_ERR_VALIDATION', 'the body must be an aggregation spec as JSON', {
        field: 'body',
      });
    }
    const bodyHash = contentHash(request.body.bytes);
    const known = bodies.get(bodyHash);
    if (known !== undefined) {
      let bytes = results.get(known) ?? null;
      if (bytes === null) {
        bytes = await client.resultBytes(known);
        if (bytes !== null) results.set(known, bytes);
      }
      if (bytes !== null) return reply.header('x-quarry-cache', 'hit').type(JSON_TYPE).send(bytes);
    }
    const job = await client.address(request.body.parse());
    // Only inline datasets: a file's fingerprint (size, mtime) can change under the same bytes.
    if (job.spec.dataset.kind === 'inline') bodies.set(bodyHash, job.resultKey);
    const local = results.get(job.resultKey);
    if (local !== undefined) return reply.header('x-quarry-cache', 'hit').type(JSON_TYPE).send(local);
    const submission = await client.submitAddressed(job);
    if (submission.cachedBytes !== null) {
      results.set(job.resultKey, submission.cachedBytes);
      return reply.header('x-quarry-cache', 'hit').type(JSON_TYPE).send(submission.cachedBytes);
    }
    reply.header('x-quarry-cache', 'miss');
    if (wait > 0) {
      try {
        const bytes = await client.waitForResult(job.jobId, job.resultKey, { timeoutMs: wait });
        results.set(job.resultKey, bytes);
        return reply.type(JSON_TYPE).send(bytes);
      } catch (error) {
        if (!(error instanceof QuarryError && error.code === 'QUARRY_ERR_WAIT_TIMEOUT')) throw error;
      }
    }
    const status = await client.status(job.jobId);
    return reply.code(202).send({
      jobId: job.jobId,
      resultKey: job.resultKey,
      status: status?.state ?? 'queued',
      links: { status: `/v1/jobs/${job.jobId}`, result: `/v1/results/${job.resultKey}` },
    });
  });

  app.get<{ Params: { jobId: string } }>('/v1/jobs/:jobId', async (request, reply) => {
    const { jobId } = request.params;
    const status = JOB_ID_PATTERN.test(jobId) ? await client.status(jobId) : null;
    if (status === null) throw new QuarryError('QUARRY_ERR_JOB_NOT_FOUND', `no job ${jobId}`);
    return reply.send(status);
  });

  app.get<{ Params: { resultKey: string } }>('/v1/results/:resultKey', async (request, reply) => {
    const { resultKey } = request.params;
    let bytes = results.get(resultKey) ?? null;
    if (bytes === null && RESULT_KEY_PATTERN.test(resultKey)) {
      bytes = await client.resultBytes(resultKey);
      if (bytes !== null) results.set(resultKey, bytes);
    }
    if (bytes === null) throw new QuarryError('QUARRY_ERR_RESULT_NOT_FOUND', `no result ${resultKey}`);
    return reply.type(JSON_TYPE).send(bytes);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const redis = await client.ping();
    const ready = redis.queue && redis.cache;
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unavailable', redis });
  });

  return app;
}
