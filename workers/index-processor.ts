// The index build processor: gathers the documents as one JSON array (inline data from Redis, an
// NDJSON file joined into an array, or a Parquet file exported by DuckDB), builds the BM25 index
// on a worker thread, publishes it as a new version and marks the job completed.
import { type FileHandle, open, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Job } from 'bullmq';
import type { QuarryConfig } from '../shared/config.ts';
import { type DataFile, tenantDataRoot, tooLarge, withDataFile } from '../shared/data-files.ts';
import { QuarryError } from '../shared/errors.ts';
import { type IndexSettings, projectedFields } from '../shared/index-documents.ts';
import { IndexStore } from '../shared/index-store.ts';
import { checkIndexJobData, type IndexJobData } from '../shared/indexing.ts';
import type { KeyScheme } from '../shared/keys.ts';
import type { Logger } from '../shared/logger.ts';
import type { WorkerMetrics } from '../shared/metrics.ts';
import { checkBucketScope, parseObjectUrl } from '../shared/object-store.ts';
import type { Redis } from '../shared/redis.ts';
import { readHeader } from '../shared/search/index.ts';
import { traced } from '../shared/tracing.ts';
import type { DuckDBEngine } from './engines/duckdb.ts';
import type { UpdateInput } from './index-build-thread.ts';
import type { IndexBuilder } from './index-builder.ts';
import { type Built, createUpdater } from './index-update-order.ts';
import { refuseEnded, runAttempt } from './job-attempt.ts';
import type { JobScope } from './job-scope.ts';
import type { ObjectCache } from './object-cache.ts';

export interface IndexProcessorDeps {
  config: QuarryConfig;
  queueRedis: Redis;
  /** Warm build threads (index-builder.ts). */
  builder: IndexBuilder;
  duckdb: DuckDBEngine;
  logger: Logger;
  /** The worker's metrics; absent, nothing is observed. */
  metrics?: WorkerMetrics;
  /** s3:// sources: the host's object cache. */
  objects?: ObjectCache;
}

export interface IndexJobResult {
  collection: string;
  version: number;
  live: boolean;
  documents: number;
  buildMs: number;
}

/** Joins NDJSON lines into one JSON array without parsing them (the build thread parses). */
export function ndjsonToArray(text: Buffer): Buffer {
  const parts: Buffer[] = [Buffer.from('[')];
  let start = 0;
  let first = true;
  while (start < text.length) {
    let end = text.indexOf(10, start);
    if (end === -1) end = text.length;
    let lineEnd = end;
    if (lineEnd > start && text[lineEnd - 1] === 13) lineEnd--;
    const line = text.subarray(start, lineEnd);
    if (line.some((b) => b !== 32 && b !== 9)) {
      if (!first) parts.push(Buffer.from(','));
      parts.push(line);
      first = false;
    }
    start = end + 1;
  }
  parts.push(Buffer.from(']'));
  return Buffer.concat(parts);
}

const LIMIT_NAME = 'QUARRY_MAX_INDEX_SOURCE_BYTES';
const CHUNK_BYTES = 4 << 20;

/**
 * Reads an open file to its end in chunks, stopping when `signal` aborts (cancel, hard timeout)
 * and as soon as it passes `limit` bytes: a file that grew after it was checked is refused
 * without being read whole.
 */
export async function readBounded(
  handle: FileHandle,
  limit: number,
  signal: AbortSignal,
  name: string,
  field = 'source.path',
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    signal.throwIfAborted();
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, limit + 1 - total));
    const { bytesRead } = await handle.read(chunk, 0, chunk.length, total);
    if (bytesRead === 0) break;
    total += bytesRead;
    if (total > limit) throw tooLarge(field, name, total, limit, LIMIT_NAME);
    chunks.push(chunk.subarray(0, bytesRead));
  }
  signal.throwIfAborted();
  return Buffer.concat(chunks, total);
}

export function createIndexProcessor(deps: IndexProcessorDeps) {
  const { config, queueRedis, duckdb, metrics, objects } = deps;

  async function documentsOf(
    job: Job<IndexJobData>,
    jobId: string,
    keys: KeyScheme,
    signal: AbortSignal,
  ): Promise<Buffer> {
    const { source } = job.data;
    if (source.kind === 'inline') {
      const data = await queueRedis.getBuffer(keys.inlineData(jobId));
      if (data === null) {
        throw new QuarryError(
          'QUARRY_ERR_DATASET_MISSING',
          'the inline documents of this job expired before it ran',
        );
      }
      return data;
    }
    if (source.kind === 'update') throw new Error('an update has no documents of its own');
    const limit = config.maxIndexSourceBytes;
    const name = source.kind === 'object' ? source.url : source.path;
    const field = source.kind === 'object' ? 'source.url' : 'source.path';
    const read = async (file: DataFile) => {
      if (source.format === 'ndjson') {
        return ndjsonToArray(await readBounded(file.handle, limit, signal, name, field));
      }
      const spool = path.join(config.spoolDir, `${jobId}-${process.pid}.json`);
      try {
        await duckdb.exportJsonArray(file.readPath, spool, signal);
        // Parquet is compressed: the JSON it becomes is bounded like an NDJSON source.
        const spooled = await open(spool, 'r');
        try {
          return await readBounded(spooled, limit, signal, name, field);
        } finally {
          await spooled.close();
        }
      } finally {
        await unlink(spool).catch(() => undefined);
      }
    };
    if (source.kind === 'object') {
      if (objects === undefined) throw new Error('this worker has no object cache');
      // Defence in depth: the producer checked the tenant's buckets; a forged payload is refused.
      checkBucketScope(config, job.data.tenant, parseObjectUrl(source.url, field), field);
      const cached = await objects.open(source, {
        field,
        format: source.format,
        maxBytes: limit,
        maxBytesName: LIMIT_NAME,
        signal,
      });
      metrics?.objectFetch.observe({ cache: cached.hit ? 'hit' : 'miss' }, cached.fetchMs / 1000);
      try {
        return await read(cached.file);
      } finally {
        await cached.file.close();
      }
    }
    return withDataFile(
      tenantDataRoot(config, job.data.tenant),
      source.path,
      { field, format: source.format, maxBytes: limit, maxBytesName: LIMIT_NAME },
      read,
    );
  }

  const update = createUpdater({
    queueRedis,
    logger: deps.logger,
    build: (...args) => buildAndPublish(...args),
  });

  async function attempt(
    job: Job<IndexJobData>,
    jobId: string,
    signal: AbortSignal,
    scope: JobScope,
  ): Promise<IndexJobResult> {
    const { keys, status } = scope;
    const store = new IndexStore(queueRedis, keys, {
      graceS: config.indexGraceS,
      buildingMs: config.indexTimeoutMs + 60_000,
    });
    const {
      collection,
      idField,
      fields,
      store: stored,
      boosts,
      analyzer,
      filterable,
      sortable,
      typos,
    } = job.data;
    if ((await queueRedis.exists(keys.cancelFlag(jobId))) === 1) {
      throw new QuarryError('QUARRY_ERR_JOB_CANCELLED', 'the index job was cancelled');
    }
    // Earlier attempts: failed ones (attemptsMade) and crashed ones (stalls). Not attemptsStarted:
    // BullMQ counts a job sent back unrun (a heavy slot or a tenant lease refused) as a start.
    const start = await status.active(jobId, job.attemptsMade + job.stalledCounter + 1);
    if (start.ended !== null) {
      refuseEnded(start.ended, 'index');
      // Built and published by an earlier attempt: this one publishes nothing.
      return { collection, version: start.version ?? 0, live: false, documents: 0, buildMs: 0 };
    }
    const settings: IndexSettings = {
      idField,
      fields,
      store: stored,
      ...(boosts === undefined ? {} : { boosts }),
      ...(analyzer === undefined ? {} : { analyzer }),
      ...(filterable === undefined ? {} : { filterable }),
      ...(sortable === undefined ? {} : { sortable }),
      ...(typos === undefined ? {} : { typos }),
    };
    let built: Built;
    if (job.data.source.kind === 'update') {
      built = await update(job, jobId, scope, store, signal);
    } else {
      // Updates reserved after this version wait for it to be published (or to fail).
      const version = await store.nextVersion(collection, { full: true });
      try {
        const documents = await documentsOf(job, jobId, keys, signal);
        built = await buildAndPublish(jobId, collection, scope, store, version, documents, settings, signal);
      } catch (error) {
        await store.settle(collection, version).catch(() => undefined);
        throw error;
      }
    }
    const { version, outcome, docCount, buildMs } = built;
    // The inline documents stay until BullMQ has recorded the completion (workers/worker.ts).
    await status.completed(jobId, null, { version });
    return { collection, version, live: outcome === 'live', documents: docCount, buildMs };
  }

  /**
   * Builds `documents` (a JSON array) as `version` with `settings`, keeping the projected
   * documents, and publishes it; with `base`, only while that version is current ('moved').
   */
  async function buildAndPublish(
    jobId: string,
    collection: string,
    scope: JobScope,
    store: IndexStore,
    version: number,
    /** A JSON array, or an update the build thread applies to the base version's documents. */
    documents: Buffer | UpdateInput,
    settings: IndexSettings,
    signal: AbortSignal,
    base?: number,
    /** The update job whose changes `documents` applies (this job's own, or an earlier one's). */
    applied?: string,
  ): Promise<Built> {
    void scope.status.progress(jobId, { phase: 'build', percent: 20 }).catch(() => undefined);
    const started = performance.now();
    const sourceBytes = Buffer.isBuffer(documents) ? documents.length : documents.stored.byteLength;
    const input = Buffer.isBuffer(documents)
      ? (documents.buffer.slice(documents.byteOffset, documents.byteOffset + documents.length) as ArrayBuffer)
      : documents;
    const indexAttributes = { 'quarry.collection': collection, 'quarry.version': version };
    const { bytes, documents: kept } = await traced(
      'build index',
      { attributes: indexAttributes },
      async (span) => {
        const result = await deps.builder.buildKeeping(
          input,
          { ...settings, signal },
          projectedFields(settings),
        );
        span?.setAttributes({
          'quarry.source.bytes': sourceBytes,
          'quarry.index.bytes': result.bytes.length,
        });
        return result;
      },
    );
    const buildMs = Math.round(performance.now() - started);
    metrics?.indexBuild.observe(buildMs / 1000);
    const header = readHeader(bytes);
    void scope.status
      .progress(jobId, { phase: 'store', percent: 80, count: header.docCount })
      .catch(() => undefined);
    // A cancelled or timed-out build publishes nothing.
    signal.throwIfAborted();
    const outcome = await traced(
      'store index',
      {
        kind: 'client',
        attributes: {
          ...indexAttributes,
          'db.system': 'redis',
          'db.system.name': 'redis',
          'quarry.documents': header.docCount,
        },
      },
      async (span) => {
        const published = await store.publish(
          collection,
          version,
          bytes,
          {
            documents: header.docCount,
            terms: header.termCount,
            builtAt: new Date().toISOString(),
            buildMs,
            jobId: applied ?? jobId,
          },
          {
            documents: kept,
            ...(base === undefined ? {} : { base }),
            ...(applied === undefined ? {} : { applied }),
          },
        );
        span?.setAttribute('quarry.index.outcome', published);
        return published;
      },
    );
    if (outcome === 'deleted') {
      // The collection was deleted after this build reserved its version: the delete wins, and
      // the store kept nothing of this version.
      throw new QuarryError(
        'QUARRY_ERR_INDEX_DELETED',
        `collection "${collection}" was deleted while this build ran; nothing was published`,
      );
    }
    return { version, outcome, docCount: header.docCount, buildMs };
  }

  return async function processIndex(
    job: Job<IndexJobData>,
    _token?: string,
    bullSignal?: AbortSignal,
  ): Promise<IndexJobResult> {
    return runAttempt(deps, 'index', job, bullSignal, async ({ jobId, signal, scope, log }) => {
      checkIndexJobData(job.data);
      const result = await attempt(job, jobId, signal, scope);
      log.info(result, 'index built');
      return result;
    });
  };
}
