// The one way Quarry logs: pino, structured, level from config.
import { type Logger, pino } from 'pino';

export type { Logger };

export function createLogger(options: { level: string; name: string }): Logger {
  return pino({ name: options.name, level: options.level, base: { pid: process.pid, name: options.name } });
}

/** A logger that drops everything: for tests and tools that want silence. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
