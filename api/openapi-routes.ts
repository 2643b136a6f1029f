// What the OpenAPI document says about each route, by `METHOD /url` as Fastify declares it:
// operationId, tags, parameters, the named schemas of bodies and answers (openapi-schemas.ts),
// and every status the route can answer, derived from the error codes it can give. Security is
// added per route by plugins/openapi.ts from the scope the route declares.
import type { FastifySchema } from 'fastify';
import type { ErrorCode } from '../shared/errors.ts';
import { DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT, MAX_SCANNED_PER_PAGE } from '../shared/job-history.ts';
import { TENANT_PATTERN } from '../shared/keys.ts';
import { FORMAT_CONTENT_TYPES, RESULT_FORMATS, type ResultFormat } from '../shared/result-formats.ts';
import { MAX_K } from '../shared/search/index.ts';
import {
  aggregationRequestExample,
  type COMPONENT_SCHEMAS,
  collection,
  documentsDeleteExample,
  documentsUpsertExample,
  EXAMPLE_INDEX_JOB,
  EXAMPLE_JOB,
  EXAMPLE_KEY,
  envelopeExample,
  errorResponses,
  indexInfoExample,
  indexLinksExample,
  indexRequestExample,
  int,
  jobId,
  jobStatusExample,
  json,
  obj,
  resultKey,
  type Schema,
  scheduleExample,
  scheduleName,
  searchRequestExample,
  str,
  tenantUsageExample,
} from './openapi-schemas.ts';
import { MAX_WAIT_MS } from './request.ts';

/** Every route but the public ones: authentication, scope and rate limit (auth.ts). */
export const AUTH_CODES: readonly ErrorCode[] = [
  'QUARRY_ERR_UNAUTHORIZED',
  'QUARRY_ERR_FORBIDDEN',
  'QUARRY_ERR_RATE_LIMITED',
];
/** Every route: a fault is a 500; Redis away is a 503 with Retry-After. */
const FAULT_CODES: readonly ErrorCode[] = [
  'QUARRY_ERR_INTERNAL',
  'QUARRY_ERR_REDIS_UNAVAILABLE',
  'QUARRY_ERR_REDIS_REFUSED',
];
const BODY_CODES: readonly ErrorCode[] = [
  'QUARRY_ERR_VALIDATION',
  'QUARRY_ERR_BODY_INVALID_JSON',
  'QUARRY_ERR_BODY_TOO_LARGE',
  'QUARRY_ERR_UNSUPPORTED_MEDIA_TYPE',
];
const DATASET_CODES: readonly ErrorCode[] = [
  'QUARRY_ERR_DATASET_TOO_LARGE',
  'QUARRY_ERR_DATASET_NOT_FOUND',
  'QUARRY_ERR_DATASET_PATH',
  'QUARRY_ERR_OBJECT_STORE',
];
/** With `?wait`, a job that fails within the wait answers with the job's own code. */
const JOB_OUTCOME_CODES: readonly ErrorCode[] = [
  'QUARRY_ERR_SPEC_UNKNOWN_COLUMN',
  'QUARRY_ERR_SPEC_TYPE',
  'QUARRY_ERR_DATASET_UNREADABLE',
  'QUARRY_ERR_DATASET_CHANGED',
  'QUARRY_ERR_DATASET_MISSING',
  'QUARRY_ERR_RESULT_TOO_LARGE',
  'QUARRY_ERR_RESULT_OVERFLOW',
  'QUARRY_ERR_JOB_CANCELLED',
  'QUARRY_ERR_JOB_TIMEOUT',
  'QUARRY_ERR_JOB_STALLED',
  'QUARRY_ERR_JOB_FAILED',
  'QUARRY_ERR_ENGINE',
];

const errors = (codes: readonly ErrorCode[], options: { body?: boolean } = {}) =>
  errorResponses([...(options.body ? BODY_CODES : []), ...codes, ...FAULT_CODES], {
    timeout: options.body === true,
  });

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
const body = (name: keyof typeof COMPONENT_SCHEMAS, example: unknown): Schema => ({
  content: { 'application/json': { schema: { $ref: `#/components/schemas/${name}` }, example } },
});
const cacheHeader = { 'x-quarry-cache': { type: 'string', enum: ['hit', 'miss'] } };

/** `?format=` of the result routes; without it, the Accept header decides (api/accept.ts). */
const formatQuery = obj(
  {
    format: str({
      enum: [...RESULT_FORMATS],
      description:
        'The format of the answer; wins over `Accept`. Without either, `json` (the envelope as stored). ' +
        'Any other value is a `400` naming `format`; an `Accept` that admits no format is a `406`.',
    }),
  },
  [],
);
const varyHeader = { vary: { type: 'string', description: 'Always `Accept`: the format depends on it.' } };

/**
 * A result in each format it is served in: the envelope as JSON (its named schema), or converted
 * (docs/FORMATS.md): CSV with a header row, one JSON row object per NDJSON line, an Arrow stream.
 */
function resultContent(description: string): Schema {
  const envelope = json('ResultEnvelope', description, envelopeExample);
  return {
    ...envelope,
    content: {
      ...(envelope.content as Schema),
      [mediaType('csv')]: {
        schema: str({ description: 'RFC 4180: header row, CRLF line ends, null as an empty field.' }),
        example: 'origin,count,avg_delay\r\nLAX,2,1\r\nSFO,1,12\r\n',
      },
      [mediaType('ndjson')]: {
        schema: str({ description: 'One row object per line, each ended by LF.' }),
        example: '{"origin":"LAX","count":2,"avg_delay":1}\n{"origin":"SFO","count":1,"avg_delay":12}\n',
      },
      [mediaType('arrow')]: {
        schema: str({
          format: 'binary',
          description: 'An Arrow IPC stream: one record batch, typed columns.',
        }),
      },
    },
  };
}
const mediaType = (format: ResultFormat) => FORMAT_CONTENT_TYPES[format].split(';')[0]!;
const RESULT_CODES: readonly ErrorCode[] = [
  'QUARRY_ERR_VALIDATION',
  'QUARRY_ERR_NOT_ACCEPTABLE',
  'QUARRY_ERR_RESULT_NOT_FOUND',
];

/** A document update route (api/routes/indexes.ts): answers like POST /v1/indexes/:collection. */
function updateRoute(
  operationId: string,
  bodyName: 'DocumentsUpsert' | 'DocumentsDelete',
  doc: { summary: string; description: string; example: unknown },
): FastifySchema {
  return {
    operationId,
    tags: ['indexes'],
    summary: doc.summary,
    description: doc.description,
    params: obj({ collection }),
    querystring: waitQuery,
    body: body(bodyName, doc.example),
    response: {
      200: json('IndexBuilt', 'Built within `wait`; the version is live.', {
        jobId: EXAMPLE_INDEX_JOB,
        status: 'completed',
        links: indexLinksExample,
        index: indexInfoExample,
      }),
      202: json('IndexAccepted', 'Enqueued; not built within `wait`.', {
        jobId: EXAMPLE_INDEX_JOB,
        status: 'queued',
        links: indexLinksExample,
      }),
      ...errors(
        [
          ...AUTH_CODES,
          ...JOB_OUTCOME_CODES,
          'QUARRY_ERR_DATASET_TOO_LARGE',
          'QUARRY_ERR_INDEX_NOT_FOUND',
          'QUARRY_ERR_INDEX_NO_DOCUMENTS',
          'QUARRY_ERR_INDEX_CONFLICT',
          'QUARRY_ERR_TENANT_QUOTA',
          'QUARRY_ERR_REDIS_NOT_REPLICATED',
        ],
        { body: true },
      ),
    },
  };
}

export const ROUTE_DOCS: Readonly<Record<string, FastifySchema>> = {
  'POST /v1/aggregations': {
    operationId: 'createAggregation',
    tags: ['aggregations'],
    summary: 'Enqueue an aggregation, or answer it from the cache',
    description:
      'Answers `200` with the result envelope when the result is cached (`x-quarry-cache: hit`) or ' +
      'computed within `wait`; otherwise `202` with links to poll. The same spec always gets the ' +
      'same `resultKey`; identical requests in flight share one job. A job that fails within ' +
      '`wait` answers with its own error code.',
    querystring: waitQuery,
    body: body('AggregationSpec', aggregationRequestExample),
    response: {
      200: {
        ...json('ResultEnvelope', 'The result envelope, as stored.', envelopeExample),
        headers: cacheHeader,
      },
      202: {
        ...json('AggregationAccepted', 'Enqueued (or joined a job in flight); not finished within `wait`.', {
          jobId: EXAMPLE_JOB,
          resultKey: EXAMPLE_KEY,
          status: 'queued',
          links: { status: `/v1/jobs/${EXAMPLE_JOB}`, result: `/v1/results/${EXAMPLE_KEY}` },
        }),
        headers: cacheHeader,
      },
      ...errors(
        [
          ...AUTH_CODES,
          ...DATASET_CODES,
          ...JOB_OUTCOME_CODES,
          'QUARRY_ERR_TENANT_QUOTA',
          'QUARRY_ERR_REDIS_NOT_REPLICATED',
        ],
        { body: true },
      ),
    },
  },
  'POST /v1/aggregations/batch': {
    operationId: 'createAggregationBatch',
    tags: ['aggregations'],
    summary: 'Enqueue many aggregations in one request, each answered as the single route would',
    description:
      'Up to `QUARRY_MAX_BATCH_ITEMS` specs (default 100; more is a `400` naming `items`), enqueued ' +
      'in a few Redis round trips for the whole batch. Answers `200` once the batch was read, with ' +
      'one item per spec, in order: the status and body `POST /v1/aggregations` would answer that ' +
      "spec alone (a cached envelope, a queued job, or its error; a spec's field named under " +
      '`items.<i>`). A bad spec does not stop the others; identical specs share one job; a job ' +
      'is `202` only once it is stored. No `?wait`.',
    body: body('AggregationBatchRequest', { items: [aggregationRequestExample] }),
    response: {
      200: json('AggregationBatch', 'One answer per spec, in order.', {
        items: [
          {
            status: 202,
            cache: 'miss',
            body: {
              jobId: EXAMPLE_JOB,
              resultKey: EXAMPLE_KEY,
              status: 'queued',
              links: { status: `/v1/jobs/${EXAMPLE_JOB}`, result: `/v1/results/${EXAMPLE_KEY}` },
            },
          },
          {
            status: 400,
            body: {
              error: {
                code: 'QUARRY_ERR_VALIDATION',
                message: 'metrics.0.column is required (a string)',
                field: 'items.1.metrics.0.column',
              },
            },
          },
        ],
      }),
      ...errors(AUTH_CODES, { body: true }),
    },
  },
  'GET /v1/results/:resultKey': {
    operationId: 'getResult',
    tags: ['aggregations'],
    summary: 'A stored result: the envelope as its bytes, or as CSV, NDJSON or Arrow',
    description:
      'The format comes from `?format=`, else from `Accept` (`application/json`, `text/csv`, ' +
      '`application/x-ndjson`, `application/vnd.apache.arrow.stream`, with q-values); default json.',
    params: obj({ resultKey }),
    querystring: formatQuery,
    response: {
      200: { ...resultContent('The result.'), headers: varyHeader },
      ...errors([...AUTH_CODES, ...RESULT_CODES]),
    },
  },
  'GET /v1/jobs/:jobId': {
    operationId: 'getJob',
    tags: ['jobs'],
    summary: "A job's status record",
    params: obj({ jobId }),
    response: {
      200: json('JobStatus', 'The status record.', jobStatusExample),
      ...errors([...AUTH_CODES, 'QUARRY_ERR_JOB_NOT_FOUND']),
    },
  },
  'GET /v1/tenants': {
    operationId: 'listTenants',
    tags: ['tenants'],
    summary: 'Queued and running jobs and limits of every tenant the key may read',
    description:
      'Admin keys: every tenant of the key list, in its order; other keys: their own tenant. ' +
      'Empty without API keys (one tenant, no fair dispatch).',
    response: {
      200: json('TenantList', 'The tenants.', { tenants: [tenantUsageExample] }),
      ...errors(AUTH_CODES),
    },
  },
  'GET /v1/tenants/:tenant/usage': {
    operationId: 'getTenantUsage',
    tags: ['tenants'],
    summary: "A tenant's queued and running jobs and its limits",
    description:
      'For admin keys (any tenant of the key list) and for the tenant itself; another tenant is ' +
      'a `404`, as for an unknown one (docs/FAIRNESS.md).',
    params: obj({ tenant: str({ pattern: TENANT_PATTERN.source }) }),
    response: {
      200: json('TenantUsage', 'The usage.', tenantUsageExample),
      ...errors([...AUTH_CODES, 'QUARRY_ERR_TENANT_NOT_FOUND']),
    },
  },
  'DELETE /v1/jobs/:jobId': {
    operationId: 'cancelJob',
    tags: ['jobs'],
    summary: 'Cancel a job',
    description: 'A queued job is removed; a running one is stopped. Answers the status afterwards.',
    params: obj({ jobId }),
    response: {
      200: json('JobStatus', 'The status record after cancelling.', {
        ...jobStatusExample,
        state: 'cancelled',
        resultKey: null,
        error: { code: 'QUARRY_ERR_JOB_CANCELLED', message: 'the job was cancelled' },
      }),
      ...errors([...AUTH_CODES, 'QUARRY_ERR_JOB_NOT_FOUND']),
    },
  },
  'GET /v1/jobs': {
    operationId: 'listJobs',
    tags: ['jobs'],
    summary: 'Job history: status records, newest first',
    description:
      'Every job whose status record is still kept (QUARRY_STATUS_TTL_S), in all states, newest ' +
      'first by creation (a retry is a new creation). Filters combine. A page looks at most at ' +
      `${MAX_SCANNED_PER_PAGE} records: with a filter that rarely matches, a page may be short (even ` +
      'empty) while `nextCursor` is not null. `all=true` (admin keys) lists every tenant.',
    querystring: obj(
      {
        state: str({ enum: ['queued', 'active', 'completed', 'failed', 'cancelled'] }),
        type: str({ enum: ['aggregate', 'index'] }),
        errorCode: str({ pattern: '^QUARRY_ERR_[A-Z0-9_]{1,64}$' }),
        since: str({ format: 'date-time', description: 'Only jobs created at or after this time.' }),
        limit: int({ minimum: 1, maximum: MAX_HISTORY_LIMIT, default: DEFAULT_HISTORY_LIMIT }),
        cursor: str({ description: 'The `nextCursor` of the previous page.' }),
        all: { type: 'boolean', default: false, description: 'Every tenant (admin keys only).' },
      },
      [],
    ),
    response: {
      200: json('JobList', 'One page of the history.', { jobs: [jobStatusExample], nextCursor: null }),
      ...errors([...AUTH_CODES, 'QUARRY_ERR_VALIDATION']),
    },
  },
  'POST /v1/jobs/:jobId/retry': {
    operationId: 'retryJob',
    tags: ['jobs'],
    summary: 'Run a failed or cancelled job again',
    description:
      'The job runs again under the same id and result key, from its kept payload and inline data ' +
      '(kept QUARRY_RETRY_DATA_TTL_S after it ended). Two retries of one job at once make one ' +
      'run: the second answers 409.',
    params: obj({ jobId }),
    response: {
      202: json('RetryAccepted', 'Queued again.', {
        jobId: EXAMPLE_JOB,
        resultKey: EXAMPLE_KEY,
        status: 'queued',
        links: { status: `/v1/jobs/${EXAMPLE_JOB}`, result: `/v1/results/${EXAMPLE_KEY}` },
      }),
      ...errors([
        ...AUTH_CODES,
        'QUARRY_ERR_JOB_NOT_FOUND',
        'QUARRY_ERR_JOB_NOT_RETRYABLE',
        'QUARRY_ERR_RETRY_DATA_GONE',
      ]),
    },
  },
  'GET /v1/activity': {
    operationId: 'getActivity',
    tags: ['jobs'],
    summary: 'Jobs ended per minute, run-time percentiles and queue depth',
    description:
      'Counts by final state and run-time percentiles (within one histogram bucket, +33 %) per ' +
      'minute over QUARRY_ACTIVITY_WINDOW_S; minutes without an ended job are left out. The depth ' +
      'is of the queues, which all tenants share. `all=true` (admin keys) sums every tenant.',
    querystring: obj({ all: { type: 'boolean', default: false } }, []),
    response: {
      200: json('Activity', 'The activity of the window.', {
        windowS: 21600,
        minutes: [
          {
            minute: '2026-01-31T12:00:00.000Z',
            completed: 41,
            failed: 2,
            cancelled: 0,
            runMs: { p50: 13.34, p95: 56.23, p99: 100 },
          },
        ],
        depth: {
          aggregate: { waiting: 3, active: 2, delayed: 0 },
          index: { waiting: 0, active: 0, delayed: 0 },
        },
      }),
      ...errors([...AUTH_CODES, 'QUARRY_ERR_VALIDATION']),
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
      ...errors([...AUTH_CODES, 'QUARRY_ERR_JOB_NOT_FOUND']),
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
    body: body('IndexRequest', indexRequestExample),
    response: {
      200: json('IndexBuilt', 'Built within `wait`; the version is live.', {
        jobId: EXAMPLE_INDEX_JOB,
        status: 'completed',
        links: indexLinksExample,
        index: indexInfoExample,
      }),
      202: json('IndexAccepted', 'Enqueued; not built within `wait`.', {
        jobId: EXAMPLE_INDEX_JOB,
        status: 'queued',
        links: indexLinksExample,
      }),
      ...errors(
        [
          ...AUTH_CODES,
          ...DATASET_CODES,
          ...JOB_OUTCOME_CODES,
          'QUARRY_ERR_INDEX_NOT_FOUND',
          'QUARRY_ERR_TENANT_QUOTA',
          'QUARRY_ERR_REDIS_NOT_REPLICATED',
        ],
        {
          body: true,
        },
      ),
    },
  },
  'POST /v1/indexes/:collection/documents': updateRoute('upsertDocuments', 'DocumentsUpsert', {
    summary: 'Add documents to a collection, or replace those of the same id',
    description:
      "A build of the next version: the live version's documents, a replaced one in its place, new ones " +
      'appended, with its settings (fields, store, boosts, filterable, sortable, typos, analyzer). Same job, ' +
      'versioning, hot swap and `index.live` webhook as a full build; with `wait`, `200` once live here.',
    example: documentsUpsertExample,
  }),
  'DELETE /v1/indexes/:collection/documents': updateRoute('deleteDocuments', 'DocumentsDelete', {
    summary: 'Remove documents from a collection by id',
    description:
      'A build of the next version without these ids (an id the collection lacks is ignored); otherwise ' +
      'as `POST /v1/indexes/:collection/documents`.',
    example: documentsDeleteExample,
  }),
  'GET /v1/indexes': {
    operationId: 'listIndexes',
    tags: ['indexes'],
    summary: "The tenant's collections, each with its live version",
    description: 'By name; the metadata of each current version as the queue Redis holds it.',
    response: {
      200: json('IndexList', "The tenant's collections.", { indexes: [indexInfoExample] }),
      ...errors(AUTH_CODES),
    },
  },
  'GET /v1/indexes/:collection': {
    operationId: 'getIndex',
    tags: ['indexes'],
    summary: "A collection's current index version",
    params: obj({ collection }),
    response: {
      200: json(
        'IndexServed',
        'The version this process serves (searches answer from it), else the live one in Redis.',
        { ...indexInfoExample, stored: true },
      ),
      ...errors([...AUTH_CODES, 'QUARRY_ERR_INDEX_NOT_FOUND']),
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
      200: json('IndexDeleted', 'Deleted.', {
        collection: 'docs',
        version: indexInfoExample.version,
        deleted: true,
      }),
      ...errors([...AUTH_CODES, 'QUARRY_ERR_INDEX_NOT_FOUND']),
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
      200: json('SearchResult', 'The top k hits, best first.', {
        hits: [
          { id: '1', score: 1.93, fields: { title: 'Red apples' } },
          { id: '2', score: 0.71, fields: { title: 'Pears' } },
        ],
        total: 2,
        version: 1,
        tookMs: 0.03,
      }),
      ...errors([...AUTH_CODES, 'QUARRY_ERR_VALIDATION', 'QUARRY_ERR_INDEX_NOT_FOUND']),
    },
  },
  'POST /v1/indexes/:collection/search': {
    operationId: 'searchQuery',
    tags: ['indexes'],
    summary: 'Search a collection with phrases, negation, typos, filters, facets, sorting and pages',
    description:
      '`q` takes words, `"quoted phrases"` and `-excluded` words or phrases; an empty `q` matches ' +
      "every document. `filter` is the aggregation filter grammar over the index's `filterable` " +
      'fields; `facets` count values of filterable fields over all matches; `sort` orders by ' +
      '`sortable` fields, then fewer typos, then score. A field not declared when building, an ' +
      'unclosed quote, `offset + k` above 1000 or `typos` on an index built without them is a `400` ' +
      'naming the field.',
    params: obj({ collection }),
    body: body('SearchRequest', searchRequestExample),
    response: {
      200: json('SearchQueryResult', 'One page of hits, best first, the exact total and facets.', {
        hits: [
          {
            id: '1',
            score: 1.93,
            fields: { title: 'Red apples' },
            highlights: { title: '<em>Red</em> apples' },
          },
        ],
        total: 1,
        facets: { tags: { fruit: 1 } },
        version: 1,
        tookMs: 0.05,
      }),
      ...errors([...AUTH_CODES, 'QUARRY_ERR_VALIDATION', 'QUARRY_ERR_INDEX_NOT_FOUND'], { body: true }),
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
    body: body('ScheduleRequest', { spec: aggregationRequestExample, everyMs: 60_000 }),
    response: {
      200: json('Schedule', 'The schedule as registered.', scheduleExample),
      ...errors([...AUTH_CODES, ...DATASET_CODES], { body: true }),
    },
  },
  'GET /v1/schedules': {
    operationId: 'listSchedules',
    tags: ['schedules'],
    summary: "This tenant's schedules",
    response: {
      200: json('ScheduleList', 'The schedules.', { schedules: [scheduleExample] }),
      ...errors(AUTH_CODES),
    },
  },
  'GET /v1/schedules/:name': {
    operationId: 'getSchedule',
    tags: ['schedules'],
    summary: 'One schedule: timing, next run, newest result',
    params: obj({ name: scheduleName }),
    response: {
      200: json('Schedule', 'The schedule.', scheduleExample),
      ...errors([...AUTH_CODES, 'QUARRY_ERR_SCHEDULE_NOT_FOUND']),
    },
  },
  'DELETE /v1/schedules/:name': {
    operationId: 'deleteSchedule',
    tags: ['schedules'],
    summary: 'Stop and forget a schedule (and its alias)',
    params: obj({ name: scheduleName }),
    response: {
      204: { description: 'Removed.', type: 'null' },
      ...errors([...AUTH_CODES, 'QUARRY_ERR_SCHEDULE_NOT_FOUND']),
    },
  },
  'GET /v1/aliases/:name': {
    operationId: 'getAlias',
    tags: ['schedules'],
    summary: "A schedule's newest result (the envelope bytes as stored, or CSV, NDJSON or Arrow)",
    description: 'Formats as for `GET /v1/results/{resultKey}`.',
    params: obj({ name: scheduleName }),
    querystring: formatQuery,
    response: {
      200: {
        ...resultContent('The newest result; header x-quarry-result-key names it.'),
        headers: { 'x-quarry-result-key': { type: 'string', pattern: '^[0-9a-f]{32}$' }, ...varyHeader },
      },
      ...errors([...AUTH_CODES, ...RESULT_CODES]),
    },
  },
  'GET /healthz': {
    operationId: 'health',
    tags: ['operations'],
    summary: 'The process is up',
    response: {
      200: json('Health', 'Up.', { status: 'ok' }),
      ...errorResponses(['QUARRY_ERR_INTERNAL']),
    },
  },
  'GET /readyz': {
    operationId: 'ready',
    tags: ['operations'],
    summary: 'Both Redis roles answer',
    response: {
      200: json('Ready', 'Ready.', { status: 'ready', redis: { queue: true, cache: true } }),
      500: errorResponses(['QUARRY_ERR_INTERNAL'])[500]!,
      503: json('Unavailable', 'A Redis role does not answer.', {
        status: 'unavailable',
        redis: { queue: true, cache: false },
      }),
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
      ...errorResponses([...AUTH_CODES, 'QUARRY_ERR_INTERNAL']),
    },
  },
};
