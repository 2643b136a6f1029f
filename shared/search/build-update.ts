// A document update built from its base version's index instead of from all of its documents: a
// kept document's postings are copied from the base (its terms, and its term frequencies summed
// again from the positions section, whose numbers name the field of every token), and only the
// added and replaced documents are analyzed. What is written is byte for byte the index a full
// build of the updated document list writes (shared/index-documents.ts applyChanges gives that
// list's order): the file numbers terms by sorted order, so the order terms enter the table in does
// not matter; each posting's tf is the same sum of the same field weights in the same order
// (positions ascend as the analyzer meets the tokens); a term no kept or new document holds any
// more is not entered at all.
//
// Typed columns (filterable, sortable) are rebuilt from the base's columns for kept documents, so
// the kept documents need not be parsed. A base column of arrays (kind `strings`) cannot say
// whether a document held `"a"` or `["a"]`, which decides the new column's kind once the arrays
// are gone: such a base is updated from its documents (updateSource answers null).

import { isAscii } from 'node:buffer';
import { QuarryError } from '../errors.ts';
import {
  type ChangeOrder,
  changeOrder,
  checkChanges,
  type DocumentChanges,
  decodeDocumentsAsync,
  documentSpans,
  encodeDocumentsText,
  splicedDocuments,
} from '../index-documents.ts';
import { setOwn } from '../own-fields.ts';
import { hashCodes, hashTerm } from './analyzer.ts';
import {
  type BuildOptions,
  type CheckedOptions,
  type Collected,
  type CopiedPositions,
  checkOptions,
  collectDocs,
  FIELD_SHIFT,
  newCollected,
  writeCollectedWithPositions,
} from './build.ts';
import { type ExtensionOptions, extendIndex, needsDocuments, splitExtensionOptions } from './extension.ts';
import { type Extension, extensionOf } from './extension-view.ts';
import { decodeUtf8, loadIndex, type SearchIndex, termAt } from './format.ts';
import { grown, type TermTable } from './term-table.ts';

/** What an update starts from: the base version's kept documents (as stored) and the changes. */
export interface UpdateChanges {
  readonly stored: ArrayBuffer | Uint8Array;
  readonly changes: DocumentChanges;
  readonly idField: string;
  /** The fields the kept documents are projected onto. */
  readonly fields: readonly string[];
}

/**
 * The next version's index, built from `indexBytes` (the base version's) and `input`, and with
 * `keep`, its kept documents (one frame of DOCUMENTS_ENCODING): null when this base cannot be
 * updated from its index, and the documents are to be built whole. The kept documents are decoded
 * and the new ones encoded on the thread pool while this thread builds; their text is spliced, not
 * parsed (shared/index-documents.ts documentSpans). Throws as a full build of the list would.
 */
export async function buildUpdate(
  input: UpdateChanges,
  indexBytes: ArrayBuffer | Uint8Array,
  options: BuildOptions & ExtensionOptions,
  keep: readonly string[] | undefined,
): Promise<{ bytes: Uint8Array<ArrayBuffer>; documents?: Uint8Array<ArrayBuffer> } | null> {
  checkChanges(input.changes, input.idField);
  if (keep !== undefined && keep.join('\0') !== input.fields.join('\0')) return null;
  const { base: baseOptions, extension } = splitExtensionOptions(options);
  const opts = checkOptions(baseOptions);
  const base = loadIndex(new Uint8Array(indexBytes));
  const source = updateSource(base, input.changes, input.idField, input.fields);
  if (source === null) return null;
  const text = keep === undefined ? undefined : decodeDocumentsAsync(new Uint8Array(input.stored));
  text?.catch(() => {});
  const collected = newCollected(true);
  const copied = collectUpdate(source, opts, collected);
  let encoded: Promise<Uint8Array<ArrayBuffer>> | undefined;
  if (text !== undefined) {
    const kept = await text;
    const spans = documentSpans(kept);
    if (spans.length !== 2 * base.header.docCount) {
      throw new QuarryError(
        'QUARRY_ERR_INTERNAL',
        `kept documents: ${spans.length / 2} where the index holds ${base.header.docCount}`,
      );
    }
    encoded = encodeDocumentsText(splicedDocuments(kept, spans, source.order, source.changed));
    encoded.catch(() => {});
  }
  const { bytes, positions } = writeCollectedWithPositions(collected, opts, copied);
  const columnFields = [...new Set([...(extension.filterable ?? []), ...(extension.sortable ?? [])])];
  const records = needsDocuments(extension) ? columnRecords(source, columnFields) : undefined;
  const index = extendIndex(bytes, positions, records, extension);
  return encoded === undefined ? { bytes: index } : { bytes: index, documents: await encoded };
}

/** The updated document list, as references: a base ordinal (a kept document) or a changed one. */
export interface UpdateSource extends ChangeOrder {
  readonly base: SearchIndex;
  readonly ext: Extension;
}

/**
 * The new version's document list from `base` (a loaded index with its extension) and `changes`,
 * in applyChanges' order (changeOrder). Null when this base cannot be updated from its index alone
 * (no extension, or a column of arrays): the caller goes by the documents.
 */
export function updateSource(
  base: SearchIndex,
  changes: DocumentChanges,
  idField: string,
  fields: readonly string[],
): UpdateSource | null {
  const ext = extensionOf(base);
  if (ext === null) return null;
  for (const column of ext.columns.values()) if (column.kind === 'strings') return null;
  const idAt = stringsOf(base.docIdBytes, base.docIdOffsets);
  return { base, ext, ...changeOrder(base.header.docCount, idAt, changes, idField, fields) };
}

/**
 * Collects the new version into `into` (made with positions on): kept documents copied from the
 * base, changed ones analyzed (collectDocs, so their errors name `documents.<number in the new
 * list>` as a full build's do).
 */
export function collectUpdate(source: UpdateSource, opts: CheckedOptions, into: Collected): CopiedPositions {
  const { base, ext, order, changed } = source;
  const byDoc = postingsByDocument(base, ext, opts.weights);
  const { collector } = into;
  const P = base.header.postingCount;
  // Room for about the base's postings, so the copy rarely grows them.
  if (collector.postTerms.length < P) collector.growPostings(P + (P >> 4));
  if (into.docLengths.length < order.length) {
    into.docLengths = grown(into.docLengths, order.length + 1);
    into.postEnds = grown(into.postEnds, order.length + 1);
  }
  const copy: KeptCopy = {
    base,
    ext,
    ...byDoc,
    termOf: new Int32Array(base.header.termCount).fill(-1),
    sources: new Int32Array(collector.postTerms.length),
    ids: stringsOf(base.docIdBytes, base.docIdOffsets),
    stored: stringsOf(base.storedBytes, base.storedOffsets),
  };
  let run = 0;
  while (run < order.length) {
    if (order[run]! >= 0) {
      run = copyKept(copy, order, run, into);
      continue;
    }
    // A run of changed documents: analyzed as a full build would.
    let end = run;
    while (end < order.length && order[end]! < 0) end++;
    const docs: object[] = [];
    for (let i = run; i < end; i++) docs.push(changed[-1 - order[i]!]!);
    const first = collector.postCount;
    collectDocs(docs, opts, into);
    if (collector.postCount > copy.sources.length)
      copy.sources = grown(copy.sources, collector.postTerms.length);
    copy.sources.fill(-1, first, collector.postCount);
    run = end;
  }
  return { sources: copy.sources, positionOffsets: ext.positionOffsets, positions: ext.positions };
}

interface KeptCopy {
  readonly base: SearchIndex;
  readonly ext: Extension;
  readonly docStart: Uint32Array;
  readonly byDocTerm: Uint32Array;
  readonly byDocPost: Uint32Array;
  readonly byDocTf: Float64Array;
  /** Base term number -> its number in the new term table (-1: not entered yet). */
  readonly termOf: Int32Array;
  /** Per collected posting: the base posting it copies, or -1 (analyzed). */
  sources: Int32Array;
  readonly ids: (d: number) => string;
  readonly stored: (d: number) => string;
}

/**
 * The base's postings by document: base document d's are byDoc*[docStart[d], docStart[d + 1]),
 * their term numbers, numbers in the file and term frequencies. A posting's tf is summed again from
 * its positions (each names its field): the analyzer's sum, the first token's weight and then each
 * further token's, in order. Reads the base in file order; only the writes scatter.
 */
function postingsByDocument(
  base: SearchIndex,
  ext: Extension,
  weights: Float64Array,
): { docStart: Uint32Array; byDocTerm: Uint32Array; byDocPost: Uint32Array; byDocTf: Float64Array } {
  const { docCount: N, postingCount: P, termCount: T } = base.header;
  const { postingOffsets, postingDocs } = base;
  const { positionOffsets, positions } = ext;
  const docStart = new Uint32Array(N + 1);
  for (let q = 0; q < P; q++) docStart[postingDocs[q]! + 1]!++;
  for (let d = 0; d < N; d++) docStart[d + 1]! += docStart[d]!;
  const fill = docStart.slice(0, N);
  const byDocTerm = new Uint32Array(P);
  const byDocPost = new Uint32Array(P);
  const byDocTf = new Float64Array(P);
  for (let r = 0; r < T; r++) {
    const end = postingOffsets[r + 1]!;
    for (let q = postingOffsets[r]!; q < end; q++) {
      const from = positionOffsets[q]!;
      const to = positionOffsets[q + 1]!;
      let tf = weights[positions[from]! >>> FIELD_SHIFT]!;
      for (let j = from + 1; j < to; j++) tf += weights[positions[j]! >>> FIELD_SHIFT]!;
      const at = fill[postingDocs[q]!]!++;
      byDocTerm[at] = r;
      byDocPost[at] = q;
      byDocTf[at] = tf;
    }
  }
  return { docStart, byDocTerm, byDocPost, byDocTf };
}

/**
 * Copies the kept documents order[run], order[run + 1], ... (up to the next changed one) into
 * `into`, their postings' positions left to their base postings (`sources`); returns where the run
 * ended. The collector's arrays are held in locals, and taken again after anything that may grow
 * them.
 */
function copyKept(copy: KeptCopy, order: Int32Array, run: number, into: Collected): number {
  const { base, docStart, byDocTerm, byDocPost, byDocTf, termOf } = copy;
  const baseLengths = copy.ext.docLengths;
  const { collector, ids, stored } = into;
  const idAt = copy.ids;
  const storedAt = copy.stored;
  const { terms } = collector;
  let p = collector.postCount;
  let postTerms = collector.postTerms;
  let postTfs = collector.postTfs;
  let sources = copy.sources;
  let docFreq = terms.docFreq;
  let docLengths = into.docLengths;
  let postEnds = into.postEnds;
  let n = into.n;
  let total = into.totalLength;
  let last = -1;
  for (; run < order.length; run++) {
    const d = order[run]!;
    if (d < 0) break;
    last = d;
    ids.push(idAt(d));
    stored.push(storedAt(d));
    const start = docStart[d]!;
    const end = docStart[d + 1]!;
    if (p + (end - start) > postTerms.length) {
      collector.growPostings(Math.max(p * 2, p + (end - start)));
      postTerms = collector.postTerms;
      postTfs = collector.postTfs;
    }
    if (postTerms.length > sources.length) {
      sources = grown(sources, postTerms.length);
      copy.sources = sources;
    }
    for (let i = start; i < end; i++) {
      const r = byDocTerm[i]!;
      let t = termOf[r]!;
      if (t < 0) {
        t = enter(terms, base, r);
        termOf[r] = t;
        docFreq = terms.docFreq;
      }
      docFreq[t]!++;
      postTerms[p] = t;
      postTfs[p] = byDocTf[i]!;
      sources[p] = byDocPost[i]!;
      p++;
    }
    if (n >= docLengths.length) {
      docLengths = grown(docLengths, n * 2 + 1);
      postEnds = grown(postEnds, n * 2 + 1);
    }
    const length = baseLengths[d]!;
    docLengths[n] = length;
    postEnds[n] = p;
    total += length;
    n++;
  }
  collector.postCount = p;
  collector.doc = n - 1;
  collector.docLength = baseLengths[last]!;
  into.docLengths = docLengths;
  into.postEnds = postEnds;
  into.totalLength = total;
  into.n = n;
  return run;
}

let units = new Uint16Array(256);

/** Base term r's number in `terms`, entered when new: an ASCII term from its bytes, as the analyzer
 * enters it, without making a string. */
function enter(terms: TermTable, base: SearchIndex, r: number): number {
  const { termBytes, termOffsets } = base;
  const start = termOffsets[r]!;
  const length = termOffsets[r + 1]! - start;
  if (length > units.length) units = new Uint16Array(length * 2);
  for (let i = 0; i < length; i++) {
    const b = termBytes[start + i]!;
    if (b >= 0x80) {
      const term = termAt(base, r);
      return terms.idString(term, hashTerm(term));
    }
    units[i] = b;
  }
  return terms.idAscii(units, length, hashCodes(units, length));
}

/** The strings of a section (bytes[offsets[d], offsets[d + 1]) for d): all ASCII (what ids and
 * stored fields nearly always are), one decode sliced; else one decode each. */
function stringsOf(bytes: Uint8Array, offsets: Uint32Array): (d: number) => string {
  if (isAscii(bytes)) {
    const all = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
    return (d) => all.slice(offsets[d]!, offsets[d + 1]!);
  }
  return (d) => decodeUtf8(bytes, offsets[d]!, offsets[d + 1]!);
}

/**
 * What the extension's typed columns read of each document of the new version: a kept document's
 * values from the base's columns (a column here holds one value or none per document), a changed
 * document as it is.
 */
export function columnRecords(source: UpdateSource, fields: readonly string[]): Record<string, unknown>[] {
  const { ext, order, changed } = source;
  const columns = fields.map((f) => ext.columns.get(f));
  const out: Record<string, unknown>[] = new Array(order.length);
  for (let i = 0; i < order.length; i++) {
    const d = order[i]!;
    if (d < 0) {
      out[i] = changed[-1 - d]!;
      continue;
    }
    const record: Record<string, unknown> = {};
    for (let c = 0; c < fields.length; c++) {
      const column = columns[c];
      if (column === undefined) continue;
      const at = column.offsets[d]!;
      if (column.offsets[d + 1]! > at) setOwn(record, fields[c]!, column.values[column.codes[at]!]);
    }
    out[i] = record;
  }
  return out;
}
