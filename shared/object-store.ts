// Datasets and index sources in object storage: `s3://bucket/key` URLs only (never http(s):// of
// an arbitrary host), read through @aws-sdk/client-s3 with the standard AWS variables. The
// producer fingerprints an object by a HEAD (ETag, size, version id); workers fetch it into their
// host's cache (workers/object-cache.ts) and refuse an object that is no longer the one named.
import type { Readable } from 'node:stream';
import {
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { QuarryConfig } from './config.ts';
import type { FileFormat } from './datasets.ts';
import { QuarryError } from './errors.ts';

export interface ObjectUrl {
  readonly bucket: string;
  readonly key: string;
}

/** What the producer learned of an object: a changed object is a new result key. */
export interface ObjectFingerprint {
  /** `s3://bucket/key` as the request gave it. */
  readonly url: string;
  readonly format: FileFormat;
  readonly size: number;
  /** The ETag with its quotes, as S3 sends it. */
  readonly etag: string;
  /** Present in a versioned bucket. */
  readonly versionId?: string;
}

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Parses `s3://bucket/key`: a valid bucket name, a key of 1-1024 bytes without control characters. */
export function parseObjectUrl(url: string, field: string): ObjectUrl {
  const match = /^s3:\/\/([^/]*)\/(.*)$/s.exec(url);
  if (match === null) {
    throw invalid(field, 'must be an s3://bucket/key URL (only s3:// URLs are read)');
  }
  const [, bucket, key] = match as unknown as [string, string, string];
  if (!BUCKET.test(bucket) || bucket.includes('..')) {
    throw invalid(field, `"${bucket.slice(0, 70)}" is not a bucket name (3-63 of a-z, 0-9, . and -)`);
  }
  if (key === '' || Buffer.byteLength(key) > 1024 || CONTROL.test(key)) {
    throw invalid(field, 'the key must have 1-1024 bytes and no control characters');
  }
  if (!(key as unknown as { isWellFormed(): boolean }).isWellFormed()) {
    throw invalid(field, 'the key must be well-formed Unicode');
  }
  return { bucket, key };
}

/**
 * With API keys, a tenant reads only the buckets (or `bucket/prefix`es) its keys list: anything
 * else is a 403. Without API keys (no tenant) every bucket the credentials reach is readable.
 */
export function checkBucketScope(
  config: Pick<QuarryConfig, 'apiKeys' | 'tenantBuckets'>,
  tenant: string | undefined,
  target: ObjectUrl,
  field: string,
): void {
  if (tenant === undefined && config.apiKeys.length === 0) return;
  const scopes = tenant === undefined ? [] : (config.tenantBuckets[tenant] ?? []);
  const allowed = scopes.some((scope) => {
    const slash = scope.indexOf('/');
    if (slash === -1) return scope === target.bucket;
    return scope.slice(0, slash) === target.bucket && target.key.startsWith(scope.slice(slash + 1));
  });
  if (!allowed) {
    throw new QuarryError(
      'QUARRY_ERR_FORBIDDEN',
      `${field}: this API key's tenant may not read s3://${target.bucket}/ (its "buckets" do not list it)`,
      { field },
    );
  }
}

export interface ObjectStore {
  /** HEAD: the object's fingerprint; a missing object or bucket is QUARRY_ERR_DATASET_NOT_FOUND. */
  head(url: string, format: FileFormat, field: string, signal?: AbortSignal): Promise<ObjectFingerprint>;
  /**
   * GET of the fingerprinted object: its body, once its ETag, size and version id are checked
   * against `expected` (QUARRY_ERR_DATASET_CHANGED otherwise).
   */
  get(expected: ObjectFingerprint, field: string, signal?: AbortSignal): Promise<Readable>;
  close(): void;
}

type S3Failure = Error & { $metadata?: { httpStatusCode?: number }; Code?: string };

/**
 * One S3 client for the process, configured from the AWS variables (config.s3); made on first
 * use, so a deployment without s3:// datasets never loads credentials.
 */
export function createObjectStore(config: Pick<QuarryConfig, 's3'>): ObjectStore {
  const { s3 } = config;
  let made: S3Client | undefined;
  const make = (): S3Client => {
    made ??= new S3Client({
      region: s3.region,
      forcePathStyle: s3.forcePathStyle,
      ...(s3.endpoint === undefined ? {} : { endpoint: s3.endpoint }),
      // A copy: the SDK marks the object it is given (and the config is frozen).
      ...(s3.credentials === undefined ? {} : { credentials: { ...s3.credentials } }),
      // A few attempts for a flaky connection; past them the job retries as a whole.
      maxAttempts: 3,
    });
    return made;
  };
  const client = {
    send: ((command: never, options: never) => make().send(command, options)) as S3Client['send'],
  };

  function failure(cause: unknown, url: string, field: string): QuarryError {
    const error = cause as S3Failure;
    const status = error.$metadata?.httpStatusCode;
    if (error.name === 'AbortError') throw cause;
    if (
      status === 404 ||
      error.name === 'NotFound' ||
      error.name === 'NoSuchKey' ||
      error.name === 'NoSuchBucket'
    ) {
      return new QuarryError('QUARRY_ERR_DATASET_NOT_FOUND', `${field}: no object at ${url}`, {
        field,
        cause,
      });
    }
    if (status === 403 || status === 401) {
      return new QuarryError(
        'QUARRY_ERR_DATASET_NOT_FOUND',
        `${field}: the object store refused to show ${url} to Quarry's credentials (${status})`,
        { field, cause },
      );
    }
    return new QuarryError(
      'QUARRY_ERR_OBJECT_STORE',
      `${field}: the object store failed on ${url}: ${error.name ?? 'error'}${status === undefined ? '' : ` (${status})`}`,
      { field, cause },
    );
  }

  return {
    async head(url, format, field, signal) {
      const { bucket, key } = parseObjectUrl(url, field);
      try {
        const out = await client.send(
          new HeadObjectCommand({ Bucket: bucket, Key: key }),
          signal === undefined ? {} : { abortSignal: signal },
        );
        return {
          url,
          format,
          size: out.ContentLength ?? 0,
          etag: out.ETag ?? '',
          ...(out.VersionId === undefined || out.VersionId === 'null' ? {} : { versionId: out.VersionId }),
        };
      } catch (cause) {
        throw failure(cause, url, field);
      }
    },
    async get(expected, field, signal) {
      const { bucket, key } = parseObjectUrl(expected.url, field);
      let out: GetObjectCommandOutput;
      try {
        out = await client.send(
          // If-Match: a server that honours it refuses a changed object (412) before sending it.
          new GetObjectCommand({
            Bucket: bucket,
            Key: key,
            ...(expected.etag ? { IfMatch: expected.etag } : {}),
          }),
          signal === undefined ? {} : { abortSignal: signal },
        );
      } catch (cause) {
        const status = (cause as S3Failure).$metadata?.httpStatusCode;
        if (status === 412 || status === 404) throw changed(expected.url, field);
        throw failure(cause, expected.url, field);
      }
      const body = out.Body as Readable | undefined;
      const versionId = out.VersionId === 'null' ? undefined : out.VersionId;
      // Servers that ignore If-Match are checked here: the same ETag, size and version.
      if (
        body === undefined ||
        out.ETag !== expected.etag ||
        out.ContentLength !== expected.size ||
        versionId !== expected.versionId
      ) {
        body?.destroy();
        throw changed(expected.url, field);
      }
      return body;
    },
    close() {
      made?.destroy();
      made = undefined;
    },
  };
}

export function changed(url: string, field: string): QuarryError {
  return new QuarryError(
    'QUARRY_ERR_DATASET_CHANGED',
    `${field}: the object at ${url} changed (or went) after the job was enqueued; enqueue it again`,
    { field },
  );
}

function invalid(field: string, message: string): QuarryError {
  return new QuarryError('QUARRY_ERR_VALIDATION', `${field}: ${message}`, { field });
}
