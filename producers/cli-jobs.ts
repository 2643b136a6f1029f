// The `quarry jobs` and `quarry retry` commands: the job history as a table (id, type, state with
// its error code, created, duration) or JSON, and a redrive of a failed or cancelled job. Exit
// codes follow cli.ts: bad filters and unknown or not-retryable jobs are 4xx codes (exit 2, by
// cli.ts); a retried job that fails again under --wait exits 1.

import { isQuarryError } from '../shared/errors.ts';
import type { HistoryPage } from '../shared/job-history.ts';
import type { JobStatus } from '../shared/status.ts';
import { describeState, formatTable } from './cli-output.ts';
import type { QuarryClient } from './client.ts';

export interface JobsFlags {
  readonly json: boolean;
  readonly all: boolean;
  readonly wait: boolean;
  readonly timeout: number;
  readonly state: string | undefined;
  readonly type: string | undefined;
  readonly limit: string | undefined;
  readonly cursor: string | undefined;
  readonly since: string | undefined;
}

const out = (text: string) => process.stdout.write(`${text}\n`);
const err = (text: string) => process.stderr.write(`${text}\n`);

/** `850 ms`, `12.3 s`, `4 min 05 s`; empty for a job that has not run. */
export function formatDuration(status: JobStatus, nowMs = Date.now()): string {
  if (status.startedAt === null) return '';
  const end = status.finishedAt === null ? nowMs : Date.parse(status.finishedAt);
  const ms = Math.max(0, end - Date.parse(status.startedAt));
  const text =
    ms < 1000
      ? `${ms} ms`
      : ms < 60_000
        ? `${(ms / 1000).toFixed(1)} s`
        : `${Math.floor(ms / 60_000)} min ${String(Math.floor((ms % 60_000) / 1000)).padStart(2, '0')} s`;
  return status.finishedAt === null ? `${text} so far` : text;
}

/** The state column: the state, and for a failed or cancelled job (or a pending retry) its code. */
function stateCell(status: JobStatus): string {
  return status.error === null ? status.state : `${status.state} ${status.error.code}`;
}

export function historyTable(page: HistoryPage, nowMs = Date.now()): string {
  const rows = page.jobs.map((j) => ({
    id: j.jobId,
    type: j.type,
    state: stateCell(j),
    created: j.createdAt ?? '',
    duration: formatDuration(j, nowMs),
  }));
  return formatTable(
    ['id', 'type', 'state', 'created', 'duration'].map((name) => ({ name })),
    rows,
  );
}

export async function jobsCommand(client: QuarryClient, args: string[], flags: JobsFlags): Promise<number> {
  if (args.length !== 0) throw new JobsUsageError('jobs takes no arguments, only flags');
  const page = await client.jobs.list({
    ...(flags.state === undefined ? {} : { state: flags.state }),
    ...(flags.type === undefined ? {} : { type: flags.type }),
    ...(flags.limit === undefined ? {} : { limit: flags.limit }),
    ...(flags.cursor === undefined ? {} : { cursor: flags.cursor }),
    ...(flags.since === undefined ? {} : { since: flags.since }),
    all: flags.all,
  } as Parameters<QuarryClient['jobs']['list']>[0]);
  if (flags.json) {
    out(JSON.stringify(page));
    return 0;
  }
  out(historyTable(page));
  err(
    page.nextCursor === null
      ? `${page.jobs.length} jobs`
      : `${page.jobs.length} jobs · more: --cursor ${page.nextCursor}`,
  );
  return 0;
}

export async function retryCommand(client: QuarryClient, args: string[], flags: JobsFlags): Promise<number> {
  if (args.length !== 1) throw new JobsUsageError('retry takes one job id');
  const handle = await client.jobs.retry(args[0]!);
  if (!flags.wait) {
    out(
      flags.json
        ? JSON.stringify({ jobId: handle.jobId, resultKey: handle.resultKey, status: 'queued' })
        : `job ${handle.jobId} queued again`,
    );
    return 0;
  }
  let final: JobStatus;
  try {
    final = await handle.wait({ timeoutMs: flags.timeout });
  } catch (error) {
    if (!(isQuarryError(error) && error.code === 'QUARRY_ERR_WAIT_TIMEOUT')) throw error;
    const status = await client.status(handle.jobId);
    err(
      `${error.code}: job ${handle.jobId} did not finish within ${flags.timeout} ms${status ? ` (${describeState(status)})` : ''}`,
    );
    return 1;
  }
  out(flags.json ? JSON.stringify(final) : `job ${handle.jobId} ${describeState(final)}`);
  return final.state === 'completed' ? 0 : 1;
}

/** Bad usage of jobs/retry; cli.ts prints it with a pointer to --help (exit 2). */
export class JobsUsageError extends Error {}
