// POST /v1/aggregations/batch: up to QUARRY_MAX_BATCH_ITEMS specs in one request, enqueued in a
// few round trips (client.submitMany, producers/batch.ts). The batch answers 200 once it was
// read, whatever its items got; each item is answered in order as POST /v1/aggregations would
// answer that spec alone: its status code and body (`200` + the envelope for a cached result,
// `202` + `{jobId, resultKey, status, links}` for a queued job, or the error body). A spec's own
// errors name their field under the item (`items.3.metrics.0.column`); a bad item never stops
// the others. Tenant and scope are the single route's (request.quarry, scope `enqueue`).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { BatchSubmission, Settled } from '../../producers/batch.ts';
import type { QuarryClient } from '../../producers/client.ts';
import type { AddressedAggregation } from '../../shared/aggregation.ts';
import type { QuarryConfig } from '../../shared/config.ts';
import { QuarryError } from '../../shared/errors.ts';
import type { ApiMetrics } from '../../shared/metrics.ts';
import { redisFailureCode } from '../../shared/redis-errors.ts';
import { toQuarryError } from '../errors.ts';
import { requireJson } from '../request.ts';
import { type ResultCache, tenantKey } from '../result-cache.ts';

const JSON_TYPE = 'application/json; charset=utf-8';

export function aggregationBatchRoutes(
  app: FastifyInstance,
  deps: { config: QuarryConfig; results: ResultCache; metrics?: ApiMetrics },
): void {
  const { config, results, metrics } = deps;
  const scoped = (client: QuarryClient, key: string) => tenantKey(client.tenant, key);

  app.post('/v1/aggregations/batch', { config: { scope: 'enqueue' } }, async (request, reply) => {
    const client = request.quarry;
    const items = batchItems(requireJson(request.body).parse(), config.maxBatchItems);
    // Each spec is validated and addressed alone: its errors are its own, its field under it.
    const addressed = await Promise.all(
      items.map((spec, i) =>
        client.address(spec).then(
          (job): Settled<AddressedAggregation> => ({ ok: true, value: job }),
          (error: unknown): Settled<AddressedAggregation> => ({ ok: false, error: underItem(error, i) }),
        ),
      ),
    );
    const answers: (Settled<BatchSubmission> | undefined)[] = addressed.map((a) => {
      if (!a.ok) return a;
      const hit = results.get(scoped(client, a.value.resultKey));
      return hit === undefined ? undefined : { ok: true, value: { ...a.value, cachedBytes: hit } };
    });
    const toSubmit = addressed.flatMap((a, i) => (a.ok && answers[i] === undefined ? [i] : []));
    const submitted = await client.submitMany(
      toSubmit.map((i) => (addressed[i] as { value: AddressedAggregation }).value),
    );
    for (const [n, i] of toSubmit.entries()) answers[i] = submitted[n];

    const parts: Buffer[] = [Buffer.from('{"items":[')];
    for (const [i, answer] of answers.entries()) {
      if (i > 0) parts.push(Buffer.from(','));
      parts.push(
        itemBytes(request, answer!, (key, bytes) => results.set(scoped(client, key), bytes), metrics),
      );
    }
    parts.push(Buffer.from(']}'));
    return reply.type(JSON_TYPE).send(Buffer.concat(parts));
  });
}

/** The body's `items`, checked: a list of 1..max specs, and nothing else in the body. */
function batchItems(body: unknown, max: number): unknown[] {
  const invalid = (field: string, message: string) =>
    new QuarryError('QUARRY_ERR_VALIDATION', `${field} ${message}`, { field });
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw invalid('body', 'must be an object {"items": [spec, …]}');
  }
  for (const key of Object.keys(body)) {
    if (key !== 'items') throw invalid(key, 'is not a known field (the body is {"items": [spec, …]})');
  }
  const { items } = body as { items?: unknown };
  if (items === undefined) throw invalid('items', 'is required (a list of aggregation specs)');
  if (!Array.isArray(items)) throw invalid('items', 'must be a list of aggregation specs');
  if (items.length === 0) throw invalid('items', 'must have at least 1 item');
  if (items.length > max) {
    throw invalid('items', `must have at most ${max} items (QUARRY_MAX_BATCH_ITEMS); send several batches`);
  }
  return items;
}

/** An addressing error of item `i`, its field (if any) under `items.<i>`. */
function underItem(error: unknown, i: number): Error {
  const quarry = toQuarryError(error);
  if (quarry === undefined) return error as Error;
  const field =
    quarry.field === undefined || quarry.field === '' ? `items.${i}` : `items.${i}.${quarry.field}`;
  return new QuarryError(quarry.code, quarry.message, {
    field,
    cause: quarry,
    ...(quarry.retryAfterS === undefined ? {} : { retryAfterS: quarry.retryAfterS }),
  });
}

/** One item's answer as JSON bytes (a cached envelope spliced in as it is stored). */
function itemBytes(
  request: FastifyRequest,
  answer: Settled<BatchSubmission>,
  remember: (resultKey: string, bytes: Buffer) => void,
  metrics: ApiMetrics | undefined,
): Buffer {
  if (!answer.ok) return Buffer.from(JSON.stringify(errorItem(request, answer.error)));
  const { jobId, resultKey, cachedBytes, state } = answer.value;
  if (cachedBytes !== null) {
    metrics?.cacheHits.inc();
    remember(resultKey, cachedBytes);
    return Buffer.concat([Buffer.from('{"status":200,"cache":"hit","body":'), cachedBytes, Buffer.from('}')]);
  }
  metrics?.cacheMisses.inc();
  return Buffer.from(
    JSON.stringify({
      status: 202,
      cache: 'miss',
      body: {
        jobId,
        resultKey,
        status: state ?? 'queued',
        links: { status: `/v1/jobs/${jobId}`, result: `/v1/results/${resultKey}` },
      },
    }),
  );
}

/** An item's error as the single route's error answer would be (api/errors.ts sendError). */
function errorItem(request: FastifyRequest, error: Error): object {
  const quarry = toQuarryError(error);
  if (quarry === undefined) {
    request.log.error({ err: error, url: request.url }, 'unexpected error in a batch item');
    return {
      status: 500,
      body: {
        error: {
          code: 'QUARRY_ERR_INTERNAL',
          message: 'an unexpected error occurred; the log has the details',
        },
      },
    };
  }
  if (quarry.status >= 500) request.log.error({ err: error, code: quarry.code }, 'batch item failed');
  const retryAfterS = quarry.retryAfterS ?? (redisFailureCode(quarry) === undefined ? undefined : 1);
  return {
    status: quarry.status,
    ...(retryAfterS === undefined ? {} : { retryAfterS }),
    body: quarry.toJSON(),
  };
}
