// What the `quarry` CLI prints: tables, a job's state in words, and the status of a job as rows.
// A finished job is described by how it ended (`failed · QUARRY_ERR_SPEC_TYPE: …`), never by
// its progress, which reads `done 100%` for every final state.
import { isFinalState, type JobProgress, type JobState } from '../shared/status.ts';

export function formatTable(
  columns: readonly { name: string }[],
  rows: readonly Record<string, unknown>[],
): string {
  const names = columns.map((c) => c.name);
  const cell = (v: unknown) =>
    v === null || v === undefined
      ? ''
      : typeof v === 'number' && !Number.isInteger(v)
        ? String(+v.toFixed(6))
        : String(v);
  const cells = rows.map((r) => names.map((n) => cell(r[n])));
  const widths = names.map((n, i) => Math.max(n.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) =>
        typeof rows[0]?.[names[i]!] === 'number' ? v.padStart(widths[i]!) : v.padEnd(widths[i]!),
      )
      .join('  ')
      .trimEnd();
  return [line(names), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

/** The parts of a status or event that say where a job stands. */
export interface JobStanding {
  readonly state: JobState;
  readonly progress: JobProgress;
  readonly error: { readonly code: string; readonly message: string } | null;
  readonly attempts?: number;
}

export function describeProgress(progress: JobProgress): string {
  return `${progress.phase} ${progress.percent}%${progress.count === undefined ? '' : ` (${progress.count})`}`;
}

/**
 * One line: `active · compute 40% (1200)`, `completed`, `failed · CODE: message`,
 * `cancelled · QUARRY_ERR_JOB_CANCELLED: message`, `queued · retrying after CODE: message`.
 */
export function describeState(s: JobStanding): string {
  const error = s.error === null ? '' : `${s.error.code}: ${s.error.message}`;
  switch (s.state) {
    case 'completed':
      return 'completed';
    case 'failed':
    case 'cancelled':
      return `${s.state} · ${error || 'no error recorded'}`;
    default:
      // A queued job with an error is waiting for its next attempt.
      return s.state === 'queued' && error !== ''
        ? `queued · retrying after ${error}`
        : `${s.state} · ${describeProgress(s.progress)}`;
  }
}

/** A status record as `field value` rows: state in words; progress only while the job runs. */
export function statusRows(status: JobStanding & object): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  for (const [field, value] of Object.entries(status)) {
    if (field === 'progress') {
      if (!isFinalState(status.state)) rows.push({ field, value: describeProgress(status.progress) });
    } else if (field === 'state') {
      rows.push({ field, value: describeState(status) });
    } else if (field === 'error') {
      rows.push({
        field,
        value: status.error === null ? null : `${status.error.code}: ${status.error.message}`,
      });
    } else {
      rows.push({
        field,
        value: value !== null && typeof value === 'object' ? JSON.stringify(value) : value,
      });
    }
  }
  return rows;
}

/** `field value` rows of a plain object (index metadata). */
export function objectRows(value: object): Record<string, unknown>[] {
  return Object.entries(value).map(([field, v]) => ({
    field,
    value: v !== null && typeof v === 'object' ? JSON.stringify(v) : v,
  }));
}
