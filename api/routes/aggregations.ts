// POST /v1/aggregations and GET /v1/results/:resultKey (in any format of result-conversions.ts). A
// body seen before is answered by the
// hash of its bytes (raw-json.ts); results are served from an in-process LRU in front of Redis.
// Both local caches are keyed by tenant: a tenant never gets bytes another tenant stored.
import type { FastifyInstance } from 'fastify';
import type { QuarryClient } from '../../producers/client.ts';
import { QuarryError } from '../../shared/errors.ts';
import { contentHash } from '../../shared/hashing.ts';
import { RESULT_KEY_PATTERN } from '../../shared/keys.ts';
import type { ApiMetrics } from '../../shared/metrics.ts';
import { BodyIndex } from '../raw-json.ts';
import { parseWait, requireJson } from '../request.ts';
import { type ResultCache, tenantKey } from '../result-cache.ts';
import { RESULT_ROUTE, type ResultConversions, requestedFormat, sendResult } from '../result-conversions.ts';

const JSON_TYPE = 'application/json; charset=utf-8';

export function aggregationRoutes(
  app: FastifyInstance,
  deps: { results: ResultCache; conversions: ResultConversions; metrics?: ApiMetrics },
): void {
  const { results, conversions, metrics } = deps;
  const bodies = new BodyIndex(10_000);
  const scoped = (client: QuarryClient, key: string) => tenantKey(client.tenant, key);

  /** Result bytes from the local LRU or the cache Redis (then remembered locally). */
  async function resultBytes(client: QuarryClient, resultKey: string): Promise<Buffer | null> {
    const cached = results.get(scoped(client, resultKey));
    if (cached !== undefined) return cached;
    const bytes = await client.resultBytes(resultKey);
    if (bytes !== null) results.set(scoped(client, resultKey), bytes);
    return bytes;
  }

  app.post('/v1/aggregations', { config: { scope: 'enqueue', query: ['wait'] } }, async (request, reply) => {
    const client = request.quarry;
    const wait = parseWait(request.query);
    const body = requireJson(request.body);
    const bodyHash = scoped(client, contentHash(body.bytes));
    const known = bodies.get(bodyHash);
    if (known !== undefined) {
      const bytes = await resultBytes(client, known);
      if (bytes !== null) {
        metrics?.cacheHits.inc();
        return reply.header('x-quarry-cache', 'hit').type(JSON_TYPE).send(bytes);
      }
    }
    const job = await client.address(body.parse());
    // Only inline datasets: a file's fingerprint (size, mtime) can change under the same bytes.
    if (job.spec.dataset.kind === 'inline') bodies.set(bodyHash, job.resultKey);
    const hit = results.get(scoped(client, job.resultKey));
    if (hit !== undefined) {
      metrics?.cacheHits.inc();
      return reply.header('x-quarry-cache', 'hit').type(JSON_TYPE).send(hit);
    }
    const submission = await client.submitAddressed(job);
    if (submission.cachedBytes !== null) {
      results.set(scoped(client, job.resultKey), submission.cachedBytes);
      metrics?.cacheHits.inc();
      return reply.header('x-quarry-cache', 'hit').type(JSON_TYPE).send(submission.cachedBytes);
    }
    metrics?.cacheMisses.inc();
    reply.header('x-quarry-cache', 'miss');
    if (wait > 0) {
      try {
        const bytes = await client.waitForResult(job.jobId, job.resultKey, { timeoutMs: wait });
        results.set(scoped(client, job.resultKey), bytes);
        return reply.type(JSON_TYPE).send(bytes);
      } catch (error) {
        if (!(error instanceof QuarryError && error.code === 'QUARRY_ERR_WAIT_TIMEOUT')) throw error;
      }
    }
    // The job is queued whatever this read says: a failed read must not turn the 202 into a 503.
    const status = await client.status(job.jobId).catch(() => null);
    return reply.code(202).send({
      jobId: job.jobId,
      resultKey: job.resultKey,
      status: status?.state ?? 'queued',
      links: { status: `/v1/jobs/${job.jobId}`, result: `/v1/results/${job.resultKey}` },
    });
  });

  // The stored envelope (json, the default), or its conversion to csv, ndjson or arrow.
  app.get<{ Params: { resultKey: string } }>(
    '/v1/results/:resultKey',
    RESULT_ROUTE,
    async (request, reply) => {
      const format = requestedFormat(request, reply);
      const { resultKey } = request.params;
      const bytes = RESULT_KEY_PATTERN.test(resultKey) ? await resultBytes(request.quarry, resultKey) : null;
      if (bytes === null) throw new QuarryError('QUARRY_ERR_RESULT_NOT_FOUND', `no result ${resultKey}`);
      return sendResult(reply, conversions, { scopedKey: scoped(request.quarry, resultKey), format, bytes });
    },
  );
}
