// Search indexes loaded in this process, kept current: a notice on the index events channel (or
// a periodic check, in case a notice was missed during a reconnect) makes the registry fetch the
// new version and swap it in. A swap replaces one reference: a query already running keeps the
// version it started with, so a rebuild never yields a mixed or empty answer.

import type { IndexNotice, IndexStore } from './index-store.ts';
import type { IndexInfo } from './indexing.ts';
import type { KeyScheme } from './keys.ts';
import type { Logger } from './logger.ts';
import { closeRedis, type Redis } from './redis.ts';
import { loadIndex, type SearchIndex } from './search/index.ts';

export interface LoadedIndex {
  readonly collection: string;
  readonly version: number;
  readonly index: SearchIndex;
  readonly info: IndexInfo;
  /** Milliseconds to fetch from Redis and load. */
  readonly loadMs: number;
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
      try {
        const notice = JSON.parse(message) as IndexNotice;
        if (this.#loaded.has(notice.collection)) void this.refresh(notice.collection, notice.version);
      } catch (err) {
        this.#logger.warn({ err }, 'ignoring a malformed index notice');
      }
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

  /** The loaded version, synchronously, for the hot path; undefined when not loaded yet. */
  peek(collection: string): LoadedIndex | undefined {
    return this.#loaded.get(collection);
  }

  /** The loaded version, loading the current one first if needed; null when none exists. */
  async get(collection: string): Promise<LoadedIndex | null> {
    return this.#loaded.get(collection) ?? this.refresh(collection);
  }

  /**
   * Loads `version` (default: the current one) unless this version or a newer one is loaded.
   * Concurrent calls for one collection share the work.
   */
  refresh(collection: string, version?: number): Promise<LoadedIndex | null> {
    const pending = this.#loading.get(collection);
    if (pending !== undefined)
      return pending.then((l) =>
        version === undefined || (l && l.version >= version) ? l : this.refresh(collection, version),
      );
    const work = this.#load(collection, version).finally(() => this.#loading.delete(collection));
    this.#loading.set(collection, work);
    return work;
  }

  async #load(collection: string, wanted: number | undefined): Promise<LoadedIndex | null> {
    const have = this.#loaded.get(collection);
    const version = wanted ?? (await this.#store.current(collection));
    if (version === null) return have ?? null;
    if (have !== undefined && have.version >= version) return have;
    const started = performance.now();
    const [bytes, info] = await Promise.all([
      this.#store.fetch(collection, version),
      this.#store.info(collection, version),
    ]);
    if (bytes === null || info === null) {
      // Expired under us: a newer version replaced it; the current pointer says which.
      return wanted === undefined ? (have ?? null) : this.#load(collection, undefined);
    }
    const index = loadIndex(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
    const loaded: LoadedIndex = { collection, version, index, info, loadMs: performance.now() - started };
    const now = this.#loaded.get(collection);
    if (this.#closed || (now !== undefined && now.version >= version)) return now ?? null;
    this.#loaded.set(collection, loaded);
    for (const listener of this.#listeners) listener(loaded);
    this.#logger.info(
      { collection, version, bytes: info.bytes, loadMs: Math.round(loaded.loadMs) },
      'index loaded',
    );
    return loaded;
  }

  async reconcile(): Promise<void> {
    for (const collection of this.#loaded.keys()) {
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
