// An in-process LRU of result envelopes' bytes in front of the cache Redis. Results are content
// addressed, so an entry can never be stale in content; it is dropped after a short local TTL
// so the API's answers follow Redis expiry closely. Bounded by bytes.
/**
 * The key of a tenant's entry in the API's local caches (results, conversions): a tenant never
 * reads bytes another tenant stored. `undefined` is the API's own client (keys off).
 */
export function tenantKey(tenant: string | undefined, key: string): string {
  return `${tenant ?? ''}/${key}`;
}

export class ResultCache {
  readonly #maxBytes: number;
  readonly #ttlMs: number;
  readonly #entries = new Map<string, { bytes: Buffer; expiresAt: number }>();
  #bytes = 0;

  constructor(options: { maxBytes: number; ttlMs: number }) {
    this.#maxBytes = options.maxBytes;
    this.#ttlMs = options.ttlMs;
  }

  get(key: string): Buffer | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#entries.delete(key);
    if (entry.expiresAt <= Date.now()) {
      this.#bytes -= entry.bytes.length;
      return undefined;
    }
    this.#entries.set(key, entry); // most recently used goes last
    return entry.bytes;
  }

  set(key: string, bytes: Buffer): void {
    // One result larger than a quarter of the budget would evict too much: serve it from Redis.
    if (bytes.length > this.#maxBytes / 4) return;
    const old = this.#entries.get(key);
    if (old !== undefined) {
      this.#entries.delete(key);
      this.#bytes -= old.bytes.length;
    }
    this.#entries.set(key, { bytes, expiresAt: Date.now() + this.#ttlMs });
    this.#bytes += bytes.length;
    for (const [k, entry] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#entries.delete(k);
      this.#bytes -= entry.bytes.length;
    }
  }

  get size(): number {
    return this.#entries.size;
  }
}
