// Answers queries against a loaded index: looks up the query's terms, adds up their stored BM25
// scores per document (term at a time, into a reusable accumulator) and keeps the best k in a small
// heap, so the cost grows with the postings read, never with a sort of all matches.

import { QuarryError } from '../errors.ts';
import { allCommon, topByBlocks } from './block-max.ts';
import { docId, findTerm, prefixRange, type SearchIndex, storedFields } from './format.ts';
import { analyzeWith } from './stemmer.ts';
import { TopHeap } from './top-heap.ts';

export const DEFAULT_K = 10;
export const MAX_K = 1000;
export const DEFAULT_MAX_EXPANSIONS = 64;

export interface SearchOptions {
  /** Number of hits to return, 0..MAX_K. Default 10. */
  k?: number;
  /** 'any' (default): documents with at least one query term; 'all': documents with every term. */
  mode?: 'any' | 'all';
  /**
   * Search-as-you-type: the last query term also matches every term it is a prefix of (the
   * `maxExpansions` terms with the most documents). A document scores the best of its matching
   * expansions for that term, so a word with many completions does not count many times.
   */
  prefix?: boolean;
  /** Default 64. */
  maxExpansions?: number;
  /** Leave out stored fields (hits get `{}`); saves a JSON.parse per hit. Default true. */
  fields?: boolean;
  /**
   * Always count every matching document. Default false: in 'any' mode the count is left out when
   * pruning skipped documents that could not reach the top k (the hits are the same either way).
   */
  total?: boolean;
}

export interface SearchHit {
  id: string;
  /** BM25 score (higher is better), exact up to float32 rounding (of each term's stored score and of their sum). */
  score: number;
  /** Position of the document in the build input. */
  ordinal: number;
  fields: Record<string, unknown>;
}

export interface SearchResult {
  hits: SearchHit[];
  /** Number of documents matching the query; absent when pruning skipped the count (see `total`). */
  total?: number;
}

/** Reusable per-index buffers; search is synchronous, so one set per index is enough. */
interface Scratch {
  /**
   * Score so far per document; 0 = not reached (stored scores are always > 0). Float32 like the
   * stored scores: half the bytes of float64 to stream through, which made queries over common
   * words ~10% faster (100k documents); every path adds a document's terms in the same order, so
   * pruned and unpruned searches give it the same score.
   */
  acc: Float32Array;
  best: Float64Array;
  /** Documents with acc > 0, in the order reached (sparse evaluation only). */
  touched: Int32Array;
  bestTouched: Int32Array;
  heap: TopHeap;
}

const scratches = new WeakMap<SearchIndex, Scratch>();

function scratchFor(index: SearchIndex): Scratch {
  let s = scratches.get(index);
  if (s === undefined) {
    const n = index.header.docCount;
    s = {
      acc: new Float32Array(n),
      best: new Float64Array(n),
      touched: new Int32Array(n),
      bestTouched: new Int32Array(n),
      heap: new TopHeap(MAX_K),
    };
    scratches.set(index, s);
  }
  return s;
}

/** One query term: a single dictionary term, or a prefix's expansions (scored by the best of them). */
interface Clause {
  terms: number[];
  /** Upper bound of the clause's score in any document. */
  max: number;
  /** Postings to read. */
  size: number;
}

function clauseOf(index: SearchIndex, terms: number[]): Clause {
  let max = 0;
  let size = 0;
  for (const t of terms) {
    max = Math.max(max, index.termMaxScores[t]!);
    size += index.postingOffsets[t + 1]! - index.postingOffsets[t]!;
  }
  return { terms, max, size };
}

/** The `max` terms of [from, to) with the most postings. */
function expansions(index: SearchIndex, from: number, to: number, max: number): number[] {
  const off = index.postingOffsets;
  const all: number[] = [];
  for (let t = from; t < to; t++) all.push(t);
  if (all.length <= max) return all;
  return all.sort((a, b) => off[b + 1]! - off[b]! - (off[a + 1]! - off[a]!) || a - b).slice(0, max);
}

/** The query's clauses; null when 'all' mode cannot match (a term is not in the index). */
function clausesOf(
  index: SearchIndex,
  query: string,
  all: boolean,
  prefix: boolean,
  maxExp: number,
): Clause[] | null {
  const tokens = analyzeWith(index.header.analyzer, query);
  // The word `prefix` expands is the query's last, even when it also came earlier.
  const last = prefix ? tokens[tokens.length - 1] : undefined;
  const words = [...new Set(tokens)].filter((w) => w !== last);
  const clauses: Clause[] = [];
  for (const w of words) {
    const t = findTerm(index, w);
    if (t >= 0) clauses.push(clauseOf(index, [t]));
    else if (all) return null;
  }
  if (last !== undefined) {
    const [from, to] = prefixRange(index, last);
    const terms = expansions(index, from, to, maxExp);
    if (terms.length > 0) clauses.push(clauseOf(index, terms));
    else if (all) return null;
  }
  return clauses;
}

function invalid(message: string, field: string): QuarryError {
  return new QuarryError('QUARRY_ERR_VALIDATION', message, { field });
}

/** Searches `index`. Hits are ordered by score, ties by ordinal (lower first). */
export function search(index: SearchIndex, query: string, opts: SearchOptions = {}): SearchResult {
  const k = opts.k ?? DEFAULT_K;
  if (!Number.isInteger(k) || k < 0 || k > MAX_K)
    throw invalid(`k must be an integer from 0 to ${MAX_K}`, 'k');
  const mode = opts.mode ?? 'any';
  if (mode !== 'any' && mode !== 'all') throw invalid("mode must be 'any' or 'all'", 'mode');
  if (typeof query !== 'string') throw invalid('query must be a string', 'query');
  const maxExp = opts.maxExpansions ?? DEFAULT_MAX_EXPANSIONS;
  if (!Number.isInteger(maxExp) || maxExp < 1)
    throw invalid('maxExpansions must be an integer >= 1', 'maxExpansions');
  const clauses = clausesOf(index, query, mode === 'all', opts.prefix === true, maxExp);
  if (clauses === null || clauses.length === 0) return { hits: [], total: 0 };
  const s = scratchFor(index);
  s.heap.reset(k);
  let total: number | undefined;
  if (mode === 'all') total = matchAll(index, s, clauses);
  else if (clauses.length === 1 && clauses[0]!.terms.length === 1)
    total = matchOneTerm(index, s, clauses[0]!.terms[0]!);
  else total = matchAny(index, s, clauses, opts.total === true ? 0 : k);
  const hits = hitsOf(index, s.heap, opts.fields !== false);
  return total === undefined ? { hits } : { hits, total };
}

/**
 * Once the documents reached plus the next clause's postings exceed docCount / DENSE_RATIO,
 * accumulation stops keeping a touched list.
 */
const DENSE_RATIO = 4;

/** One term: its postings go straight into the heap. */
function matchOneTerm(index: SearchIndex, s: Scratch, t: number): number {
  const { postingOffsets: off, postingDocs: docs, postingScores: scores } = index;
  const heap = s.heap;
  for (let p = off[t]!, end = off[t + 1]!; p < end; p++) {
    const v = scores[p]!;
    // Postings are in ordinal order, so an equal score never displaces a kept hit.
    if (v > heap.threshold()) heap.offer(v, docs[p]!);
  }
  return off[t + 1]! - off[t]!;
}

/**
 * Adds a clause's scores to every document it holds without a touched list (dense evaluation);
 * returns how many documents that is, a bound on those it reached first. Nothing is counted or
 * marked per posting: a branch on "reached before?" is unpredictable (mispredictions made these
 * loops several times slower, measured), and a byte per document to mark cost a store per posting
 * and a pass to clear; offerDense counts the documents reached instead.
 */
function addDense(index: SearchIndex, s: Scratch, clause: Clause): number {
  if (clause.terms.length > 1) return addBestOf(index, s, clause.terms, -1);
  const { postingOffsets: off, postingDocs: docs, postingScores: scores } = index;
  const { acc } = s;
  const t = clause.terms[0]!;
  for (let p = off[t]!, end = off[t + 1]!; p < end; p++) acc[docs[p]!]! += scores[p]!;
  return off[t + 1]! - off[t]!;
}

/**
 * Offers every document's score to the heap in one sequential pass (dense evaluation); returns how
 * many documents were reached (acc > 0).
 */
function offerDense(s: Scratch): number {
  const { acc, heap } = s;
  // Beating the k-th best soon becomes rare, so this branch predicts well; the count has none.
  let threshold = Math.max(0, heap.threshold());
  let reached = 0;
  for (let d = 0; d < acc.length; d++) {
    const v = acc[d]!;
    reached += Number(v > 0);
    if (v > threshold) {
      heap.offer(v, d);
      threshold = Math.max(0, heap.threshold());
    }
  }
  return reached;
}

/** Adds a clause's scores to every document it holds (term at a time); returns the new touched count. */
function addClause(index: SearchIndex, s: Scratch, clause: Clause, nTouched: number): number {
  if (clause.terms.length > 1) return addBestOf(index, s, clause.terms, nTouched);
  const { postingOffsets: off, postingDocs: docs, postingScores: scores } = index;
  const { acc, touched } = s;
  const t = clause.terms[0]!;
  // Branch-free: the slot is written either way and kept only for a document reached first.
  for (let p = off[t]!, end = off[t + 1]!; p < end; p++) {
    const d = docs[p]!;
    const a = acc[d]!;
    touched[nTouched] = d;
    nTouched += Number(a === 0);
    acc[d] = a + scores[p]!;
  }
  return nTouched;
}

/**
 * Adds, per document, the best score among `terms` (a prefix's expansions). Returns the new touched
 * count; with nTouched = -1 (dense evaluation) it returns how many documents it reached, a bound on
 * those it reached first.
 */
function addBestOf(index: SearchIndex, s: Scratch, terms: number[], nTouched: number): number {
  const { postingOffsets: off, postingDocs: docs, postingScores: scores } = index;
  const { acc, best, bestTouched, touched } = s;
  let nBest = 0;
  for (let i = 0; i < terms.length; i++) {
    const t = terms[i]!;
    for (let p = off[t]!, end = off[t + 1]!; p < end; p++) {
      const d = docs[p]!;
      const v = scores[p]!;
      if (best[d] === 0) bestTouched[nBest++] = d;
      if (v > best[d]!) best[d] = v;
    }
  }
  for (let i = 0; i < nBest; i++) {
    const d = bestTouched[i]!;
    if (nTouched >= 0 && acc[d] === 0) touched[nTouched++] = d;
    acc[d]! += best[d]!;
    best[d] = 0;
  }
  return nTouched < 0 ? nBest : nTouched;
}

/** First position in docs[from, end) holding a document >= target (galloping search). */
function seek(docs: Uint32Array, from: number, end: number, target: number): number {
  if (from >= end || docs[from]! >= target) return from;
  let below = from;
  let step = 1;
  let hi = from + 1;
  while (hi < end && docs[hi]! < target) {
    below = hi;
    step *= 2;
    hi = below + step;
  }
  let lo = below + 1;
  if (hi > end) hi = end;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (docs[mid]! < target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Adds a clause's scores to the candidates touched[0, n) (sorted by ordinal) only, seeking through
 * its postings instead of reading them all. With `keepMissing` false, candidates the clause does not
 * hold are dropped (and their accumulators cleared). Returns the new candidate count.
 */
function addToCandidates(
  index: SearchIndex,
  s: Scratch,
  clause: Clause,
  n: number,
  keepMissing: boolean,
): number {
  const { postingOffsets: off, postingDocs: docs, postingScores: scores } = index;
  const { acc, touched } = s;
  const { terms } = clause;
  const cursors = terms.map((t) => off[t]!);
  let kept = 0;
  for (let i = 0; i < n; i++) {
    const d = touched[i]!;
    let best = 0;
    for (let j = 0; j < terms.length; j++) {
      const t = terms[j]!;
      const p = seek(docs, cursors[j]!, off[t + 1]!, d);
      cursors[j] = p;
      if (p < off[t + 1]! && docs[p] === d && scores[p]! > best) best = scores[p]!;
    }
    if (best > 0) acc[d]! += best;
    else if (!keepMissing) {
      acc[d] = 0;
      continue;
    }
    touched[kept++] = d;
  }
  return kept;
}

/** 'all' mode: the rarest clause gives the candidates, each other clause keeps those it holds. */
function matchAll(index: SearchIndex, s: Scratch, clauses: Clause[]): number {
  clauses.sort((a, b) => a.size - b.size);
  let n = addClause(index, s, clauses[0]!, 0);
  if (clauses.length > 1) s.touched.subarray(0, n).sort();
  for (let c = 1; c < clauses.length && n > 0; c++) n = addToCandidates(index, s, clauses[c]!, n, false);
  return offerAndClear(s, n);
}

/** Offers touched[0, n) to the heap and clears their accumulators; returns n. */
function offerAndClear(s: Scratch, n: number): number {
  const { acc, touched, heap } = s;
  for (let i = 0; i < n; i++) {
    const d = touched[i]!;
    const v = acc[d]!;
    if (v > heap.threshold() || (v === heap.threshold() && d < heap.docs[0]!)) heap.offer(v, d);
    acc[d] = 0;
  }
  return n;
}

/**
 * Slack on a score bound, relative to the k-th best score, per clause: scores are float32 sums
 * (each addition rounds by at most 2^-24 of the sum), so a partial sum may read a little low and a
 * final one a little high; 2^-22 per clause covers both with room to spare.
 */
const SLACK_PER_CLAUSE = 2 ** -22;
const SEEK_RATIO = 16;

/** Adds a clause's scores to the documents already reached (acc > 0) only, reading all its postings. */
function addToKnown(index: SearchIndex, s: Scratch, clause: Clause): void {
  const { postingOffsets: off, postingDocs: docs, postingScores: scores } = index;
  const { acc, best } = s;
  const { terms } = clause;
  if (terms.length === 1) {
    // One term, one pass, branch-free: a document not reached (acc 0) adds 0 and stays 0.
    const t = terms[0]!;
    for (let p = off[t]!, end = off[t + 1]!; p < end; p++) {
      const d = docs[p]!;
      const a = acc[d]!;
      acc[d] = a + scores[p]! * Number(a !== 0);
    }
    return;
  }
  for (let j = 0; j < terms.length; j++) {
    const t = terms[j]!;
    for (let p = off[t]!, end = off[t + 1]!; p < end; p++) {
      const d = docs[p]!;
      if (acc[d] !== 0 && scores[p]! > best[d]!) best[d] = scores[p]!;
    }
  }
  // A second pass moves the best score per document into acc (a prefix scores its best expansion).
  for (let j = 0; j < terms.length; j++) {
    const t = terms[j]!;
    for (let p = off[t]!, end = off[t + 1]!; p < end; p++) {
      const d = docs[p]!;
      if (best[d] !== 0) {
        acc[d]! += best[d]!;
        best[d] = 0;
      }
    }
  }
}

/**
 * 'any' mode with MaxScore pruning (Turtle & Flood 1995): clauses go from the highest possible score
 * down. Once the k-th best score so far exceeds what the remaining clauses could add up to at most,
 * no document they alone hold can reach the top k, so they only update the candidates that still
 * could. The ranking is unchanged; only the count of all matches is lost (undefined). k = 0: no pruning.
 * Accumulation keeps a list of the documents reached until that list and the next clause's postings
 * could exceed docCount / DENSE_RATIO; then it goes dense (no list; one sequential pass at the end).
 * Deciding per clause, not from all the postings left, keeps the rare clauses read first sparse, so
 * the pruning check after them costs a pass over the few documents they reached, not over every
 * document (a query of two rare words and two stopwords paid several dense passes for nothing).
 */
function matchAny(index: SearchIndex, s: Scratch, clauses: Clause[], k: number): number | undefined {
  clauses.sort((a, b) => b.max - a.max);
  const m = clauses.length;
  const N = index.header.docCount;
  const rest = new Float64Array(m + 1);
  const restSize = new Float64Array(m + 1);
  for (let i = m - 1; i >= 0; i--) {
    rest[i] = rest[i + 1]! + clauses[i]!.max;
    restSize[i] = restSize[i + 1]! + clauses[i]!.size;
  }
  if (k > 0 && singleTerms(clauses)) {
    const terms = clauses.map((c) => c.terms[0]!);
    if (allCommon(index, terms) && topByBlocks(index, terms, s.heap, (m + 1) * SLACK_PER_CLAUSE))
      return undefined;
  }
  let n = 0;
  let dense = false;
  for (let i = 0; i < m; i++) {
    // A threshold pass pays only when many postings remain and the clauses done could outscore the
    // ones left. Dense, n counts the documents reached, a bound on the candidates that would be left
    // to seek for; with many of them, reading on beats two more passes over every document.
    const worthIt = n >= k && (dense ? n * SEEK_RATIO <= restSize[i]! : restSize[i]! > 2 * n);
    if (i > 0 && k > 0 && worthIt && rest[0]! - rest[i]! > rest[i]!) {
      const theta = kthBest(s, n, k, dense);
      const bound = rest[i]! + theta * (m + 1) * SLACK_PER_CLAUSE;
      if (theta > bound) {
        n = dense ? collectReachable(s, theta - bound) : keepReachable(s, n, theta - bound);
        // Seeking pays when candidates are few next to the postings; else read the lists, adding to
        // candidates only.
        if (n * SEEK_RATIO > restSize[i]!) {
          for (let j = i; j < m; j++) addToKnown(index, s, clauses[j]!);
        } else {
          if (!dense) s.touched.subarray(0, n).sort();
          for (let j = i; j < m; j++) n = addToCandidates(index, s, clauses[j]!, n, true);
        }
        offerAndClear(s, n);
        return undefined;
      }
    }
    if (!dense && i === m - 1 && clauses[i]!.terms.length === 1)
      return addLastAndOffer(index, s, clauses[i]!.terms[0]!, n);
    if (!dense && (n + clauses[i]!.size) * DENSE_RATIO > N) dense = true;
    // Dense, n is a bound on the documents reached (addDense).
    if (dense) n = Math.min(N, n + addDense(index, s, clauses[i]!));
    else n = addClause(index, s, clauses[i]!, n);
  }
  if (!dense) return offerAndClear(s, n);
  const reached = offerDense(s);
  s.acc.fill(0);
  return reached;
}

/**
 * The last clause, a single term, while the documents reached are listed (sparse): each posting
 * gives its document's final score at once, offered if it can enter the heap; listed documents it
 * holds are flagged (negated) so that the pass over the list after offers only the others. Every
 * document is offered once, with its final score (rounded to float32 as acc would hold it), and no
 * new document is listed: a stopword after rare words costs one pass over its postings, not a
 * list of all it holds, or a pass over every document. Returns the documents reached.
 */
function addLastAndOffer(index: SearchIndex, s: Scratch, t: number, n: number): number {
  const { postingOffsets: off, postingDocs: docs, postingScores: scores } = index;
  const { acc, touched, heap } = s;
  let threshold = heap.threshold();
  let fresh = 0;
  for (let p = off[t]!, end = off[t + 1]!; p < end; p++) {
    const d = docs[p]!;
    const a = acc[d]!;
    const v = Math.fround(a + scores[p]!);
    fresh += Number(a === 0);
    // Negated: a listed document's slot reads below 0 now; an unlisted one's stays 0 (-0).
    acc[d] = -a;
    if (v >= threshold) {
      heap.offer(v, d);
      threshold = heap.threshold();
    }
  }
  let floor = Math.max(threshold, Number.MIN_VALUE);
  for (let j = 0; j < n; j++) {
    const d = touched[j]!;
    const v = acc[d]!;
    if (v >= floor) {
      heap.offer(v, d);
      floor = Math.max(heap.threshold(), Number.MIN_VALUE);
    }
    acc[d] = 0;
  }
  return n + fresh;
}

/** True when no clause is a prefix's expansions. */
function singleTerms(clauses: readonly Clause[]): boolean {
  for (const c of clauses) if (c.terms.length !== 1) return false;
  return true;
}

/** The k-th best score so far (the heap is left empty again). */
function kthBest(s: Scratch, n: number, k: number, dense: boolean): number {
  const heap = s.heap;
  heap.reset(k);
  if (dense) offerDense(s);
  else {
    const { acc, touched } = s;
    for (let j = 0; j < n; j++) {
      const d = touched[j]!;
      const v = acc[d]!;
      if (v >= heap.threshold()) heap.offer(v, d);
    }
  }
  const theta = heap.threshold();
  heap.reset(k);
  return theta;
}

/** Dense evaluation: lists the documents scoring at least `floor` (in ordinal order) as candidates
 * and clears every other accumulator. */
function collectReachable(s: Scratch, floor: number): number {
  const { acc, touched } = s;
  let n = 0;
  for (let d = 0; d < acc.length; d++) {
    if (acc[d]! >= floor) touched[n++] = d;
    else acc[d] = 0;
  }
  return n;
}

/** Drops candidates whose score so far is below `floor` (they cannot reach the top k). */
function keepReachable(s: Scratch, n: number, floor: number): number {
  const { acc, touched } = s;
  let kept = 0;
  // Branch-free, as in addClause (which candidates survive is unpredictable).
  for (let i = 0; i < n; i++) {
    const d = touched[i]!;
    const a = acc[d]!;
    const keep = Number(a >= floor);
    touched[kept] = d;
    kept += keep;
    acc[d] = a * keep;
  }
  return kept;
}

/** The heap's hits, best first. */
function hitsOf(index: SearchIndex, heap: TopHeap, withFields: boolean): SearchHit[] {
  const { scores: hs, docs: hd } = heap;
  const order: number[] = [];
  for (let i = 0; i < heap.size; i++) order.push(i);
  order.sort((a, b) => hs[b]! - hs[a]! || hd[a]! - hd[b]!);
  return order.map((i) => {
    const ord = hd[i]!;
    return {
      id: docId(index, ord),
      score: hs[i]!,
      ordinal: ord,
      fields: withFields ? storedFields(index, ord) : {},
    };
  });
}
