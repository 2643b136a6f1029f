// The full query (POST /v1/indexes/:collection/search): words, phrases and negations of `q`,
// typo tolerance, a filter, facets, sorting, pages, highlights and snippets. Unlike search.ts it
// never prunes: every matching document is scored, so `total` and facets are exact.
//
// A document matches when it holds at least one positive word or phrase ('any') or all of them
// ('all'), none of the negated ones, and the filter is true for it (a query with no positive
// item matches every document, score 0). Its score is the sum over the words and phrases it
// holds of their BM25 scores (collection-wide statistics: a filter never changes a score):
//   a word: the stored score of the best variant the document holds, the fewest typos first
//           (the word itself, else a corrected term, scored as that term), or with `prefix` the
//           best of the last word's expansions;
//   a phrase: phrase.ts.
// Order: the `sort` keys (nulls last either way), then fewer typos (summed over the words),
// then higher score, then build order.
import type { Filter } from '../filter-tree.ts';
import { setOwn } from '../own-fields.ts';
import { type Extension, extensionOf } from './extension-view.ts';
import { compileFilter, countFacets, TRUE } from './filter.ts';
import { docId, prefixRange, type SearchIndex, storedFields, termAt } from './format.ts';
import { highlightValue, type MatchedTerms, snippetOf } from './highlight.ts';
import { matchPhrase } from './phrase.ts';
import type { ParsedQuery } from './query-parse.ts';
import { stemOf } from './stemmer.ts';
import { allowedTypos, type TypoSetting, type Variant, variantsOf } from './typos.ts';

export interface QueryOptions {
  k: number;
  offset: number;
  mode: 'any' | 'all';
  prefix: boolean;
  maxExpansions: number;
  filter?: Filter;
  facets?: readonly string[];
  sort?: readonly { field: string; direction: 'asc' | 'desc' }[];
  highlight?: { fields: readonly string[]; pre: string; post: string };
  snippet?: { field: string; words: number };
  typos: TypoSetting;
  /** Leave highlights and snippets to `decorations` (the API runs them between other work). */
  deferDecorations?: boolean;
}

export interface QueryHit {
  id: string;
  score: number;
  ordinal: number;
  /** Edit distance summed over the words (0 when every word matched as written). */
  typos: number;
  fields: Record<string, unknown>;
  highlights?: Record<string, unknown>;
  snippet?: string;
}

export interface QueryResult {
  hits: QueryHit[];
  total: number;
  facets?: Record<string, Record<string, number>>;
  /** With `deferDecorations`: per hit, the step that adds its highlights and snippet. */
  decorations?: (() => void)[];
}

interface Scratch {
  acc: Float64Array;
  count: Uint16Array;
  typos: Uint16Array;
  excluded: Uint8Array;
  best: Float64Array;
  bestTypos: Uint8Array;
  reached: Int32Array;
}

const scratches = new WeakMap<SearchIndex, Scratch>();

function scratchFor(index: SearchIndex): Scratch {
  let s = scratches.get(index);
  if (s === undefined) {
    const n = index.header.docCount;
    s = {
      acc: new Float64Array(n),
      count: new Uint16Array(n),
      typos: new Uint16Array(n),
      excluded: new Uint8Array(n),
      best: new Float64Array(n),
      bestTypos: new Uint8Array(n),
      reached: new Int32Array(n),
    };
    scratches.set(index, s);
  }
  return s;
}

function expansions(index: SearchIndex, word: string, max: number): Variant[] {
  const [from, to] = prefixRange(index, word);
  const off = index.postingOffsets;
  const all: number[] = [];
  for (let t = from; t < to; t++) all.push(t);
  const kept =
    all.length <= max
      ? all
      : all.sort((a, b) => off[b + 1]! - off[b]! - (off[a + 1]! - off[a]!) || a - b).slice(0, max);
  return kept.map((term) => ({ term, typos: 0 }));
}

/** Runs a parsed query; options are checked already (request.ts). */
export function runQuery(index: SearchIndex, query: ParsedQuery, opts: QueryOptions): QueryResult {
  const ext = extensionOf(index);
  const N = index.header.docCount;
  const s = scratchFor(index);
  const { acc, count, typos, excluded, best, bestTypos, reached } = s;
  let nReached = 0;
  const reach = (d: number) => {
    if (count[d] === 0) reached[nReached++] = d;
    count[d]!++;
  };
  const matchedWords = new Set<string>();
  const matchedPhrases: string[][] = [];
  let clauses = 0;
  let impossible = false;
  const { postingOffsets: off, postingDocs: docs, postingScores: scores } = index;
  const words = [...query.words];
  const prefixWord = opts.prefix && query.endsWithWord ? words.pop() : undefined;
  const wordClauses: Variant[][] = words.map((w) => variantsOf(index, ext, w, allowedTypos(w, opts.typos)));
  if (prefixWord !== undefined) wordClauses.push(expansions(index, prefixWord, opts.maxExpansions));
  for (const variants of wordClauses) {
    clauses++;
    if (variants.length === 0) {
      impossible ||= opts.mode === 'all';
      continue;
    }
    const touched: number[] = [];
    for (const v of variants) {
      matchedWords.add(termAt(index, v.term));
      for (let p = off[v.term]!, end = off[v.term + 1]!; p < end; p++) {
        const d = docs[p]!;
        const score = scores[p]!;
        if (best[d] === 0) {
          touched.push(d);
          best[d] = score;
          bestTypos[d] = v.typos;
        } else if (bestTypos[d] === v.typos && score > best[d]!) best[d] = score;
      }
    }
    for (const d of touched) {
      reach(d);
      acc[d]! += best[d]!;
      typos[d]! += bestTypos[d]!;
      best[d] = 0;
    }
  }
  for (const phrase of query.phrases) {
    clauses++;
    const m = matchPhrase(index, ext!, phrase);
    if (m.docs.length === 0) impossible ||= opts.mode === 'all';
    else matchedPhrases.push(phrase);
    m.docs.forEach((d, i) => {
      reach(d);
      acc[d]! += m.scores[i]!;
    });
  }
  const negatedDocs: number[] = [];
  for (const tokens of query.negated) {
    const ds = tokens.length === 1 ? docsOfWord(index, tokens[0]!) : matchPhrase(index, ext!, tokens).docs;
    for (const d of ds) {
      if (excluded[d] === 0) negatedDocs.push(d);
      excluded[d] = 1;
    }
  }
  const test = opts.filter === undefined ? null : compileFilter(opts.filter, ext!);
  const required = opts.mode === 'all' ? clauses : 1;
  const candidates = new Int32Array(clauses === 0 ? N : nReached);
  let n = 0;
  if (!impossible) {
    const keep = (d: number) => {
      if (excluded[d] === 0 && (test === null || test(d) === TRUE)) candidates[n++] = d;
    };
    if (clauses === 0) for (let d = 0; d < N; d++) keep(d);
    else for (let i = 0; i < nReached; i++) if (count[reached[i]!]! >= required) keep(reached[i]!);
  }
  const result: QueryResult = { hits: [], total: n };
  if (opts.facets !== undefined && opts.facets.length > 0)
    result.facets = countFacets(ext!, opts.facets, candidates, n);
  const top = selectTop(candidates, n, opts.offset + opts.k, comparator(index, ext, s, opts));
  const stem = stemOf(index.header.analyzer);
  const matched: MatchedTerms = {
    words: matchedWords,
    phrases: matchedPhrases,
    ...(stem === undefined ? {} : { stem }),
  };
  const decorate = opts.highlight !== undefined || opts.snippet !== undefined;
  if (decorate && opts.deferDecorations === true) result.decorations = [];
  for (let i = opts.offset; i < top.length; i++) {
    const hit = hitOf(index, s, top[i]!);
    result.hits.push(hit);
    if (!decorate) continue;
    if (result.decorations === undefined) decorateHit(hit, matched, opts);
    else result.decorations.push(() => decorateHit(hit, matched, opts));
  }
  for (let i = 0; i < nReached; i++) {
    const d = reached[i]!;
    acc[d] = 0;
    count[d] = 0;
    typos[d] = 0;
  }
  for (const d of negatedDocs) excluded[d] = 0;
  return result;
}

function docsOfWord(index: SearchIndex, word: string): number[] {
  const [t] = variantsOf(index, null, word, 0);
  if (t === undefined) return [];
  return Array.from(
    index.postingDocs.subarray(index.postingOffsets[t.term]!, index.postingOffsets[t.term + 1]!),
  );
}

type Compare = (a: number, b: number) => number;

function comparator(index: SearchIndex, ext: Extension | null, s: Scratch, opts: QueryOptions): Compare {
  const { acc, typos } = s;
  const keys = (opts.sort ?? []).map(({ field, direction }) => {
    const { offsets, codes } = ext!.columns.get(field)!;
    const sign = direction === 'desc' ? -1 : 1;
    return (a: number, b: number) => {
      const na = offsets[a] === offsets[a + 1];
      const nb = offsets[b] === offsets[b + 1];
      if (na || nb) return na === nb ? 0 : na ? 1 : -1;
      return sign * (codes[offsets[a]!]! - codes[offsets[b]!]!);
    };
  });
  void index;
  return (a, b) => {
    for (const key of keys) {
      const c = key(a, b);
      if (c !== 0) return c;
    }
    return typos[a]! - typos[b]! || acc[b]! - acc[a]! || a - b;
  };
}

/** The best m of ords[0, n) in order (a bounded heap whose root is the worst kept). */
function selectTop(ords: Int32Array, n: number, m: number, cmp: Compare): number[] {
  const heap: number[] = [];
  if (m === 0) return heap;
  const down = (j: number) => {
    const size = heap.length;
    for (;;) {
      const l = 2 * j + 1;
      if (l >= size) return;
      const r = l + 1;
      const w = r < size && cmp(heap[r]!, heap[l]!) > 0 ? r : l;
      if (cmp(heap[w]!, heap[j]!) <= 0) return;
      [heap[w], heap[j]] = [heap[j]!, heap[w]!];
      j = w;
    }
  };
  for (let i = 0; i < n; i++) {
    const d = ords[i]!;
    if (heap.length < m) {
      heap.push(d);
      let j = heap.length - 1;
      while (j > 0) {
        const parent = (j - 1) >> 1;
        if (cmp(heap[j]!, heap[parent]!) <= 0) break;
        [heap[j], heap[parent]] = [heap[parent]!, heap[j]!];
        j = parent;
      }
    } else if (cmp(d, heap[0]!) < 0) {
      heap[0] = d;
      down(0);
    }
  }
  return heap.sort(cmp);
}

function hitOf(index: SearchIndex, s: Scratch, d: number): QueryHit {
  const fields = storedFields(index, d);
  return { id: docId(index, d), score: s.acc[d]!, ordinal: d, typos: s.typos[d]!, fields };
}

/** Adds a hit's highlights and snippet (from its stored fields): the costly part of a hit. */
function decorateHit(hit: QueryHit, matched: MatchedTerms, opts: QueryOptions): void {
  const { fields } = hit;
  const pre = opts.highlight?.pre ?? '<em>';
  const post = opts.highlight?.post ?? '</em>';
  if (opts.highlight !== undefined) {
    const highlights: Record<string, unknown> = {};
    for (const f of opts.highlight.fields) {
      const v = highlightValue(Object.hasOwn(fields, f) ? fields[f] : undefined, matched, pre, post);
      if (v !== null) setOwn(highlights, f, v);
    }
    hit.highlights = highlights;
  }
  if (opts.snippet !== undefined) {
    const v = Object.hasOwn(fields, opts.snippet.field) ? fields[opts.snippet.field] : undefined;
    if (Array.isArray(v)) {
      // The items joined by a space, each starting an item of its own for phrases.
      const items = v.filter((x): x is string => typeof x === 'string');
      const starts: number[] = [];
      let at = 0;
      for (const s of items) {
        starts.push(at);
        at += s.length + 1;
      }
      hit.snippet = snippetOf(items.join(' '), matched, opts.snippet.words, pre, post, starts);
    } else {
      hit.snippet = snippetOf(typeof v === 'string' ? v : '', matched, opts.snippet.words, pre, post);
    }
  }
}
