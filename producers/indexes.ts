// The SDK's search collections (client.ts delegates to one of these per client): index builds,
// document updates, collection metadata and deletes, and searches in process from a registry of
// loaded indexes kept current by notices.
import type { QuarryConfig } from '../shared/config.ts';
import { tenantDataRoot } from '../shared/data-files.ts';
import { QuarryError } from '../shared/errors.ts';
import { settingsOf } from '../shared/index-documents.ts';
import { IndexRegistry, type LoadedIndex } from '../shared/index-registry.ts';
import type { IndexStore } from '../shared/index-store.ts';
import { type ParsedUpdate, parseDelete, parseUpsert, updateJob } from '../shared/index-updates.ts';
import {
  COLLECTION_PATTERN,
  checkCollection,
  checkIndexSource,
  type IndexInfo,
  type IndexJobData,
  type IndexRequestInput,
  indexJobId,
  parseIndexRequest,
} from '../shared/indexing.ts';
import { describeIndex } from '../shared/job-description.ts';
import type { KeyScheme } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import type { ObjectStore } from '../shared/object-store.ts';
import { createRoleConnection, type Redis } from '../shared/redis.ts';
import { type SearchOptions, type SearchResult, search as searchIndex } from '../shared/search/index.ts';
import type { QueryResult } from '../shared/search/query.ts';
import { type SearchRequest, searchRequest } from '../shared/search/request.ts';
import type { EnqueueWrite, JobEvent, JobStatus, StatusStore } from '../shared/status.ts';
import type { WaitOptions } from './client.ts';
import { jobError } from './core.ts';

/** What enqueueing an index build answers. */
export interface IndexHandle {
  readonly jobId: string;
  readonly collection: string;
  /** Resolves with the built version's metadata once it is live; rejects with the job's error. */
  wait(options?: WaitOptions): Promise<IndexInfo>;
}

export interface IndexesDeps {
  readonly config: QuarryConfig;
  readonly keys: KeyScheme;
  readonly tenant: string | undefined;
  readonly logger: Logger;
  readonly queueRedis: Redis;
  readonly indexStore: IndexStore;
  readonly status: StatusStore;
  readonly objects: ObjectStore;
  /** Bounds a call by the client's Redis timeout and maps Redis faults to their codes. */
  readonly bounded: <T>(work: Promise<T>) => Promise<T>;
  readonly rethrowRedis: (error: unknown) => never;
  /** The client's durable enqueue (status record, inline data, then the BullMQ job). */
  readonly enqueue: (jobId: string, data: IndexJobData, write: EnqueueWrite) => Promise<void>;
  readonly waitForJob: (jobId: string, options?: WaitOptions) => Promise<JobStatus | JobEvent>;
}

export class Indexes {
  readonly #d: IndexesDeps;
  #registry: IndexRegistry | undefined;
  #registryReady = false;

  constructor(deps: IndexesDeps) {
    this.#d = deps;
  }

  index(collection: string, request: IndexRequestInput | unknown): Promise<IndexHandle> {
    return this.#d.bounded(this.#index(collection, request));
  }

  async #index(collection: string, request: IndexRequestInput | unknown): Promise<IndexHandle> {
    const { config, tenant } = this.#d;
    const parsed = parseIndexRequest(collection, request, config);
    // What can be checked before the job exists is: a bad source is a 4xx, not a failed job.
    const source = await checkIndexSource(tenantDataRoot(config, tenant), parsed.job.source, config, {
      objects: this.#d.objects,
      tenant,
    });
    const data: IndexJobData = {
      ...parsed.job,
      source,
      ...(tenant === undefined ? {} : { tenant }),
    };
    return this.#enqueueIndexJob(data, parsed.inlineJson);
  }

  /** upsertDocuments / deleteDocuments with a request body as the API received it. */
  updateDocuments(collection: string, kind: 'upsert' | 'delete', body: unknown): Promise<IndexHandle> {
    const parse = kind === 'upsert' ? parseUpsert : parseDelete;
    return this.#d.bounded(this.#update(parse(collection, body, this.#d.config)));
  }

  async #update(update: ParsedUpdate): Promise<IndexHandle> {
    const { collection } = update;
    const store = this.#d.indexStore;
    const pointer = await store.pointer(collection);
    const header = pointer.version === null ? null : await store.header(collection, pointer.version);
    if (pointer.version === null || header === null) {
      throw new QuarryError('QUARRY_ERR_INDEX_NOT_FOUND', `no index "${collection}"`);
    }
    if (!(await store.hasDocuments(collection, pointer.version))) {
      throw new QuarryError(
        'QUARRY_ERR_INDEX_NO_DOCUMENTS',
        `version ${pointer.version} of "${collection}" was built before versions kept their documents: rebuild it once (POST /v1/indexes/${collection})`,
      );
    }
    return this.#enqueueIndexJob(updateJob(update, settingsOf(header), this.#d.tenant), update.json);
  }

  async #enqueueIndexJob(data: IndexJobData, inlineJson: string | undefined): Promise<IndexHandle> {
    const { collection } = data;
    const jobId = indexJobId();
    const ttlS = this.#d.config.inlineDataTtlS;
    await this.#d.enqueue(jobId, data, {
      resultKey: null,
      collection,
      description: describeIndex(data),
      ...(inlineJson === undefined ? {} : { inline: { json: inlineJson, ttlS } }),
    });
    return {
      jobId,
      collection,
      wait: async (options) => {
        const final = await this.#d.waitForJob(jobId, options);
        if (final.state !== 'completed') throw jobError(jobId, final.error);
        const status = await this.#d.status.get(jobId);
        const info =
          status?.version === undefined ? null : await this.#d.indexStore.info(collection, status.version);
        if (info === null)
          throw new QuarryError('QUARRY_ERR_INTERNAL', `index job ${jobId} completed without a version`);
        return info;
      },
    };
  }

  async info(collection: string): Promise<IndexInfo | null> {
    checkCollection(collection);
    const { indexStore, rethrowRedis } = this.#d;
    const version = await indexStore.current(collection).catch(rethrowRedis);
    return version === null ? null : indexStore.info(collection, version).catch(rethrowRedis);
  }

  async list(): Promise<IndexInfo[]> {
    const names = await this.#d.queueRedis.smembers(this.#d.keys.indexes).catch(this.#d.rethrowRedis);
    const infos = await Promise.all(
      names
        .filter((name) => COLLECTION_PATTERN.test(name))
        .sort()
        .map((name) => this.info(name)),
    );
    return infos.filter((info): info is IndexInfo => info !== null);
  }

  async delete(collection: string): Promise<{ collection: string; version: number | null }> {
    checkCollection(collection);
    const served = this.#registry?.peek(collection) !== undefined;
    const version = await this.#d.bounded(this.#d.indexStore.delete(collection, { evenIfUnknown: served }));
    if (version === null) throw new QuarryError('QUARRY_ERR_INDEX_NOT_FOUND', `no index "${collection}"`);
    // This process stops serving it before answering; the others follow the notice.
    await this.#registry?.refresh(collection);
    return { collection, version: version === 0 ? null : version };
  }

  async loaded(collection: string): Promise<LoadedIndex | null> {
    checkCollection(collection);
    return (await this.registry()).get(collection);
  }

  async search(
    collection: string,
    query: string,
    options: SearchOptions,
  ): Promise<SearchResult & { version: number }> {
    const loaded = await this.#found(collection);
    return { ...searchIndex(loaded.index, query, options), version: loaded.version };
  }

  async query(collection: string, request: SearchRequest): Promise<QueryResult & { version: number }> {
    const loaded = await this.#found(collection);
    return { ...searchRequest(loaded.index, request), version: loaded.version };
  }

  async #found(collection: string): Promise<LoadedIndex> {
    const loaded = await this.loaded(collection);
    if (loaded === null) throw new QuarryError('QUARRY_ERR_INDEX_NOT_FOUND', `no index "${collection}"`);
    return loaded;
  }

  /** The registry once started (synchronously, for hot paths); undefined before. */
  loadedRegistry(): IndexRegistry | undefined {
    return this.#registryReady ? this.#registry : undefined;
  }

  async registry(): Promise<IndexRegistry> {
    if (this.#registry === undefined) {
      const subscriber = createRoleConnection(this.#d.config, 'queue', {
        blocking: true,
        connectionName: 'quarry-indexes',
      });
      subscriber.on('error', (err) => this.#d.logger.warn({ err }, 'index notice connection error'));
      this.#registry = new IndexRegistry(this.#d.indexStore, subscriber, this.#d.keys, this.#d.logger);
    }
    await this.#registry.start();
    this.#registryReady = true;
    return this.#registry;
  }

  async close(): Promise<void> {
    await this.#registry?.close();
  }
}
