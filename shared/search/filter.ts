// Filters over an index's typed columns, in the aggregation filter grammar (shared/filter-tree.ts)
// and its semantics (docs/AGGREGATION.md): SQL's three-valued logic, a null (or missing) value
// makes a comparison unknown, and/or/not follow Kleene. An array of strings matches a condition
// when one of its strings does (`ne`: when none equals the value); an empty array is null.
// Each condition is compiled once against the column's sorted distinct values, so testing a
// document reads its codes only.
import { QuarryError } from '../errors.ts';
import { type Filter, type FilterLeaf, forEachLeaf } from '../filter-tree.ts';
import { setOwn } from '../own-fields.ts';
import { compareValues } from './extension.ts';
import type { Column, Extension } from './extension-view.ts';

/** Kleene truth values, ordered so that and = min, or = max, not = 2 - x. */
export const FALSE = 0;
export const UNKNOWN = 1;
export const TRUE = 2;

export type DocTest = (doc: number) => number;

function invalid(message: string, field: string): QuarryError {
  return new QuarryError('QUARRY_ERR_VALIDATION', `${field}: ${message}`, { field });
}

type Value = string | number | boolean;

const KIND_TYPE: Record<Column['kind'], string> = {
  string: 'string',
  strings: 'string',
  number: 'number',
  boolean: 'boolean',
};

/** Checks every condition names a filterable field and compares it with values of its type. */
export function checkFilter(filter: Filter, ext: Extension | null, field: string): void {
  forEachLeaf(filter, field, (leaf, at) => {
    const column = ext?.columns.get(leaf.column);
    if (column === undefined || !column.filterable) {
      throw invalid(
        `${leaf.column} is not a filterable field of this index (give it in "filterable" when building)`,
        `${at}.column`,
      );
    }
    if (leaf.op === 'is_null' || leaf.op === 'not_null') return;
    const type = KIND_TYPE[column.kind];
    if (
      (leaf.op === 'contains' || leaf.op === 'starts_with' || leaf.op === 'ends_with') &&
      type !== 'string'
    ) {
      throw invalid(
        `${leaf.op} needs a field of strings; ${leaf.column} holds ${column.kind} values`,
        `${at}.op`,
      );
    }
    const values: Value[] = Array.isArray(leaf.value) ? leaf.value : [leaf.value];
    values.forEach((v) => {
      if (typeof v !== type) {
        throw invalid(`${leaf.column} holds ${column.kind} values; compare it with a ${type}`, `${at}.value`);
      }
    });
  });
}

function predicate(leaf: FilterLeaf): (v: Value) => boolean {
  switch (leaf.op) {
    case 'eq':
    case 'ne':
      return (v) => compareValues(v, leaf.value) === 0;
    case 'gt':
      return (v) => compareValues(v, leaf.value) > 0;
    case 'gte':
      return (v) => compareValues(v, leaf.value) >= 0;
    case 'lt':
      return (v) => compareValues(v, leaf.value) < 0;
    case 'lte':
      return (v) => compareValues(v, leaf.value) <= 0;
    case 'in': {
      const set = new Set<Value>(leaf.value);
      return (v) => set.has(v);
    }
    case 'between': {
      const [lo, hi] = leaf.value;
      return (v) => compareValues(v, lo) >= 0 && compareValues(v, hi) <= 0;
    }
    case 'contains':
    case 'starts_with':
    case 'ends_with': {
      const fold = (s: string) => (leaf.ignoreCase ? s.toLowerCase() : s);
      const needle = fold(leaf.value);
      const test =
        leaf.op === 'contains'
          ? (s: string) => s.includes(needle)
          : leaf.op === 'starts_with'
            ? (s: string) => s.startsWith(needle)
            : (s: string) => s.endsWith(needle);
      return (v) => test(fold(v as string));
    }
    default:
      return () => false;
  }
}

function compileLeaf(leaf: FilterLeaf, column: Column): DocTest {
  const { offsets, codes } = column;
  if (leaf.op === 'is_null') return (d) => (offsets[d] === offsets[d + 1] ? TRUE : FALSE);
  if (leaf.op === 'not_null') return (d) => (offsets[d] === offsets[d + 1] ? FALSE : TRUE);
  const test = predicate(leaf);
  const hit = Uint8Array.from(column.values, (v) => (test(v) ? 1 : 0));
  // ne holds when the value is there and no element equals it.
  const none = leaf.op === 'ne';
  return (d) => {
    const start = offsets[d]!;
    const end = offsets[d + 1]!;
    if (start === end) return UNKNOWN;
    for (let i = start; i < end; i++) if (hit[codes[i]!] === 1) return none ? FALSE : TRUE;
    return none ? TRUE : FALSE;
  };
}

/** A checked filter (checkFilter) as a per-document test giving FALSE, UNKNOWN or TRUE. */
export function compileFilter(filter: Filter, ext: Extension): DocTest {
  if ('and' in filter || 'or' in filter) {
    const isAnd = 'and' in filter;
    const parts = (isAnd ? filter.and : filter.or).map((f) => compileFilter(f, ext));
    return isAnd
      ? (d) => {
          let v = TRUE;
          for (const p of parts) {
            const x = p(d);
            if (x < v) v = x;
            if (v === FALSE) break;
          }
          return v;
        }
      : (d) => {
          let v = FALSE;
          for (const p of parts) {
            const x = p(d);
            if (x > v) v = x;
            if (v === TRUE) break;
          }
          return v;
        };
  }
  if ('not' in filter) {
    const inner = compileFilter(filter.not, ext);
    return (d) => TRUE - inner(d);
  }
  return compileLeaf(filter, ext.columns.get(filter.column)!);
}

/** Value counts of each field over the documents ords[0, n), most frequent first (then by value). */
export function countFacets(
  ext: Extension,
  fields: readonly string[],
  ords: Int32Array,
  n: number,
): Record<string, Record<string, number>> {
  // A field or a value named `__proto__` is a key like any other.
  const out: Record<string, Record<string, number>> = {};
  for (const field of fields) {
    const { values, offsets, codes } = ext.columns.get(field)!;
    const counts = new Uint32Array(values.length);
    for (let i = 0; i < n; i++) {
      const d = ords[i]!;
      for (let j = offsets[d]!, end = offsets[d + 1]!; j < end; j++) counts[codes[j]!]!++;
    }
    const order: number[] = [];
    for (let c = 0; c < counts.length; c++) if (counts[c]! > 0) order.push(c);
    order.sort((a, b) => counts[b]! - counts[a]! || a - b);
    const facet: Record<string, number> = {};
    for (const c of order) setOwn(facet, String(values[c]), counts[c]!);
    setOwn(out, field, facet);
  }
  return out;
}
