// GET /v1/jobs/:jobId/events: a job's status changes as Server-Sent Events, from the process's
// one shared event subscription (client.watch), ending with the final state.
import type { FastifyInstance } from 'fastify';
import { QuarryError } from '../../shared/errors.ts';
import { JOB_ID_PATTERN } from '../../shared/keys.ts';
import { READ } from '../authorization.ts';

const HEARTBEAT_MS = 15_000;

export function eventRoutes(app: FastifyInstance): void {
  app.get<{ Params: { jobId: string } }>('/v1/jobs/:jobId/events', READ, async (request, reply) => {
    const { jobId } = request.params;
    const client = request.quarry;
    const first = JOB_ID_PATTERN.test(jobId) ? await client.status(jobId) : null;
    if (first === null) throw new QuarryError('QUARRY_ERR_JOB_NOT_FOUND', `no job ${jobId}`);
    const abort = new AbortController();
    request.raw.on('close', () => abort.abort());
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    const heartbeat = setInterval(() => raw.write(': keep-alive\n\n'), HEARTBEAT_MS);
    try {
      let sent = 0; // the first is the status; events carry the whole record too (docs/KEYS.md)
      for await (const event of client.watch(jobId, { signal: abort.signal })) {
        const name = sent++ === 0 ? 'status' : event.state === 'active' ? 'progress' : 'state';
        raw.write(`event: ${name}\ndata: ${JSON.stringify(event)}\n\n`);
      }
      if (!abort.signal.aborted) raw.write('event: end\ndata: {}\n\n');
    } catch (error) {
      request.log.warn({ err: error, jobId }, 'event stream failed');
      raw.write(`event: error\ndata: ${JSON.stringify({ code: 'QUARRY_ERR_INTERNAL' })}\n\n`);
    } finally {
      clearInterval(heartbeat);
      raw.end();
    }
  });
}
