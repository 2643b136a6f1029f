// The binary search index format: one Uint8Array, written by build.ts, read here without copying.
//
// Layout (all integers little-endian; a big-endian host refuses to load):
//
//   offset 0   4 bytes  magic "QIDX"
//          4   u16      format version (FORMAT_VERSION)
//          6   u16      reserved, 0
//          8   u32      header length in bytes (H)
//         12   u32      reserved, 0
//         16   H bytes  header: UTF-8 JSON (IndexHeader): analyzer, scorer, fields, boosts, stored fields,
//                       N, average document length, counts, and the section table
//         ...  padding to a multiple of 8 = data start
//   data start + section offsets (each a multiple of 8, zero-padded between sections):
//     termOffsets     u32[T+1]  byte offsets of each term in termBytes
//     termBytes       u8[]      the terms, UTF-8, sorted by code point (so prefixes form a range)
//     postingOffsets  u32[T+1]  postings of term t are [postingOffsets[t], postingOffsets[t+1])
//     termMaxScores   f32[T]    highest posting score of each term (lets search skip hopeless work)
//     termTable       u32[S]    open-addressing hash table (S a power of two, linear probing):
//                               slot = hashTerm(term) & (S-1), value = term number + 1, 0 = empty
//     postingDocs     u32[P]    document ordinals, ascending within each term
//     postingScores   f32[P]    the BM25 score of the term in that document, computed at build time
//     docIdOffsets    u32[N+1]  docIdBytes  u8[]   document ids, UTF-8
//     storedOffsets   u32[N+1]  storedBytes u8[]   stored fields, one UTF-8 JSON object per document
//
// The JSON header follows safetensors' choice: metadata that is read once per load is cheaper to
// evolve as JSON, while everything touched per query sits in aligned typed arrays viewed in place.
// Scores are float32 rather than 16-bit quantized: the ranking then equals double-precision BM25 up
// to float32 rounding (relative 6e-8), so tests can demand exact agreement with SQLite FTS5 and the
// API returns real BM25 values; the cost is 2 bytes per posting.

import { QuarryError } from '../errors.ts';
import { type AnalyzerName, hashTerm } from './analyzer.ts';
import { isAnalyzerName } from './stemmer.ts';

export const MAGIC = 'QIDX';
/** Version 2 adds the optional extension of extension.ts (header `ext`, sections after the rest). */
export const FORMAT_VERSION = 2;
/** Versions this build reads: version 1 is version 2 without an extension. */
export const READABLE_VERSIONS: readonly number[] = [1, 2];
export const PRELUDE_BYTES = 16;
export const SECTION_ALIGN = 8;

export type IdfKind = 'lucene' | 'fts5';

export interface ScorerSettings {
  readonly k1: number;
  readonly b: number;
  /** lucene: ln(1 + (N - df + 0.5) / (df + 0.5)); fts5: max(ln((N - df + 0.5) / (df + 0.5)), 1e-6). */
  readonly idf: IdfKind;
}

export const SECTION_NAMES = [
  'termOffsets',
  'termBytes',
  'postingOffsets',
  'termMaxScores',
  'termTable',
  'postingDocs',
  'postingScores',
  'docIdOffsets',
  'docIdBytes',
  'storedOffsets',
  'storedBytes',
] as const;
export type SectionName = (typeof SECTION_NAMES)[number];

/** [byte offset from the data start, byte length] */
export type SectionTable = Record<SectionName, readonly [number, number]>;

export interface IndexHeader {
  readonly analyzer: AnalyzerName;
  readonly scorer: ScorerSettings;
  readonly idField: string;
  readonly fields: readonly string[];
  /** Weight of each indexed field; a token in a field of weight w adds w to the term frequency. */
  readonly boosts: Readonly<Record<string, number>>;
  readonly stored: readonly string[];
  readonly docCount: number;
  /** Mean number of tokens per document over all indexed fields (unweighted). */
  readonly avgDocLength: number;
  readonly termCount: number;
  readonly postingCount: number;
  readonly sections: SectionTable;
  /** Positions, document lengths, typed columns, typo keys (extension.ts); absent in version 1. */
  readonly ext?: ExtensionHeader;
}

/** The extension's header entry; its sections follow the base ones (offsets from the data start). */
export interface ExtensionHeader {
  readonly filterable: readonly string[];
  readonly sortable: readonly string[];
  readonly typos: boolean;
  readonly positionCount: number;
  readonly columns: readonly ColumnHeader[];
  readonly sections: Readonly<Record<string, readonly [number, number]>>;
}

/** strings, numbers, booleans (one value or null per document) or arrays of strings. */
export type ColumnKind = 'string' | 'number' | 'boolean' | 'strings';

export interface ColumnHeader {
  readonly field: string;
  readonly kind: ColumnKind;
  /** Distinct values. */
  readonly values: number;
}

/** A loaded index: typed-array views onto the bytes it was loaded from. */
export interface SearchIndex {
  readonly header: IndexHeader;
  readonly bytes: Uint8Array;
  /** True when the input was not 4-byte aligned and had to be copied once. */
  readonly copied: boolean;
  readonly termOffsets: Uint32Array;
  readonly termBytes: Uint8Array;
  readonly postingOffsets: Uint32Array;
  readonly termMaxScores: Float32Array;
  readonly termTable: Uint32Array;
  readonly postingDocs: Uint32Array;
  readonly postingScores: Float32Array;
  readonly docIdOffsets: Uint32Array;
  readonly docIdBytes: Uint8Array;
  readonly storedOffsets: Uint32Array;
  readonly storedBytes: Uint8Array;
}

/** The header without its section table, which allocateIndex lays out. */
export type IndexMeta = Omit<IndexHeader, 'sections'>;

/** A freshly allocated index and typed views onto its sections, for the builder to fill. */
export interface IndexWriter {
  readonly bytes: Uint8Array<ArrayBuffer>;
  u8(name: SectionName): Uint8Array;
  u32(name: SectionName): Uint32Array;
  f32(name: SectionName): Float32Array;
}

/** Lays out the sections (in SECTION_NAMES order, 8-byte aligned), writes prelude and header. */
export function allocateIndex(meta: IndexMeta, sizes: Record<SectionName, number>): IndexWriter {
  const sections = {} as Record<SectionName, [number, number]>;
  let offset = 0;
  for (const name of SECTION_NAMES) {
    sections[name] = [offset, sizes[name]];
    offset = alignUp(offset + sizes[name]);
  }
  const header: IndexHeader = { ...meta, sections };
  const encoder = new TextEncoder();
  const headerBytes = encoder.encode(JSON.stringify(header));
  const base = dataStart(headerBytes.length);
  // A fresh ArrayBuffer: 8-aligned, zero-filled padding, and transferable as a whole.
  const bytes = new Uint8Array(base + offset);
  bytes.set(encoder.encode(MAGIC), 0);
  const prelude = new DataView(bytes.buffer, 0, PRELUDE_BYTES);
  prelude.setUint16(4, FORMAT_VERSION, true);
  prelude.setUint32(8, headerBytes.length, true);
  bytes.set(headerBytes, PRELUDE_BYTES);
  const at = (name: SectionName) => base + sections[name][0];
  return {
    bytes,
    u8: (name) => new Uint8Array(bytes.buffer, at(name), sizes[name]),
    u32: (name) => new Uint32Array(bytes.buffer, at(name), sizes[name] / 4),
    f32: (name) => new Float32Array(bytes.buffer, at(name), sizes[name] / 4),
  };
}

/** Bytes of `s` in UTF-8 (lone surrogates count 3, as TextEncoder writes U+FFFD). */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 2;
        i++;
        continue;
      }
      n += 2;
    } else n += 2;
  }
  return n;
}

/** Concatenates strings as UTF-8 into `out`, writing offsets[0..n] (offsets[i] = start of i). */
export function writeStrings(
  strings: readonly string[],
  lengths: Uint32Array,
  out: Uint8Array,
  offsets: Uint32Array,
): void {
  let pos = 0;
  for (let i = 0; i < strings.length; i++) {
    offsets[i] = pos;
    pos += lengths[i]!;
  }
  offsets[strings.length] = pos;
  const { written } = new TextEncoder().encodeInto(strings.join(''), out);
  if (written !== pos)
    throw new QuarryError('QUARRY_ERR_INTERNAL', 'UTF-8 length mismatch while writing the index');
}

/** UTF-8 byte lengths of `strings` and their total, to size a string section. */
export function measureStrings(strings: readonly string[]): { lengths: Uint32Array; total: number } {
  const lengths = new Uint32Array(strings.length);
  let total = 0;
  for (let i = 0; i < strings.length; i++) {
    lengths[i] = utf8Length(strings[i]!);
    total += lengths[i]!;
  }
  return { lengths, total };
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function alignUp(n: number, to: number = SECTION_ALIGN): number {
  return Math.ceil(n / to) * to;
}

function formatError(message: string, field: string): QuarryError {
  return new QuarryError('QUARRY_ERR_VALIDATION', `Not a loadable Quarry search index: ${message}`, {
    field: `index.${field}`,
  });
}

/** Reads the prelude and header without touching the sections. */
export function readHeader(bytes: Uint8Array): IndexHeader {
  if (bytes.byteLength < PRELUDE_BYTES) throw formatError('too short', 'magic');
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC.charCodeAt(i)) throw formatError('bad magic bytes', 'magic');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, PRELUDE_BYTES);
  const version = view.getUint16(4, true);
  if (!READABLE_VERSIONS.includes(version)) {
    throw formatError(
      `format version ${version}, this build reads ${READABLE_VERSIONS.join(' and ')}`,
      'version',
    );
  }
  const headerLength = view.getUint32(8, true);
  if (PRELUDE_BYTES + headerLength > bytes.byteLength) throw formatError('header past the end', 'header');
  let header: IndexHeader;
  try {
    header = JSON.parse(
      new TextDecoder('utf-8', { fatal: true }).decode(
        bytes.subarray(PRELUDE_BYTES, PRELUDE_BYTES + headerLength),
      ),
    ) as IndexHeader;
  } catch (cause) {
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'Not a loadable Quarry search index: header is not JSON', {
      field: 'index.header',
      cause,
    });
  }
  if (!isAnalyzerName(header.analyzer)) throw formatError(`unknown analyzer ${header.analyzer}`, 'analyzer');
  if (header.scorer?.idf !== 'lucene' && header.scorer?.idf !== 'fts5')
    throw formatError('unknown idf', 'scorer');
  return header;
}

export function dataStart(headerLength: number): number {
  return alignUp(PRELUDE_BYTES + headerLength);
}

/**
 * Loads an index built by `buildIndex` without copying its sections: every array in the result is a
 * view onto `bytes`. Input that is not 4-byte aligned (rare: a slice of a pooled Buffer) is copied once.
 */
export function loadIndex(bytes: Uint8Array): SearchIndex {
  if (!LITTLE_ENDIAN) throw formatError('big-endian hosts are not supported', 'endianness');
  const header = readHeader(bytes);
  let copied = false;
  if (bytes.byteOffset % 4 !== 0) {
    bytes = bytes.slice();
    copied = true;
  }
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, PRELUDE_BYTES).getUint32(8, true);
  const base = bytes.byteOffset + dataStart(headerLength);
  const end = bytes.byteOffset + bytes.byteLength;
  const { buffer } = bytes;
  const section = (name: SectionName): [number, number] => {
    const entry = header.sections?.[name];
    if (!entry) throw formatError(`missing section ${name}`, `sections.${name}`);
    const [offset, length] = entry;
    if (
      offset % SECTION_ALIGN !== 0 ||
      length % (name.endsWith('Bytes') ? 1 : 4) !== 0 ||
      base + offset + length > end
    ) {
      throw formatError(`section ${name} out of bounds`, `sections.${name}`);
    }
    return [base + offset, length];
  };
  const u32 = (name: SectionName) => {
    const [o, n] = section(name);
    return new Uint32Array(buffer, o, n / 4);
  };
  const f32 = (name: SectionName) => {
    const [o, n] = section(name);
    return new Float32Array(buffer, o, n / 4);
  };
  const u8 = (name: SectionName) => {
    const [o, n] = section(name);
    return new Uint8Array(buffer, o, n);
  };
  const index: SearchIndex = {
    header,
    bytes,
    copied,
    termOffsets: u32('termOffsets'),
    termBytes: u8('termBytes'),
    postingOffsets: u32('postingOffsets'),
    termMaxScores: f32('termMaxScores'),
    termTable: u32('termTable'),
    postingDocs: u32('postingDocs'),
    postingScores: f32('postingScores'),
    docIdOffsets: u32('docIdOffsets'),
    docIdBytes: u8('docIdBytes'),
    storedOffsets: u32('storedOffsets'),
    storedBytes: u8('storedBytes'),
  };
  const { termCount: T, postingCount: P, docCount: N } = header;
  if (
    index.termOffsets.length !== T + 1 ||
    index.postingOffsets.length !== T + 1 ||
    index.termMaxScores.length !== T ||
    index.postingDocs.length !== P ||
    index.postingScores.length !== P ||
    index.docIdOffsets.length !== N + 1 ||
    index.storedOffsets.length !== N + 1 ||
    (index.termTable.length & (index.termTable.length - 1)) !== 0 ||
    index.termOffsets[T] !== index.termBytes.length ||
    index.postingOffsets[T] !== P ||
    index.docIdOffsets[N] !== index.docIdBytes.length ||
    index.storedOffsets[N] !== index.storedBytes.length
  ) {
    throw formatError('section sizes disagree with the header', 'sections');
  }
  return index;
}

const utf8 = new TextDecoder();

/** Decodes bytes[start, end) as UTF-8; short ASCII strings skip TextDecoder's per-call cost. */
export function decodeUtf8(bytes: Uint8Array, start: number, end: number): string {
  if (end - start <= 32) {
    let s = '';
    for (let i = start; i < end; i++) {
      const c = bytes[i]!;
      if (c >= 128) return utf8.decode(bytes.subarray(start, end));
      s += String.fromCharCode(c);
    }
    return s;
  }
  return utf8.decode(bytes.subarray(start, end));
}

/** The id of the document with ordinal `ord`. */
export function docId(index: SearchIndex, ord: number): string {
  return decodeUtf8(index.docIdBytes, index.docIdOffsets[ord]!, index.docIdOffsets[ord + 1]!);
}

/** The stored fields of the document with ordinal `ord` (a fresh object each call). */
export function storedFields(index: SearchIndex, ord: number): Record<string, unknown> {
  const start = index.storedOffsets[ord]!;
  const end = index.storedOffsets[ord + 1]!;
  if (start === end) return {};
  return JSON.parse(decodeUtf8(index.storedBytes, start, end)) as Record<string, unknown>;
}

/** The term with number `t` (terms are numbered in sorted order). */
export function termAt(index: SearchIndex, t: number): string {
  return decodeUtf8(index.termBytes, index.termOffsets[t]!, index.termOffsets[t + 1]!);
}

/** UTF-8 bytes of a query term. ASCII terms (nearly all) fill a reused buffer, so looking terms up
 * allocates nothing: every TextEncoder result is an external buffer, which makes V8 collect garbage
 * sooner, and those pauses showed up as query latency spikes. */
let keyBuffer = new Uint8Array(64);
const keyEncoder = new TextEncoder();

function keyOf(term: string): Uint8Array {
  if (term.length > keyBuffer.length) keyBuffer = new Uint8Array(term.length * 2);
  for (let i = 0; i < term.length; i++) {
    const c = term.charCodeAt(i);
    if (c >= 0x80) return keyEncoder.encode(term);
    keyBuffer[i] = c;
  }
  return keyBuffer.subarray(0, term.length);
}

/** Compares term t with `key` (UTF-8); with `prefixOnly`, only its first key.length bytes. */
function compareTerm(index: SearchIndex, t: number, key: Uint8Array, prefixOnly: boolean): number {
  const bytes = index.termBytes;
  const start = index.termOffsets[t]!;
  const len = index.termOffsets[t + 1]! - start;
  const n = Math.min(len, key.length);
  for (let i = 0; i < n; i++) {
    const d = bytes[start + i]! - key[i]!;
    if (d !== 0) return d;
  }
  return prefixOnly && len >= key.length ? 0 : len - key.length;
}

/** The number of `term` (already analyzed) in the index, or -1. */
export function findTerm(index: SearchIndex, term: string): number {
  const table = index.termTable;
  const mask = table.length - 1;
  const key = keyOf(term);
  let slot = hashTerm(term) & mask;
  for (;;) {
    const v = table[slot]!;
    if (v === 0) return -1;
    if (compareTerm(index, v - 1, key, false) === 0) return v - 1;
    slot = (slot + 1) & mask;
  }
}

/** Term numbers [from, to) of the terms starting with `prefix` (the dictionary is sorted). */
export function prefixRange(index: SearchIndex, prefix: string): [number, number] {
  const key = keyOf(prefix);
  const bound = (upper: boolean): number => {
    let lo = 0;
    let hi = index.header.termCount;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = compareTerm(index, mid, key, true);
      if (c < 0 || (upper && c === 0)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  return [bound(false), bound(true)];
}
