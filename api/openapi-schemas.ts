// The named schemas of the OpenAPI document (`components.schemas`), their examples, and helpers
// the route docs (openapi-routes.ts) use to point at them. Request bodies are the zod schemas that
// validate them (AggregationSpecSchema, IndexRequestSchema, …) turned into JSON Schema, so the
// document cannot drift from validation; patterns and limits come from the constants the routes
// check. Response shapes are written here, typed against the shared types where possible.
// These schemas only document: Fastify never compiles them (see plugins/openapi.ts).
import { z } from 'zod';
import { AggregationSpecSchema, ENGINE_NAMES, type ResultColumn } from '../shared/aggregation.ts';
import { ERRORS, type ErrorCode } from '../shared/errors.ts';
import { PRIORITY_CLASSES } from '../shared/fairness.ts';
import { DeleteSchema, UpsertSchema } from '../shared/index-updates.ts';
import { COLLECTION_PATTERN, IndexRequestSchema } from '../shared/indexing.ts';
import { JOB_ID_PATTERN, RESULT_KEY_PATTERN } from '../shared/keys.ts';
import { SCHEDULE_NAME_PATTERN, ScheduleRequestSchema } from '../shared/schedules.ts';
import { SearchRequestSchema } from '../shared/search/request.ts';
import type { JobState, JobType } from '../shared/status.ts';

export type Schema = Record<string, unknown>;

/** A zod schema as the JSON Schema (2020-12, which OpenAPI 3.1 uses) of what a client sends. */
export function requestSchemaOf(schema: z.ZodType): Schema {
  const { $schema: _dialect, ...json } = z.toJSONSchema(schema, { io: 'input' });
  return json;
}

// Keyed objects, so adding a state, type or column type to the shared unions fails to compile
// here until the document knows it too.
const JOB_STATES = Object.keys({
  queued: 1,
  active: 1,
  completed: 1,
  failed: 1,
  cancelled: 1,
} satisfies Record<JobState, 1>);
const JOB_TYPES = Object.keys({ aggregate: 1, index: 1 } satisfies Record<JobType, 1>);
const COLUMN_TYPES = Object.keys({
  integer: 1,
  float: 1,
  string: 1,
  boolean: 1,
  date: 1,
  timestamp: 1,
  null: 1,
} satisfies Record<ResultColumn['type'], 1>);

export const str = (extra: Schema = {}): Schema => ({ type: 'string', ...extra });
export const int = (extra: Schema = {}): Schema => ({ type: 'integer', ...extra });
export const obj = (properties: Record<string, Schema>, required = Object.keys(properties)): Schema => ({
  type: 'object',
  properties,
  required,
});
const nullable = (schema: Schema): Schema => ({ anyOf: [schema, { type: 'null' }] });
const dateTime = str({ format: 'date-time' });
export const jobId = str({
  pattern: JOB_ID_PATTERN.source,
  description: '`agg-<resultKey>` or `idx-<unique>`',
});
export const resultKey = str({ pattern: RESULT_KEY_PATTERN.source, description: '128 bits of SHA-256, hex' });
export const collection = str({ pattern: COLLECTION_PATTERN.source });

// ── Bodies and their examples ──────────────────────────────────────────────────────────────────

export const AGGREGATION_REQUEST = requestSchemaOf(AggregationSpecSchema);
export const INDEX_REQUEST = requestSchemaOf(IndexRequestSchema);
export const DOCUMENTS_UPSERT = requestSchemaOf(UpsertSchema);
export const DOCUMENTS_DELETE = requestSchemaOf(DeleteSchema);
export const SEARCH_REQUEST = requestSchemaOf(SearchRequestSchema);
export const SCHEDULE_REQUEST = requestSchemaOf(ScheduleRequestSchema);

export const EXAMPLE_KEY = '3f1c0e8a9b7d4c2e1f0a5b6c7d8e9f01';
export const EXAMPLE_JOB = `agg-${EXAMPLE_KEY}`;
export const EXAMPLE_INDEX_JOB = 'idx-m1abcde9f3c2b1a0d4e5';

export const aggregationRequestExample = {
  dataset: {
    records: [
      { origin: 'LAX', delay: 5 },
      { origin: 'LAX', delay: -3 },
      { origin: 'SFO', delay: 12 },
    ],
  },
  groupBy: ['origin'],
  metrics: [{ op: 'count' }, { op: 'avg', column: 'delay' }, { op: 'quantile', column: 'delay', q: 0.95 }],
  orderBy: [{ column: 'count', direction: 'desc' }],
};

export const documentsUpsertExample = {
  documents: [{ id: 'a3', title: 'Redis streams', body: 'Consumer groups, replaced text' }],
};
export const documentsDeleteExample = { ids: ['a1', 'a2'] };

export const indexRequestExample = {
  documents: [
    { id: '1', title: 'Red apples', body: 'Apples grow on trees' },
    { id: '2', title: 'Pears', body: 'Green pears and red apples' },
  ],
  idField: 'id',
  fields: ['title', 'body'],
  store: ['title'],
  boosts: { title: 2 },
};

export const searchRequestExample = {
  q: 'red "green pears" -rotten',
  k: 10,
  filter: {
    and: [
      { column: 'price', op: 'lt', value: 5 },
      { column: 'tags', op: 'in', value: ['fruit'] },
    ],
  },
  facets: ['tags'],
  sort: [{ field: 'price', direction: 'asc' }],
  highlight: { fields: ['title'] },
  snippet: { field: 'body', words: 20 },
  typos: 'auto',
};

// ── Response shapes ────────────────────────────────────────────────────────────────────────────

export const ERROR_BODY = obj({
  error: obj(
    {
      code: str({ enum: Object.keys(ERRORS) }),
      message: str(),
      field: str({ description: 'The input field at fault, as a dotted path (`metrics.0.column`).' }),
    },
    ['code', 'message'],
  ),
});

const ENVELOPE_PROPERTIES = {
  resultKey,
  columns: { type: 'array', items: obj({ name: str(), type: str({ enum: COLUMN_TYPES }) }) },
  rows: { type: 'array', items: { type: 'object', additionalProperties: true } },
  rowCount: int({ minimum: 0 }),
  totalRows: int({
    minimum: 0,
    description:
      'Rows before `offset` and `limit` (after `having` and `top`); absent in results stored before it existed.',
  }),
  engine: str({ enum: [...ENGINE_NAMES] }),
  computedAt: dateTime,
  durationMs: { type: 'number' },
};
export const RESULT_ENVELOPE = obj(
  ENVELOPE_PROPERTIES,
  Object.keys(ENVELOPE_PROPERTIES).filter((k) => k !== 'totalRows'),
);

export const AGGREGATION_ACCEPTED = obj({
  jobId,
  resultKey,
  status: str({ enum: JOB_STATES }),
  links: obj({ status: str(), result: str() }),
});

/** One answer of POST /v1/aggregations/batch: what POST /v1/aggregations would answer that spec. */
export const BATCH_ITEM: Schema = {
  type: 'object',
  required: ['status', 'body'],
  properties: {
    status: int({ description: 'The status code the spec alone would get: 200, 202, or an error status.' }),
    cache: str({ enum: ['hit', 'miss'], description: 'As `x-quarry-cache`: set on 200 and 202.' }),
    retryAfterS: int({ minimum: 1, description: 'As `Retry-After`: set on 429 and 503.' }),
    body: {
      description:
        'The body the spec alone would get: the envelope (200), AggregationAccepted (202) or Error ' +
        '(`field` under the item: `items.3.metrics.0.column`).',
      oneOf: [
        { $ref: '#/components/schemas/ResultEnvelope' },
        { $ref: '#/components/schemas/AggregationAccepted' },
        { $ref: '#/components/schemas/Error' },
      ],
    },
  },
};

export const JOB_STATUS = obj(
  {
    jobId,
    type: str({ enum: JOB_TYPES }),
    state: str({ enum: JOB_STATES }),
    progress: obj({ phase: str(), percent: { type: 'number', minimum: 0, maximum: 100 }, count: int() }, [
      'phase',
      'percent',
    ]),
    attempts: int({ minimum: 0 }),
    createdAt: nullable(dateTime),
    startedAt: nullable(dateTime),
    finishedAt: nullable(dateTime),
    resultKey: nullable(resultKey),
    error: nullable(
      obj(
        {
          code: str(),
          message: str(),
          field: str({ description: 'The request field the error names, when it names one.' }),
        },
        ['code', 'message'],
      ),
    ),
    collection: str({ description: 'Index jobs: the collection built.' }),
    version: int({ description: 'Index jobs: the version built.' }),
    priority: str({
      enum: PRIORITY_CLASSES,
      description: 'The priority class it was enqueued with (docs/FAIRNESS.md).',
    }),
    summary: str({
      description:
        'What the job computes, in one line for people (group keys, metrics, filters, order, limit; an index: its fields).',
    }),
    dataset: str({
      description: 'What it reads, in one line: a file with its format and size, or inline rows.',
    }),
  },
  [
    'jobId',
    'type',
    'state',
    'progress',
    'attempts',
    'createdAt',
    'startedAt',
    'finishedAt',
    'resultKey',
    'error',
    'priority',
  ],
);

export const JOB_LIST = obj({
  jobs: { type: 'array', items: { $ref: '#/components/schemas/JobStatus' } },
  nextCursor: nullable(str({ description: 'Pass as `cursor` for the next (older) page; null at the end.' })),
});

const queueDepth = obj({
  waiting: int({ minimum: 0 }),
  active: int({ minimum: 0 }),
  delayed: int({ minimum: 0 }),
});
const number = { type: 'number', minimum: 0 };
export const ACTIVITY = obj({
  windowS: int({ minimum: 60, description: 'QUARRY_ACTIVITY_WINDOW_S: how far back `minutes` reaches.' }),
  minutes: {
    type: 'array',
    description: 'Oldest first; minutes in which no job ended are left out.',
    items: obj({
      minute: dateTime,
      completed: int({ minimum: 0 }),
      failed: int({ minimum: 0 }),
      cancelled: int({ minimum: 0 }),
      runMs: nullable(obj({ p50: number, p95: number, p99: number })),
    }),
  },
  depth: obj({ aggregate: queueDepth, index: queueDepth }),
});

export const INDEX_INFO = obj({
  collection,
  version: int({ minimum: 1, description: 'Never repeats: max(last + 1, the Redis clock in ms).' }),
  documents: int({ minimum: 0 }),
  terms: int({ minimum: 0 }),
  bytes: int({ minimum: 0 }),
  builtAt: dateTime,
  buildMs: { type: 'number' },
  jobId,
});

const INDEX_INFO_PROPERTIES = INDEX_INFO.properties as Record<string, Schema>;
export const INDEX_SERVED = obj({
  ...INDEX_INFO_PROPERTIES,
  stored: {
    type: 'boolean',
    description:
      'False when the queue Redis no longer holds this version (it lost its data): this process ' +
      'serves it from memory until a rebuild or a delete.',
  },
});
export const INDEX_DELETED = obj({
  collection,
  version: nullable(int({ minimum: 1, description: 'The version that was live in Redis.' })),
  deleted: { type: 'boolean', enum: [true] },
});

const indexLinks = obj({ status: str(), index: str() });
export const INDEX_ACCEPTED = obj({ jobId, status: str({ enum: JOB_STATES }), links: indexLinks });
export const INDEX_BUILT = obj({
  jobId,
  status: str({ enum: ['completed'] }),
  links: indexLinks,
  index: { $ref: '#/components/schemas/IndexInfo' },
});

export const SEARCH_RESULT = obj(
  {
    hits: {
      type: 'array',
      items: obj({
        id: str(),
        score: { type: 'number' },
        fields: { type: 'object', additionalProperties: true, description: 'The stored fields.' },
      }),
    },
    total: int({
      minimum: 0,
      description:
        'Documents matching, of which `hits` are the top k. Left out when the search skipped documents that could not reach the top k (the hits are the same); the POST form always counts.',
    }),
    version: int({ minimum: 1 }),
    tookMs: { type: 'number' },
  },
  ['hits', 'version', 'tookMs'],
);

export const SEARCH_QUERY_RESULT = obj(
  {
    hits: {
      type: 'array',
      items: obj(
        {
          id: str(),
          score: { type: 'number', description: "BM25 with the whole collection's statistics." },
          fields: { type: 'object', additionalProperties: true, description: 'The stored fields.' },
          typos: int({ minimum: 1, description: 'Edit distance summed over the words; absent when 0.' }),
          highlights: {
            type: 'object',
            additionalProperties: true,
            description: 'Each requested stored field with the matched tokens wrapped in pre/post.',
          },
          snippet: str({ description: 'The window of `words` tokens around the densest match.' }),
        },
        ['id', 'score', 'fields'],
      ),
    },
    total: int({ minimum: 0, description: 'Every document matching (exact), of which `hits` is one page.' }),
    facets: {
      type: 'object',
      additionalProperties: { type: 'object', additionalProperties: { type: 'integer' } },
      description: 'Per requested field, value → documents among all matches.',
    },
    version: int({ minimum: 1 }),
    tookMs: { type: 'number' },
  },
  ['hits', 'total', 'version', 'tookMs'],
);

// ── Examples ───────────────────────────────────────────────────────────────────────────────────

export const envelopeExample = {
  resultKey: EXAMPLE_KEY,
  columns: [
    { name: 'origin', type: 'string' },
    { name: 'count', type: 'integer' },
    { name: 'avg_delay', type: 'float' },
    { name: 'p95_delay', type: 'float' },
  ],
  rows: [
    { origin: 'LAX', count: 2, avg_delay: 1, p95_delay: 4.6 },
    { origin: 'SFO', count: 1, avg_delay: 12, p95_delay: 12 },
  ],
  rowCount: 2,
  totalRows: 2,
  engine: 'duckdb',
  computedAt: '2025-01-01T12:00:00.000Z',
  durationMs: 3.2,
};
export const jobStatusExample = {
  jobId: EXAMPLE_JOB,
  type: 'aggregate',
  state: 'completed',
  progress: { phase: 'done', percent: 100 },
  attempts: 1,
  createdAt: '2025-01-01T12:00:00.000Z',
  startedAt: '2025-01-01T12:00:00.004Z',
  finishedAt: '2025-01-01T12:00:00.011Z',
  resultKey: EXAMPLE_KEY,
  error: null,
  priority: 'normal',
};
export const tenantUsageExample = {
  tenant: 'acme',
  weight: 1,
  maxActive: 0,
  maxQueued: 100_000,
  queued: 12,
  active: 2,
};
export const TENANT_USAGE = obj({
  tenant: str({ description: 'The tenant (from QUARRY_API_KEYS).' }),
  weight: int({ minimum: 1, description: 'Its share of the workers relative to other tenants.' }),
  maxActive: int({ minimum: 0, description: 'Most jobs running at once (0 = no limit).' }),
  maxQueued: int({ minimum: 0, description: 'Most jobs queued at once; past it 429 (0 = no limit).' }),
  queued: int({ minimum: 0, description: 'Jobs queued now (aggregations and index builds).' }),
  active: int({ minimum: 0, description: 'Jobs running now across all workers.' }),
});
export const indexInfoExample = {
  collection: 'docs',
  version: 1767268800000,
  documents: 2,
  terms: 9,
  bytes: 412,
  builtAt: '2025-01-01T12:00:00.000Z',
  buildMs: 2,
  jobId: EXAMPLE_INDEX_JOB,
};
export const indexLinksExample = { status: `/v1/jobs/${EXAMPLE_INDEX_JOB}`, index: '/v1/indexes/docs' };

export const scheduleName = str({ pattern: SCHEDULE_NAME_PATTERN.source });
export const SCHEDULE_INFO = obj({
  name: scheduleName,
  everyMs: nullable(int()),
  cron: nullable(str()),
  tz: nullable(str()),
  next: nullable(dateTime),
  resultKey: nullable(resultKey),
  refreshedAt: nullable(dateTime),
});
export const scheduleExample = {
  name: 'daily-origins',
  everyMs: 60_000,
  cron: null,
  tz: null,
  next: '2026-11-27T10:01:00.000Z',
  resultKey: EXAMPLE_KEY,
  refreshedAt: '2026-11-27T10:00:00.012Z',
};

const readiness = (status: 'ready' | 'unavailable') =>
  obj({
    status: str({ enum: [status] }),
    redis: obj({ queue: { type: 'boolean' }, cache: { type: 'boolean' } }),
  });

// ── Named schemas ──────────────────────────────────────────────────────────────────────────────

const examplesOf = (schema: Schema, example: unknown): Schema => ({ ...schema, examples: [example] });

/**
 * `components.schemas`: every body the API takes or gives, by name, so generated clients get
 * named types (`AggregationSpec`, `JobStatus`, …) instead of one anonymous type per route.
 */
export const COMPONENT_SCHEMAS = {
  AggregationSpec: examplesOf(AGGREGATION_REQUEST, aggregationRequestExample),
  IndexRequest: examplesOf(INDEX_REQUEST, indexRequestExample),
  DocumentsUpsert: examplesOf(DOCUMENTS_UPSERT, documentsUpsertExample),
  DocumentsDelete: examplesOf(DOCUMENTS_DELETE, documentsDeleteExample),
  ScheduleRequest: examplesOf(SCHEDULE_REQUEST, { spec: aggregationRequestExample, everyMs: 60_000 }),
  Error: examplesOf(ERROR_BODY, {
    error: {
      code: 'QUARRY_ERR_VALIDATION',
      message: 'metrics.0.column: Required',
      field: 'metrics.0.column',
    },
  }),
  ResultEnvelope: examplesOf(RESULT_ENVELOPE, envelopeExample),
  AggregationAccepted: AGGREGATION_ACCEPTED,
  AggregationBatchRequest: obj({
    items: {
      type: 'array',
      minItems: 1,
      description: 'Aggregation specs, at most QUARRY_MAX_BATCH_ITEMS (default 100).',
      items: { $ref: '#/components/schemas/AggregationSpec' },
    },
  }),
  AggregationBatchItem: BATCH_ITEM,
  AggregationBatch: obj({
    items: { type: 'array', items: { $ref: '#/components/schemas/AggregationBatchItem' } },
  }),
  JobStatus: examplesOf(JOB_STATUS, jobStatusExample),
  TenantUsage: examplesOf(TENANT_USAGE, tenantUsageExample),
  TenantList: obj({ tenants: { type: 'array', items: { $ref: '#/components/schemas/TenantUsage' } } }),
  IndexInfo: examplesOf(INDEX_INFO, indexInfoExample),
  IndexList: obj({ indexes: { type: 'array', items: { $ref: '#/components/schemas/IndexInfo' } } }),
  IndexServed: examplesOf(INDEX_SERVED, { ...indexInfoExample, stored: true }),
  IndexDeleted: examplesOf(INDEX_DELETED, {
    collection: 'docs',
    version: indexInfoExample.version,
    deleted: true,
  }),
  IndexAccepted: INDEX_ACCEPTED,
  JobList: JOB_LIST,
  RetryAccepted: {
    description: 'An aggregation answers AggregationAccepted, an index build IndexAccepted.',
    oneOf: [
      { $ref: '#/components/schemas/AggregationAccepted' },
      { $ref: '#/components/schemas/IndexAccepted' },
    ],
  },
  Activity: ACTIVITY,
  IndexBuilt: INDEX_BUILT,
  SearchResult: SEARCH_RESULT,
  SearchRequest: examplesOf(SEARCH_REQUEST, searchRequestExample),
  SearchQueryResult: SEARCH_QUERY_RESULT,
  Schedule: examplesOf(SCHEDULE_INFO, scheduleExample),
  ScheduleList: obj({ schedules: { type: 'array', items: { $ref: '#/components/schemas/Schedule' } } }),
  Health: obj({ status: str({ enum: ['ok'] }) }),
  Ready: readiness('ready'),
  Unavailable: readiness('unavailable'),
} satisfies Record<string, Schema>;

export type SchemaName = keyof typeof COMPONENT_SCHEMAS;

export const ref = (name: SchemaName): Schema => ({ $ref: `#/components/schemas/${name}` });

/** A JSON response (or request body) of a named schema, with an example of this use. */
export function json(name: SchemaName, description: string, example?: unknown): Schema {
  return {
    description,
    content: {
      'application/json': { schema: ref(name), ...(example === undefined ? {} : { example }) },
    },
  };
}

// ── Error responses ────────────────────────────────────────────────────────────────────────────

/**
 * The error responses a route can give, from the codes it can answer with: grouped by the
 * status the registry gives each code, each status listing its codes. 408 has no Quarry body: it
 * is Node's answer to a request (body) that did not arrive within the server's request timeout.
 */
export function errorResponses(
  codes: readonly ErrorCode[],
  options: { timeout?: boolean } = {},
): Record<string, Schema> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(codes)) {
    const status = ERRORS[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const responses: Record<string, Schema> = {};
  if (options.timeout) {
    responses[408] = {
      description: 'The request did not arrive within the request timeout (no body).',
      type: 'null',
    };
  }
  for (const [status, list] of [...byStatus].sort(([a], [b]) => a - b)) {
    const [first] = list;
    responses[status] = json('Error', `\`error.code\` is ${list.map((c) => `\`${c}\``).join(', ')}.`, {
      error: { code: first, message: ERRORS[first!].description },
    });
  }
  return responses;
}
