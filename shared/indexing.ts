// The indexing job's whole contract: the request a client sends (collection, documents inline or
// a file, id field, fields to index and store, boosts), the job payload and the index metadata
// the API reports. The binary index format and the analyzer live in shared/search/.
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { checkJobPayload, validationError } from './aggregation.ts';
import type { QuarryConfig } from './config.ts';
import { openDataFile, tooLarge } from './data-files.ts';
import { checkColumnName } from './datasets.ts';
import { QuarryError } from './errors.ts';
import {
  checkBucketScope,
  type ObjectFingerprint,
  type ObjectStore,
  parseObjectUrl,
} from './object-store.ts';
import { type JobTrace, JobTraceSchema } from './tracing.ts';
import { parseWith } from './zod-messages.ts';

export const COLLECTION_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const INDEX_FILE_FORMATS = ['ndjson', 'parquet'] as const;
export type IndexFileFormat = (typeof INDEX_FILE_FORMATS)[number];

const Field = z.string().min(1).max(256);
export const INDEX_ANALYZERS = ['unicode-words-v1', 'english'] as const;

export const IndexRequestSchema = z.strictObject({
  documents: z.array(z.unknown()).optional(),
  source: z
    .union([
      z.strictObject({ path: z.string().min(1).max(1024), format: z.enum(INDEX_FILE_FORMATS).optional() }),
      // An object in S3-compatible storage (shared/object-store.ts).
      z.strictObject({ url: z.string().min(1).max(2048), format: z.enum(INDEX_FILE_FORMATS).optional() }),
    ])
    .optional(),
  idField: Field,
  fields: z.array(Field).min(1).max(64),
  store: z.array(Field).max(64).default([]),
  boosts: z.record(Field, z.number().positive().max(1000)).optional(),
  filterable: z.array(Field).max(64).optional(),
  sortable: z.array(Field).max(64).optional(),
  typos: z.boolean().optional(),
  /** `unicode-words-v1` (the default) or `english` (plus a Porter stemmer); kept in the index. */
  analyzer: z.enum(INDEX_ANALYZERS).optional(),
});

export type IndexRequestInput = z.input<typeof IndexRequestSchema>;

export interface IndexLimits {
  /** Most documents one index job may carry inline (QUARRY_MAX_INDEX_DOCUMENTS). */
  readonly maxIndexDocuments: number;
  readonly maxInlineBytes: number;
}

export type IndexSource =
  | { readonly kind: 'inline'; readonly documents: number }
  // A document update (shared/index-updates.ts): the changes travel inline like documents.
  | { readonly kind: 'update'; readonly documents: number; readonly ids: number }
  | { readonly kind: 'file'; readonly path: string; readonly format: IndexFileFormat }
  | ({ readonly kind: 'object' } & ObjectFingerprint & { readonly format: IndexFileFormat });

/** A source as a request names it: an object is fingerprinted by checkIndexSource. */
export type IndexSourceRequest =
  | Exclude<IndexSource, { kind: 'object' }>
  | { readonly kind: 'object'; readonly url: string; readonly format: IndexFileFormat };

/** What the BullMQ job carries; inline documents travel beside it under keys.inlineData(jobId). */
export interface IndexJobData {
  readonly v: 1;
  /** The tenant that owns the collection. */
  readonly tenant?: string;
  readonly collection: string;
  readonly idField: string;
  readonly fields: readonly string[];
  readonly store: readonly string[];
  readonly boosts?: Readonly<Record<string, number>>;
  /** Fields filters and facets may name (typed columns in the index). */
  readonly filterable?: readonly string[];
  /** Fields hits may be sorted by. */
  readonly sortable?: readonly string[];
  /** Build what typo tolerance needs. */
  readonly typos?: boolean;
  readonly analyzer?: (typeof INDEX_ANALYZERS)[number];
  readonly source: IndexSource;
  /** The enqueue's trace context, set only when tracing is on (shared/tracing.ts). */
  readonly trace?: JobTrace;
}

/** A validated index request: the job payload and, for inline documents, their JSON. */
export interface ParsedIndexRequest {
  readonly job: Omit<IndexJobData, 'source'> & { readonly source: IndexSourceRequest };
  readonly inlineJson?: string;
}

export function checkCollection(collection: unknown): string {
  if (typeof collection !== 'string' || !COLLECTION_PATTERN.test(collection)) {
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'collection: 1-64 letters, digits, - or _', {
      field: 'collection',
    });
  }
  return collection;
}

export function parseIndexRequest(
  collection: unknown,
  input: unknown,
  limits: IndexLimits,
): ParsedIndexRequest {
  const name = checkCollection(collection);
  const parsed = parseWith(IndexRequestSchema, input);
  if (!parsed.success) throw validationError(parsed.error);
  const r = parsed.data;
  if ((r.documents === undefined) === (r.source === undefined)) {
    throw new QuarryError(
      'QUARRY_ERR_VALIDATION',
      'give either "documents" or "source", not both or neither',
      {
        field: r.documents === undefined ? 'documents' : 'source',
      },
    );
  }
  checkColumnName(r.idField, 'idField');
  r.fields.forEach((f, i) => {
    checkColumnName(f, `fields.${i}`);
  });
  r.store.forEach((f, i) => {
    checkColumnName(f, `store.${i}`);
  });
  for (const name of ['filterable', 'sortable'] as const) {
    const list = r[name] ?? [];
    list.forEach((f, i) => {
      checkColumnName(f, `${name}.${i}`);
    });
    if (new Set(list).size !== list.length) {
      throw new QuarryError('QUARRY_ERR_VALIDATION', `${name}: a field is named twice`, { field: name });
    }
  }
  for (const key of Object.keys(r.boosts ?? {})) {
    if (!r.fields.includes(key)) {
      throw new QuarryError(
        'QUARRY_ERR_VALIDATION',
        `boosts.${key}: "${key}" is not one of the indexed fields`,
        {
          field: `boosts.${key}`,
        },
      );
    }
  }
  const base = {
    v: 1 as const,
    collection: name,
    idField: r.idField,
    fields: r.fields,
    store: r.store,
    ...(r.boosts === undefined ? {} : { boosts: r.boosts }),
    ...(r.filterable === undefined ? {} : { filterable: r.filterable }),
    ...(r.sortable === undefined ? {} : { sortable: r.sortable }),
    ...(r.typos === undefined ? {} : { typos: r.typos }),
    ...(r.analyzer === undefined ? {} : { analyzer: r.analyzer }),
  };
  if (r.documents !== undefined) {
    if (r.documents.length > limits.maxIndexDocuments) {
      throw new QuarryError(
        'QUARRY_ERR_DATASET_TOO_LARGE',
        `documents: ${r.documents.length} documents, more than the ${limits.maxIndexDocuments} allowed inline (QUARRY_MAX_INDEX_DOCUMENTS); index a file instead`,
        { field: 'documents' },
      );
    }
    r.documents.forEach((d, i) => {
      if (d === null || typeof d !== 'object' || Array.isArray(d)) {
        throw new QuarryError('QUARRY_ERR_VALIDATION', `documents.${i}: must be an object`, {
          field: `documents.${i}`,
        });
      }
    });
    const json = JSON.stringify(r.documents);
    if (json.length > limits.maxInlineBytes) {
      throw new QuarryError(
        'QUARRY_ERR_DATASET_TOO_LARGE',
        `documents take ${json.length} bytes, more than QUARRY_MAX_INLINE_BYTES (${limits.maxInlineBytes}); index a file instead`,
        { field: 'documents' },
      );
    }
    return { job: { ...base, source: { kind: 'inline', documents: r.documents.length } }, inlineJson: json };
  }
  const source = r.source!;
  if ('url' in source) {
    const { key } = parseObjectUrl(source.url, 'source.url');
    const format = source.format ?? formatOf(key, 'source.url');
    return { job: { ...base, source: { kind: 'object', url: source.url, format } } };
  }
  const format = source.format ?? formatOf(source.path);
  return { job: { ...base, source: { kind: 'file', path: source.path, format } } };
}

function formatOf(path: string, field = 'source.path'): IndexFileFormat {
  const lower = path.toLowerCase();
  if (lower.endsWith('.parquet') || lower.endsWith('.pq')) return 'parquet';
  if (lower.endsWith('.ndjson') || lower.endsWith('.jsonl')) return 'ndjson';
  throw new QuarryError(
    'QUARRY_ERR_VALIDATION',
    `source.format: cannot tell the format of "${path}" (${field}); give "format": ndjson or parquet`,
    { field: 'source.format' },
  );
}

/**
 * Checks a file source the way the worker will read it (shared/data-files.ts): one literal
 * regular file under `root`, in its format, at most QUARRY_MAX_INDEX_SOURCE_BYTES. The worker
 * checks again when it reads: the file may change in between.
 */
export async function checkIndexSource(
  root: string,
  source: IndexSourceRequest,
  limits: Pick<QuarryConfig, 'maxIndexSourceBytes' | 'apiKeys' | 'tenantBuckets'>,
  objects: { readonly objects: ObjectStore; readonly tenant: string | undefined },
): Promise<IndexSource> {
  if (source.kind === 'inline' || source.kind === 'update') return source;
  if (source.kind === 'object') {
    // The tenant's buckets only (403); a HEAD: missing is a 404, too large a 413, now.
    const field = 'source.url';
    checkBucketScope(limits, objects.tenant, parseObjectUrl(source.url, field), field);
    const found = await objects.objects.head(source.url, source.format, field);
    if (found.size > limits.maxIndexSourceBytes) {
      throw tooLarge(
        field,
        source.url,
        found.size,
        limits.maxIndexSourceBytes,
        'QUARRY_MAX_INDEX_SOURCE_BYTES',
      );
    }
    return { ...found, kind: 'object', format: source.format };
  }
  const file = await openDataFile(root, source.path, {
    field: 'source.path',
    format: source.format,
    maxBytes: limits.maxIndexSourceBytes,
    maxBytesName: 'QUARRY_MAX_INDEX_SOURCE_BYTES',
  });
  await file.close();
  return source;
}

/** Index build job ids are unique per request (a rebuild is a new version). */
export function indexJobId(): string {
  return `idx-${Date.now().toString(36)}${randomBytes(6).toString('hex')}`;
}

const IndexJobDataSchema = z.strictObject({
  v: z.literal(1),
  tenant: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/)
    .optional(),
  collection: z.string().regex(COLLECTION_PATTERN),
  idField: Field,
  fields: z.array(Field).min(1).max(64),
  store: z.array(Field).max(64),
  boosts: z.record(Field, z.number().positive().max(1000)).optional(),
  filterable: z.array(Field).max(64).optional(),
  sortable: z.array(Field).max(64).optional(),
  typos: z.boolean().optional(),
  trace: JobTraceSchema.optional(),
  analyzer: z.enum(INDEX_ANALYZERS).optional(),
  source: z.union([
    z.strictObject({ kind: z.literal('inline'), documents: z.number().int().min(0) }),
    z.strictObject({
      kind: z.literal('update'),
      documents: z.number().int().min(0),
      ids: z.number().int().min(0),
    }),
    z.strictObject({
      kind: z.literal('file'),
      path: z.string().min(1).max(1024),
      format: z.enum(INDEX_FILE_FORMATS),
    }),
    z.strictObject({
      kind: z.literal('object'),
      url: z
        .string()
        .regex(/^s3:\/\/[^/]+\/./s)
        .max(2048),
      format: z.enum(INDEX_FILE_FORMATS),
      size: z.number().int().min(0),
      etag: z.string().max(1024),
      versionId: z.string().min(1).max(1024).optional(),
    }),
  ]),
});

/** Checks an index job payload (see checkAggregationJobData); QUARRY_ERR_VALIDATION when malformed. */
export function checkIndexJobData(data: unknown): IndexJobData {
  return checkJobPayload(IndexJobDataSchema, data);
}

/** What GET /v1/indexes/:collection reports. */
export interface IndexInfo {
  readonly collection: string;
  readonly version: number;
  readonly documents: number;
  readonly terms: number;
  readonly bytes: number;
  readonly builtAt: string;
  readonly buildMs: number;
  readonly jobId: string;
}
