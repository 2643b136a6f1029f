// JSON request bodies kept as bytes. Parsing is deferred to the route, which first hashes the
// exact bytes: a body seen before (same bytes ⇒ same spec ⇒ same result key) is answered from
// the cache without parsing, validating or canonicalizing 5,000 records again.
import { QuarryError } from '../shared/errors.ts';

export class RawJson {
  readonly bytes: Buffer;

  constructor(bytes: Buffer) {
    this.bytes = bytes;
  }

  parse(): unknown {
    try {
      return JSON.parse(this.bytes.toString('utf8'));
    } catch (cause) {
      throw new QuarryError(
        'QUARRY_ERR_BODY_INVALID_JSON',
        `the body is not valid JSON: ${(cause as Error).message}`,
        {
          cause,
        },
      );
    }
  }
}

/** A bounded map from body hashes to result keys, forgetting the oldest entries first. */
export class BodyIndex {
  readonly #max: number;
  readonly #map = new Map<string, string>();

  constructor(max: number) {
    this.#max = max;
  }

  get(bodyHash: string): string | undefined {
    return this.#map.get(bodyHash);
  }

  set(bodyHash: string, resultKey: string): void {
    this.#map.delete(bodyHash);
    this.#map.set(bodyHash, resultKey);
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value!);
  }
}
