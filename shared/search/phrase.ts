// Phrases: documents holding the tokens at consecutive positions of one field (positions in the
// extension). A phrase is scored as SQLite FTS5's bm25() scores it: one unit whose document
// frequency is the number of documents holding it and whose tf is its occurrences, each weighted
// by the boost of the field it is in.

import { FIELD_SHIFT, POSITION_MASK } from './extension.ts';
import type { Extension } from './extension-view.ts';
import { findTerm, type SearchIndex } from './format.ts';
import { unitScore } from './typos.ts';

export interface PhraseMatches {
  /** Documents holding the phrase, ascending. */
  readonly docs: number[];
  /** Their BM25 score for the phrase. */
  readonly scores: number[];
  /** Per document, the positions where the phrase starts. */
  readonly starts: number[][];
}

function seek(docs: Uint32Array, from: number, end: number, target: number): number {
  let lo = from;
  let hi = end;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (docs[mid]! < target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function matchPhrase(index: SearchIndex, ext: Extension, tokens: readonly string[]): PhraseMatches {
  const none: PhraseMatches = { docs: [], scores: [], starts: [] };
  const terms = tokens.map((t) => findTerm(index, t));
  if (terms.some((t) => t < 0)) return none;
  const { postingOffsets: off, postingDocs: docs } = index;
  const { positionOffsets: pOff, positions } = ext;
  const weights = index.header.fields.map((f) => index.header.boosts[f] ?? 1);
  // Walk the rarest term's postings; find the others' by binary search.
  let lead = 0;
  for (let i = 1; i < terms.length; i++) {
    const t = terms[i]!;
    if (off[t + 1]! - off[t]! < off[terms[lead]! + 1]! - off[terms[lead]!]!) lead = i;
  }
  const cursors = terms.map((t) => off[t]!);
  // Per token, the next of its positions in the current document not yet passed.
  const reading = new Array<number>(terms.length).fill(0);
  const out: { docs: number[]; tfs: number[]; starts: number[][] } = { docs: [], tfs: [], starts: [] };
  const lt = terms[lead]!;
  for (let p = off[lt]!; p < off[lt + 1]!; p++) {
    const d = docs[p]!;
    const postings: number[] = [];
    let all = true;
    for (let i = 0; i < terms.length && all; i++) {
      const t = terms[i]!;
      const at = seek(docs, cursors[i]!, off[t + 1]!, d);
      cursors[i] = at;
      if (at < off[t + 1]! && docs[at] === d) postings.push(at);
      else all = false;
    }
    if (!all) continue;
    // Anchor on the token with the fewest positions in this document; every other token's
    // positions are read forward only (the starts come in ascending order), so a document costs
    // at most the sum of its tokens' position counts, whatever the phrase repeats.
    let anchor = 0;
    for (let i = 1; i < terms.length; i++) {
      const pi = postings[i]!;
      const pa = postings[anchor]!;
      if (pOff[pi + 1]! - pOff[pi]! < pOff[pa + 1]! - pOff[pa]!) anchor = i;
    }
    for (let i = 0; i < terms.length; i++) reading[i] = pOff[postings[i]!]!;
    const pa = postings[anchor]!;
    const starts: number[] = [];
    let tf = 0;
    for (let q = pOff[pa]!; q < pOff[pa + 1]!; q++) {
      const at = positions[q]!;
      // The phrase would start before its field's first token.
      if ((at & POSITION_MASK) < anchor) continue;
      const start = at - anchor;
      let ok = true;
      for (let i = 0; i < terms.length && ok; i++) {
        if (i === anchor) continue;
        const pi = postings[i]!;
        const end = pOff[pi + 1]!;
        const target = start + i;
        let r = reading[i]!;
        while (r < end && positions[r]! < target) r++;
        reading[i] = r;
        ok = r < end && positions[r] === target;
      }
      if (ok) {
        starts.push(start);
        tf += weights[start >>> FIELD_SHIFT] ?? 1;
      }
    }
    if (starts.length > 0) {
      out.docs.push(d);
      out.tfs.push(tf);
      out.starts.push(starts);
    }
  }
  const df = out.docs.length;
  const scores = out.docs.map((d, i) => unitScore(index, df, out.tfs[i]!, ext.docLengths[d]!));
  return { docs: out.docs, scores, starts: out.starts };
}
