// The pattern both engines use for a case-insensitive `contains`, `starts_with` or `ends_with`:
// the value as a literal in the syntax DuckDB's RE2 and Polars' Rust regex share, under `(?i)`,
// which folds case by Unicode simple case folding in both (as docs/AGGREGATION.md defines it).
import type { TextOp } from '../../shared/aggregation-ops.ts';

/** The characters both syntaxes treat as operators; escaping them is valid in both. */
const META = /[\\^$.|?*+()[\]{}]/g;

export function caseInsensitivePattern(op: TextOp, value: string): string {
  const literal = value.replace(META, (c) => `\\${c}`);
  switch (op) {
    case 'contains':
      return `(?i)${literal}`;
    case 'starts_with':
      return `(?i)^${literal}`;
    case 'ends_with':
      return `(?i)${literal}$`;
  }
}
