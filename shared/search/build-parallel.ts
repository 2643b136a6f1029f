// A build split over threads: the documents (one JSON array, as UTF-8 bytes) are cut at a
// top-level comma into two arrays; each thread analyzes its part (build.ts collectDocs); the
// helper's postings, term table and per-document data travel to the primary as typed arrays
// (transferred), which merges them into its own and writes the index.
//
// The result is byte for byte the index a single-thread build of the whole array writes: the file
// numbers terms by sorted order and fills its hash table in that order, so it does not depend on
// the order in which terms were first seen; postings keep document order because the helper's
// documents all come after the primary's; tf and length sums are made per document, as before.
// Errors are the ones the single-thread build throws: the first failing document in input order
// (a helper document repeating a primary document's id included).

import { QuarryError } from '../errors.ts';
import { type CheckedOptions, type Collected, invalid } from './build.ts';
import { grown } from './term-table.ts';

/** Inputs smaller than this build on one thread: the split and the transfers would cost more. */
export const PARALLEL_MIN_BYTES = 1 << 20;

/** What a helper thread sends back: its term table, postings and documents, or its failure. */
export interface PartialBuild {
  /** Number of the helper's first document in the whole input. */
  readonly offset: number;
  readonly termCount: number;
  readonly pool: Uint16Array;
  readonly starts: Int32Array;
  readonly hashes: Int32Array;
  readonly docFreq: Int32Array;
  readonly hasNonAscii: boolean;
  readonly hasSurrogates: boolean;
  readonly postTerms: Int32Array;
  readonly postTfs: Float64Array;
  /** Per token: its posting (numbered in the helper's postTerms) and its position. */
  readonly tokenPosts: Int32Array;
  readonly tokenPositions: Uint32Array;
  readonly docLengths: Int32Array;
  readonly postEnds: Int32Array;
  readonly totalLength: number;
  readonly ids: string[];
  readonly stored: string[];
  /** The first failure of the part; `ids` then holds the ids read before it. */
  readonly error?: { readonly code: string; readonly message: string; readonly field?: string };
}

/** The part of `c` a helper sends; `error` when collecting failed. */
export function partialOf(c: Collected, offset: number, error?: unknown): PartialBuild {
  const { collector } = c;
  const { terms } = collector;
  const T = terms.count;
  const q = error instanceof QuarryError ? error : undefined;
  return {
    offset,
    termCount: T,
    pool: terms.pool.slice(0, terms.starts[T]!),
    starts: terms.starts.slice(0, T + 1),
    hashes: terms.hashes.slice(0, T),
    docFreq: terms.docFreq.slice(0, T),
    hasNonAscii: terms.hasNonAscii,
    hasSurrogates: terms.hasSurrogates,
    postTerms: collector.postTerms.slice(0, collector.postCount),
    postTfs: collector.postTfs.slice(0, collector.postCount),
    tokenPosts: collector.tokenPosts.slice(0, collector.tokenCount),
    tokenPositions: collector.tokenPositions.slice(0, collector.tokenCount),
    docLengths: c.docLengths.slice(0, c.n),
    postEnds: c.postEnds.slice(0, c.n),
    totalLength: c.totalLength,
    ids: c.ids,
    stored: c.stored,
    ...(error === undefined
      ? {}
      : {
          error: {
            code: q?.code ?? 'QUARRY_ERR_INTERNAL',
            message: error instanceof Error ? error.message : String(error),
            ...(q?.field === undefined ? {} : { field: q.field }),
          },
        }),
  };
}

/** The buffers of a partial build, to transfer rather than copy. */
export function partialTransfer(p: PartialBuild): ArrayBuffer[] {
  return [
    p.pool,
    p.starts,
    p.hashes,
    p.docFreq,
    p.postTerms,
    p.postTfs,
    p.tokenPosts,
    p.tokenPositions,
    p.docLengths,
    p.postEnds,
  ].map((a) => a.buffer as ArrayBuffer);
}

/**
 * Appends a helper's part to what the primary collected (its documents come right after). Throws
 * the error the single-thread build would: a helper document repeating an earlier id, else the
 * helper's own failure.
 */
export function mergePartial(c: Collected, part: PartialBuild, opts: CheckedOptions): void {
  if (part.offset !== c.n)
    throw new QuarryError('QUARRY_ERR_INTERNAL', `parts do not join: ${c.n} documents, then ${part.offset}`);
  for (let i = 0; i < part.ids.length; i++) {
    const id = part.ids[i]!;
    const previous = c.seen.get(id);
    if (previous !== undefined) {
      const g = part.offset + i;
      throw invalid(
        `document ${g} repeats the id of document ${previous}: ${id}`,
        `documents.${g}.${opts.idField}`,
      );
    }
  }
  if (part.error !== undefined) {
    const { code, message, field } = part.error;
    throw new QuarryError(code as QuarryError['code'], message, field === undefined ? {} : { field });
  }
  const { collector } = c;
  const { terms } = collector;
  // Helper term number -> primary term number (inserting the terms the primary has not seen).
  const map = new Int32Array(part.termCount);
  for (let t = 0; t < part.termCount; t++) {
    const s = part.starts[t]!;
    const e = part.starts[t + 1]!;
    const g = terms.idAscii(part.pool.subarray(s, e), e - s, part.hashes[t]!);
    map[t] = g;
    terms.docFreq[g]! += part.docFreq[t]!;
  }
  if (part.hasNonAscii) terms.hasNonAscii = true;
  if (part.hasSurrogates) terms.hasSurrogates = true;

  const base = collector.postCount;
  const P = base + part.postTerms.length;
  if (P > collector.postTerms.length) collector.growPostings(P);
  const postTerms = collector.postTerms;
  for (let p = 0; p < part.postTerms.length; p++) postTerms[base + p] = map[part.postTerms[p]!]!;
  collector.postTfs.set(part.postTfs, base);
  collector.postCount = P;
  if (collector.positions) {
    const k0 = collector.tokenCount;
    const K = k0 + part.tokenPosts.length;
    if (K > collector.tokenPosts.length) collector.growTokens(K);
    for (let k = 0; k < part.tokenPosts.length; k++)
      collector.tokenPosts[k0 + k] = part.tokenPosts[k]! + base;
    collector.tokenPositions.set(part.tokenPositions, k0);
    collector.tokenCount = K;
  }

  const N = c.n + part.ids.length;
  if (N > c.docLengths.length) {
    c.docLengths = grown(c.docLengths, N);
    c.postEnds = grown(c.postEnds, N);
  }
  c.docLengths.set(part.docLengths, c.n);
  for (let d = 0; d < part.postEnds.length; d++) c.postEnds[c.n + d] = part.postEnds[d]! + base;
  for (let i = 0; i < part.ids.length; i++) {
    c.ids.push(part.ids[i]!);
    c.stored.push(part.stored[i]!);
    c.seen.set(part.ids[i]!, part.offset + i);
  }
  c.totalLength += part.totalLength;
  c.n = N;
}

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * Where to cut a JSON array's bytes in two: the first top-level comma at or after the middle, and
 * the number of elements before it. Null when there is none (not an array, one element, malformed
 * before the middle): the caller builds on one thread, which reports any JSON error.
 */
export function findSplit(bytes: Uint8Array): { at: number; before: number } | null {
  const n = bytes.length;
  const target = n >>> 1;
  let i = 0;
  while (i < n && isSpace(bytes[i]!)) i++;
  if (bytes[i] !== 0x5b) return null;
  let depth = 0;
  let commas = 0;
  for (i++; i < n; i++) {
    const c = bytes[i]!;
    if (c === 0x22) {
      // To the closing quote: one preceded by an even number of backslashes.
      let j = i + 1;
      for (;;) {
        j = bytes.indexOf(0x22, j);
        if (j < 0) return null;
        let k = j - 1;
        while (bytes[k] === 0x5c) k--;
        if ((j - 1 - k) % 2 === 0) break;
        j++;
      }
      i = j;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      if (depth === 0) return null;
      depth--;
    } else if (c === 0x2c && depth === 0) {
      commas++;
      if (i >= target) return { at: i, before: commas };
    }
  }
  return null;
}

/** Parses a part's JSON text; an empty part means the whole input was not valid JSON (`[,x]`, `[x,]`). */
export function parsePart(text: string): unknown[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'documents are not valid JSON', {
      field: 'documents',
      cause,
    });
  }
  if (!Array.isArray(parsed) || parsed.length === 0) {
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'documents are not valid JSON', { field: 'documents' });
  }
  return parsed;
}
