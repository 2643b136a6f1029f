// API keys, scopes and per-key rate limits. QUARRY_API_KEYS lists `{key, tenant, scopes}`;
// a request presents `Authorization: Bearer <key>`. Keys are compared in constant time (each
// configured key's SHA-256 against the presented key's, with timingSafeEqual). Without keys the
// API is single-tenant and open, which api/main.ts allows only on a loopback address.
import { hash, timingSafeEqual } from 'node:crypto';
import type { ApiKey, ApiScope } from '../shared/config.ts';
import { QuarryError } from '../shared/errors.ts';

export interface Principal {
  /** Index of the key in QUARRY_API_KEYS (rate limits are per key). */
  readonly keyIndex: number;
  readonly tenant: string;
  readonly scopes: ReadonlySet<ApiScope>;
}

/** The key of an `Authorization: Bearer <key>` header, or undefined for any other header. */
export function bearerKey(header: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1];
}

// One-shot hashing: half the cost of a Hash object per request (every authenticated request
// hashes its key; measured in bench/reads.ts).
const digest = (value: string): Buffer => hash('sha256', value, 'buffer');

export class Authenticator {
  readonly #keys: { digest: Buffer; principal: Principal }[];
  readonly #buckets: TokenBucket[];

  constructor(keys: readonly ApiKey[], rate: { perSecond: number; burst: number }) {
    this.#keys = keys.map((k, keyIndex) => ({
      digest: digest(k.key),
      principal: { keyIndex, tenant: k.tenant, scopes: new Set(k.scopes) },
    }));
    this.#buckets = keys.map(() => new TokenBucket(rate.perSecond, rate.burst));
  }

  get enabled(): boolean {
    return this.#keys.length > 0;
  }

  /**
   * The principal for an Authorization header, checked for `scope`; throws 401 without a valid
   * key, 403 without the scope, 429 past the key's rate.
   */
  authenticate(header: string | undefined, scope: ApiScope): Principal {
    const key = bearerKey(header);
    if (key === undefined) {
      throw new QuarryError('QUARRY_ERR_UNAUTHORIZED', 'send an API key: Authorization: Bearer <key>');
    }
    const found = this.principalOf(key);
    if (found === undefined) throw new QuarryError('QUARRY_ERR_UNAUTHORIZED', 'the API key is not valid');
    return this.authorize(found, scope);
  }

  /** The principal of a presented key, or undefined when no configured key matches. */
  principalOf(key: string): Principal | undefined {
    const presented = digest(key);
    let found: Principal | undefined;
    // Every key is compared, found or not, so timing does not tell which one matched.
    for (const k of this.#keys) {
      if (timingSafeEqual(k.digest, presented) && found === undefined) found = k.principal;
    }
    return found;
  }

  /**
   * The principal of the configured key whose digest passes `matches` (a console session names
   * its key by a keyed digest of it), or undefined.
   */
  principalWhere(matches: (keyDigest: Buffer) => boolean): Principal | undefined {
    let found: Principal | undefined;
    for (const k of this.#keys) {
      if (matches(k.digest) && found === undefined) found = k.principal;
    }
    return found;
  }

  /** Whether `principal` holds `scope` (or admin, which implies every scope). */
  permits(found: Principal, scope: ApiScope): boolean {
    return found.scopes.has(scope) || found.scopes.has('admin');
  }

  /** Takes a token from the key's rate: true when granted (nothing is taken otherwise). */
  admit(found: Principal): boolean {
    return this.#buckets[found.keyIndex]!.take() === 0;
  }

  /** Checks `principal` for `scope` (403 without it) and takes from its key's rate (429). */
  authorize(found: Principal, scope: ApiScope): Principal {
    if (!this.permits(found, scope)) {
      throw new QuarryError('QUARRY_ERR_FORBIDDEN', `this API key lacks the "${scope}" scope`);
    }
    const wait = this.#buckets[found.keyIndex]!.take();
    if (wait > 0) {
      const retryAfterS = Math.max(1, Math.ceil(wait / 1000));
      throw new QuarryError(
        'QUARRY_ERR_RATE_LIMITED',
        `rate limit reached for this API key; retry in ${retryAfterS} s`,
        {
          retryAfterS,
        },
      );
    }
    return found;
  }
}

/** A token bucket: `perSecond` tokens a second, at most `burst` saved. 0 per second = no limit. */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  #tokens: number;
  #at = performance.now();

  constructor(perSecond: number, burst: number) {
    this.#rate = perSecond;
    this.#burst = Math.max(1, burst);
    this.#tokens = this.#burst;
  }

  /** The milliseconds until a token is available (0: one is), taking none. */
  wait(): number {
    if (this.#rate <= 0) return 0;
    this.#refill();
    return this.#tokens >= 1 ? 0 : ((1 - this.#tokens) / this.#rate) * 1000;
  }

  /** True while the bucket is full again (nothing taken recently): it can be forgotten. */
  full(): boolean {
    this.#refill();
    return this.#tokens >= this.#burst;
  }

  #refill(): void {
    const now = performance.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) / 1000) * this.#rate);
    this.#at = now;
  }

  /** Takes a token: 0 when granted, else the milliseconds until one is available. */
  take(): number {
    if (this.#rate <= 0) return 0;
    this.#refill();
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return ((1 - this.#tokens) / this.#rate) * 1000;
  }
}

/**
 * Failed attempts counted per client address (console sign-ins): `burst` failures, then one
 * every 1/perSecond s; past that, attempts are refused before the key is even looked at, so a
 * guesser gains nothing by trying faster. At most `maxClients` addresses are tracked (full
 * buckets are dropped first, then the oldest).
 */
export class FailureLimiter {
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #perSecond: number;
  readonly #burst: number;
  readonly #maxClients: number;

  constructor(perSecond: number, burst: number, maxClients: number) {
    this.#perSecond = perSecond;
    this.#burst = burst;
    this.#maxClients = maxClients;
  }

  /** Milliseconds `client` must wait before its next attempt (0: it may try now). */
  wait(client: string): number {
    return this.#buckets.get(client)?.wait() ?? 0;
  }

  /** Counts a failed attempt of `client`. */
  failed(client: string): void {
    let bucket = this.#buckets.get(client);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxClients) this.#evict();
      bucket = new TokenBucket(this.#perSecond, this.#burst);
      this.#buckets.set(client, bucket);
    }
    bucket.take();
  }

  #evict(): void {
    for (const [client, bucket] of this.#buckets) if (bucket.full()) this.#buckets.delete(client);
    if (this.#buckets.size >= this.#maxClients) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest !== undefined) this.#buckets.delete(oldest);
    }
  }
}
