// Scheduled aggregations: a spec registered under a name refreshes on a schedule (an interval or
// a cron pattern, run by BullMQ job schedulers); each run computes the spec against the data as
// it is then (files are fingerprinted again) and points the name's alias at the newest result.
import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';
import { checkJobPayload, validationError } from './aggregation.ts';
import { QuarryError } from './errors.ts';
import { parseWith } from './zod-messages.ts';

export const SCHEDULE_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export const ScheduleRequestSchema = z.strictObject({
  /** The aggregation spec, as for POST /v1/aggregations. */
  spec: z.unknown(),
  /** Refresh every so many milliseconds (at least 1,000). */
  everyMs: z
    .number()
    .int()
    .min(1000)
    .max(366 * 86_400_000)
    .optional(),
  /** Or a cron pattern (seconds optional), evaluated in `tz` (default UTC). */
  cron: z.string().min(1).max(120).optional(),
  tz: z.string().min(1).max(64).optional(),
});

export type ScheduleRequestInput = z.input<typeof ScheduleRequestSchema>;

/** The job a schedule's ticks enqueue (job name `refresh` on the aggregate queue). */
export interface RefreshJobData {
  readonly v: 1;
  readonly kind: 'refresh';
  readonly name: string;
  readonly tenant?: string;
  /** The spec as registered; addressed afresh at every run. */
  readonly spec: unknown;
}

const RefreshJobDataSchema = z.strictObject({
  v: z.literal(1),
  kind: z.literal('refresh'),
  name: z.string().regex(SCHEDULE_NAME_PATTERN),
  tenant: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/)
    .optional(),
  spec: z.unknown(),
});

/** Checks a refresh job payload; QUARRY_ERR_VALIDATION when malformed. */
export function checkRefreshJobData(data: unknown): RefreshJobData {
  return checkJobPayload(RefreshJobDataSchema, data) as RefreshJobData;
}

export interface ScheduleInfo {
  readonly name: string;
  readonly everyMs: number | null;
  readonly cron: string | null;
  readonly tz: string | null;
  /** When the next run is due (ISO), if BullMQ knows. */
  readonly next: string | null;
  /** The alias's current result, once a run completed. */
  readonly resultKey: string | null;
  readonly refreshedAt: string | null;
}

export function checkScheduleName(name: unknown): string {
  if (typeof name !== 'string' || !SCHEDULE_NAME_PATTERN.test(name)) {
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'name: 1-64 letters, digits, - or _', { field: 'name' });
  }
  return name;
}

export type ScheduleRequest = z.output<typeof ScheduleRequestSchema>;

/**
 * Validates a schedule request whole (everything but its spec, which the caller addresses):
 * either `everyMs` or `cron`; `tz` a time zone Intl knows, stored in its canonical spelling
 * (`europe/paris` → `Europe/Paris`); and a cron pattern whose next run, in that zone, can be
 * computed. BullMQ computes runs with the same parser, so what passes here schedules there.
 * Nothing is stored before this passes: a bad tz once left a half-written schedule.
 */
export function parseScheduleRequest(input: unknown, nowMs = Date.now()): ScheduleRequest {
  const parsed = parseWith(ScheduleRequestSchema, input);
  if (!parsed.success) throw validationError(parsed.error);
  const r = parsed.data;
  if ((r.everyMs === undefined) === (r.cron === undefined)) {
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'give either "everyMs" or "cron"', {
      field: r.everyMs === undefined ? 'everyMs' : 'cron',
    });
  }
  if (r.tz !== undefined && r.cron === undefined) {
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'tz is only allowed with "cron"', { field: 'tz' });
  }
  if (r.cron === undefined) return r;
  const tz = r.tz === undefined ? undefined : canonicalTimeZone(r.tz);
  checkCron(r.cron, tz, nowMs);
  return tz === undefined ? r : { ...r, tz };
}

/** The IANA name Intl resolves `tz` to; QUARRY_ERR_VALIDATION naming `tz` when it knows none. */
function canonicalTimeZone(tz: string): string {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone;
  } catch (cause) {
    throw new QuarryError(
      'QUARRY_ERR_VALIDATION',
      `tz "${tz}" is not an IANA time zone (like "Europe/Paris" or "UTC")`,
      { field: 'tz', cause },
    );
  }
}

// Checked here (not only where BullMQ reads it) so the API and the CLI refuse a bad pattern
// with one sentence, before anything is written.
function checkCron(cron: string, tz: string | undefined, nowMs: number): void {
  const shape = 'minute hour day-of-month month day-of-week, optionally seconds first, like "0 6 * * *"';
  const fields = cron.trim().split(/\s+/).length;
  // cron-parser fills in missing fields: "* *" would run every second, not what anyone meant.
  if (!cron.trim().startsWith('@') && fields !== 5 && fields !== 6) {
    throw new QuarryError(
      'QUARRY_ERR_VALIDATION',
      `cron "${cron}" is not a cron pattern (${shape}): it has ${fields} field${fields === 1 ? '' : 's'}, not 5 or 6`,
      { field: 'cron' },
    );
  }
  try {
    // The next run must be computable: a pattern that never fires (Feb 30) is refused too.
    CronExpressionParser.parse(cron, {
      currentDate: new Date(nowMs),
      ...(tz === undefined ? {} : { tz }),
    }).next();
  } catch (cause) {
    throw new QuarryError(
      'QUARRY_ERR_VALIDATION',
      `cron "${cron}" is not a cron pattern (${shape}): ${(cause as Error).message}`,
      { field: 'cron', cause },
    );
  }
}

/** BullMQ scheduler ids are shared by all tenants of a queue: the tenant is part of the id. */
export function schedulerId(tenant: string | undefined, name: string): string {
  return `sch.${tenant ?? ''}.${name}`;
}
