// The one registry of Quarry error codes. Callers branch on `code`, never on message text.
// A code, once published, is never reused for another meaning.

export interface ErrorDefinition {
  /** HTTP status the API answers with when this error reaches a client. */
  readonly status: number;
  /** True when retrying the same job cannot succeed (the job fails at once, no retries). */
  readonly unrecoverable: boolean;
  readonly description: string;
}

const def = (status: number, unrecoverable: boolean, description: string): ErrorDefinition => ({
  status,
  unrecoverable,
  description,
});

export const ERRORS = {
  QUARRY_ERR_VALIDATION: def(400, true, 'The request or job payload does not match its schema.'),
  QUARRY_ERR_BODY_INVALID_JSON: def(400, true, 'The request body is not valid JSON.'),
  QUARRY_ERR_BODY_TOO_LARGE: def(413, true, 'The request body exceeds QUARRY_MAX_BODY_BYTES.'),
  QUARRY_ERR_UNSUPPORTED_MEDIA_TYPE: def(415, true, 'The request body must be application/json.'),
  QUARRY_ERR_DATASET_TOO_LARGE: def(413, true, 'Inline records exceed QUARRY_MAX_INLINE_BYTES.'),
  QUARRY_ERR_DATASET_NOT_FOUND: def(404, true, 'The dataset file does not exist under the data root.'),
  QUARRY_ERR_DATASET_PATH: def(400, true, 'The dataset path leaves the data root or is not a regular file.'),
  QUARRY_ERR_DATASET_NOT_REGULAR: def(
    400,
    true,
    'The dataset path or index source names a directory, FIFO, device or socket, not a regular file.',
  ),
  QUARRY_ERR_SOURCE_TOO_LARGE: def(
    413,
    true,
    'The index source (or the documents read from it) exceeds QUARRY_MAX_INDEX_SOURCE_BYTES.',
  ),
  QUARRY_ERR_DATASET_UNREADABLE: def(422, true, 'The dataset file could not be read in its format.'),
  QUARRY_ERR_DATASET_CHANGED: def(
    409,
    true,
    'The dataset file or object changed between enqueue and compute; enqueue again.',
  ),
  QUARRY_ERR_OBJECT_STORE: def(
    502,
    false,
    'The object store failed to answer for an s3:// dataset or source (retried as a job would be).',
  ),
  QUARRY_ERR_DATASET_MISSING: def(410, true, "The job's inline data expired before a worker read it."),
  QUARRY_ERR_SPEC_UNKNOWN_COLUMN: def(400, true, 'The spec names a column the dataset does not have.'),
  QUARRY_ERR_SPEC_TYPE: def(400, true, 'A metric or filter does not fit the type of its column.'),
  QUARRY_ERR_RESULT_TOO_LARGE: def(422, true, 'The result exceeds the configured row or byte limit.'),
  QUARRY_ERR_RESULT_OVERFLOW: def(
    422,
    true,
    'A result value (a metric, a bin, a ratio) is beyond the range of its type (a double: ±1.8e308), or an infinity or NaN read from the data; JSON cannot write it.',
  ),
  QUARRY_ERR_ENGINE: def(500, false, 'The engine failed while computing the job.'),
  QUARRY_ERR_JOB_NOT_FOUND: def(
    404,
    true,
    'No job with this id is known (never existed, or its record expired).',
  ),
  QUARRY_ERR_RESULT_NOT_FOUND: def(
    404,
    true,
    'No result is stored under this key (never computed, or expired).',
  ),
  QUARRY_ERR_WAIT_TIMEOUT: def(408, false, 'The job did not finish within the wait time.'),
  QUARRY_ERR_JOB_FAILED: def(500, true, 'The job failed; see its error code.'),
  QUARRY_ERR_INDEX_NOT_FOUND: def(404, true, 'No index exists for this collection.'),
  QUARRY_ERR_INDEX_DELETED: def(
    409,
    true,
    'The collection was deleted while this build ran (after it reserved its version); nothing was published.',
  ),
  QUARRY_ERR_INDEX_NO_DOCUMENTS: def(
    409,
    true,
    "The collection's live version was built before versions kept their documents, so a document update has nothing to start from: rebuild it once (POST /v1/indexes/:collection), then updates work.",
  ),
  QUARRY_ERR_INDEX_CONFLICT: def(
    409,
    true,
    'Other builds of the collection kept going live while this document update rebuilt on each of them; it gave up after its retries. Nothing was published; send the update again.',
  ),
  QUARRY_ERR_JOB_CANCELLED: def(409, true, 'The job was cancelled.'),
  QUARRY_ERR_JOB_STALLED: def(500, true, 'The worker running the job died more often than allowed.'),
  QUARRY_ERR_JOB_TIMEOUT: def(504, true, "The job ran past its type's hard timeout and was stopped."),
  QUARRY_ERR_UNAUTHORIZED: def(401, true, 'No valid API key was presented.'),
  QUARRY_ERR_FORBIDDEN: def(403, true, "The API key lacks the route's scope."),
  QUARRY_ERR_CSRF: def(
    403,
    true,
    'A write made with a console session cookie lacks its CSRF token (x-quarry-csrf header), or the token is wrong.',
  ),
  QUARRY_ERR_RATE_LIMITED: def(429, false, "The API key's request rate limit was reached."),
  QUARRY_ERR_TENANT_QUOTA: def(
    429,
    false,
    "The tenant's queued jobs reached its maxQueued; retry after some finish.",
  ),
  QUARRY_ERR_SCHEDULE_NOT_FOUND: def(404, true, 'No schedule with this name.'),
  QUARRY_ERR_WEBHOOK_NOT_FOUND: def(404, true, 'No webhook with this name.'),
  QUARRY_ERR_WEBHOOK_TARGET: def(
    400,
    true,
    'The webhook URL is not http(s), or its host does not resolve, or resolves to a private, loopback or link-local address that QUARRY_WEBHOOK_ALLOW does not list; `field` is `url`.',
  ),
  QUARRY_ERR_WEBHOOK_LIMIT: def(
    409,
    true,
    'The tenant has as many webhooks as allowed (20); delete one first.',
  ),
  QUARRY_ERR_TENANT_NOT_FOUND: def(404, true, 'No tenant of this name that the key may see.'),
  QUARRY_ERR_NOT_FOUND: def(404, true, 'No such route.'),
  QUARRY_ERR_NOT_ACCEPTABLE: def(
    406,
    true,
    'The Accept header names no format the route serves (json, csv, ndjson, arrow); `field` is `accept`.',
  ),
  QUARRY_ERR_REQUEST_TIMEOUT: def(
    408,
    false,
    'The client did not send the whole request (headers, body) within the time allowed.',
  ),
  QUARRY_ERR_HEADERS_TOO_LARGE: def(431, true, "The request's headers exceed the size allowed."),
  QUARRY_ERR_BAD_REQUEST: def(400, true, 'The request is not valid HTTP (the connection is closed).'),
  QUARRY_ERR_REDIS_UNAVAILABLE: def(503, false, 'A Redis server Quarry depends on is not reachable.'),
  QUARRY_ERR_REDIS_REFUSED: def(
    503,
    false,
    'A Redis server refused the command (out of memory, read-only, persistence failing, loading, too few replicas) or did not answer within QUARRY_REDIS_COMMAND_TIMEOUT_MS; nothing was half-written.',
  ),
  QUARRY_ERR_REDIS_NOT_REPLICATED: def(
    503,
    false,
    'The enqueue was written to the queue Redis primary but fewer than QUARRY_QUEUE_MIN_REPLICAS replicas confirmed it within QUARRY_QUEUE_MIN_REPLICAS_TIMEOUT_MS: not acknowledged. The job may still run; retrying an aggregation joins the same job.',
  ),
  QUARRY_ERR_JOB_ORPHANED: def(
    500,
    true,
    "The job's queue entry was lost and its inline data is gone, so it cannot be run again; enqueue it again.",
  ),
  QUARRY_ERR_JOB_NOT_RETRYABLE: def(
    409,
    true,
    'Only a failed or cancelled job can be retried; this one is queued, active or completed.',
  ),
  QUARRY_ERR_RETRY_DATA_GONE: def(
    410,
    true,
    "The job's inline data (kept QUARRY_RETRY_DATA_TTL_S after it failed) or payload is gone; enqueue it again.",
  ),
  QUARRY_ERR_CONFIG: def(500, true, 'The configuration (environment) is invalid.'),
  QUARRY_ERR_INTERNAL: def(500, false, 'An unexpected fault; the log has the details.'),
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorCode = keyof typeof ERRORS;

export interface QuarryErrorOptions {
  /** The input field at fault, as a dotted path (`metrics.0.column`). */
  field?: string;
  cause?: unknown;
  /** For 429 and 503: when a retry makes sense (the API sends it as Retry-After). */
  retryAfterS?: number;
}

export class QuarryError extends Error {
  override readonly name = 'QuarryError';
  readonly code: ErrorCode;
  readonly field: string | undefined;
  readonly retryAfterS: number | undefined;

  constructor(code: ErrorCode, message: string, options: QuarryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.field = options.field;
    this.retryAfterS = options.retryAfterS;
  }

  get status(): number {
    return ERRORS[this.code].status;
  }

  get unrecoverable(): boolean {
    return ERRORS[this.code].unrecoverable;
  }

  /** The body the API sends for this error. */
  toJSON(): { error: { code: ErrorCode; message: string; field?: string } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.field === undefined ? {} : { field: this.field }),
      },
    };
  }
}

export function isQuarryError(value: unknown): value is QuarryError {
  return value instanceof QuarryError;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERRORS, value);
}
