// The one way Quarry logs: pino, structured, level from config. Both formats carry readable
// levels ("level":"info") and ISO times; `json` writes one object a line (for collectors), `pretty`
// one human line per record (for a terminal), formatted in-process by log-format.ts, not on a
// transport thread: nothing is lost at process.exit, and no thread is started per process.
import { writeSync } from 'node:fs';
import { format } from 'node:util';
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';
import { prettyLine } from './log-format.ts';

export type { Logger };

export const LOG_FORMATS = ['pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LoggerConfig {
  level: string;
  name: string;
  /** Default: `pretty` when stdout is a terminal, `json` otherwise. */
  format?: LogFormat | undefined;
  /** Where lines go; default stdout (fd 1, synchronous writes). Tests pass a collector. */
  destination?: DestinationStream;
  /**
   * Stdout only: gather lines up to this many bytes before a write, and write what is gathered
   * at least every LOG_FLUSH_MS and when the process exits (default 0: a write per line). One
   * write per line is a system call per line, which on a busy API is a large share of a cached
   * read's cost (bench/reads.ts); a process killed by SIGKILL loses what was gathered.
   */
  bufferBytes?: number;
}

let isoMs = 0;
let isoText = '';
/**
 * pino's isoTime (`,"time":"<ISO 8601>"`), formatted once per millisecond: an API at load writes
 * several access lines in one (bench/reads.ts), and formatting a date is most of a line's cost.
 */
export function isoTime(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    isoText = `,"time":"${new Date(now).toISOString()}"`;
  }
  return isoText;
}

/** The options both formats share: the shape of every record Quarry writes. */
export function loggerOptions(options: { level: string; name: string }): LoggerOptions {
  return {
    name: options.name,
    level: options.level,
    base: { pid: process.pid, name: options.name },
    // Labels, not pino's numbers: what a reader and most log collectors expect.
    formatters: { level: (label) => ({ level: label }) },
    timestamp: isoTime,
  };
}

export function resolveLogFormat(format: LogFormat | undefined, stdoutIsTerminal: boolean): LogFormat {
  return format ?? (stdoutIsTerminal ? 'pretty' : 'json');
}

/** How long gathered lines (`bufferBytes`) may wait before they are written. */
export const LOG_FLUSH_MS = 100;

function stdoutDestination(bufferBytes: number): DestinationStream {
  if (bufferBytes <= 0) return pino.destination({ dest: 1, sync: true });
  return new GatheredStdout(bufferBytes);
}

/** Waits between retries of a write to a full pipe. */
const PAUSE = new Int32Array(new SharedArrayBuffer(4));
/** How long one flush waits for a full pipe (EAGAIN) before it drops what it holds. */
const FULL_PIPE_WAIT_MS = 1000;

/**
 * Lines gathered into writes of up to `bytes`, written at least every LOG_FLUSH_MS and when the
 * process exits. Quarry's own, not SonicBoom's `minLength` mode: its flushSync retries a failed
 * write every 100 ms forever (sonic-boom 4.2, any error but EAGAIN), so once stdout's reader was
 * gone (EPIPE) the exit flush hung the process. Here a full pipe is waited for up to
 * FULL_PIPE_WAIT_MS, then that batch is dropped; any other error turns writing off, as pino does
 * for a broken pipe.
 */
class GatheredStdout implements DestinationStream {
  readonly #bytes: number;
  #text = '';
  #off = false;

  constructor(bytes: number) {
    this.#bytes = bytes;
    setInterval(() => this.flushSync(), LOG_FLUSH_MS).unref();
    // process.exit() (a fatal error, the end of a graceful stop) runs 'exit' listeners.
    process.once('exit', () => this.flushSync());
  }

  write(line: string): void {
    if (this.#off) return;
    this.#text += line;
    if (this.#text.length >= this.#bytes) this.flushSync();
  }

  flushSync(): void {
    if (this.#off || this.#text === '') return;
    let rest = Buffer.from(this.#text);
    this.#text = '';
    let waited = 0;
    while (rest.length > 0) {
      try {
        rest = rest.subarray(writeSync(1, rest));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') {
          this.#off = true;
          return;
        }
        if (waited++ >= FULL_PIPE_WAIT_MS) return;
        Atomics.wait(PAUSE, 0, 0, 1);
      }
    }
  }

  /** pino's logger.flush(). */
  flush(done?: (error?: Error) => void): void {
    this.flushSync();
    done?.();
  }
}

export function createLogger(options: LoggerConfig): Logger {
  const destination = options.destination ?? stdoutDestination(options.bufferBytes ?? 0);
  const format = resolveLogFormat(
    options.format,
    options.destination === undefined && process.stdout.isTTY === true,
  );
  if (format === 'json') return pino(loggerOptions(options), destination);
  const colors = options.destination === undefined && process.stdout.isTTY === true;
  return pino(loggerOptions(options), prettyStream(destination, colors));
}

/** Turns each JSON line pino writes into a pretty one before it reaches `out`. */
export function prettyStream(out: DestinationStream, colors: boolean): DestinationStream {
  const flushable = out as DestinationStream & { flushSync?: () => void };
  return {
    write(line: string) {
      out.write(prettyLine(line, colors));
    },
    // pino's flush() looks for these; forward them so a final line is not left in a buffer.
    ...(flushable.flushSync === undefined ? {} : { flushSync: () => flushable.flushSync?.() }),
  } as DestinationStream;
}

/** A logger that drops everything: for tests and tools that want silence. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

const CONSOLE_LEVELS = {
  log: 'info',
  info: 'info',
  debug: 'debug',
  warn: 'warn',
  error: 'error',
} as const;
type ConsoleMethod = keyof typeof CONSOLE_LEVELS;
type ConsoleLevel = (typeof CONSOLE_LEVELS)[ConsoleMethod];

/**
 * Sends console.log/info/debug/warn/error through `logger`, so libraries that print (BullMQ's
 * eviction-policy and Redis-version warnings, ioredis' unhandled error events) do not interleave
 * plain text with the log records. For entrypoints only (workers/main.ts, api/main.ts): it
 * changes a process-wide global. Returns a function that puts the console back.
 */
export function routeConsoleToLogger(logger: Logger): () => void {
  const saved = { ...console };
  const log = logger.child({ source: 'console' });
  for (const [method, level] of Object.entries(CONSOLE_LEVELS) as [ConsoleMethod, ConsoleLevel][]) {
    console[method] = (...args: unknown[]) => {
      const [first] = args;
      // An error alone keeps its stack as a structured `err`, not flattened into the message.
      if (args.length === 1 && first instanceof Error) log[level]({ err: first }, first.message);
      else log[level](format(...args));
    };
  }
  return () => {
    for (const method of Object.keys(CONSOLE_LEVELS) as ConsoleMethod[]) {
      console[method] = saved[method];
    }
  };
}
