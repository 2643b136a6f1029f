// Search indexes in the queue Redis: one binary value per version (chunked when large), a
// `current` pointer switched atomically and only forward, a notice on publish, and old versions
// expiring after a grace period in which every API process has moved on (it reloads within a
// second of the notice). Used by workers to publish and by API processes to fetch.
import type { IndexInfo } from './indexing.ts';
import type { KeyScheme } from './keys.ts';
import type { Redis } from './redis.ts';

/** The message published on keys.indexEventsChannel when a version goes live. */
export interface IndexNotice {
  readonly collection: string;
  readonly version: number;
}

export interface IndexStoreOptions {
  /** Largest single Redis value; bigger indexes are split. Default 32 MiB. */
  chunkBytes?: number;
  /** How long a replaced version stays readable. Default 60 s. */
  graceS?: number;
}

// KEYS[1] current, KEYS[2] new meta, KEYS[3] indexes set; ARGV: version, collection, grace,
// channel, notice, chunk key prefix of the collection (`<prefix>:index:<c>:v`)
// Switches `current` only forward; expires whichever version lost (the old current, or this one).
const SWITCH_LUA = `
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
local new = tonumber(ARGV[1])
local function expire_version(v)
  local meta = ARGV[6] .. v
  local chunks = tonumber(redis.call('HGET', meta, 'chunks') or '0')
  redis.call('EXPIRE', meta, ARGV[3])
  for i = 0, chunks - 1 do redis.call('EXPIRE', meta .. ':' .. i, ARGV[3]) end
end
if new <= old then
  expire_version(new)
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
if old > 0 then expire_version(old) end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
`;

export class IndexStore {
  readonly #redis: Redis;
  readonly #keys: KeyScheme;
  readonly #chunkBytes: number;
  readonly #graceS: number;

  constructor(redis: Redis, keys: KeyScheme, options: IndexStoreOptions = {}) {
    this.#redis = redis;
    this.#keys = keys;
    this.#chunkBytes = options.chunkBytes ?? 32 * 1024 * 1024;
    this.#graceS = options.graceS ?? 60;
  }

  /** Reserves the next version number of a collection (versions only grow). */
  async nextVersion(collection: string): Promise<number> {
    return this.#redis.incr(this.#keys.indexSeq(collection));
  }

  /**
   * Writes a version and makes it current unless a newer one already is. Returns true when it
   * went live (and the notice was published).
   */
  async publish(
    collection: string,
    version: number,
    bytes: Uint8Array,
    info: Omit<IndexInfo, 'collection' | 'version' | 'bytes'>,
  ): Promise<boolean> {
    const chunks = Math.max(1, Math.ceil(bytes.length / this.#chunkBytes));
    const meta = this.#keys.indexMeta(collection, version);
    const write = this.#redis.multi();
    for (let i = 0; i < chunks; i++) {
      const part = bytes.subarray(i * this.#chunkBytes, Math.min(bytes.length, (i + 1) * this.#chunkBytes));
      write.set(
        this.#keys.indexChunk(collection, version, i),
        Buffer.from(part.buffer, part.byteOffset, part.length),
      );
    }
    write.hset(meta, {
      chunks: String(chunks),
      bytes: String(bytes.length),
      documents: String(info.documents),
      terms: String(info.terms),
      builtAt: info.builtAt,
      buildMs: String(info.buildMs),
      jobId: info.jobId,
    });
    await write.exec();
    const notice: IndexNotice = { collection, version };
    const live = await this.#redis.eval(
      SWITCH_LUA,
      3,
      this.#keys.indexCurrent(collection),
      meta,
      this.#keys.indexes,
      String(version),
      collection,
      String(this.#graceS),
      this.#keys.indexEventsChannel,
      JSON.stringify(notice),
      this.#keys.indexMeta(collection, 0).slice(0, -1),
    );
    return live === 1;
  }

  async current(collection: string): Promise<number | null> {
    const v = await this.#redis.get(this.#keys.indexCurrent(collection));
    return v === null ? null : Number(v);
  }

  async info(collection: string, version: number): Promise<IndexInfo | null> {
    const h = await this.#redis.hgetall(this.#keys.indexMeta(collection, version));
    if (h.chunks === undefined) return null;
    return {
      collection,
      version,
      documents: Number(h.documents),
      terms: Number(h.terms),
      bytes: Number(h.bytes),
      builtAt: h.builtAt ?? '',
      buildMs: Number(h.buildMs ?? 0),
      jobId: h.jobId ?? '',
    };
  }

  /** The version's bytes in one Buffer (one value: as Redis sent it; chunked: joined once). */
  async fetch(collection: string, version: number): Promise<Buffer | null> {
    const chunks = Number(await this.#redis.hget(this.#keys.indexMeta(collection, version), 'chunks'));
    if (!chunks) return null;
    const parts = await Promise.all(
      Array.from({ length: chunks }, (_, i) =>
        this.#redis.getBuffer(this.#keys.indexChunk(collection, version, i)),
      ),
    );
    if (parts.some((p) => p === null)) return null;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts as Buffer[]);
  }

  async collections(): Promise<string[]> {
    return (await this.#redis.smembers(this.#keys.indexes)).sort();
  }
}
