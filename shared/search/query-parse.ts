// The query language of `q`: words, "quoted phrases" (consecutive tokens) and -negation.
//
//   q      := item*            items are separated by white space
//   item   := '-'? ( '"' text '"' | word )
//   word   := characters up to white space or a quote
// Each part goes through the analyzer: a bare word that analyzes to several tokens (`e-mail`) is
// several words, as with GET search; a negated one (`-e-mail`) excludes the phrase of its tokens.
// A quote without its closing quote is a 400 naming q.
import { QuarryError } from '../errors.ts';
import { ANALYZER_NAME, type AnalyzerName } from './analyzer.ts';
import { analyzeWith } from './stemmer.ts';

export interface ParsedQuery {
  /** Distinct positive words, in order of first appearance; but when the query ends with a bare
   * word, that word is last (the one `prefix` expands), wherever it first appeared. */
  readonly words: string[];
  /** Distinct positive phrases of two or more tokens (a one-token phrase is a word). */
  readonly phrases: string[][];
  /** Excluded words and phrases (documents holding any of them do not match). */
  readonly negated: string[][];
  /** True when the query's last item is a bare positive word (the one `prefix` expands). */
  readonly endsWithWord: boolean;
}

const SPACE = /\s/u;

function invalid(message: string): QuarryError {
  return new QuarryError('QUARRY_ERR_VALIDATION', `q: ${message}`, { field: 'q' });
}

/** `analyzer`: the index's (its header names it), so query terms are what the index holds. */
export function parseQuery(q: string, analyzer: AnalyzerName = ANALYZER_NAME): ParsedQuery {
  const words: string[] = [];
  const phrases: string[][] = [];
  const negated: string[][] = [];
  const seenPhrases = new Set<string>();
  let endsWithWord = false;
  let lastWord: string | undefined;
  const addPhrase = (tokens: string[]) => {
    if (tokens.length === 1) {
      if (!words.includes(tokens[0]!)) words.push(tokens[0]!);
      return;
    }
    const key = tokens.join(' ');
    if (!seenPhrases.has(key)) {
      seenPhrases.add(key);
      phrases.push(tokens);
    }
  };
  let i = 0;
  const n = q.length;
  while (i < n) {
    if (SPACE.test(q[i]!)) {
      i++;
      continue;
    }
    let negate = false;
    if (q[i] === '-' && i + 1 < n && !SPACE.test(q[i + 1]!)) {
      negate = true;
      i++;
    }
    let tokens: string[];
    let quoted = false;
    if (q[i] === '"') {
      const close = q.indexOf('"', i + 1);
      if (close < 0) throw invalid(`the quote at character ${i + 1} is not closed`);
      tokens = analyzeWith(analyzer, q.slice(i + 1, close));
      i = close + 1;
      quoted = true;
    } else {
      let j = i;
      while (j < n && q[j] !== '"' && !SPACE.test(q[j]!)) j++;
      tokens = analyzeWith(analyzer, q.slice(i, j));
      i = j;
    }
    if (tokens.length === 0) continue;
    endsWithWord = !negate && !quoted;
    lastWord = tokens[tokens.length - 1];
    if (negate) negated.push(tokens);
    else if (quoted) addPhrase(tokens);
    else for (const t of tokens) if (!words.includes(t)) words.push(t);
  }
  if (endsWithWord && lastWord !== undefined) {
    const at = words.indexOf(lastWord);
    if (at >= 0 && at !== words.length - 1) words.push(...words.splice(at, 1));
  }
  return { words, phrases, negated, endsWithWord };
}
