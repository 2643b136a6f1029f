// Canonical JSON and content hashes. Canonical form: object keys sorted by code point, no
// whitespace, arrays in their given order; two specs that differ only in key order or
// whitespace hash alike, while the order of `groupBy` and `metrics` counts.
import { createHash, type Hash } from 'node:crypto';

export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeysDeep(value));
}

function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort(compareCodePoints)) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeysDeep(v);
    }
    return out;
  }
  return value;
}

/** Orders strings by Unicode code point (= UTF-8 byte order), unlike `<` on UTF-16 units. */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (0xD800-0xDFFF) encode code points above 0xFFFF: they sort after all BMP units.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** An incremental SHA-256 whose digest is cut to 128 bits (32 hex digits). */
export class ContentHash {
  readonly #hash: Hash = createHash('sha256');

  update(part: string | Uint8Array): this {
    this.#hash.update(part);
    return this;
  }

  digest(): string {
    return this.#hash.digest('hex').slice(0, 32);
  }
}

export function contentHash(...parts: (string | Uint8Array)[]): string {
  const h = new ContentHash();
  for (const part of parts) h.update(part);
  return h.digest();
}
