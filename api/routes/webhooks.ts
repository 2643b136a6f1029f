// Webhooks of the caller's tenant: PUT /v1/webhooks/:name registers or replaces one, GET lists or
// reads them (the secret only by its last four characters), DELETE removes one, and
// GET /v1/webhooks/:name/deliveries reads its delivery log. Scope `webhooks` (or `admin`).
import type { FastifyInstance } from 'fastify';
import { MAX_DELIVERIES_LISTED } from '../../producers/webhooks.ts';
import { QuarryError } from '../../shared/errors.ts';
import { requireJson } from '../request.ts';

const WEBHOOKS = { config: { scope: 'webhooks' } } as const;

const notFound = (name: string) => new QuarryError('QUARRY_ERR_WEBHOOK_NOT_FOUND', `no webhook "${name}"`);

function parseLimit(query: unknown): number {
  const value = (query as Record<string, string | undefined> | undefined)?.limit;
  if (value === undefined) return 50;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > MAX_DELIVERIES_LISTED) {
    throw new QuarryError(
      'QUARRY_ERR_VALIDATION',
      `limit: a whole number from 1 to ${MAX_DELIVERIES_LISTED}`,
      {
        field: 'limit',
      },
    );
  }
  return n;
}

export function webhookRoutes(app: FastifyInstance): void {
  app.put<{ Params: { name: string } }>('/v1/webhooks/:name', WEBHOOKS, async (request) =>
    request.quarry.webhooks.put(request.params.name, requireJson(request.body).parse()),
  );

  app.get('/v1/webhooks', WEBHOOKS, async (request) => ({ webhooks: await request.quarry.webhooks.list() }));

  app.get<{ Params: { name: string } }>('/v1/webhooks/:name', WEBHOOKS, async (request) => {
    const info = await request.quarry.webhooks.get(request.params.name);
    if (info === null) throw notFound(request.params.name);
    return info;
  });

  app.delete<{ Params: { name: string } }>('/v1/webhooks/:name', WEBHOOKS, async (request, reply) => {
    if (!(await request.quarry.webhooks.delete(request.params.name))) throw notFound(request.params.name);
    return reply.code(204).send();
  });

  app.get<{ Params: { name: string } }>(
    '/v1/webhooks/:name/deliveries',
    { config: { scope: 'webhooks', query: ['limit'] } },
    async (request) => {
      const limit = parseLimit(request.query);
      const deliveries = await request.quarry.webhooks.deliveries(request.params.name, { limit });
      if (deliveries === null) throw notFound(request.params.name);
      return { deliveries };
    },
  );
}
