// Shutdown in bounded time. A close step that waits on Redis (QUIT, a BullMQ close) waits for a
// reply: a frozen Redis, or a port answered by something that is not Redis, never sends one.
// The worker and the SDK run their close steps through runCloseSteps, which gives them one
// budget, and then cut whatever connection is still open, so close() always ends.
import type { Logger } from './logger.ts';

/** What all the steps of one close() share. */
const CLOSE_BUDGET_MS = 5_000;
/** Each step still gets this much once the budget is spent. */
const CLOSE_STEP_FLOOR_MS = 250;

/** Whether `work` settled within `ms`; it goes on either way. */
export async function settleWithin(work: Promise<unknown>, ms: number): Promise<'settled' | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(resolve, ms, 'timeout');
  });
  try {
    return await Promise.race([
      work.then(
        () => 'settled' as const,
        () => 'settled' as const,
      ),
      deadline,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export type CloseStep = readonly [name: string, step: () => Promise<unknown>];

/**
 * Runs `steps` in order, each within what is left of `budgetMs` (at least CLOSE_STEP_FLOOR_MS):
 * a failed step is logged and the next one runs; a step past its time is logged and left
 * running. Returns the names of the steps that did not finish.
 */
export async function runCloseSteps(
  steps: readonly CloseStep[],
  logger: Logger,
  budgetMs: number = CLOSE_BUDGET_MS,
): Promise<string[]> {
  const end = Date.now() + budgetMs;
  const late: string[] = [];
  for (const [name, step] of steps) {
    const work = Promise.resolve()
      .then(step)
      .catch((err: unknown) => logger.warn({ err, step: name }, 'error while closing'));
    if ((await settleWithin(work, Math.max(CLOSE_STEP_FLOOR_MS, end - Date.now()))) === 'timeout') {
      logger.warn({ step: name }, 'did not close in time: disconnecting');
      late.push(name);
    }
  }
  return late;
}
