// How an entrypoint reads SIGINT and SIGTERM (only entrypoints install this): the first signal
// asks for a graceful stop; another one within DUPLICATE_SIGNAL_WINDOW_MS of it is the same
// request delivered twice and is ignored; a later one asks to stop now. One Ctrl-C often arrives
// twice: the terminal signals the whole foreground process group, and a parent that forwards
// signals (npm run, a process manager) sends its own copy. Treating that copy as "second
// signal: exit now" turned every Ctrl-C into a forced stop.

/** A person's second Ctrl-C comes later than this; a forwarded copy comes within milliseconds. */
export const DUPLICATE_SIGNAL_WINDOW_MS = 1000;

/** What a signal asks for; entrypoints log it as the `shutdown` field. */
export type ShutdownRequest = 'graceful' | 'duplicate' | 'forced';

/** Classifies the signals one process receives, in order. */
export class ShutdownSignals {
  readonly #windowMs: number;
  #firstAt: number | undefined;

  constructor(windowMs = DUPLICATE_SIGNAL_WINDOW_MS) {
    this.#windowMs = windowMs;
  }

  /** What a signal received at `atMs` (a monotonic clock) asks for. */
  receive(atMs: number): ShutdownRequest {
    if (this.#firstAt === undefined) {
      this.#firstAt = atMs;
      return 'graceful';
    }
    return atMs - this.#firstAt < this.#windowMs ? 'duplicate' : 'forced';
  }
}

export interface ShutdownHandlers {
  /** The first signal: stop taking work, finish what runs, close, exit. */
  graceful(signal: NodeJS.Signals): void;
  /** A later signal: exit now. */
  forced(signal: NodeJS.Signals): void;
  /** A copy of the first signal (optional: e.g. to log it). */
  duplicate?(signal: NodeJS.Signals): void;
}

/** Installs SIGINT and SIGTERM handlers on this process; returns a function that removes them. */
export function onShutdownSignals(
  handlers: ShutdownHandlers,
  windowMs = DUPLICATE_SIGNAL_WINDOW_MS,
): () => void {
  const signals = new ShutdownSignals(windowMs);
  const listener = (signal: NodeJS.Signals) => {
    const request = signals.receive(performance.now());
    if (request === 'graceful') handlers.graceful(signal);
    else if (request === 'forced') handlers.forced(signal);
    else handlers.duplicate?.(signal);
  };
  process.on('SIGINT', listener);
  process.on('SIGTERM', listener);
  return () => {
    process.off('SIGINT', listener);
    process.off('SIGTERM', listener);
  };
}
