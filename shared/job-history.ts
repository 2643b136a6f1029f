// Job history: the status records (status.ts) listed newest first, with filters and a cursor.
// The index behind it is a sorted set per tenant (keys.history, job ids scored by createdAt) and
// one over all tenants (keys.historyAll, `<tenant>/<jobId>`), both written by the scripts that
// create or reset a record (HISTORY_LUA runs inside them). It stays bounded: each write trims
// entries older than the status TTL whose record is gone (a bounded batch per write) and
// everything past QUARRY_HISTORY_MAX_JOBS; a listing skips entries whose record expired and
// removes them. Filters are applied to the records read, so a page examines at most
// MAX_SCANNED_PER_PAGE entries: a short page with a nextCursor means "keep paging".
import { z } from 'zod';
import { QuarryError } from './errors.ts';
import { JOB_ID_PATTERN, type KeyScheme, keyScheme, parseLiveMember } from './keys.ts';
import type { Redis } from './redis.ts';
import { type JobState, type JobStatus, type JobType, STATUS_FIELDS, toStatus } from './status.ts';
import { describeZodError, parseWith } from './zod-messages.ts';

export const DEFAULT_HISTORY_LIMIT = 50;
export const MAX_HISTORY_LIMIT = 500;
/** Index entries one page looks at, matching or not (a filter that rarely matches stays cheap). */
export const MAX_SCANNED_PER_PAGE = 5000;
/** Entries read from the index per round trip while filling a page. */
const SCAN_CHUNK = 200;

const JOB_STATES = ['queued', 'active', 'completed', 'failed', 'cancelled'] as const;
const JOB_TYPES = ['aggregate', 'index'] as const;

const isoTime = z
  .string()
  .refine(
    (s) => /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(s) && !Number.isNaN(Date.parse(s)),
    {
      message: 'must be an ISO 8601 time such as 2026-01-31T12:00:00Z',
    },
  );

/** The filters of GET /v1/jobs (query strings) and client.jobs.list() (values). */
export const HistoryQuerySchema = z
  .object({
    state: z.enum(JOB_STATES).optional(),
    type: z.enum(JOB_TYPES).optional(),
    errorCode: z
      .string()
      .regex(/^QUARRY_ERR_[A-Z0-9_]{1,64}$/, 'must be an error code such as QUARRY_ERR_ENGINE')
      .optional(),
    since: z.union([isoTime, z.date()]).optional(),
    limit: z.coerce.number().int().min(1).max(MAX_HISTORY_LIMIT).default(DEFAULT_HISTORY_LIMIT),
    cursor: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,200}$/, 'must be a nextCursor value from an earlier page')
      .optional(),
    /** Every tenant's jobs (admin keys only; the API checks the scope). */
    all: z.union([z.boolean(), z.enum(['true', 'false']).transform((s) => s === 'true')]).default(false),
  })
  .strict();

export type HistoryQueryInput = z.input<typeof HistoryQuerySchema>;

export interface HistoryQuery {
  readonly state?: JobState;
  readonly type?: JobType;
  readonly errorCode?: string;
  /** Only jobs created at or after this time (ms). */
  readonly sinceMs?: number;
  readonly limit: number;
  readonly cursor?: HistoryCursor;
  readonly all: boolean;
}

/** Where the previous page stopped: the last entry examined (score, member). */
export interface HistoryCursor {
  readonly score: number;
  readonly member: string;
}

export interface HistoryPage {
  readonly jobs: JobStatus[];
  /** Pass back as `cursor` for the next page; null when there is nothing older. */
  readonly nextCursor: string | null;
}

export function encodeCursor(cursor: HistoryCursor): string {
  return Buffer.from(`${cursor.score}:${cursor.member}`, 'utf8').toString('base64url');
}

function decodeCursor(text: string): HistoryCursor {
  const raw = Buffer.from(text, 'base64url').toString('utf8');
  const colon = raw.indexOf(':');
  const score = Number(raw.slice(0, colon));
  const member = raw.slice(colon + 1);
  const id = member.includes('/') ? parseLiveMember(member)?.jobId : member;
  if (colon < 1 || !Number.isSafeInteger(score) || id === undefined || !JOB_ID_PATTERN.test(id)) {
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'cursor must be a nextCursor value from an earlier page', {
      field: 'cursor',
    });
  }
  return { score, member };
}

/** Validates filters (a 400 naming the field) into a query. */
export function parseHistoryQuery(input: unknown): HistoryQuery {
  const parsed = parseWith(HistoryQuerySchema, input ?? {});
  if (!parsed.success) {
    const { message, field } = describeZodError(parsed.error);
    throw new QuarryError('QUARRY_ERR_VALIDATION', message, { field });
  }
  const q = parsed.data;
  const since =
    q.since === undefined ? undefined : q.since instanceof Date ? q.since.getTime() : Date.parse(q.since);
  if (since !== undefined && Number.isNaN(since)) {
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'since must be a valid time', { field: 'since' });
  }
  return {
    ...(q.state === undefined ? {} : { state: q.state }),
    ...(q.type === undefined ? {} : { type: q.type }),
    ...(q.errorCode === undefined ? {} : { errorCode: q.errorCode }),
    ...(since === undefined ? {} : { sinceMs: since }),
    limit: q.limit,
    ...(q.cursor === undefined ? {} : { cursor: decodeCursor(q.cursor) }),
    all: q.all,
  };
}

/** An HMGET of STATUS_FIELDS as the hash toStatus reads; null when the record is gone. */
function recordOf(values: readonly (string | null)[]): Record<string, string> | null {
  const h: Record<string, string> = {};
  STATUS_FIELDS.forEach((field, i) => {
    const v = values[i];
    if (v !== null && v !== undefined) h[field] = v;
  });
  return h.state === undefined ? null : h;
}

function matches(status: JobStatus, q: HistoryQuery): boolean {
  if (q.state !== undefined && status.state !== q.state) return false;
  if (q.type !== undefined && status.type !== q.type) return false;
  if (q.errorCode !== undefined && status.error?.code !== q.errorCode) return false;
  return true;
}

/**
 * One page of the history of `keys`' tenant (q.all: of every tenant), newest first. Entries
 * whose record expired are removed from the index on the way.
 */
export async function listHistory(redis: Redis, keys: KeyScheme, q: HistoryQuery): Promise<HistoryPage> {
  const index = q.all ? keys.historyAll : keys.history;
  const statusKey = (member: string): string | null => {
    if (!q.all) return keys.status(member);
    const parsed = parseLiveMember(member);
    return parsed === null ? null : keyScheme(keys.prefix, parsed.tenant).status(parsed.jobId);
  };
  const jobIdOf = (member: string) => (q.all ? (parseLiveMember(member)?.jobId ?? member) : member);
  const min = q.sinceMs === undefined ? '-inf' : String(q.sinceMs);
  const jobs: JobStatus[] = [];
  let after = q.cursor;
  let scanned = 0;
  let exhausted = false;
  let last: HistoryCursor | undefined;
  while (jobs.length < q.limit && scanned < MAX_SCANNED_PER_PAGE) {
    const max = after === undefined ? '+inf' : String(after.score);
    // Inclusive of the cursor's score: members sharing it are ordered by member (REV: descending),
    // and those at or above the cursor's member were seen on the earlier page.
    const flat = await redis.zrange(index, max, min, 'BYSCORE', 'REV', 'LIMIT', 0, SCAN_CHUNK, 'WITHSCORES');
    const entries: HistoryCursor[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      const entry = { member: flat[i]!, score: Number(flat[i + 1]) };
      if (after !== undefined && entry.score === after.score && entry.member >= after.member) continue;
      entries.push(entry);
    }
    if (entries.length === 0) {
      // A chunk full of entries that share the cursor's score and were all seen: step below it.
      if (flat.length === SCAN_CHUNK && after !== undefined) {
        after = { score: after.score - 1, member: '\uffff' };
        continue;
      }
      exhausted = true;
      break;
    }
    // The record's fields only: a failed job's kept payload is not part of the answer.
    const pipeline = redis.pipeline();
    for (const e of entries) {
      const key = statusKey(e.member);
      if (key === null) pipeline.exists('\u0000');
      else pipeline.hmget(key, ...STATUS_FIELDS);
    }
    const replies = (await pipeline.exec()) ?? [];
    const gone: string[] = [];
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const [error, value] = replies[i]!;
      if (error) throw error;
      scanned++;
      last = entry;
      const values = value as (string | null)[] | number;
      const h = typeof values === 'number' ? null : recordOf(values);
      if (h === null) {
        gone.push(entry.member);
      } else {
        const status = toStatus(jobIdOf(entry.member), h);
        if (matches(status, q)) jobs.push(status);
      }
      if (jobs.length >= q.limit || scanned >= MAX_SCANNED_PER_PAGE) break;
    }
    if (gone.length > 0) await redis.zrem(index, ...gone);
    after = last;
    if (flat.length < SCAN_CHUNK && last === entries[entries.length - 1]) {
      exhausted = true;
      break;
    }
  }
  const more = !exhausted && last !== undefined;
  return { jobs, nextCursor: more ? encodeCursor(last!) : null };
}
