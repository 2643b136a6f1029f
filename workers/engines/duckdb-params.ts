// What every DuckDB SQL module shares: bound parameters and quoted identifiers. No user text is
// ever spliced into SQL: identifiers are validated upstream and always quoted; values are bound.

export type SqlValue = string | number | boolean | Record<string, string>;

export interface CompiledQuery {
  readonly sql: string;
  readonly params: SqlValue[];
}

/** Names a source column in SQL (quoted; renamed columns by their positional names). */
export type Ident = (name: string) => string;

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export class Params {
  readonly values: SqlValue[] = [];
  add(value: SqlValue): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}
