// better-sqlite3 (dev only: the FTS5 ranking reference in tests and the search benchmark). It
// ships no types, and the little used of it is typed here once.
import { createRequire } from 'node:module';

export interface Statement {
  run(...params: unknown[]): unknown;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  pluck(): Statement;
}

export interface SqliteDb {
  exec(sql: string): void;
  prepare(sql: string): Statement;
  transaction(fn: () => void): () => void;
  pragma(sql: string, options: { simple: true }): unknown;
  close(): void;
}

export const Database = createRequire(import.meta.url)('better-sqlite3') as new (file: string) => SqliteDb;
