// Console sessions: what the sign-in form turns an API key into. A session is a cookie holding
// `v1.<payload>.<signature>`, the payload (base64url JSON) naming the key by a keyed digest (never
// the key itself), its tenant, an expiry and a nonce, the signature an HMAC-SHA256 of it under
// QUARRY_CONSOLE_SECRET. Nothing is stored server-side: any API process with the same secret and
// keys accepts the cookie, and removing a key from QUARRY_API_KEYS ends its sessions. Writes made
// with the cookie carry a CSRF token (the `x-quarry-csrf` header), an HMAC of the session nonce,
// which the console's page reads from GET /console/session; a cross-site page can neither read it
// nor (SameSite=Strict) get the cookie sent.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ApiScope } from '../shared/config.ts';
import { QuarryError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import type { Authenticator, Principal } from './auth.ts';

export const SESSION_COOKIE = 'quarry_console';
export const CSRF_HEADER = 'x-quarry-csrf';
const FORMAT = 'v1';
const NONCE_BYTES = 16;
const KEY_ID_BYTES = 16;
/** Longest cookie value looked at; a real one is about 200 characters. */
const MAX_COOKIE_CHARS = 1024;

const PayloadSchema = z.strictObject({
  k: z.string().regex(/^[0-9a-f]{32}$/),
  t: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  exp: z.number().int().positive(),
  n: z.string().regex(/^[0-9a-f]{32}$/),
});

export interface Session {
  readonly principal: Principal;
  readonly nonce: string;
  /** Epoch seconds. */
  readonly expiresAt: number;
}

export interface IssuedSession {
  readonly cookie: string;
  readonly csrf: string;
  readonly expiresAt: number;
  readonly principal: Principal;
}

const b64url = (bytes: Buffer | string) => Buffer.from(bytes).toString('base64url');
const sameBytes = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b);

export class ConsoleSessions {
  readonly #secret: Buffer;
  readonly #ttlS: number;
  readonly #auth: Authenticator;
  readonly #now: () => number;

  constructor(options: {
    secret: string | undefined;
    ttlS: number;
    auth: Authenticator;
    logger: Logger;
    /** Epoch milliseconds; tests move the clock. */
    now?: () => number;
  }) {
    this.#auth = options.auth;
    this.#ttlS = options.ttlS;
    this.#now = options.now ?? Date.now;
    if (options.secret === undefined) {
      this.#secret = randomBytes(32);
      if (options.auth.enabled) {
        options.logger.warn(
          'QUARRY_CONSOLE_SECRET is not set: console sessions are signed with a random key of this process (they end when it restarts and no other API process accepts them)',
        );
      }
    } else {
      this.#secret = Buffer.from(options.secret, 'utf8');
    }
  }

  get ttlS(): number {
    return this.#ttlS;
  }

  #hmac(label: string, data: string | Buffer): Buffer {
    return createHmac('sha256', this.#secret).update(label).update(data).digest();
  }

  /** The key's name inside a cookie: a keyed digest of its SHA-256, so the cookie reveals nothing. */
  #keyId(keyDigest: Buffer): string {
    return this.#hmac('key:', keyDigest).subarray(0, KEY_ID_BYTES).toString('hex');
  }

  csrfOf(nonce: string): string {
    return b64url(this.#hmac('csrf:', nonce));
  }

  /** A session for an API key (the sign-in form's); 401 for a key that is not configured. */
  issue(key: string): IssuedSession {
    const principal = this.#auth.principalOf(key);
    if (principal === undefined) throw new QuarryError('QUARRY_ERR_UNAUTHORIZED', 'the API key is not valid');
    const nonce = randomBytes(NONCE_BYTES).toString('hex');
    const expiresAt = Math.floor(this.#now() / 1000) + this.#ttlS;
    const payload = b64url(
      JSON.stringify({
        k: this.#keyId(createHash('sha256').update(key).digest()),
        t: principal.tenant,
        exp: expiresAt,
        n: nonce,
      }),
    );
    const signed = `${FORMAT}.${payload}`;
    return {
      cookie: `${signed}.${b64url(this.#hmac('session:', signed))}`,
      csrf: this.csrfOf(nonce),
      expiresAt,
      principal,
    };
  }

  /** The session a cookie value stands for, or null when forged, tampered with, expired or revoked. */
  verify(value: string): Session | null {
    if (value.length > MAX_COOKIE_CHARS) return null;
    const parts = value.split('.');
    if (parts.length !== 3 || parts[0] !== FORMAT) return null;
    const signed = `${parts[0]}.${parts[1]}`;
    if (!sameBytes(Buffer.from(parts[2]!, 'base64url'), this.#hmac('session:', signed))) return null;
    let payload: z.infer<typeof PayloadSchema>;
    try {
      const parsed = PayloadSchema.safeParse(
        JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')),
      );
      if (!parsed.success) return null;
      payload = parsed.data;
    } catch {
      return null;
    }
    if (payload.exp * 1000 <= this.#now()) return null;
    const principal = this.#auth.principalWhere((digest) => this.#keyId(digest) === payload.k);
    if (principal === undefined || principal.tenant !== payload.t) return null;
    return { principal, nonce: payload.n, expiresAt: payload.exp };
  }

  /** 403 QUARRY_ERR_CSRF unless `presented` is the session's token. */
  checkCsrf(session: Session, presented: string | string[] | undefined): void {
    const ok =
      typeof presented === 'string' &&
      sameBytes(Buffer.from(presented, 'utf8'), Buffer.from(this.csrfOf(session.nonce), 'utf8'));
    if (!ok) {
      throw new QuarryError(
        'QUARRY_ERR_CSRF',
        `a write made with the console session needs its CSRF token in the ${CSRF_HEADER} header`,
        { field: CSRF_HEADER },
      );
    }
  }

  /**
   * The session the request's cookie carries, for `scope`: 401 when the cookie is not a valid
   * session, QUARRY_ERR_CSRF for a write without the token, then the key's scope and rate.
   */
  authenticate(request: FastifyRequest, value: string, scope: ApiScope): Session {
    const session = this.verify(value);
    if (session === null) {
      throw new QuarryError(
        'QUARRY_ERR_UNAUTHORIZED',
        'the console session is not valid or has expired: sign in again at /console',
      );
    }
    if (!SAFE_METHODS.has(request.method)) this.checkCsrf(session, request.headers[CSRF_HEADER]);
    this.#auth.authorize(session.principal, scope);
    return session;
  }
}

const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The session cookie's value in a Cookie header, or undefined (also when it is given twice). */
export function sessionCookieOf(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  let found: string | undefined;
  let count = 0;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== SESSION_COOKIE) continue;
    count += 1;
    found = part.slice(eq + 1).trim();
  }
  // Two cookies of one name (one planted for a parent domain, say): trust neither.
  return count === 1 ? found : count > 1 ? '' : undefined;
}

/** The Set-Cookie value for a session (or, with `value` empty and `maxAgeS` 0, its removal). */
export function sessionCookieHeader(value: string, maxAgeS: number, secure: boolean): string {
  return [
    `${SESSION_COOKIE}=${value}`,
    'Path=/',
    `Max-Age=${maxAgeS}`,
    'HttpOnly',
    'SameSite=Strict',
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}
