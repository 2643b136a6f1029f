// Scheduled aggregations: PUT /v1/schedules/:name registers or replaces one, GET lists or reads
// them, DELETE removes one; GET /v1/aliases/:name serves the newest result of a schedule (in any format of
// result-conversions.ts).
import type { FastifyInstance } from 'fastify';
import { QuarryError } from '../../shared/errors.ts';
import { READ } from '../authorization.ts';
import { requireJson } from '../request.ts';
import { tenantKey } from '../result-cache.ts';
import { RESULT_ROUTE, type ResultConversions, requestedFormat, sendResult } from '../result-conversions.ts';

export function scheduleRoutes(app: FastifyInstance, deps: { conversions: ResultConversions }): void {
  const { conversions } = deps;
  app.put<{ Params: { name: string } }>(
    '/v1/schedules/:name',
    { config: { scope: 'enqueue' } },
    async (request) => request.quarry.schedules.put(request.params.name, requireJson(request.body).parse()),
  );

  app.get('/v1/schedules', READ, async (request) => ({ schedules: await request.quarry.schedules.list() }));

  app.get<{ Params: { name: string } }>('/v1/schedules/:name', READ, async (request) => {
    const info = await request.quarry.schedules.get(request.params.name);
    if (info === null)
      throw new QuarryError('QUARRY_ERR_SCHEDULE_NOT_FOUND', `no schedule "${request.params.name}"`);
    return info;
  });

  app.delete<{ Params: { name: string } }>(
    '/v1/schedules/:name',
    { config: { scope: 'enqueue' } },
    async (request, reply) => {
      if (!(await request.quarry.schedules.remove(request.params.name))) {
        throw new QuarryError('QUARRY_ERR_SCHEDULE_NOT_FOUND', `no schedule "${request.params.name}"`);
      }
      return reply.code(204).send();
    },
  );

  app.get<{ Params: { name: string } }>('/v1/aliases/:name', RESULT_ROUTE, async (request, reply) => {
    const format = requestedFormat(request, reply);
    const found = await request.quarry.schedules.alias(request.params.name);
    if (found === null) {
      throw new QuarryError(
        'QUARRY_ERR_RESULT_NOT_FOUND',
        `no result for "${request.params.name}" yet (unknown schedule, or its first run has not finished)`,
      );
    }
    reply.header('x-quarry-result-key', found.resultKey);
    const scopedKey = tenantKey(request.quarry.tenant, found.resultKey);
    return sendResult(reply, conversions, { scopedKey, format, bytes: found.bytes });
  });
}
