// Search indexes loaded in this process, kept in step with the `current` pointer in the queue
// Redis: a notice on the index events channel, a reconnect of the notice connection, or a
// periodic check (notices sent while disconnected are lost) makes the registry read the pointer
// and follow it. A swap replaces one reference: a query already running keeps the version it
// started with, so a rebuild never yields a mixed or empty answer.
//
// The pointer is the truth, not the numbers: the registry takes whatever version the pointer
// names when it differs from the loaded one (the store keeps the pointer moving forward). A
// pointer gone with a tombstone means the collection was deleted: the registry drops it and its
// memory. A pointer gone without a tombstone means the queue Redis lost its data: the registry
// keeps serving what it holds, marked `stored: false`, until a rebuild or a delete.

import type { IndexNotice, IndexStore } from './index-store.ts';
import type { IndexInfo } from './indexing.ts';
import type { KeyScheme } from './keys.ts';
import type { Logger } from './logger.ts';
import { closeRedis, type Redis } from './redis.ts';
import { loadIndex, type SearchIndex } from './search/index.ts';
import { traced } from './tracing.ts';

export interface LoadedIndex {
  readonly collection: string;
  readonly version: number;
  readonly index: SearchIndex;
  readonly info: IndexInfo;
  /** Milliseconds to fetch from Redis and load. */
  readonly loadMs: number;
  /** False when the queue Redis no longer holds this version (it lost its data). */
  readonly stored: boolean;
}

export interface IndexRegistryOptions {
  /** How often loaded collections are checked against Redis besides notices. Default 5000 ms. */
  reconcileMs?: number;
}

export class IndexRegistry {
  readonly #store: IndexStore;
  readonly #subscriber: Redis;
  readonly #channel: string;
  readonly #logger: Logger;
  readonly #loaded = new Map<string, LoadedIndex>();
  readonly #loading = new Map<string, Promise<LoadedIndex | null>>();
  readonly #listeners = new Set<(loaded: LoadedIndex) => void>();
  readonly #dropListeners = new Set<(collection: string) => void>();
  readonly #timer: NodeJS.Timeout;
  #started: Promise<void> | undefined;
  #closed = false;

  /** Takes ownership of `subscriber` (a dedicated connection: it enters subscribe mode). */
  constructor(
    store: IndexStore,
    subscriber: Redis,
    keys: KeyScheme,
    logger: Logger,
    options: IndexRegistryOptions = {},
  ) {
    this.#store = store;
    this.#subscriber = subscriber;
    this.#channel = keys.indexEventsChannel;
    this.#logger = logger;
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.#channel) return;
      let notice: IndexNotice;
      try {
        notice = JSON.parse(message) as IndexNotice;
      } catch (err) {
        this.#logger.warn({ err }, 'ignoring a malformed index notice');
        return;
      }
      if (!this.#loaded.has(notice.collection)) return;
      // A delete notice re-reads the pointer too: a rebuild may already have followed it.
      const version = 'version' in notice ? notice.version : undefined;
      this.refresh(notice.collection, version).catch((err: unknown) => {
        this.#logger.warn({ err, collection: notice.collection }, 'index refresh failed');
      });
    });
    // After a reconnect, notices sent meanwhile are lost: check everything loaded.
    subscriber.on('ready', () => {
      if (this.#started) void this.reconcile();
    });
    this.#timer = setInterval(() => void this.reconcile(), options.reconcileMs ?? 5000);
    this.#timer.unref();
  }

  /** Subscribes to notices; resolves once subscribed. */
  start(): Promise<void> {
    this.#started ??= this.#subscriber.subscribe(this.#channel).then(() => undefined);
    return this.#started;
  }

  /** The loaded version, synchronously, for the hot path; undefined when not loaded. */
  peek(collection: string): LoadedIndex | undefined {
    return this.#loaded.get(collection);
  }

  /** The loaded version, loading the current one first if needed; null when none exists. */
  async get(collection: string): Promise<LoadedIndex | null> {
    return this.#loaded.get(collection) ?? this.#loading.get(collection) ?? this.refresh(collection);
  }

  /**
   * Brings the collection in step with the pointer; with `version`, done at once when exactly
   * that version is loaded (the caller knows it went live). Resolves with what is served after,
   * null when nothing is. Calls for one collection run one after another: a sync that starts
   * while another runs reads the pointer again after it, so no notice is answered by a stale read.
   */
  refresh(collection: string, version?: number): Promise<LoadedIndex | null> {
    const pending = this.#loading.get(collection);
    if (pending !== undefined) {
      return pending.then(
        (l) => (version !== undefined && l?.version === version ? l : this.refresh(collection, version)),
        () => this.refresh(collection, version),
      );
    }
    const have = this.#loaded.get(collection);
    if (version !== undefined && have?.version === version && have.stored) return Promise.resolve(have);
    const work = this.#sync(collection).finally(() => this.#loading.delete(collection));
    this.#loading.set(collection, work);
    return work;
  }

  async #sync(collection: string): Promise<LoadedIndex | null> {
    for (let tries = 0; tries < 5; tries++) {
      const have = this.#loaded.get(collection);
      const pointer = await this.#store.pointer(collection);
      if (this.#closed) return have ?? null;
      if (pointer.version === null) {
        if (have === undefined) return null;
        if (pointer.deleted) return this.#drop(collection, 'deleted');
        if (have.stored) {
          this.#logger.warn(
            { collection, version: have.version },
            'the queue Redis lost this index; serving it from memory until a rebuild or delete',
          );
          this.#loaded.set(collection, { ...have, stored: false });
        }
        return this.#loaded.get(collection)!;
      }
      // Same number and stored: nothing to do. After a loss, a same number is reloaded anyway:
      // it is a new build whose number only happens to match (a Redis clock set back).
      if (have !== undefined && have.version === pointer.version && have.stored) return have;
      const loaded = await this.#load(collection, pointer.version);
      if (loaded !== null) return loaded;
      // Expired or deleted under us: the pointer has moved; read it again.
    }
    return this.#loaded.get(collection) ?? null;
  }

  #load(collection: string, version: number): Promise<LoadedIndex | null> {
    return traced(
      'load index',
      { attributes: { 'quarry.collection': collection, 'quarry.version': version } },
      async (span) => {
        const loaded = await this.#fetchAndLoad(collection, version);
        span?.setAttribute('quarry.index.loaded', loaded !== null);
        if (loaded !== null)
          span?.setAttributes({
            'quarry.index.bytes': loaded.info.bytes,
            'quarry.job.id': loaded.info.jobId,
          });
        return loaded;
      },
    );
  }

  async #fetchAndLoad(collection: string, version: number): Promise<LoadedIndex | null> {
    const started = performance.now();
    const [bytes, info] = await Promise.all([
      this.#store.fetch(collection, version),
      this.#store.info(collection, version),
    ]);
    if (bytes === null || info === null || this.#closed) return null;
    const index = loadIndex(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
    const loaded: LoadedIndex = {
      collection,
      version,
      index,
      info,
      loadMs: performance.now() - started,
      stored: true,
    };
    this.#loaded.set(collection, loaded);
    for (const listener of this.#listeners) listener(loaded);
    this.#logger.info(
      { collection, version, bytes: info.bytes, loadMs: Math.round(loaded.loadMs) },
      'index loaded',
    );
    return loaded;
  }

  #drop(collection: string, why: string): null {
    const had = this.#loaded.get(collection);
    // The only reference this registry keeps: dropping it lets the index's memory be collected
    // once the queries still running on it end.
    this.#loaded.delete(collection);
    for (const listener of this.#dropListeners) listener(collection);
    this.#logger.info({ collection, version: had?.version, why }, 'index dropped');
    return null;
  }

  /** Re-reads the pointer of every loaded collection (one round trip each). */
  async reconcile(): Promise<void> {
    for (const collection of [...this.#loaded.keys()]) {
      try {
        await this.refresh(collection);
      } catch (err) {
        this.#logger.warn({ err, collection }, 'index refresh failed');
      }
    }
  }

  /** Calls `listener` after each version is swapped in; returns the function that stops it. */
  onLoaded(listener: (loaded: LoadedIndex) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Calls `listener` after a collection is dropped (deleted); returns the function that stops it. */
  onDropped(listener: (collection: string) => void): () => void {
    this.#dropListeners.add(listener);
    return () => this.#dropListeners.delete(listener);
  }

  loadedCollections(): LoadedIndex[] {
    return [...this.#loaded.values()];
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await closeRedis(this.#subscriber);
  }
}
