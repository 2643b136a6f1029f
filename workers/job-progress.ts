// An attempt's progress reports, coalesced: progress is informational, and a small job ends
// before anyone could watch it move, so its reports cost writes and events for nothing. A
// report is written only once the attempt has run `delayMs`, then at most once per `delayMs`,
// and only the latest one; after stop() (the attempt ends) nothing more is written. A long job
// shows its phases; one that ends within `delayMs` goes from active to its end in two events.
import type { JobProgress } from '../shared/status.ts';

export interface ProgressReporter {
  report(progress: JobProgress): void;
  /** Drops what is pending; idempotent. */
  stop(): void;
}

export function coalescedProgress(
  write: (progress: JobProgress) => Promise<void>,
  delayMs: number,
): ProgressReporter {
  let nextAt = Date.now() + delayMs;
  let latest: JobProgress | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const flush = () => {
    timer = undefined;
    if (stopped || latest === undefined) return;
    const progress = latest;
    latest = undefined;
    nextAt = Date.now() + delayMs;
    // Writes go out on the same connection as the end of the attempt, in order, so a report
    // never lands after the record's final state.
    void write(progress);
  };
  return {
    report(progress) {
      if (stopped) return;
      latest = progress;
      timer ??= setTimeout(flush, Math.max(0, nextAt - Date.now()));
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
