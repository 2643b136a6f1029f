// The console: a browser UI over the /v1 routes, served from the files in api/console/ (read once
// at startup, no network, no build step), and its session routes. GET /console/session says who
// the page acts as (and gives the CSRF token), POST signs in with an API key (a signed HttpOnly,
// SameSite=Strict cookie, see console-session.ts), DELETE signs out. The page and its assets are
// public (they hold no data); every datum the page shows comes from /v1 under the session's key.
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { QuarryError } from '../../shared/errors.ts';
import { type Authenticator, FailureLimiter } from '../auth.ts';
import {
  type ConsoleSessions,
  CSRF_HEADER,
  sessionCookieHeader,
  sessionCookieOf,
} from '../console-session.ts';
import { requireJson } from '../request.ts';

export const CONSOLE_PATH = '/console';
const ASSET_DIR = new URL('../console/', import.meta.url);
const MAX_KEY_CHARS = 512;
/** Failed sign-ins per client address: a burst of 10, then one every 6 s (429 past that). */
const SIGN_IN_FAILURE_BURST = 10;
const SIGN_IN_FAILURES_PER_SECOND = 1 / 6;
const SIGN_IN_TRACKED_CLIENTS = 10_000;

/** The files the console is made of, by the name they are served under, with their type. */
const ASSETS: Readonly<Record<string, string>> = {
  'app.js': 'text/javascript; charset=utf-8',
  'api.js': 'text/javascript; charset=utf-8',
  'charts.js': 'text/javascript; charset=utf-8',
  'dom.js': 'text/javascript; charset=utf-8',
  'jobs.js': 'text/javascript; charset=utf-8',
  'pages.js': 'text/javascript; charset=utf-8',
  'webhooks.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

// Only the console's own files run, and only same-origin calls are made; no framing.
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

function secureHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-cache');
}

export function consoleRoutes(
  app: FastifyInstance,
  deps: { auth: Authenticator; sessions: ConsoleSessions },
): void {
  const { auth, sessions } = deps;
  const signInFailures = new FailureLimiter(
    SIGN_IN_FAILURES_PER_SECOND,
    SIGN_IN_FAILURE_BURST,
    SIGN_IN_TRACKED_CLIENTS,
  );
  const page = readFileSync(new URL('index.html', ASSET_DIR));
  const files = new Map(
    Object.entries(ASSETS).map(([name, type]) => [
      name,
      { type, bytes: readFileSync(new URL(name, ASSET_DIR)) },
    ]),
  );
  const secure = (request: FastifyRequest) => request.protocol === 'https';
  // Public (no data) and left out of the OpenAPI document: these serve a browser, not clients.
  const PUBLIC = { config: { scope: 'public' }, schema: { hide: true } } as const;

  app.get(CONSOLE_PATH, PUBLIC, async (_request, reply) =>
    secureHeaders(reply).type('text/html; charset=utf-8').send(page),
  );

  app.get<{ Params: { name: string } }>(`${CONSOLE_PATH}/assets/:name`, PUBLIC, async (request, reply) => {
    const file = files.get(request.params.name);
    if (file === undefined)
      throw new QuarryError('QUARRY_ERR_NOT_FOUND', `no console file ${request.params.name}`);
    return secureHeaders(reply).type(file.type).send(file.bytes);
  });

  // Who the page acts as. Without keys (loopback) there is nothing to sign in to.
  app.get(`${CONSOLE_PATH}/session`, PUBLIC, async (request, reply) => {
    reply.header('cache-control', 'no-store');
    if (!auth.enabled) return { signedIn: true, mode: 'open', tenant: null, scopes: ['admin'], csrf: null };
    const cookie = sessionCookieOf(request.headers.cookie);
    const session = cookie === undefined ? null : sessions.verify(cookie);
    if (session === null) return { signedIn: false, mode: 'keys' };
    return {
      signedIn: true,
      mode: 'keys',
      tenant: session.principal.tenant,
      scopes: [...session.principal.scopes],
      csrf: sessions.csrfOf(session.nonce),
      expiresAt: new Date(session.expiresAt * 1000).toISOString(),
    };
  });

  // Sign-in: the key in the body authenticates this request (like a Bearer key), so no CSRF
  // token is asked for; a cookie sent along is replaced.
  app.post(`${CONSOLE_PATH}/session`, PUBLIC, async (request, reply) => {
    reply.header('cache-control', 'no-store');
    if (!auth.enabled) {
      throw new QuarryError('QUARRY_ERR_VALIDATION', 'key: no API keys are configured, the console is open', {
        field: 'key',
      });
    }
    const body = requireJson(request.body).parse() as { key?: unknown } | null;
    const key = body !== null && typeof body === 'object' ? body.key : undefined;
    if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_CHARS) {
      throw new QuarryError('QUARRY_ERR_VALIDATION', `key: an API key, 1-${MAX_KEY_CHARS} characters`, {
        field: 'key',
      });
    }
    const wait = signInFailures.wait(request.ip);
    if (wait > 0) {
      const retryAfterS = Math.max(1, Math.ceil(wait / 1000));
      throw new QuarryError(
        'QUARRY_ERR_RATE_LIMITED',
        `too many failed sign-ins from this address; retry in ${retryAfterS} s`,
        { retryAfterS },
      );
    }
    let issued: ReturnType<typeof sessions.issue>;
    try {
      issued = sessions.issue(key);
    } catch (error) {
      signInFailures.failed(request.ip);
      throw error;
    }
    request.log.info(
      { tenant: issued.principal.tenant, keyIndex: issued.principal.keyIndex },
      'console sign-in',
    );
    return reply
      .header('set-cookie', sessionCookieHeader(issued.cookie, sessions.ttlS, secure(request)))
      .send({
        signedIn: true,
        mode: 'keys',
        tenant: issued.principal.tenant,
        scopes: [...issued.principal.scopes],
        csrf: issued.csrf,
        expiresAt: new Date(issued.expiresAt * 1000).toISOString(),
      });
  });

  // Sign-out: a write, so with a valid session it takes the CSRF token like any other.
  app.delete(`${CONSOLE_PATH}/session`, PUBLIC, async (request, reply) => {
    const cookie = sessionCookieOf(request.headers.cookie);
    const session = cookie === undefined ? null : sessions.verify(cookie);
    if (session !== null) sessions.checkCsrf(session, request.headers[CSRF_HEADER]);
    return reply
      .code(204)
      .header('cache-control', 'no-store')
      .header('set-cookie', sessionCookieHeader('', 0, secure(request)))
      .send();
  });
}
