// Each worker host's cache of objects fetched from object storage (QUARRY_OBJECT_CACHE_DIR),
// shared by every worker process on the host and bounded by QUARRY_OBJECT_CACHE_BYTES (least
// recently used first out). An object is stored under a name derived from what the producer
// fingerprinted (URL, ETag, size, version id): a changed object is a different file, so a cached
// file is never stale. Two processes wanting the same object at once: one takes the object's lock
// file (O_EXCL) and downloads into a temp file it renames into place when complete; the other
// waits for the lock to go, then reads the same file. A download never shows half-written under
// the final name, and a lock left by a dead process is taken over once its heartbeat stops.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, stat, unlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type DataFile, openDataFile, tooLarge } from '../shared/data-files.ts';
import type { FileFormat } from '../shared/datasets.ts';
import { isQuarryError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { changed, type ObjectFingerprint, type ObjectStore } from '../shared/object-store.ts';

/** A lock older than this without a heartbeat belongs to a process that died mid-download. */
export const STALE_LOCK_MS = 30_000;
const HEARTBEAT_MS = 5_000;
const POLL_MS = 25;
/** Temp files older than this are leftovers of a dead download; eviction removes them. */
const STALE_TEMP_MS = 3_600_000;

export interface CachedObject {
  /** The open cached file: engines read `file.readPath`. Close it when done. */
  readonly file: DataFile;
  /** True when the file was in the cache already (no request to the object store). */
  readonly hit: boolean;
  /** Milliseconds spent getting the file (the download on a miss, the lookup on a hit). */
  readonly fetchMs: number;
}

export interface OpenObjectOptions {
  readonly field: string;
  readonly format: FileFormat;
  readonly maxBytes?: number;
  readonly maxBytesName?: string;
  readonly signal?: AbortSignal;
}

export interface ObjectCacheOptions {
  readonly dir: string;
  readonly maxBytes: number;
  readonly store: ObjectStore;
  readonly logger?: Logger;
}

/** The file name of an object in the cache: its fingerprint, hashed. */
export function cacheName(fp: ObjectFingerprint): string {
  return createHash('sha256')
    .update(`quarry/object/v1\n${fp.url}\n${fp.etag}\n${fp.size}\n${fp.versionId ?? ''}`)
    .digest('hex')
    .slice(0, 40);
}

export class ObjectCache {
  readonly dir: string;
  readonly maxBytes: number;
  readonly #objects: string;
  readonly #temp: string;
  readonly #locks: string;
  readonly #store: ObjectStore;
  readonly #logger: Logger | undefined;
  #ready: Promise<void> | undefined;

  constructor(options: ObjectCacheOptions) {
    this.dir = path.resolve(options.dir);
    this.maxBytes = options.maxBytes;
    this.#objects = path.join(this.dir, 'objects');
    this.#temp = path.join(this.dir, 'tmp');
    this.#locks = path.join(this.dir, 'locks');
    this.#store = options.store;
    this.#logger = options.logger;
  }

  /** Where the cached files are: engines must be allowed to read there. */
  get objectsDir(): string {
    return this.#objects;
  }

  /**
   * The object as an open, checked local file (magic bytes, size): from the cache, or fetched
   * into it. QUARRY_ERR_DATASET_CHANGED when the store no longer has the fingerprinted object.
   */
  async open(fp: ObjectFingerprint, options: OpenObjectOptions): Promise<CachedObject> {
    const started = performance.now();
    const { field, signal } = options;
    if (options.maxBytes !== undefined && fp.size > options.maxBytes) {
      throw tooLarge(field, fp.url, fp.size, options.maxBytes, options.maxBytesName);
    }
    await this.#ensureDirs();
    const name = cacheName(fp);
    const elapsed = () => Math.round((performance.now() - started) * 1000) / 1000;
    for (;;) {
      signal?.throwIfAborted();
      const cached = await this.#openCached(name, fp, options);
      if (cached !== undefined) return { file: cached, hit: true, fetchMs: elapsed() };
      const lock = await this.#tryLock(name);
      if (lock === undefined) {
        await sleep(POLL_MS);
        continue;
      }
      try {
        // Another process may have finished the same object between our look and our lock.
        const again = await this.#openCached(name, fp, options);
        if (again !== undefined) return { file: again, hit: true, fetchMs: elapsed() };
        await this.#download(fp, name, field, signal);
        const file = await this.#openCached(name, fp, options);
        if (file === undefined) throw new Error(`object cache: ${name} vanished right after its download`);
        // Held open already: evicting it now (an object larger than the bound) frees it at close.
        await this.evict();
        const fetchMs = elapsed();
        this.#logger?.info({ url: fp.url, bytes: fp.size, fetchMs }, 'object fetched into the cache');
        return { file, hit: false, fetchMs };
      } finally {
        await lock.release();
      }
    }
  }

  /** Removes least recently used files until the cache holds at most maxBytes. */
  async evict(): Promise<{ removed: number; bytes: number }> {
    await this.#ensureDirs();
    const entries: { file: string; size: number; used: number }[] = [];
    for (const name of await readdir(this.#objects)) {
      const file = path.join(this.#objects, name);
      const info = await stat(file).catch(() => undefined);
      if (info?.isFile()) entries.push({ file, size: info.size, used: info.mtimeMs });
    }
    let bytes = entries.reduce((sum, e) => sum + e.size, 0);
    let removed = 0;
    entries.sort((a, b) => a.used - b.used);
    for (const entry of entries) {
      if (bytes <= this.maxBytes) break;
      await unlink(entry.file).catch(() => undefined);
      bytes -= entry.size;
      removed++;
    }
    const now = Date.now();
    for (const name of await readdir(this.#temp)) {
      const file = path.join(this.#temp, name);
      const info = await stat(file).catch(() => undefined);
      if (info !== undefined && now - info.mtimeMs > STALE_TEMP_MS) await unlink(file).catch(() => undefined);
    }
    if (removed > 0) this.#logger?.debug({ removed, bytes }, 'object cache evicted');
    return { removed, bytes };
  }

  async #openCached(
    name: string,
    fp: ObjectFingerprint,
    options: OpenObjectOptions,
  ): Promise<DataFile | undefined> {
    let file: DataFile;
    try {
      file = await openDataFile(this.#objects, name, {
        field: options.field,
        format: options.format,
        ...(options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes }),
        ...(options.maxBytesName === undefined ? {} : { maxBytesName: options.maxBytesName }),
      });
    } catch (error) {
      if (isQuarryError(error) && error.code === 'QUARRY_ERR_DATASET_NOT_FOUND') return undefined;
      throw error;
    }
    if (file.size !== fp.size) {
      // Not what was fingerprinted (cannot happen through this class): drop it and fetch again.
      await file.close();
      await unlink(path.join(this.#objects, name)).catch(() => undefined);
      return undefined;
    }
    // Recently used: the LRU order is the files' mtimes.
    const now = new Date();
    await utimes(path.join(this.#objects, name), now, now).catch(() => undefined);
    return file;
  }

  async #download(fp: ObjectFingerprint, name: string, field: string, signal?: AbortSignal): Promise<void> {
    const temp = path.join(this.#temp, `${name}.${process.pid}.${randomBytes(4).toString('hex')}`);
    try {
      const body = await this.#store.get(fp, field, signal);
      let received = 0;
      const counted = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          received += chunk.length;
          // More bytes than the HEAD said: not the object that was fingerprinted.
          if (received > fp.size) done(changed(fp.url, field));
          else done(null, chunk);
        },
      });
      await pipeline(body, counted, createWriteStream(temp, { flags: 'wx' }), signal ? { signal } : {});
      if (received !== fp.size) throw changed(fp.url, field);
      await rename(temp, path.join(this.#objects, name));
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw error;
    }
  }

  /** The object's lock, or undefined while another live process holds it. */
  async #tryLock(name: string): Promise<{ release(): Promise<void> } | undefined> {
    const lockFile = path.join(this.#locks, `${name}.lock`);
    try {
      const handle = await open(lockFile, 'wx');
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const info = await stat(lockFile).catch(() => undefined);
      if (info !== undefined && Date.now() - info.mtimeMs > STALE_LOCK_MS) {
        this.#logger?.warn({ lockFile }, 'object cache: taking over a lock whose holder stopped');
        await unlink(lockFile).catch(() => undefined);
      }
      return undefined;
    }
    const heartbeat = setInterval(() => {
      const now = new Date();
      void utimes(lockFile, now, now).catch(() => undefined);
    }, HEARTBEAT_MS);
    heartbeat.unref();
    return {
      async release() {
        clearInterval(heartbeat);
        await unlink(lockFile).catch(() => undefined);
      },
    };
  }

  #ensureDirs(): Promise<void> {
    this.#ready ??= Promise.all(
      [this.#objects, this.#temp, this.#locks].map((d) => mkdir(d, { recursive: true })),
    ).then(() => undefined);
    return this.#ready;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
