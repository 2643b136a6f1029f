// Highlights and snippets, recomputed from a stored field's text with the index's analyzer: the
// text is tokenized with each token's span in the original string, and the tokens the query
// matched (its words, their corrections and prefix expansions, and the tokens of phrase
// occurrences) are wrapped in pre/post. Nothing else of the text changes (it is not HTML-escaped).
import { analyze } from './analyzer.ts';

export interface SpannedToken {
  readonly term: string;
  /** UTF-16 offsets of the token in the original text, [start, end). */
  readonly start: number;
  readonly end: number;
}

const MARKS = /\p{M}+/gu;
const NON_WORD = /[^\p{L}\p{N}]+/u;
const WORD = /^[\p{L}\p{N}]+$/u;
/** 1 for the ASCII letters and digits (char codes past 127 read as undefined). */
const ASCII_WORD = new Uint8Array(128);
for (let c = 0; c < 128; c++) if (/[A-Za-z0-9]/.test(String.fromCharCode(c))) ASCII_WORD[c] = 1;

/**
 * The analyzer's tokens of `text` with their spans: each code point is decomposed on its own
 * (NFKD, marks removed) and joins the current token, ends it, or (a compatibility character that
 * decomposes into several parts, like ½) does both. Null in the rare case where the result
 * differs from `analyze(text)`, which stays the definition.
 */
export function spannedTokens(text: string): SpannedToken[] | null {
  const out: SpannedToken[] = [];
  let piece = '';
  let start = -1;
  let end = -1;
  const flush = () => {
    if (piece !== '') out.push({ term: piece.toLowerCase(), start, end });
    piece = '';
  };
  for (let i = 0; i < text.length; ) {
    const cp = text.codePointAt(i)!;
    if (cp < 128) {
      // ASCII, most text: a run of letters and digits joins the token at once; anything else
      // ends it (NFKD leaves ASCII as it is).
      if (ASCII_WORD[cp] === 1) {
        let j = i + 1;
        while (j < text.length && ASCII_WORD[text.charCodeAt(j)] === 1) j++;
        if (piece === '') start = i;
        piece += text.slice(i, j);
        end = j;
        i = j;
      } else {
        flush();
        i++;
      }
      continue;
    }
    const width = cp > 0xffff ? 2 : 1;
    const decomposed = String.fromCodePoint(cp).normalize('NFKD').replace(MARKS, '');
    if (decomposed === '') {
      // A combining mark: part of the token it follows.
      if (piece !== '') end = i + width;
    } else if (WORD.test(decomposed)) {
      if (piece === '') start = i;
      piece += decomposed;
      end = i + width;
    } else {
      const parts = decomposed.split(NON_WORD);
      parts.forEach((part, j) => {
        if (j > 0) flush();
        if (part === '') return;
        if (piece === '') start = i;
        piece += part;
        end = i + width;
      });
    }
    i += width;
  }
  flush();
  const expected = analyze(text);
  if (expected.length !== out.length || expected.some((t, j) => t !== out[j]!.term)) return null;
  return out;
}

export interface MatchedTerms {
  /** Terms matched on their own (words, corrections, prefix expansions). */
  readonly words: ReadonlySet<string>;
  readonly phrases: readonly (readonly string[])[];
  /** The index's stemmer (the `english` analyzer): a text's tokens are compared by their stems. */
  readonly stem?: (token: string) => string;
}

/**
 * Which of `tokens` the query matched. `item` (per token, when the text joins array items): a
 * phrase matches only tokens of one item, as the index never lets a phrase span two.
 */
export function matchedTokens(
  tokens: readonly SpannedToken[],
  matched: MatchedTerms,
  item?: Int32Array,
): Uint8Array {
  const flags = new Uint8Array(tokens.length);
  const { stem } = matched;
  const terms = tokens.map((t) => (stem === undefined ? t.term : stem(t.term)));
  terms.forEach((term, i) => {
    if (matched.words.has(term)) flags[i] = 1;
  });
  for (const phrase of matched.phrases) {
    for (let i = 0; i + phrase.length <= terms.length; i++) {
      let j = 0;
      while (
        j < phrase.length &&
        terms[i + j] === phrase[j] &&
        (item === undefined || item[i + j] === item[i])
      )
        j++;
      if (j === phrase.length) flags.fill(1, i, i + phrase.length);
    }
  }
  return flags;
}

/** text[from, to) with each matched token in it wrapped in pre/post. */
function wrap(
  text: string,
  tokens: readonly SpannedToken[],
  flags: Uint8Array,
  from: number,
  to: number,
  pre: string,
  post: string,
): string {
  let out = '';
  let at = from;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (flags[i] !== 1 || t.start < from || t.end > to) continue;
    out += `${text.slice(at, t.start)}${pre}${text.slice(t.start, t.end)}${post}`;
    at = t.end;
  }
  return out + text.slice(at, to);
}

export function highlightText(text: string, matched: MatchedTerms, pre: string, post: string): string {
  const tokens = spannedTokens(text);
  if (tokens === null) return text;
  return wrap(text, tokens, matchedTokens(tokens, matched), 0, text.length, pre, post);
}

/** A stored value highlighted: strings, and arrays of strings item by item; else null. */
export function highlightValue(value: unknown, matched: MatchedTerms, pre: string, post: string): unknown {
  if (typeof value === 'string') return highlightText(value, matched, pre, post);
  if (Array.isArray(value) && value.every((v) => typeof v === 'string'))
    return value.map((v) => highlightText(v, matched, pre, post));
  return null;
}

/**
 * The `words` tokens of `text` around its densest match (the window holding the most matched
 * tokens, the earliest of equals), with the matches wrapped and "…" where text was cut. `starts`:
 * where each item begins when `text` joins array items (phrases stay within an item).
 */
export function snippetOf(
  text: string,
  matched: MatchedTerms,
  words: number,
  pre: string,
  post: string,
  starts?: readonly number[],
): string {
  const tokens = spannedTokens(text);
  if (tokens === null || tokens.length === 0) return text.slice(0, 200);
  let item: Int32Array | undefined;
  if (starts !== undefined) {
    item = new Int32Array(tokens.length);
    let k = 0;
    tokens.forEach((t, i) => {
      while (k + 1 < starts.length && starts[k + 1]! <= t.start) k++;
      item![i] = k;
    });
  }
  const flags = matchedTokens(tokens, matched, item);
  const w = Math.min(words, tokens.length);
  let count = 0;
  for (let i = 0; i < w; i++) count += flags[i]!;
  let best = count;
  let bestStart = 0;
  for (let i = w; i < tokens.length; i++) {
    count += flags[i]! - flags[i - w]!;
    if (count > best) {
      best = count;
      bestStart = i - w + 1;
    }
  }
  // Center the window's matches (they span at most w tokens, so all of them stay in).
  let first = -1;
  let lastMatch = -1;
  for (let i = bestStart; i < bestStart + w; i++) {
    if (flags[i] !== 1) continue;
    if (first < 0) first = i;
    lastMatch = i;
  }
  if (first >= 0) {
    const centered = Math.floor((first + lastMatch) / 2) - Math.floor((w - 1) / 2);
    bestStart = Math.max(0, Math.min(tokens.length - w, centered));
  }
  const last = bestStart + w - 1;
  const from = bestStart === 0 ? 0 : tokens[bestStart]!.start;
  const to = last === tokens.length - 1 ? text.length : tokens[last]!.end;
  return `${from > 0 ? '…' : ''}${wrap(text, tokens, flags, from, to, pre, post)}${to < text.length ? '…' : ''}`;
}
