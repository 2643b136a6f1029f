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
import { ANALYZER_NAME, codesToString, scanTokens, type TokenSink } from './analyzer.ts';
import { type BuildOptions, buildIndex } from './build.ts';
import {
  alignUp,
  type ColumnHeader,
  type ColumnKind,
  dataStart,
  type ExtensionHeader,
  findTerm,
  loadIndex,
  PRELUDE_BYTES,
  readHeader,
  type SearchIndex,
  termAt,
} from './format.ts';
import { StemmingSink } from './stemmer.ts';

export const FIELD_SHIFT = 26;
export const POSITION_MASK = (1 << FIELD_SHIFT) - 1;

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

/** Probes the term table with an ASCII token's codes (no string made). */
function findAscii(index: SearchIndex, codes: Uint16Array, len: number, hash: number): number {
  const { termTable: table, termBytes: bytes, termOffsets: off } = index;
  const mask = table.length - 1;
  let slot = hash & mask;
  for (;;) {
    const v = table[slot]!;
    if (v === 0) return -1;
    const start = off[v - 1]!;
    if (off[v]! - start === len) {
      let j = 0;
      while (j < len && bytes[start + j] === codes[j]) j++;
      if (j === len) return v - 1;
    }
    slot = (slot + 1) & mask;
  }
}

/** Records each token's term number and position, document by document. */
class PositionSink implements TokenSink {
  terms = new Int32Array(1 << 16);
  positions = new Uint32Array(1 << 16);
  count = 0;
  next = 0;
  readonly index: SearchIndex;
  constructor(index: SearchIndex) {
    this.index = index;
  }
  ascii(codes: Uint16Array, length: number, hash: number): void {
    this.push(findAscii(this.index, codes, length, hash), codes, length);
  }
  other(token: string): void {
    this.push(findTerm(this.index, token));
  }
  private push(t: number, codes?: Uint16Array, length?: number): void {
    if (t < 0) {
      const token = codes === undefined ? '?' : codesToString(codes, length!);
      throw new QuarryError('QUARRY_ERR_INTERNAL', `token ${token} is not in the index it was built into`);
    }
    if (this.count === this.terms.length) {
      const terms = new Int32Array(this.count * 2);
      terms.set(this.terms);
      this.terms = terms;
      const positions = new Uint32Array(this.count * 2);
      positions.set(this.positions);
      this.positions = positions;
    }
    this.terms[this.count] = t;
    this.positions[this.count++] = this.next++;
  }
}

/** Scans `value` into `scan` (`sink` itself, or a stemmer in front of it). */
function scanValue(value: unknown, scan: TokenSink, sink: PositionSink): void {
  if (typeof value === 'string') scanTokens(value, scan);
  else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    scanTokens(String(value), scan);
  } else if (Array.isArray(value)) {
    for (const item of value) {
      scanValue(item, scan, sink);
      sink.next++;
    }
  }
}

/** docLengths, positionOffsets and positions of `docs` (the documents `index` was built from). */
function positionsOf(index: SearchIndex, docs: readonly Readonly<Record<string, unknown>>[]) {
  const { fields, docCount: N, postingCount: P, termCount: T } = index.header;
  const sink = new PositionSink(index);
  // The same analyzer the postings were built with (the `english` one stems each token).
  const scan: TokenSink = index.header.analyzer === ANALYZER_NAME ? sink : new StemmingSink(sink);
  const docEnds = new Uint32Array(N);
  const docLengths = new Uint32Array(N);
  for (let d = 0; d < N; d++) {
    const doc = docs[d]!;
    const start = sink.count;
    for (let f = 0; f < fields.length; f++) {
      sink.next = f << FIELD_SHIFT;
      scanValue(doc[fields[f]!], scan, sink);
      if (sink.next - (f << FIELD_SHIFT) > POSITION_MASK)
        throw invalid(`documents.${d}.${fields[f]}: too many tokens`, `documents.${d}.${fields[f]}`);
    }
    docEnds[d] = sink.count;
    docLengths[d] = sink.count - start;
  }
  // Postings of a term are in document order: the k-th document holding t has posting off[t] + k.
  const cursor = Uint32Array.from(index.postingOffsets.subarray(0, T));
  const lastDoc = new Int32Array(T).fill(-1);
  const current = new Uint32Array(T);
  const postingOf = new Uint32Array(sink.count);
  const counts = new Uint32Array(P + 1);
  let i = 0;
  for (let d = 0; d < N; d++) {
    for (const end = docEnds[d]!; i < end; i++) {
      const t = sink.terms[i]!;
      if (lastDoc[t] !== d) {
        lastDoc[t] = d;
        current[t] = cursor[t]!++;
      }
      postingOf[i] = current[t]!;
      counts[current[t]! + 1]!++;
    }
  }
  const positionOffsets = new Uint32Array(P + 1);
  for (let p = 0; p < P; p++) positionOffsets[p + 1] = positionOffsets[p]! + counts[p + 1]!;
  const fill = Uint32Array.from(positionOffsets.subarray(0, P));
  const positions = new Uint32Array(sink.count);
  for (let j = 0; j < sink.count; j++) positions[fill[postingOf[j]!]!++] = sink.positions[j]!;
  return { docLengths, positionOffsets, positions };
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
    const v = docs[d]![field];
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
      if (k === undefined || (typeof v === 'number' && !Number.isFinite(v)))
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
  docs: readonly object[],
  options: ExtensionOptions = {},
): Uint8Array<ArrayBuffer> {
  const index = loadIndex(base);
  const header = readHeader(base);
  const records = docs as readonly Readonly<Record<string, unknown>>[];
  const filterable = [...(options.filterable ?? [])];
  const sortable = [...(options.sortable ?? [])];
  const parts: [string, Uint8Array][] = [];
  const view = (a: Uint32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const { docLengths, positionOffsets, positions } = positionsOf(index, records);
  parts.push(
    ['docLengths', view(docLengths)],
    ['positionOffsets', view(positionOffsets)],
    ['positions', view(positions)],
  );
  const columns: ColumnHeader[] = [];
  const columnFields = [...new Set([...filterable, ...sortable])];
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
  return extendIndex(buildIndex(docs, base), docs, extension);
}
