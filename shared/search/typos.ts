// Typo tolerance: the index terms a query word may stand for. A term qualifies when it starts with
// the same code point as the word (never a typo on the first letter) and its Levenshtein distance
// (insertions, deletions, substitutions of code points) is at most the word's allowance:
//   "auto" (Meilisearch's rule): 0 below 5 characters, 1 from 5, 2 from 9; 0, 1 or 2: that many.
// Candidates come from the typoKeys section (terms sorted by first code point and length), so only
// terms of a length within the allowance are compared.
import { idfOf } from './build.ts';
import { typoKeyOf } from './extension.ts';
import type { Extension } from './extension-view.ts';
import { findTerm, type SearchIndex, termAt } from './format.ts';

export type TypoSetting = 0 | 1 | 2 | 'auto';

export interface Variant {
  /** Term number. */
  readonly term: number;
  /** Edit distance from the query word (0 = the word itself). */
  readonly typos: number;
}

export function allowedTypos(word: string, setting: TypoSetting): number {
  if (setting !== 'auto') return setting;
  const length = [...word].length;
  return length >= 9 ? 2 : length >= 5 ? 1 : 0;
}

/** Levenshtein distance of a and b (code point arrays), or max + 1 once it must exceed max. */
export function boundedDistance(a: readonly number[], b: readonly number[], max: number): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      row.push(v);
      if (v < best) best = v;
    }
    if (best > max) return max + 1;
    prev = row;
  }
  return Math.min(prev[b.length]!, max + 1);
}

const codePoints = (s: string): number[] => Array.from(s, (c) => c.codePointAt(0)!);

function lowerBound(keys: Uint32Array, key: number): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The word's variants: itself when indexed, then the corrected terms by distance (then term). */
export function variantsOf(index: SearchIndex, ext: Extension | null, word: string, max: number): Variant[] {
  const out: Variant[] = [];
  const exact = findTerm(index, word);
  if (exact >= 0) out.push({ term: exact, typos: 0 });
  if (max === 0 || ext?.typoKeys == null) return out;
  const cps = codePoints(word);
  const rest = cps.slice(1);
  const keys = ext.typoKeys;
  const terms = ext.typoTerms!;
  const from = lowerBound(keys, typoKeyOf(cps[0]!, Math.max(1, cps.length - max)));
  const to = lowerBound(keys, typoKeyOf(cps[0]!, cps.length + max) + 1);
  const found: Variant[] = [];
  for (let i = from; i < to; i++) {
    const t = terms[i]!;
    if (t === exact) continue;
    const d = boundedDistance(rest, codePoints(termAt(index, t)).slice(1), max);
    if (d <= max) found.push({ term: t, typos: d });
  }
  found.sort((a, b) => a.typos - b.typos || a.term - b.term);
  return out.concat(found);
}

/** BM25 of a phrase (or any unit with its own document frequency), as build.ts scores a term. */
export function unitScore(index: SearchIndex, df: number, tf: number, docLength: number): number {
  const { scorer, docCount, avgDocLength } = index.header;
  const idf = idfOf(scorer.idf, docCount, df);
  const norm =
    scorer.k1 * (avgDocLength > 0 ? 1 - scorer.b + (scorer.b * docLength) / avgDocLength : 1 - scorer.b);
  return (idf * tf * (scorer.k1 + 1)) / (tf + norm);
}
