// The hit path of `GET /v1/results/:resultKey`, answered before Fastify's router. Cached reads
// are the API's hottest request (apps poll result keys), and Fastify's per-request machinery
// (request and reply objects, hooks, the child logger, serialization checks) cost more than the
// answer itself: `npm run bench -- reads` measured 0.48 × a bare node:http server sending the same
// bytes (docs/PERFORMANCE.md).
//
// It answers one case only: a GET of exactly `/v1/results/<32 hex>` with no query, that
// negotiates JSON, from a caller the same Authenticator admits with the `read` scope (a Bearer
// key; no keys configured: everyone, as in Fastify), whose result bytes are in the same
// in-process cache the Fastify route fills, while tracing is off and the app is not closing.
// Everything else — a miss, a 401/403/429, a cookie session, any query, another format, HEAD,
// any other path however encoded — returns false and Fastify handles the request in full, so
// every refusal keeps its one implementation. What it does answer, it answers as the route
// does: the same status, body and headers (x-request-id from the same rule, vary, content type),
// the same access line at `info` and the same request-duration observation.
// test/integration/fast-reads.test.ts compares it with Fastify's answer request by request;
// fast-reads-fault.test.ts holds that a fault of the path never crashes the process.
// `QUARRY_API_FAST_READS=0` leaves every request to Fastify.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { RESULT_KEY_PATTERN } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import type { ApiMetrics } from '../shared/metrics.ts';
import { FORMAT_CONTENT_TYPES } from '../shared/result-formats.ts';
import { tracer } from '../shared/tracing.ts';
import { negotiateFormat } from './accept.ts';
import { type Authenticator, bearerKey, type Principal } from './auth.ts';
import { ACCESS_LOG_MESSAGE, REQUEST_ID_HEADER, requestId } from './request-log.ts';
import { type ResultCache, tenantKey } from './result-cache.ts';

const PREFIX = '/v1/results/';
const ROUTE = '/v1/results/:resultKey';
const JSON_TYPE = FORMAT_CONTENT_TYPES.json;

export interface FastReadsDeps {
  auth: Authenticator;
  /** The cache the Fastify route reads and fills (routes/aggregations.ts resultBytes). */
  results: ResultCache;
  /** The tenant of the API's own client: requests act for it when no keys are configured. */
  ownTenant: string | undefined;
  metrics: ApiMetrics;
  logger: Logger;
}

export class FastReads {
  readonly #deps: FastReadsDeps;
  #closing = false;
  readonly #listeners: ((request: IncomingMessage, route: string) => void)[] = [];
  /** Requests this path answered (the differential test reads it). */
  served = 0;

  constructor(deps: FastReadsDeps) {
    this.#deps = deps;
  }

  /**
   * Calls `listener` after each answer of this path, with the route pattern answered: what an
   * onResponse hook sees of Fastify's answers (the attack tests tell routes apart this way).
   */
  onAnswer(listener: (request: IncomingMessage, route: string) => void): void {
    this.#listeners.push(listener);
  }

  /** Logs a fault of this path (fastReadsServer catches it). */
  failed(error: unknown): void {
    this.#deps.logger.error({ err: error }, 'fast result read failed');
  }

  /** From the app's preClose hook on: Fastify answers everything (503s while it closes). */
  close(): void {
    this.#closing = true;
  }

  /** Answers `request` and returns true, or returns false having touched nothing. */
  serve(request: IncomingMessage, response: ServerResponse): boolean {
    const url = request.url;
    if (
      request.method !== 'GET' ||
      // A GET with a body is Fastify's to judge (its content-type parsers answer 415s).
      request.headers['content-length'] !== undefined ||
      request.headers['transfer-encoding'] !== undefined ||
      url === undefined ||
      url.length !== PREFIX.length + 32 ||
      !url.startsWith(PREFIX) ||
      this.#closing
    ) {
      return false;
    }
    const resultKey = url.slice(PREFIX.length);
    if (!RESULT_KEY_PATTERN.test(resultKey) || tracer() !== undefined) return false;
    const started = performance.now();
    const { auth, results } = this.#deps;
    const headers = request.headers;
    let format: string;
    try {
      format = negotiateFormat(undefined, headers.accept);
    } catch {
      return false; // a 406, written by Fastify
    }
    if (format !== 'json') return false;
    let tenant = this.#deps.ownTenant;
    let principal: Principal | undefined;
    if (auth.enabled) {
      const key = bearerKey(headers.authorization);
      principal = key === undefined ? undefined : auth.principalOf(key);
      if (principal === undefined || !auth.permits(principal, 'read')) return false;
      tenant = principal.tenant;
    }
    const bytes = results.get(tenantKey(tenant, resultKey));
    if (bytes === undefined) return false;
    // Last, so that a request handed to Fastify never took a token here.
    if (principal !== undefined && !auth.admit(principal)) return false;

    const id = requestId(request);
    response.writeHead(200, {
      [REQUEST_ID_HEADER]: id,
      vary: 'Accept',
      'content-type': JSON_TYPE,
      'content-length': bytes.length,
    });
    response.end(bytes);
    this.served++;
    const ms = performance.now() - started;
    this.#deps.metrics.httpRequestDuration.observe(
      { method: 'GET', route: ROUTE, status_code: 200 },
      ms / 1000,
    );
    this.#deps.logger.info(
      { reqId: id, method: 'GET', route: ROUTE, status: 200, ms: Math.round(ms * 1000) / 1000, tenant },
      ACCESS_LOG_MESSAGE,
    );
    for (const listener of this.#listeners) listener(request, ROUTE);
    return true;
  }
}

/** What Fastify hands a serverFactory: its options, of which the HTTP server's are read here. */
interface ServerOptions {
  http?: object | null;
  keepAliveTimeout?: number;
  requestTimeout?: number;
  connectionTimeout?: number;
  maxRequestsPerSocket?: number;
}

/**
 * Fastify's `serverFactory`: the HTTP server Fastify would create for these options (the same
 * timeouts, as fastify/lib/server.js sets them), with `reads()` given each request first.
 */
export function fastReadsServer(reads: () => FastReads | undefined) {
  return (
    handler: (request: IncomingMessage, response: ServerResponse) => void,
    options: ServerOptions,
  ): Server => {
    const server = createServer(options.http ?? {}, (request, response) => {
      const fast = reads();
      let served = false;
      try {
        served = fast?.serve(request, response) === true;
      } catch (error) {
        // A fault of this path must not crash the process (this listener has no catch above it):
        // before the answer is written, Fastify answers; after, it is logged.
        fast?.failed(error);
        if (response.headersSent) return;
      }
      if (!served) handler(request, response);
    });
    if (options.keepAliveTimeout !== undefined) server.keepAliveTimeout = options.keepAliveTimeout;
    if (options.requestTimeout !== undefined) server.requestTimeout = options.requestTimeout;
    server.setTimeout(options.connectionTimeout ?? 0);
    if ((options.maxRequestsPerSocket ?? 0) > 0) server.maxRequestsPerSocket = options.maxRequestsPerSocket!;
    return server;
  };
}
