// The SDK apps import: createQuarry(options) → aggregate / status / result / close.
// It is also the producer the API uses, so both enqueue the same way: validate and address the
// spec, answer from the cache when the result exists, otherwise store inline data, mark the
// job queued and add it to BullMQ under a job id derived from the result key (identical
// requests in flight share one job).
import type { Queue } from 'bullmq';
import type { Activity } from '../shared/activity.ts';
import {
  type AddressedAggregation,
  type AggregationJobData,
  type AggregationSpecInput,
  addressAggregation,
  parseAggregation,
  type ResultEnvelope,
} from '../shared/aggregation.ts';
import { type CloseStep, runCloseSteps } from '../shared/close-steps.ts';
import type { QuarryConfig } from '../shared/config.ts';
import { tenantDataRoot } from '../shared/data-files.ts';
import { inspectFile } from '../shared/datasets.ts';
import { QuarryError } from '../shared/errors.ts';
import {
  DEFAULT_PRIORITY,
  fairnessEnabled,
  placeJob,
  QUOTA_RETRY_AFTER_S,
  tenantPolicy,
  tenantUsage,
} from '../shared/fairness.ts';
import type { IndexRegistry, LoadedIndex } from '../shared/index-registry.ts';
import { IndexStore } from '../shared/index-store.ts';
import type { IndexInfo, IndexJobData, IndexRequestInput } from '../shared/indexing.ts';
import { describeAggregation } from '../shared/job-description.ts';
import { jobOptions } from '../shared/job-options.ts';
import {
  JOB_ID_PATTERN,
  type KeyScheme,
  keyScheme,
  QUEUE_NAMES,
  type QueueName,
  RESULT_KEY_PATTERN,
  TENANT_PATTERN,
} from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import { checkBucketScope, parseObjectUrl } from '../shared/object-store.ts';
import { checkSpecColumns } from '../shared/plan.ts';
import {
  type CacheConnection,
  closeRedis,
  createRoleConnection,
  cutRedis,
  type Redis,
} from '../shared/redis.ts';
import { rethrowRedis } from '../shared/redis-errors.ts';
import { envelopeAs, type ResultFormat } from '../shared/result-formats.ts';
import type { SearchOptions, SearchResult } from '../shared/search/index.ts';
import type { QueryResult } from '../shared/search/query.ts';
import type { SearchRequest } from '../shared/search/request.ts';
import {
  type EnqueueWrite,
  isFinalState,
  type JobEvent,
  type JobStatus,
  StatusStore,
} from '../shared/status.ts';
import { tracer } from '../shared/tracing.ts';
import { type BatchSubmission, type Settled, submitBatch } from './batch.ts';
import { type ClientCore, createCore, jobError, waitReady } from './core.ts';
import { Jobs, type JobsDeps, readActivity } from './history.ts';
import { Indexes, type IndexHandle } from './indexes.ts';
import { JobEvents, waitForFinal, watchJob } from './job-events.ts';
import { Schedules } from './schedules.ts';
import { Webhooks } from './webhooks.ts';

export interface QuarryOptions {
  /**
   * The tenant this client acts for (see QUARRY_API_KEYS): its jobs, results and collections
   * live under the tenant's keys. Default: none (a single-tenant deployment).
   */
  tenant?: string;
  /** Configuration; default: parsed from `env`. */
  config?: QuarryConfig;
  /** Environment to parse when `config` is not given; default: process.env. */
  env?: Record<string, string | undefined>;
  logger?: Logger;
  /**
   * While a Redis is unreachable: `true` rejects calls at once with QUARRY_ERR_REDIS_UNAVAILABLE;
   * `false` (default) waits for it to come back, up to `redisTimeoutMs` per enqueue.
   */
  failFast?: boolean;
  /** Without failFast: how long an enqueue waits for Redis before failing. Default 10,000 ms. */
  redisTimeoutMs?: number;
}

export interface WaitOptions {
  /** Default 30,000 ms. */
  timeoutMs?: number;
  /** Called with each status change (progress included) while waiting. */
  onEvent?: (event: JobEvent) => void;
}

/** What enqueueing an aggregation answers. */
export interface AggregationHandle {
  readonly jobId: string;
  readonly resultKey: string;
  /** True when the result was already cached: nothing was queued. */
  readonly cached: boolean;
  /** Resolves with the result envelope; rejects with the job's own error code if it fails. */
  wait(options?: WaitOptions): Promise<ResultEnvelope>;
}

/** One spec's answer in aggregateMany: its handle, or the error it alone got. */
export type BatchItem =
  | { readonly ok: true; readonly handle: AggregationHandle }
  | { readonly ok: false; readonly error: Error };

/** The lower-level answer the API uses: the cached envelope's bytes, untouched. */
export interface Submission {
  readonly jobId: string;
  readonly resultKey: string;
  readonly cachedBytes: Buffer | null;
}

export type { IndexHandle } from './indexes.ts';

const DEFAULT_WAIT_MS = 30_000;

export class QuarryClient {
  readonly config: QuarryConfig;
  readonly keys: KeyScheme;
  /** The tenant this client acts for, if any. */
  readonly tenant: string | undefined;
  readonly #core: ClientCore;
  /** True for the client that owns the connections (not a tenant view). */
  readonly #owner: boolean;
  readonly #logger: Logger;
  readonly #queueRedis: Redis;
  readonly #cacheRedis: CacheConnection;
  readonly #aggregateQueue: Queue;
  readonly #indexQueue: Queue;
  readonly #status: StatusStore;
  /** The status store enqueues write through (core.enqueue.redis: WAIT counts its writes). */
  readonly #enqueueStatus: StatusStore;
  readonly #indexStore: IndexStore;
  readonly #indexes: Indexes;
  #scheduleManager: Schedules | undefined;
  #webhooks: Webhooks | undefined;
  #jobs: Jobs | undefined;
  #events: JobEvents | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: QuarryOptions = {}, core?: ClientCore) {
    this.#owner = core === undefined;
    this.#core = core ?? createCore(options);
    this.config = this.#core.config;
    if (options.tenant !== undefined && !TENANT_PATTERN.test(options.tenant)) {
      throw new QuarryError(
        'QUARRY_ERR_CONFIG',
        `tenant: "${options.tenant}" is not 1-64 letters, digits, - or _`,
        {
          field: 'tenant',
        },
      );
    }
    this.tenant = options.tenant;
    this.keys = keyScheme(this.config.prefix, this.tenant);
    this.#logger = this.#core.logger;
    this.#queueRedis = this.#core.queueRedis;
    this.#cacheRedis = this.#core.cacheRedis;
    this.#aggregateQueue = this.#core.aggregateQueue;
    this.#indexQueue = this.#core.indexQueue;
    this.#status = new StatusStore(this.#queueRedis, this.keys, this.config.statusTtlS, this.config);
    this.#enqueueStatus =
      this.#core.enqueue.redis === this.#queueRedis
        ? this.#status
        : new StatusStore(this.#core.enqueue.redis, this.keys, this.config.statusTtlS, this.config);
    this.#indexStore = new IndexStore(this.#queueRedis, this.keys, { graceS: this.config.indexGraceS });
    this.#indexes = new Indexes({
      config: this.config,
      keys: this.keys,
      tenant: this.tenant,
      logger: this.#logger,
      queueRedis: this.#queueRedis,
      indexStore: this.#indexStore,
      status: this.#status,
      objects: this.#core.objects,
      bounded: (work) => this.#boundedByRedis(work),
      rethrowRedis: this.#rethrowRedis,
      enqueue: (jobId, data, write) => this.#enqueueDurably(QUEUE_NAMES.index, jobId, data, write),
      waitForJob: (jobId, options) => this.waitForJob(jobId, options),
    });
  }

  /**
   * The same client acting for `tenant`: shares the connections, sees only that tenant's jobs,
   * results and collections. Views are cached; closing the owning client closes them.
   */
  forTenant(tenant: string | undefined): QuarryClient {
    if (tenant === this.tenant) return this;
    const key = tenant ?? '';
    let view = this.#core.views.get(key) as QuarryClient | undefined;
    if (view === undefined) {
      view = new QuarryClient({ ...(tenant === undefined ? {} : { tenant }) }, this.#core);
      this.#core.views.set(key, view);
    }
    return view;
  }

  /** Validates a spec and gives it its content address, without touching Redis. */
  async address(input: unknown): Promise<AddressedAggregation> {
    const parsed = parseAggregation(input, this.config);
    if (parsed.dataset.kind === 'inline') {
      checkSpecColumns(parsed.spec, parsed.dataset.data.columns);
      return addressAggregation(parsed, undefined, this.tenant);
    }
    if (parsed.dataset.kind === 'object') {
      // The tenant's buckets only (403); then a HEAD: ETag, size and version id go in the key.
      const { url, format } = parsed.dataset;
      checkBucketScope(this.config, this.tenant, parseObjectUrl(url, 'dataset.url'), 'dataset.url');
      const object = await this.#core.objects.head(url, format, 'dataset.url');
      return addressAggregation(parsed, object, this.tenant);
    }
    // The tenant's own data root: a path never reaches another tenant's files.
    const { fingerprint: file, columns } = await inspectFile(
      tenantDataRoot(this.config, this.tenant),
      parsed.dataset.path,
      parsed.dataset.format,
      parsed.dataset.fingerprint,
    );
    // Names the file states (CSV header, Parquet footer): an unknown column is a 400 now.
    if (columns !== undefined) checkSpecColumns(parsed.spec, columns);
    return addressAggregation(parsed, file, this.tenant);
  }

  /** Enqueues an aggregation unless its result is cached. */
  async submitAggregation(input: unknown): Promise<Submission> {
    return this.submitAddressed(await this.address(input));
  }

  /** The second half of submitAggregation, for callers that addressed the spec already. */
  async submitAddressed(job: AddressedAggregation): Promise<Submission> {
    return this.#boundedByRedis(this.#submit(job));
  }

  async #submit(job: AddressedAggregation): Promise<Submission> {
    const cachedBytes = await this.#cacheRedis.getBuffer(this.keys.result(job.resultKey));
    if (cachedBytes !== null) return { jobId: job.jobId, resultKey: job.resultKey, cachedBytes };
    const data: AggregationJobData = {
      v: 1,
      resultKey: job.resultKey,
      spec: job.spec,
      ...(this.tenant === undefined ? {} : { tenant: this.tenant }),
    };
    await this.#enqueueDurably(QUEUE_NAMES.aggregate, job.jobId, data, {
      resultKey: job.resultKey,
      priority: job.priority,
      description: describeAggregation(job.spec),
      ...(job.inlineJson === undefined
        ? {}
        : { inline: { json: job.inlineJson, ttlS: this.config.inlineDataTtlS } }),
    });
    return { jobId: job.jobId, resultKey: job.resultKey, cachedBytes: null };
  }

  /**
   * Acknowledged means durable: the record and the inline data are written in one atomic step
   * (a worker that picks the job up finds both), then the BullMQ job is added. When the add
   * fails, what this request wrote is taken back and the error (a Redis code) goes to the caller;
   * if even that fails, or the process dies between the two steps, the record is left queued
   * without a job and the workers' reconciler enqueues it again (workers/reconciler.ts).
   * With QUARRY_QUEUE_MIN_REPLICAS, it then waits for that many replicas to have the writes; if
   * they do not confirm in time, the writes stay (the job may run) and the caller gets a 503.
   */
  async #enqueueDurably(
    name: QueueName,
    jobId: string,
    payload: AggregationJobData | IndexJobData,
    write: EnqueueWrite,
  ): Promise<void> {
    const traces = tracer();
    if (traces === undefined) {
      await this.#enqueueWrites(name, jobId, payload, write);
      return;
    }
    // The job carries this span's context: its wait and attempts join the caller's trace.
    return traces.inSpan(
      `send ${name}`,
      {
        kind: 'producer',
        attributes: {
          'messaging.system': 'bullmq',
          'messaging.operation.type': 'send',
          'messaging.operation.name': 'send',
          'messaging.destination.name': name,
          'messaging.message.id': jobId,
          'quarry.job.id': jobId,
          ...(this.tenant === undefined ? {} : { 'quarry.tenant': this.tenant }),
          ...(write.resultKey ? { 'quarry.result_key': write.resultKey } : {}),
          ...(write.collection === undefined ? {} : { 'quarry.collection': write.collection }),
        },
      },
      (span) => {
        const trace = traces.jobTrace();
        const traced = trace === undefined ? payload : { ...payload, trace };
        return this.#enqueueWrites(name, jobId, traced, write).then((outcome) => {
          span.setAttribute('quarry.enqueue.outcome', outcome);
        });
      },
    );
  }

  /** #enqueueDurably's work; answers whether the job is new or joined a live one. */
  async #enqueueWrites(
    name: QueueName,
    jobId: string,
    payload: AggregationJobData | IndexJobData,
    write: EnqueueWrite,
  ): Promise<string> {
    const type = name === QUEUE_NAMES.index ? 'index' : 'aggregate';
    const { redis, queues, replicas } = this.#core.enqueue;
    const queue = type === 'index' ? queues.index : queues.aggregate;
    // Fair dispatch (shared/fairness.ts): past the tenant's maxQueued nothing is written; a new
    // job gets its place among the tenants' as its BullMQ priority.
    const policy =
      this.tenant !== undefined && fairnessEnabled(this.config)
        ? tenantPolicy(this.config, this.tenant)
        : undefined;
    await replicas.check();
    const outcome = await this.#enqueueStatus.enqueue(jobId, type, {
      ...write,
      payload,
      ...(policy === undefined ? {} : { maxQueued: policy.maxQueued }),
    });
    if (outcome === 'quota') {
      throw new QuarryError(
        'QUARRY_ERR_TENANT_QUOTA',
        `tenant "${this.tenant}" has ${policy?.maxQueued} jobs queued (its maxQueued): retry when some have run`,
        { field: 'maxQueued', retryAfterS: QUOTA_RETRY_AFTER_S },
      );
    }
    // A document update takes its place in acknowledgement order once its record and changes are
    // written (a worker can apply it from then on), before this call answers.
    const update = type === 'index' && isUpdate(payload) && outcome === 'new' ? payload.collection : null;
    try {
      if (update !== null) await this.#indexStore.registerUpdate(update, jobId);
      const options = jobOptions(this.config, jobId);
      // A job joining a live one keeps that one's place: BullMQ ignores an add under a taken id.
      if (policy !== undefined && outcome === 'new') {
        options.priority = await placeJob(redis, this.keys, name, policy, write.priority ?? DEFAULT_PRIORITY);
      }
      await queue.add(name, payload, options);
    } catch (error) {
      if (outcome === 'new') {
        await this.#enqueueStatus.rollback(jobId, name).catch((err: unknown) => {
          this.#logger.warn({ err, jobId }, 'could not take back a failed enqueue; the reconciler will');
        });
        // Left pending, a taken-back update would be skipped anyway (its record is gone).
        if (update !== null) await this.#indexStore.dropUpdate(update, jobId).catch(() => undefined);
      }
      throw error;
    }
    // Also for a job joined, not created: its writes may be this connection's earlier ones.
    await replicas.wait();
    return outcome;
  }

  async aggregate(spec: AggregationSpecInput | unknown): Promise<AggregationHandle> {
    return this.#handle(await this.submitAggregation(spec));
  }

  /**
   * Enqueues many aggregations in a few round trips per `chunkSize` specs (default
   * QUARRY_MAX_BATCH_ITEMS) instead of three or four per spec, each with the guarantees of
   * aggregate() (producers/batch.ts): answers each spec, in order, with its handle or the error
   * it alone got (a bad spec does not stop the others). Identical specs share one job.
   */
  async aggregateMany(
    specs: readonly (AggregationSpecInput | unknown)[],
    options: { chunkSize?: number } = {},
  ): Promise<BatchItem[]> {
    const size = options.chunkSize ?? this.config.maxBatchItems;
    if (!Number.isInteger(size) || size < 1) {
      throw new QuarryError('QUARRY_ERR_VALIDATION', 'chunkSize must be a whole number above 0', {
        field: 'chunkSize',
      });
    }
    const items: BatchItem[] = [];
    for (let start = 0; start < specs.length; start += size) {
      const addressed = await Promise.all(
        specs.slice(start, start + size).map((spec) =>
          this.address(spec).then(
            (job): Settled<AddressedAggregation> => ({ ok: true, value: job }),
            (error: unknown): Settled<AddressedAggregation> => ({ ok: false, error: error as Error }),
          ),
        ),
      );
      const valid = addressed.flatMap((a) => (a.ok ? [a.value] : []));
      const submitted = await this.submitMany(valid);
      let n = 0;
      for (const a of addressed) {
        const s = a.ok ? submitted[n++]! : a;
        items.push(s.ok ? { ok: true, handle: this.#handle(s.value) } : { ok: false, error: s.error });
      }
    }
    return items;
  }

  /** The second half of aggregateMany, for callers that addressed the specs already (the API). */
  async submitMany(jobs: readonly AddressedAggregation[]): Promise<Settled<BatchSubmission>[]> {
    return submitBatch(
      {
        config: this.config,
        keys: this.keys,
        tenant: this.tenant,
        logger: this.#logger,
        queueRedis: this.#core.enqueue.redis,
        cacheRedis: this.#cacheRedis,
        aggregateQueue: this.#core.enqueue.queues.aggregate,
        status: this.#enqueueStatus,
        replicas: this.#core.enqueue.replicas,
        bounded: (work) => this.#boundedByRedis(work),
        redisError: (error) => {
          try {
            return this.#rethrowRedis(error);
          } catch (mapped) {
            return mapped as Error;
          }
        },
      },
      jobs,
    );
  }

  #handle(submission: Submission): AggregationHandle {
    const { jobId, resultKey, cachedBytes } = submission;
    return {
      jobId,
      resultKey,
      cached: cachedBytes !== null,
      wait: async (options) => {
        if (cachedBytes !== null) return JSON.parse(cachedBytes.toString('utf8')) as ResultEnvelope;
        const bytes = await this.waitForResult(jobId, resultKey, options);
        return JSON.parse(bytes.toString('utf8')) as ResultEnvelope;
      },
    };
  }

  /** Enqueues an index build of `collection`: a new version, live once built. */
  async index(collection: string, request: IndexRequestInput | unknown): Promise<IndexHandle> {
    return this.#indexes.index(collection, request);
  }

  /**
   * Rejects with QUARRY_ERR_REDIS_UNAVAILABLE if Redis stays away longer than redisTimeoutMs;
   * Redis faults become their codes (QUARRY_ERR_REDIS_REFUSED, …_UNAVAILABLE).
   */
  #boundedByRedis<T>(work: Promise<T>): Promise<T> {
    const ms = this.#core.redisTimeoutMs;
    if (ms === undefined) return work.catch(this.#rethrowRedis);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new QuarryError('QUARRY_ERR_REDIS_UNAVAILABLE', `Redis did not answer within ${ms} ms`, {
              retryAfterS: 1,
            }),
          ),
        ms,
      );
    });
    return Promise.race([work.catch(this.#rethrowRedis), timeout]).finally(() => clearTimeout(timer));
  }

  /**
   * Adds documents to `collection` or replaces those of the same id: a build of the next version
   * from the live one plus these (its settings, from its header), with the same job, versioning
   * and hot swap as index(). QUARRY_ERR_INDEX_NOT_FOUND for an unknown collection,
   * QUARRY_ERR_INDEX_NO_DOCUMENTS for a live version built before versions kept their documents.
   */
  async upsertDocuments(collection: string, documents: readonly object[]): Promise<IndexHandle> {
    return this.#indexes.updateDocuments(collection, 'upsert', { documents });
  }

  /** Removes the documents of `ids` from `collection` (unknown ids are ignored); see upsertDocuments. */
  async deleteDocuments(collection: string, ids: readonly (string | number)[]): Promise<IndexHandle> {
    return this.#indexes.updateDocuments(collection, 'delete', { ids });
  }

  /** upsertDocuments / deleteDocuments with a request body as the API received it. */
  async updateDocuments(collection: string, kind: 'upsert' | 'delete', body: unknown): Promise<IndexHandle> {
    return this.#indexes.updateDocuments(collection, kind, body);
  }

  /** Scheduled aggregations of this client's tenant (producers/schedules.ts). */
  get schedules(): Schedules {
    this.#scheduleManager ??= new Schedules({
      config: this.config,
      keys: this.keys,
      tenant: this.tenant,
      queueRedis: this.#queueRedis,
      aggregateQueue: this.#aggregateQueue,
      address: (spec) => this.address(spec),
      resultBytes: (key) => this.resultBytes(key),
    });
    return this.#scheduleManager;
  }

  /** Webhooks of this client's tenant and their delivery logs (producers/webhooks.ts). */
  get webhooks(): Webhooks {
    this.#webhooks ??= new Webhooks({
      config: this.config,
      keys: this.keys,
      tenant: this.tenant,
      queueRedis: this.#queueRedis,
      rethrowRedis: this.#rethrowRedis,
    });
    return this.#webhooks;
  }

  /** Job history and redrive of this client's tenant: `jobs.list(filters)`, `jobs.retry(jobId)`. */
  get jobs(): Jobs {
    this.#jobs ??= new Jobs(this.#jobsDeps());
    return this.#jobs;
  }

  /**
   * Jobs ended per minute by final state and their run-time percentiles over
   * QUARRY_ACTIVITY_WINDOW_S (this tenant's; `all: true`: every tenant's), and the queue depth.
   */
  async activity(options: { all?: boolean } = {}): Promise<Activity> {
    return readActivity(this.#jobsDeps(), options);
  }

  #jobsDeps(): JobsDeps {
    return {
      config: this.config,
      keys: this.keys,
      logger: this.#logger,
      queueRedis: this.#queueRedis,
      queues: { [QUEUE_NAMES.aggregate]: this.#aggregateQueue, [QUEUE_NAMES.index]: this.#indexQueue },
      bounded: (work) => this.#boundedByRedis(work),
      status: (jobId) => this.status(jobId),
      waitForJob: (jobId, options) => this.waitForJob(jobId, options),
    };
  }

  /** The current version's metadata, or null for an unknown collection. */
  async indexInfo(collection: string): Promise<IndexInfo | null> {
    return this.#indexes.info(collection);
  }

  /** Every collection of this client's tenant with its current version's metadata, by name. */
  async listIndexes(): Promise<IndexInfo[]> {
    return this.#indexes.list();
  }

  /**
   * Deletes a collection: its pointer, its versions and (through a notice, and every registry's
   * periodic check) the copies API processes hold. A build that reserved its version before the
   * delete publishes nothing (its job fails with QUARRY_ERR_INDEX_DELETED); a build that starts
   * after it creates the collection anew. Resolves with the version that was live (null when
   * only this process's memory held one, the queue Redis having lost it);
   * QUARRY_ERR_INDEX_NOT_FOUND for an unknown collection.
   */
  async deleteIndex(collection: string): Promise<{ collection: string; version: number | null }> {
    return this.#indexes.delete(collection);
  }

  /**
   * The collection's current index, loaded in this process and kept current by notices (the API
   * serves searches from it; apps may search in process too).
   */
  async loadedIndex(collection: string): Promise<LoadedIndex | null> {
    return this.#indexes.loaded(collection);
  }

  /** Searches in process; QUARRY_ERR_INDEX_NOT_FOUND for an unknown collection. */
  async search(
    collection: string,
    query: string,
    options: SearchOptions = {},
  ): Promise<SearchResult & { version: number }> {
    return this.#indexes.search(collection, query, options);
  }

  /**
   * The full query in process, the body of POST /v1/indexes/:collection/search: phrases,
   * negation, typos, filter, facets, sort, pages, highlights, snippets (shared/search/request.ts).
   * QUARRY_ERR_VALIDATION naming the field for bad input; QUARRY_ERR_INDEX_NOT_FOUND.
   */
  async query(collection: string, request: SearchRequest): Promise<QueryResult & { version: number }> {
    return this.#indexes.query(collection, request);
  }

  /** The registry once started (synchronously, for hot paths); undefined before. */
  loadedRegistry(): IndexRegistry | undefined {
    return this.#indexes.loadedRegistry();
  }

  async indexRegistry(): Promise<IndexRegistry> {
    return this.#indexes.registry();
  }

  /** Waits for a job to finish and returns its result's bytes; rejects with the job's error. */
  async waitForResult(jobId: string, resultKey: string, options: WaitOptions = {}): Promise<Buffer> {
    const final = await this.waitForJob(jobId, options);
    if (final.state !== 'completed') throw jobError(jobId, final.error);
    const bytes = await this.resultBytes(resultKey);
    if (bytes === null) {
      throw new QuarryError(
        'QUARRY_ERR_RESULT_NOT_FOUND',
        `job ${jobId} completed but result ${resultKey} is gone`,
      );
    }
    return bytes;
  }

  /**
   * Resolves with the job's final status (completed or failed). Rejects with
   * QUARRY_ERR_WAIT_TIMEOUT after `timeoutMs`, QUARRY_ERR_JOB_NOT_FOUND for an unknown job.
   */
  async waitForJob(jobId: string, options: WaitOptions = {}): Promise<JobStatus | JobEvent> {
    return waitForFinal(await this.#jobEvents(), this.#status, jobId, {
      ...options,
      timeoutMs: options.timeoutMs ?? DEFAULT_WAIT_MS,
    });
  }

  /**
   * A job's changes as they happen: first its current status, then each event (progress and
   * state), ending after the final state. Ends at once for a finished job; throws
   * QUARRY_ERR_JOB_NOT_FOUND for an unknown one.
   */
  async *watch(jobId: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<JobEvent | JobStatus> {
    yield* watchJob(await this.#jobEvents(), this.#status, jobId, options);
  }

  /** This tenant's queued and running jobs, as fair dispatch counts them (shared/fairness.ts). */
  async usage(): Promise<{ queued: number; active: number }> {
    return tenantUsage(this.#queueRedis, this.keys).catch(this.#rethrowRedis);
  }

  async status(jobId: string): Promise<JobStatus | null> {
    if (!JOB_ID_PATTERN.test(jobId)) return null;
    return this.#status.get(jobId).catch(this.#rethrowRedis);
  }

  async resultBytes(resultKey: string): Promise<Buffer | null> {
    if (!RESULT_KEY_PATTERN.test(resultKey)) return null;
    return this.#cacheRedis.getBuffer(this.keys.result(resultKey)).catch(this.#rethrowRedis);
  }

  /**
   * A result: the envelope (json, the default), or its conversion (shared/result-formats.ts,
   * docs/FORMATS.md): CSV or NDJSON text, Arrow IPC stream bytes. Null when there is none.
   */
  async result(resultKey: string, options?: { format?: 'json' }): Promise<ResultEnvelope | null>;
  async result(resultKey: string, options: { format: 'csv' | 'ndjson' }): Promise<string | null>;
  async result(resultKey: string, options: { format: 'arrow' }): Promise<Uint8Array | null>;
  async result(
    resultKey: string,
    options?: { format?: ResultFormat },
  ): Promise<ResultEnvelope | string | Uint8Array | null>;
  async result(
    resultKey: string,
    options: { format?: ResultFormat } = {},
  ): Promise<ResultEnvelope | string | Uint8Array | null> {
    const bytes = await this.resultBytes(resultKey);
    return bytes === null ? null : envelopeAs(bytes, options.format ?? 'json');
  }

  /**
   * Cancels a job: a queued one is removed from the queue at once; a running one is stopped by
   * the worker holding it (its engine interrupted) and ends `cancelled`, leaving no result.
   * Resolves with the job's status after at most `timeoutMs` (default 5000) of waiting for that;
   * a job that already finished is left as it is. QUARRY_ERR_JOB_NOT_FOUND for an unknown id.
   */
  async cancel(jobId: string, options: { timeoutMs?: number } = {}): Promise<JobStatus> {
    return this.#cancel(jobId, options).catch(this.#rethrowRedis);
  }

  async #cancel(jobId: string, options: { timeoutMs?: number }): Promise<JobStatus> {
    const status = await this.status(jobId);
    if (status === null) throw new QuarryError('QUARRY_ERR_JOB_NOT_FOUND', `no job ${jobId}`);
    if (isFinalState(status.state)) return status;
    // Seen by a worker that picks the job up after this point, before it computes anything.
    await this.#queueRedis.set(this.keys.cancelFlag(jobId), '1', 'EX', Math.max(60, this.config.statusTtlS));
    const queue = status.type === 'index' ? this.#indexQueue : this.#aggregateQueue;
    const job = await queue.getJob(jobId);
    let removed = false;
    if (job !== undefined) {
      try {
        // Fails while a worker holds the job's lock: then it is running, and stopped below.
        await job.remove();
        removed = true;
      } catch {
        removed = false;
      }
    }
    if (removed || job === undefined) {
      // Not in the queue: removed now, or already finished (then its record stays as it is).
      // Its inline data stays (QUARRY_RETRY_DATA_TTL_S) so the job can be retried.
      await this.#status.cancelIfLive(jobId, `the ${status.type} job was cancelled before it ran`);
      return (await this.#status.get(jobId)) ?? status;
    }
    await this.#queueRedis.publish(this.keys.controlChannel, JSON.stringify({ type: 'cancel', jobId }));
    try {
      await this.waitForJob(jobId, { timeoutMs: options.timeoutMs ?? 5000 });
    } catch (error) {
      if (!(error instanceof QuarryError && error.code === 'QUARRY_ERR_WAIT_TIMEOUT')) throw error;
    }
    return (await this.#status.get(jobId)) ?? status;
  }

  /** Rethrows Redis faults as their codes (an arrow: it is passed to `.catch`). */
  readonly #rethrowRedis = (error: unknown): never =>
    rethrowRedis(error, this.#queueRedis.status === 'ready' && this.#cacheRedis.status === 'ready');

  /** Resolves when both Redis connections are up (needed before fail-fast commands). */
  async ready(): Promise<void> {
    await Promise.all(
      [this.#queueRedis, this.#cacheRedis, this.#core.enqueue.redis].map((r) => waitReady(r)),
    );
  }

  /** Round-trips a PING to each Redis role; used by /readyz. */
  async ping(): Promise<{ queue: boolean; cache: boolean }> {
    const ok = (redis: Redis | CacheConnection) =>
      Promise.race([
        redis.ping().then(
          () => true,
          () => false,
        ),
        new Promise<boolean>((r) => setTimeout(r, 1000, false).unref()),
      ]);
    const [queue, cache] = await Promise.all([ok(this.#queueRedis), ok(this.#cacheRedis)]);
    return { queue, cache };
  }

  async #jobEvents(): Promise<JobEvents> {
    if (this.#events === undefined) {
      const subscriber = createRoleConnection(this.config, 'queue', {
        blocking: true,
        connectionName: 'quarry-events',
      });
      subscriber.on('error', (err) => this.#logger.warn({ err }, 'events connection error'));
      this.#events = new JobEvents(subscriber, this.keys, this.#logger);
    }
    await this.#events.ready();
    return this.#events;
  }

  /** Drops every connection at once without waiting for Redis (for a client whose Redis is gone). */
  disconnectNow(): void {
    this.#queueRedis.disconnect();
    this.#cacheRedis.disconnect();
    this.#core.enqueue.redis.disconnect();
    void this.close();
  }

  /** Closing the enqueue connection and its queues, when it is not queueRedis. */
  #enqueueSteps(): CloseStep[] {
    const { redis, queues } = this.#core.enqueue;
    if (redis === this.#queueRedis) return [];
    return [
      ['enqueue queues', () => Promise.all([queues.aggregate.close(), queues.index.close()])],
      ['enqueue redis', () => closeRedis(redis)],
    ];
  }

  /** Closes every connection; safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const own: CloseStep[] = [
        ['events', async () => this.#events?.close()],
        ['indexes', () => this.#indexes.close()],
      ];
      // A tenant view owns only its subscriptions; the owner closes views, then the connections.
      const steps: CloseStep[] = !this.#owner
        ? own
        : [
            ['tenant views', () => Promise.all([...this.#core.views.values()].map((v) => v.close()))],
            ...own,
            ['aggregate queue', () => this.#aggregateQueue.close()],
            ['index queue', () => this.#indexQueue.close()],
            ...this.#enqueueSteps(),
            ['object store', async () => this.#core.objects.close()],
            ['queue redis', () => closeRedis(this.#queueRedis)],
            ['cache redis', () => closeRedis(this.#cacheRedis)],
          ];
      // One budget for all steps (shared/close-steps.ts): a Redis that does not answer cannot
      // hold close(); what is still connected after it is cut.
      await runCloseSteps(steps, this.#logger);
      if (this.#owner) {
        for (const redis of [this.#queueRedis, this.#cacheRedis, this.#core.enqueue.redis]) cutRedis(redis);
      }
    })();
    return this.#closing;
  }
}

export function createQuarry(options: QuarryOptions = {}): QuarryClient {
  return new QuarryClient(options);
}

function isUpdate(payload: AggregationJobData | IndexJobData): payload is IndexJobData {
  return 'collection' in payload && (payload as IndexJobData).source?.kind === 'update';
}
