// Bounded HTTP time: how long a client may take to send its request, and how long an idle
// connection stays open. Node's semantics, which these rely on (measured in
// test/attacks/slow-clients.test.ts):
// - `headersTimeout` runs from the connection's (or the request's) first byte until the headers
//   are in, so a silent connection and headers sent a byte at a time are both cut;
// - `requestTimeout` runs until the whole request (headers and body) is in, then stops: an SSE
//   stream or a `?wait` long poll answers for as long as it needs;
// - `keepAliveTimeout` is the idle time between two requests on one connection.
// Node checks the first two every `connectionsCheckingInterval` (30 s by default, which would
// double the bound); a tenth of the shorter limit keeps the overshoot small at a negligible cost.
// There is no socket-inactivity timeout (`connectionTimeout`): it would also cut an SSE stream
// between heartbeats and a long poll that has nothing to send yet.

import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyHttpOptions } from 'fastify';
import type { QuarryConfig } from '../shared/config.ts';
import { type ErrorCode, QuarryError } from '../shared/errors.ts';

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};

export function connectionsCheckingIntervalMs(config: QuarryConfig): number {
  const shorter = Math.min(config.httpHeadersTimeoutMs, config.httpRequestTimeoutMs);
  return Math.max(25, Math.min(1000, Math.floor(shorter / 10)));
}

/** The Fastify server options for the limits above. */
export function httpLimits(
  config: QuarryConfig,
): Pick<FastifyHttpOptions<Server>, 'requestTimeout' | 'keepAliveTimeout' | 'http' | 'clientErrorHandler'> {
  return {
    requestTimeout: config.httpRequestTimeoutMs,
    keepAliveTimeout: config.httpKeepAliveTimeoutMs,
    http: {
      requestTimeout: config.httpRequestTimeoutMs,
      headersTimeout: config.httpHeadersTimeoutMs,
      connectionsCheckingInterval: connectionsCheckingIntervalMs(config),
    },
    clientErrorHandler,
  };
}

function codeOf(error: NodeJS.ErrnoException): ErrorCode {
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'QUARRY_ERR_REQUEST_TIMEOUT';
  if (error.code === 'HPE_HEADER_OVERFLOW') return 'QUARRY_ERR_HEADERS_TOO_LARGE';
  return 'QUARRY_ERR_BAD_REQUEST';
}

const MESSAGES: Record<string, string> = {
  QUARRY_ERR_REQUEST_TIMEOUT: 'the request was not received in time',
  QUARRY_ERR_HEADERS_TOO_LARGE: 'the request headers are too large',
  QUARRY_ERR_BAD_REQUEST: 'the request is not valid HTTP',
};

/**
 * Node's clientError (a timeout, a malformed request): Quarry's error body where the socket
 * can still take one and nothing of a response was written yet, then the connection is closed.
 */
export function clientErrorHandler(error: NodeJS.ErrnoException, socket: Socket): void {
  // A reset connection has nobody left to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  // Node's own rule: a response whose headers are out cannot become an error any more.
  const pending = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && pending?.headersSent !== true) {
    const code = codeOf(error);
    const quarry = new QuarryError(code, MESSAGES[code] ?? 'bad request');
    const body = JSON.stringify(quarry.toJSON());
    socket.write(
      `HTTP/1.1 ${quarry.status} ${STATUS_TEXT[quarry.status] ?? ''}\r\n` +
        'Connection: close\r\n' +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
