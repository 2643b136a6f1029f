// The chaos run's verdict on each acknowledged job, from one rule: how many worker deaths a job
// survives. BullMQ counts a job's stalls (its worker died holding it) in the job hash's `stc`
// over the job's whole life, across attempts, and never resets it; a stall moves the job back to
// wait without consuming an attempt. The stall that takes `stc` past QUARRY_MAX_STALLED_COUNT
// marks the job (`defa`), and the next worker to take it fails it unretried without running it:
// Quarry records QUARRY_ERR_JOB_STALLED. So a job survives `maxStalledCount` kills of the worker
// holding it, and fails on the one after. The run counts those kills itself (which worker it
// killed, which jobs that worker held at that instant), so the verdict does not trust the system
// it judges: a STALLED failure is expected only when more kills hit the job than the rule allows.
import type { JobStatus } from '../shared/status.ts';

export type JobVerdict =
  /** Completed (the answer is checked apart). */
  | 'completed'
  /** Failed QUARRY_ERR_JOB_STALLED after more kills than the rule allows: what the rule promises. */
  | 'expected-stalled'
  /** Anything else: failed, cancelled, unfinished, or STALLED with kills the rule allows. */
  | 'lost';

/** True while `hits` kills of the worker holding a job are within what it must survive. */
export function survives(hits: number, maxStalledCount: number): boolean {
  return hits <= maxStalledCount;
}

/**
 * The verdict on one acknowledged job from its final status record (undefined: never final
 * before the deadline) and the number of kills that hit it while it was active.
 */
export function judgeJob(
  status: Pick<JobStatus, 'state' | 'error'> | undefined,
  hits: number,
  maxStalledCount: number,
): JobVerdict {
  if (status?.state === 'completed') return 'completed';
  if (
    status?.state === 'failed' &&
    status.error?.code === 'QUARRY_ERR_JOB_STALLED' &&
    !survives(hits, maxStalledCount)
  ) {
    return 'expected-stalled';
  }
  return 'lost';
}
