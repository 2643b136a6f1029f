// What the OpenAPI document says about each route, by `METHOD /url`. Request bodies are the zod
// schemas that validate them (AggregationSpecSchema, IndexRequestSchema) turned into JSON Schema,
// so the document cannot drift from validation; patterns and limits come from the constants the
// routes check. Response shapes are written here, typed against the shared types where possible.
// These schemas only document: Fastify never compiles them (see plugins/openapi.ts).
import type { FastifySchema } from 'fastify';
import { z } from 'zod';
import { AggregationSpecSchema, ENGINES, type ResultColumn } from '../shared/aggregation.ts';
import { ERRORS } from '../shared/errors.ts';
import { COLLECTION_PATTERN, IndexRequestSchema } from '../shared/indexing.ts';
import { JOB_ID_PATTERN, RESULT_KEY_PATTERN } from '../shared/keys.ts';
import { SCHEDULE_NAME_PATTERN, ScheduleRequestSchema } from '../shared/schedules.ts';
import { MAX_K } from '../shared/search/index.ts';
import type { JobState, JobType } from '../shared/status.ts';
import { MAX_WAIT_MS } from './request.ts';

type Schema = Record<string, unknown>;

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

const str = (extra: Schema = {}): Schema => ({ type: 'string', ...extra });
const int = (extra: Schema = {}): Schema => ({ type: 'integer', ...extra });
const obj = (properties: Record<string, Schema>, required = Object.keys(properties)): Schema => ({
  type: 'object',
  properties,
  required,
});
const nullable = (schema: Schema): Schema => ({ anyOf: [schema, { type: 'null' }] });
const dateTime = str({ format: 'date-time' });
const withExample = (schema: Schema, example: unknown, description?: string): Schema => ({
  ...schema,
  ...(description === undefined ? {} : { description }),
  examples: [example],
});

const jobId = str({ pattern: JOB_ID_PATTERN.source, description: '`agg-<resultKey>` or `idx-<unique>`' });
const resultKey = str({ pattern: RESULT_KEY_PATTERN.source, description: '128 bits of SHA-256, hex' });
const collection = str({ pattern: COLLECTION_PATTERN.source });

// ── Bodies and their examples ──────────────────────────────────────────────────────────────────

export const AGGREGATION_REQUEST = requestSchemaOf(AggregationSpecSchema);
export const INDEX_REQUEST = requestSchemaOf(IndexRequestSchema);
export const SCHEDULE_REQUEST = requestSchemaOf(ScheduleRequestSchema);

const EXAMPLE_KEY = '3f1c0e8a9b7d4c2e1f0a5b6c7d8e9f01';
const EXAMPLE_JOB = `agg-${EXAMPLE_KEY}`;
const EXAMPLE_INDEX_JOB = 'idx-m1abcde9f3c2b1a0d4e5';

const aggregationRequestExample = {
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

const indexRequestExample = {
  documents: [
    { id: '1', title: 'Red apples', body: 'Apples grow on trees' },
    { id: '2', title: 'Pears', body: 'Green pears and red apples' },
  ],
  idField: 'id',
  fields: ['title', 'body'],
  store: ['title'],
  boosts: { title: 2 },
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

export const RESULT_ENVELOPE = obj({
  resultKey,
  columns: { type: 'array', items: obj({ name: str(), type: str({ enum: COLUMN_TYPES }) }) },
  rows: { type: 'array', items: { type: 'object', additionalProperties: true } },
  rowCount: int({ minimum: 0 }),
  engine: str({ enum: ENGINES.filter((e) => e !== 'auto') }),
  computedAt: dateTime,
  durationMs: { type: 'number' },
});

export const AGGREGATION_ACCEPTED = obj({
  jobId,
  resultKey,
  status: str({ enum: JOB_STATES }),
  links: obj({ status: str(), result: str() }),
});

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
    error: nullable(obj({ code: str(), message: str() })),
    collection: str({ description: 'Index jobs: the collection built.' }),
    version: int({ description: 'Index jobs: the version built.' }),
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
  ],
);

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
  index: INDEX_INFO,
});

export const SEARCH_RESULT = obj({
  hits: {
    type: 'array',
    items: obj({
      id: str(),
      score: { type: 'number' },
      fields: { type: 'object', additionalProperties: true, description: 'The stored fields.' },
    }),
  },
  total: int({ minimum: 0, description: 'Documents matching, of which `hits` are the top k.' }),
  version: int({ minimum: 1 }),
  tookMs: { type: 'number' },
});

// ── Examples ───────────────────────────────────────────────────────────────────────────────────

const envelopeExample = {
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
  engine: 'duckdb',
  computedAt: '2025-01-01T12:00:00.000Z',
  durationMs: 3.2,
};
const jobStatusExample = {
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
};
const indexInfoExample = {
  collection: 'docs',
  version: 1767268800000,
  documents: 2,
  terms: 9,
  bytes: 412,
  builtAt: '2025-01-01T12:00:00.000Z',
  buildMs: 2,
  jobId: EXAMPLE_INDEX_JOB,
};
const indexLinksExample = { status: `/v1/jobs/${EXAMPLE_INDEX_JOB}`, index: '/v1/indexes/docs' };

function errorResponse(status: number, code: keyof typeof ERRORS, message: string, field?: string): Schema {
  const codes = Object.entries(ERRORS)
    .filter(([, d]) => d.status === status)
    .map(([c]) => `\`${c}\``);
  return withExample(
    ERROR_BODY,
    { error: { code, message, ...(field === undefined ? {} : { field }) } },
    `The error body; \`error.code\` is one of ${codes.join(', ')}.`,
  );
}

const notFound = (code: keyof typeof ERRORS, what: string) => ({
  404: errorResponse(404, code, `no ${what}`),
});
const badInput = {
  400: errorResponse(400, 'QUARRY_ERR_VALIDATION', 'metrics.0.column: Required', 'metrics.0.column'),
  413: errorResponse(413, 'QUARRY_ERR_BODY_TOO_LARGE', 'Request body is too large'),
  415: errorResponse(415, 'QUARRY_ERR_UNSUPPORTED_MEDIA_TYPE', 'the body must be application/json'),
};
const unavailable = {
  503: errorResponse(
    503,
    'QUARRY_ERR_REDIS_UNAVAILABLE',
    'a Redis server Quarry depends on is not reachable',
  ),
};

const waitQuery = obj(
  {
    wait: int({
      minimum: 0,
      maximum: MAX_WAIT_MS,
      default: 0,
      description: 'Milliseconds to wait for the job to finish before answering 202.',
    }),
  },
  [],
);

// ── Routes ─────────────────────────────────────────────────────────────────────────────────────

/** The documentation of each route, keyed `METHOD /url` as Fastify declares it. */
const scheduleName = str({ pattern: SCHEDULE_NAME_PATTERN.source });
export const SCHEDULE_INFO = obj({
  name: scheduleName,
  everyMs: nullable(int()),
  cron: nullable(str()),
  tz: nullable(str()),
  next: nullable(dateTime),
  resultKey: nullable(resultKey),
  refreshedAt: nullable(dateTime),
});
const scheduleExample = {
  name: 'daily-origins',
  everyMs: 60_000,
  cron: null,
  tz: null,
  next: '2026-11-27T10:01:00.000Z',
  resultKey: EXAMPLE_KEY,
  refreshedAt: '2026-11-27T10:00:00.012Z',
};

export const ROUTE_DOCS: Readonly<Record<string, FastifySchema>> = {
  'POST /v1/aggregations': {
    operationId: 'createAggregation',
    tags: ['aggregations'],
    summary: 'Enqueue an aggregation, or answer it from the cache',
    description:
      'Answers `200` with the result envelope when the result is cached (`x-quarry-cache: hit`) or ' +
      'computed within `wait`; otherwise `202` with links to poll. The same spec always gets the ' +
      'same `resultKey`; identical requests in flight share one job.',
    querystring: waitQuery,
    body: withExample(AGGREGATION_REQUEST, aggregationRequestExample),
    response: {
      200: {
        ...withExample(RESULT_ENVELOPE, envelopeExample, 'The result envelope, as stored.'),
        headers: { 'x-quarry-cache': { type: 'string', enum: ['hit', 'miss'] } },
      },
      202: withExample(
        AGGREGATION_ACCEPTED,
        {
          jobId: EXAMPLE_JOB,
          resultKey: EXAMPLE_KEY,
          status: 'queued',
          links: { status: `/v1/jobs/${EXAMPLE_JOB}`, result: `/v1/results/${EXAMPLE_KEY}` },
        },
        'Enqueued (or joined a job in flight); not finished within `wait`.',
      ),
      ...badInput,
      ...unavailable,
    },
  },
  'GET /v1/results/:resultKey': {
    operationId: 'getResult',
    tags: ['aggregations'],
    summary: 'A stored result envelope, as its bytes',
    params: obj({ resultKey }),
    response: {
      200: withExample(RESULT_ENVELOPE, envelopeExample, 'The result envelope.'),
      ...notFound('QUARRY_ERR_RESULT_NOT_FOUND', `result ${EXAMPLE_KEY}`),
    },
  },
  'GET /v1/jobs/:jobId': {
    operationId: 'getJob',
    tags: ['jobs'],
    summary: "A job's status record",
    params: obj({ jobId }),
    response: {
      200: withExample(JOB_STATUS, jobStatusExample, 'The status record.'),
      ...notFound('QUARRY_ERR_JOB_NOT_FOUND', `job ${EXAMPLE_JOB}`),
    },
  },
  'DELETE /v1/jobs/:jobId': {
    operationId: 'cancelJob',
    tags: ['jobs'],
    summary: 'Cancel a job',
    description: 'A queued job is removed; a running one is stopped. Answers the status afterwards.',
    params: obj({ jobId }),
    response: {
      200: withExample(
        JOB_STATUS,
        {
          ...jobStatusExample,
          state: 'cancelled',
          resultKey: null,
          error: { code: 'QUARRY_ERR_JOB_CANCELLED', message: 'the job was cancelled' },
        },
        'The status record after cancelling.',
      ),
      ...notFound('QUARRY_ERR_JOB_NOT_FOUND', `job ${EXAMPLE_JOB}`),
    },
  },
  'GET /v1/jobs/:jobId/events': {
    operationId: 'watchJob',
    tags: ['jobs'],
    summary: "A job's status changes as Server-Sent Events",
    description:
      'First `status` (the record), then `progress` and `state` events, then `end` once the job ' +
      'is final.',
    params: obj({ jobId }),
    response: {
      200: {
        description: 'An event stream.',
        content: {
          'text/event-stream': {
            schema: { type: 'string' },
            example: `event: status\ndata: ${JSON.stringify(jobStatusExample)}\n\nevent: end\ndata: {}\n\n`,
          },
        },
      },
      ...notFound('QUARRY_ERR_JOB_NOT_FOUND', `job ${EXAMPLE_JOB}`),
    },
  },
  'POST /v1/indexes/:collection': {
    operationId: 'buildIndex',
    tags: ['indexes'],
    summary: "Build a new version of a collection's search index",
    description:
      'Documents inline (`documents`) or from a file under the data root (`source`), not both. ' +
      'With `wait`, answers `200` once the new version is live in this process.',
    params: obj({ collection }),
    querystring: waitQuery,
    body: withExample(INDEX_REQUEST, indexRequestExample),
    response: {
      200: withExample(
        INDEX_BUILT,
        { jobId: EXAMPLE_INDEX_JOB, status: 'completed', links: indexLinksExample, index: indexInfoExample },
        'Built within `wait`; the version is live.',
      ),
      202: withExample(
        INDEX_ACCEPTED,
        { jobId: EXAMPLE_INDEX_JOB, status: 'queued', links: indexLinksExample },
        'Enqueued; not built within `wait`.',
      ),
      ...badInput,
      ...unavailable,
    },
  },
  'GET /v1/indexes/:collection': {
    operationId: 'getIndex',
    tags: ['indexes'],
    summary: "A collection's current index version",
    params: obj({ collection }),
    response: {
      200: withExample(
        INDEX_SERVED,
        { ...indexInfoExample, stored: true },
        'The version this process serves (searches answer from it), else the live one in Redis.',
      ),
      ...notFound('QUARRY_ERR_INDEX_NOT_FOUND', 'index "docs"'),
    },
  },
  'DELETE /v1/indexes/:collection': {
    operationId: 'deleteIndex',
    tags: ['indexes'],
    summary: 'Delete a collection: its versions in Redis and the copies every API process holds',
    description:
      'Every API process stops serving it (a notice, and a periodic check of the pointer). A build ' +
      'that reserved its version before the delete publishes nothing (its job fails with ' +
      '`QUARRY_ERR_INDEX_DELETED`); a build that starts after it creates the collection anew.',
    params: obj({ collection }),
    response: {
      200: withExample(
        INDEX_DELETED,
        { collection: 'docs', version: indexInfoExample.version, deleted: true },
        'Deleted.',
      ),
      ...notFound('QUARRY_ERR_INDEX_NOT_FOUND', 'index "docs"'),
      ...unavailable,
    },
  },
  'GET /v1/indexes/:collection/search': {
    operationId: 'search',
    tags: ['indexes'],
    summary: 'Search a collection (BM25), answered from memory',
    params: obj({ collection }),
    querystring: obj(
      {
        q: str({ minLength: 1, maxLength: 4096, description: 'The query; must not be blank.' }),
        k: int({ minimum: 1, maximum: MAX_K, default: 10, description: 'Hits to return.' }),
        mode: str({ enum: ['any', 'all'], default: 'any', description: 'Match any term, or all.' }),
        prefix: str({
          enum: ['true', 'false'],
          default: 'false',
          description: 'Let the last term match longer words (search as you type).',
        }),
      },
      ['q'],
    ),
    response: {
      200: withExample(
        SEARCH_RESULT,
        {
          hits: [
            { id: '1', score: 1.93, fields: { title: 'Red apples' } },
            { id: '2', score: 0.71, fields: { title: 'Pears' } },
          ],
          total: 2,
          version: 1767268800000,
          tookMs: 0.03,
        },
        'The top k hits, best first.',
      ),
      400: errorResponse(400, 'QUARRY_ERR_VALIDATION', 'q: the query is empty', 'q'),
      ...notFound('QUARRY_ERR_INDEX_NOT_FOUND', 'index "docs"'),
    },
  },
  'PUT /v1/schedules/:name': {
    operationId: 'putSchedule',
    tags: ['schedules'],
    summary: 'Register or replace a scheduled aggregation',
    description:
      'The spec is validated now; it then refreshes every `everyMs` (first run at once) or on a `cron` ' +
      'pattern, and `GET /v1/aliases/:name` serves its newest result.',
    params: obj({ name: scheduleName }),
    body: withExample(SCHEDULE_REQUEST, { spec: aggregationRequestExample, everyMs: 60_000 }),
    response: {
      200: withExample(SCHEDULE_INFO, scheduleExample, 'The schedule as registered.'),
      ...badInput,
    },
  },
  'GET /v1/schedules': {
    operationId: 'listSchedules',
    tags: ['schedules'],
    summary: "This tenant's schedules",
    response: {
      200: withExample(obj({ schedules: { type: 'array', items: SCHEDULE_INFO } }), {
        schedules: [scheduleExample],
      }),
    },
  },
  'GET /v1/schedules/:name': {
    operationId: 'getSchedule',
    tags: ['schedules'],
    summary: 'One schedule: timing, next run, newest result',
    params: obj({ name: scheduleName }),
    response: {
      200: withExample(SCHEDULE_INFO, scheduleExample, 'The schedule.'),
      ...notFound('QUARRY_ERR_SCHEDULE_NOT_FOUND', 'schedule "daily-origins"'),
    },
  },
  'DELETE /v1/schedules/:name': {
    operationId: 'deleteSchedule',
    tags: ['schedules'],
    summary: 'Stop and forget a schedule (and its alias)',
    params: obj({ name: scheduleName }),
    response: {
      204: { description: 'Removed.', type: 'null' },
      ...notFound('QUARRY_ERR_SCHEDULE_NOT_FOUND', 'schedule "daily-origins"'),
    },
  },
  'GET /v1/aliases/:name': {
    operationId: 'getAlias',
    tags: ['schedules'],
    summary: "A schedule's newest result (the envelope bytes as stored)",
    params: obj({ name: scheduleName }),
    response: {
      200: withExample(
        RESULT_ENVELOPE,
        envelopeExample,
        'The newest result; header x-quarry-result-key names it.',
      ),
      ...notFound('QUARRY_ERR_RESULT_NOT_FOUND', 'result for "daily-origins"'),
    },
  },
  'GET /healthz': {
    operationId: 'health',
    tags: ['operations'],
    summary: 'The process is up',
    response: { 200: withExample(obj({ status: str({ enum: ['ok'] }) }), { status: 'ok' }, 'Up.') },
  },
  'GET /readyz': {
    operationId: 'ready',
    tags: ['operations'],
    summary: 'Both Redis roles answer',
    response: {
      200: withExample(
        obj({
          status: str({ enum: ['ready'] }),
          redis: obj({ queue: { type: 'boolean' }, cache: { type: 'boolean' } }),
        }),
        { status: 'ready', redis: { queue: true, cache: true } },
        'Ready.',
      ),
      503: withExample(
        obj({
          status: str({ enum: ['unavailable'] }),
          redis: obj({ queue: { type: 'boolean' }, cache: { type: 'boolean' } }),
        }),
        { status: 'unavailable', redis: { queue: true, cache: false } },
        'A Redis role does not answer.',
      ),
    },
  },
  'GET /metrics': {
    operationId: 'metrics',
    tags: ['operations'],
    summary: 'Prometheus metrics of this API process',
    response: {
      200: {
        description: 'Prometheus text exposition format.',
        content: {
          'text/plain': {
            schema: { type: 'string' },
            example: '# TYPE quarry_cache_hits_total counter\nquarry_cache_hits_total 12\n',
          },
        },
      },
    },
  },
};
