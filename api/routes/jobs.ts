// Job history and redrive: GET /v1/jobs (the status records newest first, filtered, paged by
// cursor), POST /v1/jobs/:jobId/retry (a failed or cancelled job runs again under its id) and
// GET /v1/activity (jobs ended per minute, run-time percentiles, queue depth). Every answer is
// the tenant's own; `all=true` (admin keys, or no keys configured) covers every tenant.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { QuarryError } from '../../shared/errors.ts';
import { parseHistoryQuery } from '../../shared/job-history.ts';
import { JOB_ID_PATTERN } from '../../shared/keys.ts';

export const HISTORY_QUERY = ['state', 'type', 'errorCode', 'since', 'limit', 'cursor', 'all'] as const;

/** `all=true` asks for every tenant: only for a caller who may act for all of them. */
function checkAll(request: FastifyRequest, all: boolean): void {
  if (all && !request.quarryAdmin) {
    throw new QuarryError('QUARRY_ERR_FORBIDDEN', 'all=true needs an API key with the "admin" scope', {
      field: 'all',
    });
  }
}

function parseAll(query: unknown): boolean {
  const value = (query as Record<string, unknown> | undefined)?.all;
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  throw new QuarryError('QUARRY_ERR_VALIDATION', 'all must be true or false', { field: 'all' });
}

export function jobRoutes(app: FastifyInstance): void {
  app.get('/v1/jobs', { config: { scope: 'read', query: HISTORY_QUERY } }, async (request) => {
    const query = parseHistoryQuery(request.query);
    checkAll(request, query.all);
    return request.quarry.jobs.list(request.query as Record<string, string>);
  });

  app.post<{ Params: { jobId: string } }>(
    '/v1/jobs/:jobId/retry',
    { config: { scope: 'enqueue' } },
    async (request, reply) => {
      const { jobId } = request.params;
      if (!JOB_ID_PATTERN.test(jobId)) throw new QuarryError('QUARRY_ERR_JOB_NOT_FOUND', `no job ${jobId}`);
      const client = request.quarry;
      const handle = await client.jobs.retry(jobId);
      // Queued whatever this read says: a 503 here would invite a second retry.
      const status = await client.status(jobId).catch(() => null);
      const state = status?.state ?? 'queued';
      const links = { status: `/v1/jobs/${jobId}` };
      if (handle.type === 'index') {
        return reply.code(202).send({
          jobId,
          status: state,
          links: { ...links, index: `/v1/indexes/${handle.collection ?? ''}` },
        });
      }
      return reply.code(202).send({
        jobId,
        resultKey: handle.resultKey,
        status: state,
        links: { ...links, result: `/v1/results/${handle.resultKey ?? ''}` },
      });
    },
  );

  app.get('/v1/activity', { config: { scope: 'read', query: ['all'] } }, async (request) => {
    const all = parseAll(request.query);
    checkAll(request, all);
    return request.quarry.activity({ all });
  });
}
