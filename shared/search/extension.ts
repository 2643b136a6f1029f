// The index extension (format version 2): what the query side needs beyond BM25 postings, written
// after buildIndex's sections without changing them, and read back without copying.
//
// Sections (offsets in header.ext.sections, from the data start, each 8-aligned, after the base):
//   docLengths       u32[N]     tokens per document over all indexed fields (what BM25's len(d) is)
//   positionOffsets  u32[P+1]   positions of posting p are positions[positionOffsets[p], [p+1])
//   positions        u32[]      per posting, ascending: (field number << 26) | token number in the
//                               field; one number is skipped between the items of an array, so a
//                               phrase never spans two fields or two items
//   col.<i>.values   u8[]       column i's distinct values, sorted, as one JSON array
//   col.<i>.offsets  u32[N+1]   column i's values of document d are codes[offsets[d], offsets[d+1])
//   col.<i>.codes    u32[]      indexes into values (so code order = value order); no entry = null
//   typoTerms        u32[T]     (typos: true) term numbers sorted by (first code point, length)
//   typoKeys         u32[T]     firstCodePoint * 256 + min(length in code points, 255), ascending
// Strings sort by code point, numbers numerically, false before true.
import { QuarryError } from '../errors.ts';
import { own } from '../own-fields.ts';
import {
  type BuildOptions,
  checkOptions,
  collectDocs,
  newCollected,
  type Positions,
  writeCollectedWithPositions,
} from './build.ts';
import {
  alignUp,
  type ColumnHeader,
  type ColumnKind,
  dataStart,
  type ExtensionHeader,
  loadIndex,
  PRELUDE_BYTES,
  readHeader,
  type SearchIndex,
  termAt,
} from './format.ts';

export { FIELD_SHIFT, POSITION_MASK } from './build.ts';

export interface ExtensionOptions {
  /** Fields a filter or a facet may name. */
  filterable?: readonly string[];
  /** Fields hits may be sorted by (not arrays). */
  sortable?: readonly string[];
  /** Build the keys typo tolerance searches by. */
  typos?: boolean;
}

function invalid(message: string, field: string): QuarryError {
  return new QuarryError('QUARRY_ERR_VALIDATION', message, { field });
}

/** Code point order (JavaScript's < compares UTF-16 code units). */
export function compareStrings(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      const fx = x >= 0xd800 && x <= 0xdfff ? x + 0x10000 : x;
      const fy = y >= 0xd800 && y <= 0xdfff ? y + 0x10000 : y;
      return fx - fy;
    }
  }
  return a.length - b.length;
}

export function compareValues(a: unknown, b: unknown): number {
  if (typeof a === 'string') return compareStrings(a, b as string);
  return Number(a) - Number(b);
}

const KIND_OF: Record<string, ColumnKind> = { string: 'string', number: 'number', boolean: 'boolean' };

/** A single value a filterable or sortable column holds: a string, a finite number or a boolean. */
export function isColumnScalar(v: unknown): boolean {
  return KIND_OF[typeof v] !== undefined && !(typeof v === 'number' && !Number.isFinite(v));
}

interface BuiltColumn {
  header: ColumnHeader;
  values: Uint8Array;
  offsets: Uint32Array;
  codes: Uint32Array;
}

function columnOf(docs: readonly Readonly<Record<string, unknown>>[], field: string): BuiltColumn {
  let kind: ColumnKind | undefined;
  const perDoc: unknown[][] = [];
  const distinct = new Set<unknown>();
  for (let d = 0; d < docs.length; d++) {
    const v = own(docs[d]!, field);
    const path = `documents.${d}.${field}`;
    let items: unknown[];
    let k: ColumnKind | undefined;
    if (v === null || v === undefined) items = [];
    else if (Array.isArray(v)) {
      if (!v.every((x) => typeof x === 'string'))
        throw invalid(`${path}: an array in a filterable or sortable field must hold only strings`, path);
      items = [...new Set(v)];
      k = 'strings';
    } else {
      k = KIND_OF[typeof v];
      if (!isColumnScalar(v))
        throw invalid(
          `${path}: a filterable or sortable field holds strings, finite numbers, booleans or arrays of strings`,
          path,
        );
      items = [v];
    }
    if (k !== undefined && k !== kind) {
      if (kind === undefined) kind = k;
      else if ((kind === 'string' && k === 'strings') || (kind === 'strings' && k === 'string'))
        kind = 'strings';
      else throw invalid(`${path}: holds a ${k} where earlier documents hold ${kind} values`, path);
    }
    for (const x of items) distinct.add(x);
    perDoc.push(items);
  }
  const sorted = [...distinct].sort(compareValues);
  const codeOf = new Map(sorted.map((v, i) => [v, i]));
  const offsets = new Uint32Array(docs.length + 1);
  let total = 0;
  for (let d = 0; d < docs.length; d++) {
    total += perDoc[d]!.length;
    offsets[d + 1] = total;
  }
  const codes = new Uint32Array(total);
  let at = 0;
  for (const items of perDoc) for (const x of items) codes[at++] = codeOf.get(x)!;
  return {
    header: { field, kind: kind ?? 'string', values: sorted.length },
    values: new TextEncoder().encode(JSON.stringify(sorted)),
    offsets,
    codes,
  };
}

/** typoTerms and typoKeys: term numbers ordered by first code point and length. */
function typoKeysOf(index: SearchIndex): { terms: Uint32Array; keys: Uint32Array } {
  const T = index.header.termCount;
  const keyOf = new Uint32Array(T);
  for (let t = 0; t < T; t++) keyOf[t] = typoKey(termAt(index, t));
  const terms = new Uint32Array(T);
  for (let t = 0; t < T; t++) terms[t] = t;
  terms.sort((a, b) => keyOf[a]! - keyOf[b]! || a - b);
  return { terms, keys: Uint32Array.from(terms, (t) => keyOf[t]!) };
}

/** The key a term is found by for typo tolerance: first code point and length in code points. */
export function typoKey(term: string): number {
  let length = 0;
  for (const _ of term) length++;
  return typoKeyOf(term.codePointAt(0) ?? 0, length);
}

export function typoKeyOf(first: number, length: number): number {
  return first * 256 + Math.min(length, 255);
}

/**
 * Appends the extension to an index buildIndex made from `docs` (the same documents, in order).
 * Returns a new buffer; the base sections are copied unchanged.
 */
export function extendIndex(
  base: Uint8Array,
  { docLengths, positionOffsets, positions }: Positions,
  docs: readonly object[] | undefined,
  options: ExtensionOptions = {},
): Uint8Array<ArrayBuffer> {
  const index = loadIndex(base);
  const header = readHeader(base);
  const filterable = [...(options.filterable ?? [])];
  const sortable = [...(options.sortable ?? [])];
  const columnFields = [...new Set([...filterable, ...sortable])];
  if (columnFields.length > 0 && docs === undefined)
    throw new QuarryError('QUARRY_ERR_INTERNAL', 'columns asked for without the documents');
  const records = (docs ?? []) as readonly Readonly<Record<string, unknown>>[];
  const parts: [string, Uint8Array][] = [];
  const view = (a: Uint32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  parts.push(
    ['docLengths', view(docLengths)],
    ['positionOffsets', view(positionOffsets)],
    ['positions', view(positions)],
  );
  const columns: ColumnHeader[] = [];
  columnFields.forEach((field, i) => {
    const c = columnOf(records, field);
    if (c.header.kind === 'strings' && sortable.includes(field)) {
      throw invalid(
        `sortable: ${field} holds arrays, which have no order`,
        `sortable.${sortable.indexOf(field)}`,
      );
    }
    columns.push(c.header);
    parts.push(
      [`col.${i}.values`, c.values],
      [`col.${i}.offsets`, view(c.offsets)],
      [`col.${i}.codes`, view(c.codes)],
    );
  });
  if (options.typos === true) {
    const { terms, keys } = typoKeysOf(index);
    parts.push(['typoTerms', view(terms)], ['typoKeys', view(keys)]);
  }
  const oldStart = dataStart(new DataView(base.buffer, base.byteOffset).getUint32(8, true));
  const baseLength = alignUp(base.byteLength - oldStart);
  const sections: Record<string, [number, number]> = {};
  let offset = baseLength;
  for (const [name, bytes] of parts) {
    sections[name] = [offset, bytes.byteLength];
    offset = alignUp(offset + bytes.byteLength);
  }
  const ext: ExtensionHeader = {
    filterable,
    sortable,
    typos: options.typos === true,
    positionCount: positions.length,
    columns,
    sections,
  };
  const headerBytes = new TextEncoder().encode(JSON.stringify({ ...header, ext }));
  const start = dataStart(headerBytes.length);
  const out = new Uint8Array(start + offset);
  out.set(base.subarray(0, PRELUDE_BYTES), 0);
  new DataView(out.buffer).setUint32(8, headerBytes.length, true);
  out.set(headerBytes, PRELUDE_BYTES);
  out.set(base.subarray(oldStart), start);
  for (const [name, bytes] of parts) out.set(bytes, start + sections[name]![0]);
  return out;
}

/** Splits build options into buildIndex's and the extension's, checking the extension's lists. */
export function splitExtensionOptions(options: BuildOptions & ExtensionOptions): {
  base: BuildOptions;
  extension: ExtensionOptions;
} {
  const { filterable, sortable, typos, ...base } = options;
  for (const [name, list] of [
    ['filterable', filterable],
    ['sortable', sortable],
  ] as const) {
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw invalid(`${name} must be an array of field names`, name);
    list.forEach((f, i) => {
      if (typeof f !== 'string' || f === '') throw invalid(`${name}.${i}: a field name`, `${name}.${i}`);
    });
  }
  return {
    base,
    extension: {
      ...(filterable === undefined ? {} : { filterable }),
      ...(sortable === undefined ? {} : { sortable }),
      ...(typos === undefined ? {} : { typos }),
    },
  };
}

/** buildIndex, then the extension: what workers build (positions always; columns and typo keys as asked). */
export function buildExtendedIndex(
  docs: readonly object[],
  options: BuildOptions & ExtensionOptions,
): Uint8Array<ArrayBuffer> {
  const { base, extension } = splitExtensionOptions(options);
  const opts = checkOptions(base);
  const collected = newCollected(true);
  collectDocs(docs, opts, collected);
  const { bytes, positions } = writeCollectedWithPositions(collected, opts);
  return extendIndex(bytes, positions, docs, extension);
}

/** Whether the extension reads the documents themselves (for typed columns). */
export function needsDocuments(options: ExtensionOptions): boolean {
  return (options.filterable?.length ?? 0) > 0 || (options.sortable?.length ?? 0) > 0;
}
