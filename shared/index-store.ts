// Search indexes in the queue Redis: one binary value per version (chunked when large), a
// `current` pointer switched atomically and only forward, a notice on publish and on delete, and
// old versions expiring after a grace period in which every API process has moved on (it reloads
// within a second of the notice). Used by workers to publish and by API processes to fetch.
//
// Version numbers never repeat, even after the queue Redis lost its data: a version is
// max(last given out + 1, the Redis clock in milliseconds), so a rebuild on an emptied Redis gets
// a number above every version built before (API processes still holding those take it).
import { DOCUMENTS_ENCODING, READABLE_DOCUMENT_ENCODINGS } from './index-documents.ts';
import type { IndexInfo } from './indexing.ts';
import type { KeyScheme } from './keys.ts';
import type { Redis } from './redis.ts';
import { type IndexHeader, PRELUDE_BYTES, readHeader } from './search/format.ts';
import { OUTBOX_LUA } from './webhook-outbox.ts';

/** The message published on keys.indexEventsChannel when a version goes live or is deleted. */
export type IndexNotice =
  | { readonly collection: string; readonly version: number }
  | { readonly collection: string; readonly deleted: true };

/** What the `current` pointer says, read in one round trip. */
export interface IndexPointer {
  /** The live version; null when there is none. */
  readonly version: number | null;
  /** True when the collection was deleted (a tombstone exists). */
  readonly deleted: boolean;
}

/**
 * What publish() did with a version. 'moved': an update whose base version is no longer current
 * (another build went live meanwhile); nothing of it stays, the caller rebuilds on the new one.
 */
export type PublishOutcome = 'live' | 'stale' | 'deleted' | 'moved';

/** What a version keeps beside its index for document updates, and what an update is based on. */
export interface PublishExtras {
  /** The version's projected documents, encoded (shared/index-documents.ts). */
  documents?: Uint8Array;
  /** An update: go live only while this version is current. */
  base?: number;
  /** The update job whose changes the version applies: it leaves the pending ones as it goes live. */
  applied?: string;
}

/** A document update waiting to be applied, and its place in acknowledgement order. */
export interface PendingUpdate {
  readonly jobId: string;
  readonly seq: number;
}

export interface IndexStoreOptions {
  /** Largest single Redis value; bigger indexes are split. Default 4 MiB (DEFAULT_CHUNK_BYTES). */
  chunkBytes?: number;
  /** How long a replaced version stays readable. Default 60 s. */
  graceS?: number;
  /** How long a deleted collection's tombstone stays. Default 7 days. */
  tombstoneS?: number;
  /** How long a full build's reservation holds updates back at most (a crashed build). Default 1 h. */
  buildingMs?: number;
}

// KEYS[1] seq, KEYS[2] tombstone, KEYS[3] building set; ARGV[1] '1' for a full build, ARGV[2]
// how long (ms) a full build's reservation may stay unpublished (a crashed worker's is pruned).
// The Redis clock, not the caller's: one clock for every worker. Scripts replicate their effects
// (Redis >= 5), so TIME before a write is allowed.
const NEXT_VERSION_LUA = `
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local tomb = tonumber(redis.call('GET', KEYS[2]) or '0')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = string.format('%.0f', math.max(seq + 1, tomb + 1, now))
redis.call('SET', KEYS[1], v)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (now - tonumber(ARGV[2])))
if ARGV[1] == '1' then redis.call('ZADD', KEYS[3], now, v) end
return v
`;

// KEYS[1] building set; ARGV[1] base. 1 when a full build reserved a version above the base and
// has not published it yet: an update based on it must wait for it (and then start from it).
const BUILDING_LUA = `
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if tonumber(m) > tonumber(ARGV[1]) then return 1 end
end
return 0
`;

// Shared by the scripts below: expire or delete one version's meta hash, index chunks and
// document chunks. ARGV[1] is always the collection's version key prefix (`<prefix>:index:<c>:v`).
const VERSION_KEYS_LUA = `
local function each_key(v, fn)
  local meta = ARGV[1] .. v
  local chunks = tonumber(redis.call('HGET', meta, 'chunks') or '0')
  local docs = tonumber(redis.call('HGET', meta, 'docChunks') or '0')
  fn(meta)
  for i = 0, chunks - 1 do fn(meta .. ':' .. i) end
  for i = 0, docs - 1 do fn(meta .. ':d' .. i) end
end
`;

/** How many applied updates a collection remembers (job id -> version), for their own attempts. */
export const APPLIED_UPDATES_KEPT = 100_000;

// KEYS[1] current, KEYS[2] indexes set, KEYS[3] tombstone, KEYS[4] webhook outbox, KEYS[5] the
// tenant's webhooks, KEYS[6] the building set, KEYS[7] the pending updates, KEYS[8] the applied
// ones (the newest APPLIED_UPDATES_KEPT, by version); ARGV: version prefix,
// version, collection, grace, channel, notice, tenant ('' for none), jobId, base version ('' for
// a full build), the update job whose changes this version applies ('' for none: it leaves the
// pending updates as it goes live, in the same step). Switches `current` only forward;
// expires whichever version lost (the old current, or this one); deletes at once a version
// reserved before a delete, and an update whose base is no longer current or that a full build
// reserved between its base and it has not published yet (compare-and-switch: it rebuilds).
// A version that goes live is an `index.live` event for the tenant's webhooks (webhook-outbox.ts).
const SWITCH_LUA = `${VERSION_KEYS_LUA}${OUTBOX_LUA}
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
local new = tonumber(ARGV[2])
local tomb = tonumber(redis.call('GET', KEYS[3]) or '0')
local function expire(key) redis.call('EXPIRE', key, ARGV[4]) end
local function delete(key) redis.call('DEL', key) end
redis.call('ZREM', KEYS[6], ARGV[2])
if new <= tomb then
  each_key(ARGV[2], delete)
  return 'deleted'
end
if ARGV[9] ~= '' then
  local base = tonumber(ARGV[9])
  local busy = base ~= old
  for _, m in ipairs(redis.call('ZRANGE', KEYS[6], 0, -1)) do
    if tonumber(m) > base and tonumber(m) < new then busy = true end
  end
  if busy then
    each_key(ARGV[2], delete)
    return 'moved'
  end
end
if new <= old then
  each_key(ARGV[2], expire)
  return 'stale'
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('DEL', KEYS[3])
if old > 0 then each_key(old, expire) end
outbox_index(KEYS[4], KEYS[5], ARGV[7], ARGV[8], ARGV[3], ARGV[2])
redis.call('PUBLISH', ARGV[5], ARGV[6])
if ARGV[10] ~= '' then
  redis.call('ZREM', KEYS[7], ARGV[10])
  redis.call('ZADD', KEYS[8], ARGV[2], ARGV[10])
  redis.call('ZREMRANGEBYRANK', KEYS[8], 0, -${APPLIED_UPDATES_KEPT + 1})
end
return 'live'
`;

// KEYS[1] update-seq, KEYS[2] pending updates; ARGV[1] job id. Gives the update its place in
// acknowledgement order (kept if it has one) and answers it.
const REGISTER_UPDATE_LUA = `
local at = redis.call('ZSCORE', KEYS[2], ARGV[1])
if at then return tonumber(at) end
local seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], seq, ARGV[1])
return seq
`;

// KEYS[1] current, KEYS[2] indexes set, KEYS[3] tombstone, KEYS[4] seq; ARGV: version prefix,
// collection, tombstone TTL, channel, notice, "1" to delete even without a pointer (a process
// still serves a version the Redis lost). The tombstone holds the last version given out, so a
// build that reserved its version before the delete never goes live (SWITCH_LUA).
const DELETE_LUA = `${VERSION_KEYS_LUA}
local cur = redis.call('GET', KEYS[1])
if not cur and redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 0 and ARGV[6] ~= '1' then return false end
local seq = redis.call('GET', KEYS[4]) or '0'
redis.call('SET', KEYS[3], seq, 'EX', ARGV[3])
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
if cur then each_key(cur, function(key) redis.call('DEL', key) end) end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return cur or '0'
`;

/** Glob characters in a key prefix must not widen a SCAN pattern. */
const globEscape = (s: string) => s.replace(/[*?[\]\\]/g, '\\$&');

/**
 * The size of an index's chunks. A reader fetches every chunk of a version pipelined on one
 * connection; 71 MB (a 100k-document index) came back in 141 ms (p50) as 32 MB chunks and in
 * 109 ms as 4 MB ones (2 and 1 MB: the same as 4) in one run, 168 vs 149 ms in another: ioredis
 * reassembles a bulk reply from socket reads, and a large one costs it more. Readers take any
 * chunk count the metadata gives.
 */
export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;

export class IndexStore {
  readonly #redis: Redis;
  readonly #keys: KeyScheme;
  readonly #chunkBytes: number;
  readonly #graceS: number;
  readonly #tombstoneS: number;
  readonly #buildingMs: number;

  constructor(redis: Redis, keys: KeyScheme, options: IndexStoreOptions = {}) {
    this.#redis = redis;
    this.#keys = keys;
    this.#chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.#graceS = options.graceS ?? 60;
    this.#tombstoneS = options.tombstoneS ?? 7 * 24 * 3600;
    this.#buildingMs = options.buildingMs ?? 3600_000;
  }

  /** `<prefix>:index:<c>:v`: the start of every version key of a collection. */
  #versionPrefix(collection: string): string {
    return this.#keys.indexMeta(collection, 0).slice(0, -1);
  }

  /**
   * Reserves the next version number of a collection: above every one given out before. A full
   * build's (`full`) stays in the building set until it is published or settle()d, so that an
   * update reserved after it waits for it instead of overtaking it.
   */
  async nextVersion(collection: string, options: { full?: boolean } = {}): Promise<number> {
    const v = await this.#redis.eval(
      NEXT_VERSION_LUA,
      3,
      this.#keys.indexSeq(collection),
      this.#keys.indexDeleted(collection),
      this.#keys.indexBuilding(collection),
      options.full ? '1' : '0',
      String(this.#buildingMs),
    );
    return Number(v);
  }

  /** A full build that failed: its reservation no longer holds updates back. */
  async settle(collection: string, version: number): Promise<void> {
    await this.#redis.zrem(this.#keys.indexBuilding(collection), String(version));
  }

  /** Whether a full build reserved a version above `base` and has not published it yet. */
  async buildingAbove(collection: string, base: number): Promise<boolean> {
    const busy = await this.#redis.eval(BUILDING_LUA, 1, this.#keys.indexBuilding(collection), String(base));
    return busy === 1;
  }

  /**
   * Writes a version and makes it current unless a newer one already is ('stale') or the
   * collection was deleted after this version was reserved ('deleted': nothing of it stays).
   * 'live' means it went live and the notice was published.
   */
  async publish(
    collection: string,
    version: number,
    bytes: Uint8Array,
    info: Omit<IndexInfo, 'collection' | 'version' | 'bytes'>,
    extras: PublishExtras = {},
  ): Promise<PublishOutcome> {
    const meta = this.#keys.indexMeta(collection, version);
    const write = this.#redis.multi();
    const chunks = this.#writeChunks(write, bytes, (i) => this.#keys.indexChunk(collection, version, i));
    const { documents } = extras;
    if (documents !== undefined) {
      const docChunks = this.#writeChunks(write, documents, (i) =>
        this.#keys.indexDocChunk(collection, version, i),
      );
      write.hset(meta, {
        docChunks: String(docChunks),
        docBytes: String(documents.length),
        docEncoding: DOCUMENTS_ENCODING,
      });
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
    const outcome = await this.#redis.eval(
      SWITCH_LUA,
      8,
      this.#keys.indexCurrent(collection),
      this.#keys.indexes,
      this.#keys.indexDeleted(collection),
      this.#keys.webhookOutbox,
      this.#keys.webhooks,
      this.#keys.indexBuilding(collection),
      this.#keys.indexUpdates(collection),
      this.#keys.indexUpdatesApplied(collection),
      this.#versionPrefix(collection),
      String(version),
      collection,
      String(this.#graceS),
      this.#keys.indexEventsChannel,
      JSON.stringify(notice),
      this.#keys.tenant ?? '',
      info.jobId,
      extras.base === undefined ? '' : String(extras.base),
      extras.applied ?? '',
    );
    return outcome as PublishOutcome;
  }

  /**
   * Gives a document update its place in acknowledgement order (the producer, once its record
   * and changes are written and before it answers; a worker for a job that has none). Updates are
   * applied in that order (workers/index-processor.ts); answers the place.
   */
  async registerUpdate(collection: string, jobId: string): Promise<number> {
    const seq = await this.#redis.eval(
      REGISTER_UPDATE_LUA,
      2,
      this.#keys.indexUpdateSeq(collection),
      this.#keys.indexUpdates(collection),
      jobId,
    );
    return Number(seq);
  }

  /** An update leaves the pending ones without being applied (failed, cancelled, taken back). */
  async dropUpdate(collection: string, jobId: string): Promise<void> {
    await this.#redis.zrem(this.#keys.indexUpdates(collection), jobId);
  }

  /** The first pending update in acknowledgement order, or null. */
  async firstUpdate(collection: string): Promise<PendingUpdate | null> {
    const [jobId, seq] = await this.#redis.zrange(
      this.#keys.indexUpdates(collection),
      '0',
      '0',
      'WITHSCORES',
    );
    return jobId === undefined ? null : { jobId, seq: Number(seq) };
  }

  /** The version that applied an update (among the newest APPLIED_UPDATES_KEPT), or null. */
  async appliedVersion(collection: string, jobId: string): Promise<number | null> {
    const v = await this.#redis.zscore(this.#keys.indexUpdatesApplied(collection), jobId);
    return v === null ? null : Number(v);
  }

  /** Whether an update is still pending. */
  async isPending(collection: string, jobId: string): Promise<boolean> {
    return (await this.#redis.zscore(this.#keys.indexUpdates(collection), jobId)) !== null;
  }

  /** Queues SETs of `bytes` in chunks of at most chunkBytes; answers the chunk count. */
  #writeChunks(write: ReturnType<Redis['multi']>, bytes: Uint8Array, key: (i: number) => string): number {
    const chunks = Math.max(1, Math.ceil(bytes.length / this.#chunkBytes));
    for (let i = 0; i < chunks; i++) {
      const part = bytes.subarray(i * this.#chunkBytes, Math.min(bytes.length, (i + 1) * this.#chunkBytes));
      write.set(key(i), Buffer.from(part.buffer, part.byteOffset, part.length));
    }
    return chunks;
  }

  /**
   * A version's stored documents (as encoded, shared/index-documents.ts); null when the version
   * is gone or was built before versions kept their documents.
   */
  async documents(collection: string, version: number): Promise<Buffer | null> {
    const meta = this.#keys.indexMeta(collection, version);
    const [chunks, encoding] = await this.#redis.hmget(meta, 'docChunks', 'docEncoding');
    if (!Number(chunks) || typeof encoding !== 'string' || !READABLE_DOCUMENT_ENCODINGS.includes(encoding))
      return null;
    const parts = await Promise.all(
      Array.from({ length: Number(chunks) }, (_, i) =>
        this.#redis.getBuffer(this.#keys.indexDocChunk(collection, version, i)),
      ),
    );
    if (parts.some((p) => p === null)) return null;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts as Buffer[]);
  }

  /** Whether a version keeps its documents (an update can start from it). */
  async hasDocuments(collection: string, version: number): Promise<boolean> {
    const meta = this.#keys.indexMeta(collection, version);
    const [chunks, encoding] = await this.#redis.hmget(meta, 'docChunks', 'docEncoding');
    return (
      Number(chunks) > 0 && typeof encoding === 'string' && READABLE_DOCUMENT_ENCODINGS.includes(encoding)
    );
  }

  /** A version's index header, read from the start of its first chunk; null when it is gone. */
  async header(collection: string, version: number): Promise<IndexHeader | null> {
    const key = this.#keys.indexChunk(collection, version, 0);
    const prelude = await this.#redis.getrangeBuffer(key, 0, PRELUDE_BYTES - 1);
    if (prelude.length < PRELUDE_BYTES) return null;
    const length = prelude.readUInt32LE(8);
    const head = await this.#redis.getrangeBuffer(key, 0, PRELUDE_BYTES + length - 1);
    return readHeader(head);
  }

  /**
   * Deletes a collection: its pointer and live version at once (atomically, with a tombstone and
   * a notice), then the replaced versions still in their grace period. Returns the version that
   * was live (0 when none was stored), or null for an unknown collection. `evenIfUnknown`: delete
   * (tombstone and notice) although Redis has no pointer, for a version only API memory holds.
   */
  async delete(collection: string, options: { evenIfUnknown?: boolean } = {}): Promise<number | null> {
    const notice: IndexNotice = { collection, deleted: true };
    const prefix = this.#versionPrefix(collection);
    const result = (await this.#redis.eval(
      DELETE_LUA,
      4,
      this.#keys.indexCurrent(collection),
      this.#keys.indexes,
      this.#keys.indexDeleted(collection),
      this.#keys.indexSeq(collection),
      prefix,
      collection,
      String(this.#tombstoneS),
      this.#keys.indexEventsChannel,
      JSON.stringify(notice),
      options.evenIfUnknown ? '1' : '0',
    )) as string | null;
    if (result === null) return null;
    const tomb = Number(await this.#redis.get(this.#keys.indexDeleted(collection)));
    await this.#deleteVersionsUpTo(prefix, tomb);
    return Number(result);
  }

  /**
   * Removes the keys of versions <= `last` (replaced ones in their grace period, builds that lost
   * to the delete). Versions above it belong to builds that started after the delete: kept.
   */
  async #deleteVersionsUpTo(prefix: string, last: number): Promise<void> {
    const pattern = `${globEscape(prefix)}*`;
    let cursor = '0';
    do {
      const [next, keys] = await this.#redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      const doomed = keys.filter((key) => {
        const version = Number(key.slice(prefix.length).split(':')[0]);
        return Number.isInteger(version) && version <= last;
      });
      if (doomed.length > 0) await this.#redis.unlink(...doomed);
    } while (cursor !== '0');
  }

  async current(collection: string): Promise<number | null> {
    const v = await this.#redis.get(this.#keys.indexCurrent(collection));
    return v === null ? null : Number(v);
  }

  /** The pointer and whether the collection was deleted, in one round trip. */
  async pointer(collection: string): Promise<IndexPointer> {
    const replies = await this.#redis
      .multi()
      .get(this.#keys.indexCurrent(collection))
      .exists(this.#keys.indexDeleted(collection))
      .exec();
    if (replies === null) throw new Error('index pointer read was aborted');
    for (const [err] of replies) if (err) throw err;
    const [[, current], [, deleted]] = replies as [[null, string | null], [null, number]];
    return { version: current === null ? null : Number(current), deleted: deleted === 1 };
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
