// Result envelopes converted to the other formats (shared/result-formats.ts), cached in the API
// process by tenant, result key and format. Results are content addressed, so a conversion can
// never be stale; entries go after the same short local TTL as the result bytes, and the cache is
// bounded by bytes (QUARRY_API_FORMAT_CACHE_BYTES). Requests for a conversion already under way
// wait for it instead of converting again.
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  type ConvertedFormat,
  convertStored,
  FORMAT_CONTENT_TYPES,
  type ResultFormat,
} from '../shared/result-formats.ts';
import { negotiateFormat } from './accept.ts';
import { ResultCache } from './result-cache.ts';

/** The route options of a result route: read scope, and `?format=`. */
export const RESULT_ROUTE = { config: { scope: 'read', query: ['format'] } } as const;

/**
 * The format a result route answers in (accept.ts). The answer varies by Accept, errors included,
 * so `Vary: Accept` is set before anything can throw.
 */
export function requestedFormat(request: FastifyRequest, reply: FastifyReply): ResultFormat {
  reply.header('vary', 'Accept');
  return negotiateFormat(request.query, request.headers.accept);
}

export class ResultConversions {
  readonly #cache: ResultCache;
  readonly #inFlight = new Map<string, Promise<Buffer>>();

  constructor(options: { maxBytes: number; ttlMs: number }) {
    this.#cache = new ResultCache(options);
  }

  /** The result in `format`, converted from its stored JSON bytes unless cached. */
  async get(scopedKey: string, format: ConvertedFormat, jsonBytes: Buffer): Promise<Buffer> {
    const key = `${scopedKey}/${format}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    const running = this.#inFlight.get(key);
    if (running !== undefined) return running;
    const conversion = convertStored(jsonBytes, format);
    this.#inFlight.set(key, conversion);
    try {
      const bytes = await conversion;
      this.#cache.set(key, bytes);
      return bytes;
    } finally {
      this.#inFlight.delete(key);
    }
  }

  get size(): number {
    return this.#cache.size;
  }
}

/** Sends a result in `format`: the stored bytes as they are for json, else their conversion. */
export async function sendResult(
  reply: FastifyReply,
  conversions: ResultConversions,
  answer: { scopedKey: string; format: ResultFormat; bytes: Buffer },
): Promise<FastifyReply> {
  const { scopedKey, format, bytes } = answer;
  const body = format === 'json' ? bytes : await conversions.get(scopedKey, format, bytes);
  return reply.type(FORMAT_CONTENT_TYPES[format]).send(body);
}
