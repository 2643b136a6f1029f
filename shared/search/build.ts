// Builds a search index: analyzes documents, computes every BM25 score once, and writes the binary
// format of format.ts into one Uint8Array.
//
// Scoring (BM25 over the indexed fields taken together, as SQLite FTS5's bm25() defines it):
//   score(t, d) = idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgLen)),  k1 = 1.2, b = 0.75
//   tf     = sum over the document's tokens equal to t of the boost of the field holding the token
//            (a token in a field with boost w counts w times; the default boost is 1)
//   len(d) = number of tokens in all indexed fields of d, boosts not applied; avgLen = mean over all N
//   idf    = ln(1 + (N - df + 0.5) / (df + 0.5))           ('lucene', the default: always positive)
//          | max(ln((N - df + 0.5) / (df + 0.5)), 1e-6)    ('fts5': only to compare with SQLite)
// A query's score is the sum of these stored scores over its distinct terms (search.ts).

import { QuarryError } from '../errors.ts';
import { own, pickOwn } from '../own-fields.ts';
import { ANALYZER_NAME, type AnalyzerName, scanTokens, type TokenSink } from './analyzer.ts';
import { allocateIndex, type IdfKind, measureStrings, writeStrings } from './format.ts';
import { isAnalyzerName, StemmingSink } from './stemmer.ts';
import { grown, TermTable } from './term-table.ts';

/** A token's position is (field number << FIELD_SHIFT) | its number in the field (extension.ts). */
export const FIELD_SHIFT = 26;
export const POSITION_MASK = (1 << FIELD_SHIFT) - 1;

export const BM25_K1 = 1.2;
export const BM25_B = 0.75;

export interface BuildOptions {
  /** Field holding each document's id (a non-empty string or a finite number; unique). */
  idField: string;
  /** Fields to index. Values may be strings, numbers, booleans, or arrays of them; null/absent = empty. */
  fields: readonly string[];
  /** Fields returned with each hit. Default: none. */
  store?: readonly string[];
  /** Field weights (> 0) applied to term frequency. Default: 1 for every field. */
  boosts?: Readonly<Record<string, number>>;
  /** Default `unicode-words-v1`; `english` adds a Porter stemmer (stemmer.ts). */
  analyzer?: AnalyzerName;
  /** Default 'lucene'. 'fts5' reproduces SQLite's bm25() and exists for the ranking tests. */
  idf?: IdfKind;
}

/** Appends postings (term, tf) in document order: a term's first token in a document appends its
 * posting, later tokens add to that posting's tf. */
export class PostingCollector implements TokenSink {
  readonly terms = new TermTable();
  weight = 1;
  doc = 0;
  docLength = 0;
  postTerms = new Int32Array(1 << 16);
  postTfs = new Float64Array(1 << 16);
  postCount = 0;
  /** When set, every token is also recorded: its posting (in collection order) and its position
   * (`next`, which collectDocs sets per field; see extension.ts for the numbering). */
  readonly positions: boolean;
  next = 0;
  tokenPosts = new Int32Array(0);
  tokenPositions = new Uint32Array(0);
  tokenCount = 0;

  constructor(positions = false) {
    this.positions = positions;
    if (positions) {
      this.tokenPosts = new Int32Array(1 << 16);
      this.tokenPositions = new Uint32Array(1 << 16);
    }
  }

  ascii(codes: Uint16Array, length: number, hash: number): void {
    this.add(this.terms.idAscii(codes, length, hash));
  }

  other(token: string, hash: number): void {
    this.add(this.terms.idString(token, hash));
  }

  private add(t: number): void {
    this.docLength++;
    const seen = this.terms.seen;
    let p: number;
    if (seen[t << 1] === this.doc) {
      p = seen[(t << 1) + 1]!;
      this.postTfs[p]! += this.weight;
    } else {
      seen[t << 1] = this.doc;
      p = this.postCount++;
      if (p === this.postTerms.length) this.growPostings(p * 2);
      seen[(t << 1) + 1] = p;
      this.terms.docFreq[t]!++;
      this.postTerms[p] = t;
      this.postTfs[p] = this.weight;
    }
    if (this.positions) this.token(p);
  }

  private token(p: number): void {
    const k = this.tokenCount++;
    if (k === this.tokenPosts.length) this.growTokens(k * 2);
    this.tokenPosts[k] = p;
    this.tokenPositions[k] = this.next++;
  }

  /** Room for `size` postings. */
  growPostings(size: number): void {
    this.postTerms = grown(this.postTerms, size);
    this.postTfs = grown(this.postTfs, size);
  }

  /** Room for `size` recorded tokens. */
  growTokens(size: number): void {
    this.tokenPosts = grown(this.tokenPosts, size);
    this.tokenPositions = grown(this.tokenPositions, size);
  }

  /** Starts document `doc`. */
  begin(doc: number): void {
    this.doc = doc;
    this.docLength = 0;
  }
}

export function invalid(message: string, field: string): QuarryError {
  return new QuarryError('QUARRY_ERR_VALIDATION', message, { field });
}

export interface CheckedOptions {
  idField: string;
  fields: string[];
  store: string[];
  weights: Float64Array;
  boosts: Record<string, number>;
  idf: IdfKind;
  analyzer: AnalyzerName;
}

export function checkOptions(options: BuildOptions): CheckedOptions {
  const { idField, fields, store = [], boosts = {}, analyzer = ANALYZER_NAME, idf = 'lucene' } = options;
  if (typeof idField !== 'string' || idField === '')
    throw invalid('idField must be a non-empty string', 'idField');
  if (
    !Array.isArray(fields) ||
    fields.length === 0 ||
    !fields.every((f) => typeof f === 'string' && f !== '')
  ) {
    throw invalid('fields must be a non-empty array of field names', 'fields');
  }
  if (new Set(fields).size !== fields.length) throw invalid('fields must not repeat a name', 'fields');
  if (!Array.isArray(store) || !store.every((f) => typeof f === 'string' && f !== '')) {
    throw invalid('store must be an array of field names', 'store');
  }
  for (const [field, w] of Object.entries(boosts)) {
    if (!fields.includes(field))
      throw invalid(`boost for ${field}, which is not an indexed field`, `boosts.${field}`);
    if (typeof w !== 'number' || !Number.isFinite(w) || w <= 0) {
      throw invalid(`boost for ${field} must be a finite number > 0`, `boosts.${field}`);
    }
  }
  if (!isAnalyzerName(analyzer)) throw invalid(`unknown analyzer ${String(analyzer)}`, 'analyzer');
  if (idf !== 'lucene' && idf !== 'fts5') throw invalid(`unknown idf ${String(idf)}`, 'idf');
  // Own keys only: a field named `constructor` or `toString` has no inherited boost.
  const weights = Float64Array.from(fields, (f) => (Object.hasOwn(boosts, f) ? boosts[f]! : 1));
  const allBoosts = Object.fromEntries(fields.map((f, i) => [f, weights[i]!]));
  return { idField, fields: [...fields], store: [...store], weights, boosts: allBoosts, idf, analyzer };
}

/** The values indexValue indexes: text, numbers, booleans, arrays of them (nested too), or nothing. */
export function isIndexable(value: unknown): boolean {
  if (value === null || value === undefined) return true;
  if (Array.isArray(value)) return value.every(isIndexable);
  const t = typeof value;
  return t === 'string' || t === 'number' || t === 'boolean' || t === 'bigint';
}

function indexValue(
  value: unknown,
  sink: TokenSink,
  collector: PostingCollector,
  n: number,
  field: string,
): void {
  if (typeof value === 'string') scanTokens(value, sink);
  else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    scanTokens(String(value), sink);
  } else if (Array.isArray(value)) {
    // One position is skipped after each item, so that a phrase never spans two items.
    for (const item of value) {
      indexValue(item, sink, collector, n, field);
      collector.next++;
    }
  } else if (value !== null && value !== undefined) {
    const path = `documents.${n}.${field}`;
    throw invalid(`${path} must be a string, number, boolean or an array of them`, path);
  }
}

/** Documents collected so far: their postings, ids, stored fields and lengths (documents [0, n)). */
export interface Collected {
  readonly collector: PostingCollector;
  readonly ids: string[];
  readonly stored: string[];
  /** Id -> document number (offset included), to refuse repeated ids. */
  readonly seen: Map<string, number>;
  docLengths: Int32Array;
  postEnds: Int32Array;
  totalLength: number;
  n: number;
}

/** `positions`: also record every token's position (what the extension's phrase sections need). */
export function newCollected(positions = false): Collected {
  return {
    collector: new PostingCollector(positions),
    ids: [],
    stored: [],
    seen: new Map(),
    docLengths: new Int32Array(1024),
    postEnds: new Int32Array(1024),
    totalLength: 0,
    n: 0,
  };
}

/**
 * Analyzes `docs` into `into`. `offset` is the number of the first document in the whole input
 * (errors name `documents.<offset + i>`). Throws like buildIndex; `into.ids` then holds the ids
 * read before the failing document (and its own, when the failure came after its id).
 */
export function collectDocs(docs: Iterable<object>, opts: CheckedOptions, into: Collected, offset = 0): void {
  const { collector, ids, stored, seen } = into;
  const sink: TokenSink = opts.analyzer === ANALYZER_NAME ? collector : new StemmingSink(collector);
  let { docLengths, postEnds, totalLength, n } = into;
  for (const item of docs) {
    const g = offset + n;
    // Documents are plain objects read by field name; the checks below validate what is read.
    const doc = item as Readonly<Record<string, unknown>>;
    if (typeof doc !== 'object' || doc === null)
      throw invalid(`document ${g} is not an object`, `documents.${g}`);
    const rawId = own(doc, opts.idField);
    const idPath = (): string => `documents.${g}.${opts.idField}`;
    if (
      !(typeof rawId === 'string' && rawId !== '') &&
      !(typeof rawId === 'number' && Number.isFinite(rawId))
    ) {
      throw invalid(
        `document ${g} has no id: ${opts.idField} must be a non-empty string or a number`,
        idPath(),
      );
    }
    const id = String(rawId);
    const previous = seen.get(id);
    if (previous !== undefined)
      throw invalid(`document ${g} repeats the id of document ${previous}: ${id}`, idPath());
    seen.set(id, g);
    ids.push(id);
    collector.begin(n);
    for (let f = 0; f < opts.fields.length; f++) {
      const field = opts.fields[f]!;
      collector.weight = opts.weights[f]!;
      collector.next = f << FIELD_SHIFT;
      indexValue(own(doc, field), sink, collector, g, field);
      if (collector.next - (f << FIELD_SHIFT) > POSITION_MASK) {
        const path = `documents.${g}.${field}`;
        throw invalid(`${path}: too many tokens`, path);
      }
    }
    if (n === docLengths.length) {
      docLengths = grown(docLengths, n * 2);
      postEnds = grown(postEnds, n * 2);
    }
    docLengths[n] = collector.docLength;
    postEnds[n] = collector.postCount;
    totalLength += collector.docLength;
    stored.push(storedJson(doc, opts.store, g));
    n++;
  }
  into.docLengths = docLengths;
  into.postEnds = postEnds;
  into.totalLength = totalLength;
  into.n = n;
}

/**
 * Builds an index of `docs`. Throws QuarryError QUARRY_ERR_VALIDATION (with `field`, e.g.
 * `documents.12.id`) for a missing, malformed or repeated id or an unindexable field value.
 */
export function buildIndex(docs: Iterable<object>, options: BuildOptions): Uint8Array<ArrayBuffer> {
  const opts = checkOptions(options);
  const collected = newCollected();
  collectDocs(docs, opts, collected);
  return writeCollected(collected, opts);
}

/** Writes the index of everything collected. */
export function writeCollected(c: Collected, opts: CheckedOptions): Uint8Array<ArrayBuffer> {
  return writeIndex(c.collector, c.ids, c.stored, c, opts, undefined);
}

/** What the extension's phrase sections hold (extension.ts). */
export interface Positions {
  /** Tokens per document over all indexed fields. */
  readonly docLengths: Uint32Array;
  /** Positions of posting p (numbered as in the file) are positions[positionOffsets[p], [p + 1]). */
  readonly positionOffsets: Uint32Array;
  readonly positions: Uint32Array;
}

/** Postings whose positions are copied from another index (an update's base, build-update.ts):
 * collected posting p's are positions[positionOffsets[q], [q + 1]) for q = sources[p] >= 0. */
export interface CopiedPositions {
  readonly sources: Int32Array;
  readonly positionOffsets: Uint32Array;
  readonly positions: Uint32Array;
}

/** writeCollected, and the positions of every posting, from what was collected with positions on
 * (and, for `copied` postings, from their source). */
export function writeCollectedWithPositions(
  c: Collected,
  opts: CheckedOptions,
  copied?: CopiedPositions,
): { bytes: Uint8Array<ArrayBuffer>; positions: Positions } {
  const { collector } = c;
  if (!collector.positions) throw new QuarryError('QUARRY_ERR_INTERNAL', 'positions were not collected');
  const P = collector.postCount;
  // Collection-order posting -> its number in the file (writeIndex groups postings by term).
  const fileOf = new Uint32Array(P);
  const bytes = writeIndex(collector, c.ids, c.stored, c, opts, fileOf);
  const K = collector.tokenCount;
  const { tokenPosts, tokenPositions } = collector;
  const postOf = new Uint32Array(K);
  const positionOffsets = new Uint32Array(P + 1);
  for (let k = 0; k < K; k++) {
    const p = fileOf[tokenPosts[k]!]!;
    postOf[k] = p;
    positionOffsets[p + 1]!++;
  }
  // A copied posting's source, by its number in the file: walked in file order, the sources come
  // in their own file's order too (an update keeps each term's base postings in order), so their
  // positions are read front to back, in runs.
  let sourceOf: Int32Array | undefined;
  if (copied !== undefined) {
    const { sources, positionOffsets: from } = copied;
    sourceOf = new Int32Array(P).fill(-1);
    for (let p = 0; p < P; p++) {
      const q = sources[p]!;
      if (q >= 0) sourceOf[fileOf[p]!] = q;
    }
    for (let f = 0; f < P; f++) {
      const q = sourceOf[f]!;
      if (q >= 0) positionOffsets[f + 1]! += from[q + 1]! - from[q]!;
    }
  }
  for (let p = 0; p < P; p++) positionOffsets[p + 1]! += positionOffsets[p]!;
  // Tokens come in document order and, within a document, in ascending position: each posting's
  // positions come out ascending. A copied posting's come whole from its source.
  const fill = positionOffsets.slice(0, P);
  const positions = new Uint32Array(positionOffsets[P]!);
  for (let k = 0; k < K; k++) positions[fill[postOf[k]!]!++] = tokenPositions[k]!;
  if (copied !== undefined && sourceOf !== undefined) {
    const { positionOffsets: from, positions: source } = copied;
    for (let f = 0; f < P; ) {
      const q = sourceOf[f]!;
      if (q < 0) {
        f++;
        continue;
      }
      // The longest run of file postings whose sources follow each other: one copy.
      let g = f + 1;
      while (g < P && sourceOf[g] === q + (g - f)) g++;
      positions.set(source.subarray(from[q]!, from[q + (g - f)]!), positionOffsets[f]!);
      f = g;
    }
  }
  const docLengths = new Uint32Array(c.n);
  docLengths.set(c.docLengths.subarray(0, c.n));
  return { bytes, positions: { docLengths, positionOffsets, positions } };
}

function storedJson(doc: Readonly<Record<string, unknown>>, store: readonly string[], n: number): string {
  if (store.length === 0) return '';
  try {
    return JSON.stringify(pickOwn(doc, store));
  } catch (cause) {
    throw new QuarryError(
      'QUARRY_ERR_VALIDATION',
      `stored fields of document ${n} are not JSON-serializable`,
      {
        field: `documents.${n}`,
        cause,
      },
    );
  }
}

function writeIndex(
  collector: PostingCollector,
  ids: string[],
  stored: string[],
  perDoc: { docLengths: Int32Array; postEnds: Int32Array; totalLength: number },
  opts: CheckedOptions,
  /** When given, receives each collected posting's number in the file. */
  fileOf: Uint32Array | undefined,
): Uint8Array<ArrayBuffer> {
  const { docLengths, postEnds, totalLength } = perDoc;
  const { terms } = collector;
  const N = ids.length;
  const T = terms.count;
  const P = collector.postCount;
  const avgDocLength = N === 0 ? 0 : totalLength / N;

  // Sorted dictionary: term number in the file = rank in code point order.
  const origOf = terms.sortedOrder();
  const rankOf = new Int32Array(T);
  const termLengths = new Uint32Array(T);
  for (let r = 0; r < T; r++) {
    rankOf[origOf[r]!] = r;
    termLengths[r] = terms.utf8Length(origOf[r]!);
  }
  const idStrings = measureStrings(ids);
  const storedStrings = measureStrings(stored);
  let tableSize = 2;
  while (tableSize < T * 1.5) tableSize *= 2;
  let termByteCount = 0;
  for (let r = 0; r < T; r++) termByteCount += termLengths[r]!;

  const {
    bytes: out,
    u8,
    u32,
    f32,
  } = allocateIndex(
    {
      analyzer: opts.analyzer,
      scorer: { k1: BM25_K1, b: BM25_B, idf: opts.idf },
      idField: opts.idField,
      fields: opts.fields,
      boosts: opts.boosts,
      stored: opts.store,
      docCount: N,
      avgDocLength,
      termCount: T,
      postingCount: P,
    },
    {
      termOffsets: (T + 1) * 4,
      termBytes: termByteCount,
      postingOffsets: (T + 1) * 4,
      termMaxScores: T * 4,
      termTable: tableSize * 4,
      postingDocs: P * 4,
      postingScores: P * 4,
      docIdOffsets: (N + 1) * 4,
      docIdBytes: idStrings.total,
      storedOffsets: (N + 1) * 4,
      storedBytes: storedStrings.total,
    },
  );

  const termBytes = u8('termBytes');
  const termOffsets = u32('termOffsets');
  let at = 0;
  for (let r = 0; r < T; r++) {
    termOffsets[r] = at;
    at += terms.writeUtf8(origOf[r]!, termBytes, at);
  }
  termOffsets[T] = at;
  writeStrings(ids, idStrings.lengths, u8('docIdBytes'), u32('docIdOffsets'));
  writeStrings(stored, storedStrings.lengths, u8('storedBytes'), u32('storedOffsets'));

  const table = u32('termTable');
  const mask = tableSize - 1;
  for (let r = 0; r < T; r++) {
    let slot = terms.hashes[origOf[r]!]! & mask;
    while (table[slot] !== 0) slot = (slot + 1) & mask;
    table[slot] = r + 1;
  }

  const postingOffsets = u32('postingOffsets');
  const cursor = new Uint32Array(T);
  const idf = new Float64Array(T);
  at = 0;
  for (let r = 0; r < T; r++) {
    postingOffsets[r] = at;
    cursor[r] = at;
    const df = terms.docFreq[origOf[r]!]!;
    idf[r] = idfOf(opts.idf, N, df);
    at += df;
  }
  postingOffsets[T] = at;

  // Postings arrive in document order, so each term's list comes out sorted by ordinal.
  const docs = u32('postingDocs');
  const scores = f32('postingScores');
  const maxScores = f32('termMaxScores');
  const k1 = BM25_K1;
  const b = BM25_B;
  const { postTerms, postTfs } = collector;
  let p = 0;
  for (let d = 0; d < N; d++) {
    const norm = k1 * (avgDocLength > 0 ? 1 - b + (b * docLengths[d]!) / avgDocLength : 1 - b);
    for (const end = postEnds[d]!; p < end; p++) {
      const t = postTerms[p]!;
      const r = rankOf[t]!;
      const tf = postTfs[p]!;
      const pos = cursor[r]!++;
      if (fileOf !== undefined) fileOf[p] = pos;
      docs[pos] = d;
      scores[pos] = (idf[r]! * tf * (k1 + 1)) / (tf + norm);
    }
  }
  for (let r = 0; r < T; r++) {
    let max = 0;
    for (let q = postingOffsets[r]!, end = postingOffsets[r + 1]!; q < end; q++)
      if (scores[q]! > max) max = scores[q]!;
    maxScores[r] = max;
  }
  return out;
}

export function idfOf(kind: IdfKind, N: number, df: number): number {
  if (kind === 'lucene') return Math.log(1 + (N - df + 0.5) / (df + 0.5));
  const idf = Math.log((N - df + 0.5) / (df + 0.5));
  return idf > 0 ? idf : 1e-6;
}
