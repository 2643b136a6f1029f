// The API's access log and request ids. Every request gets an id — the caller's `x-request-id`
// when it is sane, else a fresh one — echoed in the `x-request-id` response header and bound to
// request.log (as `reqId`), so a client's report, the access line and any error line of the same
// request can be joined. One access line per request, written when the response has finished:
// method, route pattern, status, milliseconds, tenant, and the error code when there was one.
//
// The line is written by Fastify's LogController (requestCompleted), which Fastify calls after the
// onResponse hooks anyway: no hook of our own, and the per-request child logger Fastify already
// makes carries the id, so nothing is allocated per request beyond the line itself.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import type { ErrorCode } from '../shared/errors.ts';

declare module 'fastify' {
  interface FastifyReply {
    /** The Quarry code of the error this reply answers with (set by sendError), for the access log. */
    errorCode: ErrorCode | undefined;
  }
}

export const REQUEST_ID_HEADER = 'x-request-id';
/** The `msg` of every access line: what log queries (and the tests) select them by. */
export const ACCESS_LOG_MESSAGE = 'request';
/** Incoming ids taken as they are: short, printable, no spaces or quotes (they reach the logs). */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;
/** The route label of requests no route matched (the metrics use the same). */
export const UNMATCHED_ROUTE = 'unmatched';
/**
 * Routes polled by machines every few seconds (probes, scrapes): their lines are `debug`, so an
 * idle API's log at `info` is not a column of health checks.
 */
const QUIET_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

/** Fastify's genReqId: the caller's id when it is sane, else a random UUID. */
export function requestId(request: IncomingMessage): string {
  const given = request.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && SANE_REQUEST_ID.test(given) ? given : randomUUID();
}

/** Fastify's log controller for Quarry: no "incoming request" line, one line when completed. */
export class AccessLogController extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    const route = request.routeOptions.url;
    const status = reply.statusCode;
    const line: Record<string, unknown> = {
      method: request.method,
      route: route ?? UNMATCHED_ROUTE,
      status,
      ms: Math.round(reply.elapsedTime * 1000) / 1000,
      // `quarry` is set by the authentication hook; a request answered before it (a 404) has none.
      tenant: (request.quarry as { tenant?: string } | null)?.tenant,
    };
    // Unmatched paths are what a scanner probes: keep them, bounded, since the pattern says nothing.
    if (route === undefined) line.url = request.url.slice(0, 256);
    if (reply.errorCode !== undefined) line.code = reply.errorCode;
    if (error) {
      // A response that broke off (client gone, stream error): the one case with a stack here.
      reply.log.warn({ ...line, err: error }, ACCESS_LOG_MESSAGE);
      return;
    }
    if (route !== undefined && QUIET_ROUTES.has(route)) reply.log.debug(line, ACCESS_LOG_MESSAGE);
    else reply.log.info(line, ACCESS_LOG_MESSAGE);
  }
}

/** Echoes the request id; declares the reply field sendError records the error code in. */
export function registerRequestIds(app: FastifyInstance): void {
  app.decorateReply('errorCode', undefined);
  // A callback hook: it runs on every request. First, so 401s and 404s carry the id too.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header(REQUEST_ID_HEADER, request.id);
    done();
  });
}
