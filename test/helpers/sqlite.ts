// better-sqlite3 (dev only: the FTS5 ranking reference in tests and the search benchmark). It
// ships no types, and the little used of it is typed here once. Its addon in node_modules is built
// for the machine's Node 20; QUARRY_TEST_SQLITE_BINDING names one built for another Node
// (scripts/test-node24.sh builds it for Node 24) without touching node_modules.
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

type SqliteConstructor = new (file: string, options?: { nativeBinding?: string }) => SqliteDb;
const BetterSqlite = createRequire(import.meta.url)('better-sqlite3') as SqliteConstructor;
const nativeBinding = process.env.QUARRY_TEST_SQLITE_BINDING;

export const Database = class {
  constructor(file: string) {
    // biome-ignore lint/correctness/noConstructorReturn: the class only picks the addon to open with
    return new BetterSqlite(file, nativeBinding === undefined ? {} : { nativeBinding });
  }
} as unknown as new (
  file: string,
) => SqliteDb;
