// The `english` analyzer: `unicode-words-v1` (analyzer.ts), then each term reduced to its Porter
// stem (the `stemmer` package, Martin Porter's 1980 algorithm), so "connected", "connecting" and
// "connections" are one term. The index header names the analyzer and search applies the same
// one to queries. Terms the stemmer does not know (digits, non-English words) mostly pass
// through unchanged; non-ASCII terms are stemmed too, which leaves them as they are.

import { stemmer } from 'stemmer';
import {
  ANALYZER_NAME,
  type AnalyzerName,
  analyze,
  codesToString,
  hashTerm,
  type TokenSink,
} from './analyzer.ts';

export const ENGLISH = 'english';

/** Every analyzer an index may name. */
export const ANALYZER_NAMES: readonly AnalyzerName[] = [ANALYZER_NAME, ENGLISH];

export function isAnalyzerName(name: unknown): name is AnalyzerName {
  return name === ANALYZER_NAME || name === ENGLISH;
}

/** Passes each token on as its stem; a token's stem is computed once per build. */
export class StemmingSink implements TokenSink {
  readonly #target: TokenSink;
  readonly #stems = new Map<string, [string, number]>();

  constructor(target: TokenSink) {
    this.#target = target;
  }

  ascii(codes: Uint16Array, length: number): void {
    this.other(codesToString(codes, length));
  }

  other(token: string): void {
    let stem = this.#stems.get(token);
    if (stem === undefined) {
      const s = stemmer(token);
      stem = [s, hashTerm(s)];
      this.#stems.set(token, stem);
    }
    this.#target.other(stem[0], stem[1]);
  }
}

/** The terms of `text` under analyzer `name`, in order, duplicates kept. */
export function analyzeWith(name: AnalyzerName, text: string): string[] {
  const terms = analyze(text);
  return name === ENGLISH ? terms.map((t) => stemmer(t)) : terms;
}

/** The per-term step of analyzer `name` after unicode-words-v1, when it has one. */
export function stemOf(name: AnalyzerName): ((term: string) => string) | undefined {
  return name === ENGLISH ? stemmer : undefined;
}
