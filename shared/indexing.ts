// The indexing job's whole contract: the request a client sends (collection, documents inline or
// a file, id field, fields to index and store, boosts), the job payload and the index metadata
// the API reports. The binary index format and the analyzer live in shared/search/.
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { checkJobPayload, validationError } from './aggregation.ts';
import { openDataFile } from './data-files.ts';
import { checkColumnName } from './datasets.ts';
import { QuarryError } from './errors.ts';
import { parseWith } from './zod-messages.ts';

export const COLLECTION_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const INDEX_FILE_FORMATS = ['ndjson', 'parquet'] as const;
export type IndexFileFormat = (typeof INDEX_FILE_FORMATS)[number];

const Field = z.string().min(1).max(256);
export const INDEX_ANALYZERS = ['unicode-words-v1', 'english'] as const;

export const IndexRequestSchema = z.strictObject({
  documents: z.array(z.unknown()).optional(),
  source: z
    .strictObject({ path: z.string().min(1).max(1024), format: z.enum(INDEX_FILE_FORMATS).optional() })
    .optional(),
  idField: Field,
  fields: z.array(Field).min(1).max(64),
  store: z.array(Field).max(64).default([]),
  boosts: z.record(Field, z.number().positive().max(1000)).optional(),
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
  | { readonly kind: 'file'; readonly path: string; readonly format: IndexFileFormat };

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
  readonly analyzer?: (typeof INDEX_ANALYZERS)[number];
  readonly source: IndexSource;
}

/** A validated index request: the job payload and, for inline documents, their JSON. */
export interface ParsedIndexRequest {
  readonly job: IndexJobData;
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
  const format = source.format ?? formatOf(source.path);
  return { job: { ...base, source: { kind: 'file', path: source.path, format } } };
}

function formatOf(path: string): IndexFileFormat {
  const lower = path.toLowerCase();
  if (lower.endsWith('.parquet') || lower.endsWith('.pq')) return 'parquet';
  if (lower.endsWith('.ndjson') || lower.endsWith('.jsonl')) return 'ndjson';
  throw new QuarryError(
    'QUARRY_ERR_VALIDATION',
    `source.format: cannot tell the format of "${path}"; give "format": ndjson or parquet`,
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
  source: IndexSource,
  limits: { readonly maxIndexSourceBytes: number },
): Promise<void> {
  if (source.kind !== 'file') return;
  const file = await openDataFile(root, source.path, {
    field: 'source.path',
    format: source.format,
    maxBytes: limits.maxIndexSourceBytes,
    maxBytesName: 'QUARRY_MAX_INDEX_SOURCE_BYTES',
  });
  await file.close();
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
  analyzer: z.enum(INDEX_ANALYZERS).optional(),
  source: z.union([
    z.strictObject({ kind: z.literal('inline'), documents: z.number().int().min(0) }),
    z.strictObject({
      kind: z.literal('file'),
      path: z.string().min(1).max(1024),
      format: z.enum(INDEX_FILE_FORMATS),
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
