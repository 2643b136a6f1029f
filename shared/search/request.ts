// The body of POST /v1/indexes/:collection/search (and the SDK's search with a request object):
// parsed by one zod schema, then checked against the index it will run on, so every bad input is
// a 400 naming its field before any work is done.
import { z } from 'zod';
import { validationError } from '../aggregation.ts';
import { QuarryError } from '../errors.ts';
import { Column, FilterTree } from '../filter-tree.ts';
import { parseWith } from '../zod-messages.ts';
import { extensionOf } from './extension-view.ts';
import { checkFilter } from './filter.ts';
import type { SearchIndex } from './format.ts';
import { type QueryOptions, type QueryResult, runQuery } from './query.ts';
import { parseQuery } from './query-parse.ts';
import { DEFAULT_MAX_EXPANSIONS, MAX_K } from './search.ts';

/** The most words and phrases one query may hold. */
export const MAX_QUERY_CLAUSES = 64;
/** The most tokens all of a query's phrases (negated ones too) may hold together: matching a
 * phrase reads its tokens' positions in every document holding them all, so this bounds a
 * query's phrase work to that many passes over the positions of its commonest token. */
export const MAX_PHRASE_TOKENS = 64;

export const SearchRequestSchema = z.strictObject({
  q: z.string().max(4096).default(''),
  k: z.number().int().min(0).max(MAX_K).default(10),
  offset: z.number().int().min(0).max(MAX_K).default(0),
  mode: z.enum(['any', 'all']).default('any'),
  prefix: z.boolean().default(false),
  filter: FilterTree.optional(),
  facets: z.array(Column).max(64).optional(),
  sort: z
    .array(z.strictObject({ field: Column, direction: z.enum(['asc', 'desc']).default('asc') }))
    .max(8)
    .optional(),
  highlight: z
    .strictObject({
      fields: z.array(Column).min(1).max(64),
      pre: z.string().max(64).default('<em>'),
      post: z.string().max(64).default('</em>'),
    })
    .optional(),
  snippet: z.strictObject({ field: Column, words: z.number().int().min(1).max(500).default(20) }).optional(),
  typos: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal('auto')]).optional(),
});

export type SearchRequest = z.input<typeof SearchRequestSchema>;

function invalid(field: string, message: string): QuarryError {
  return new QuarryError('QUARRY_ERR_VALIDATION', `${field}: ${message}`, { field });
}

/** Parses and checks a request against `index`; runs it. */
export function searchRequest(
  index: SearchIndex,
  body: unknown,
  run: { deferDecorations?: boolean } = {},
): QueryResult {
  const parsed = parseWith(SearchRequestSchema, body ?? {});
  if (!parsed.success) throw validationError(parsed.error);
  const r = parsed.data;
  if (r.k + r.offset > MAX_K) throw invalid('offset', `offset + k must be at most ${MAX_K}`);
  const query = parseQuery(r.q, index.header.analyzer);
  if (query.words.length + query.phrases.length + query.negated.length > MAX_QUERY_CLAUSES)
    throw invalid('q', `at most ${MAX_QUERY_CLAUSES} words and phrases`);
  const phraseTokens = [...query.phrases, ...query.negated.filter((n) => n.length > 1)].reduce(
    (sum, tokens) => sum + tokens.length,
    0,
  );
  if (phraseTokens > MAX_PHRASE_TOKENS)
    throw invalid('q', `its phrases hold ${phraseTokens} tokens, more than the ${MAX_PHRASE_TOKENS} allowed`);
  const ext = extensionOf(index);
  if (ext === null && (query.phrases.length > 0 || query.negated.some((n) => n.length > 1)))
    throw invalid('q', 'this index was built before phrases were supported; rebuild it to search phrases');
  if (r.filter !== undefined) checkFilter(r.filter, ext, 'filter');
  r.facets?.forEach((f, i) => {
    if (r.facets!.indexOf(f) !== i) throw invalid(`facets.${i}`, `${f} is listed twice`);
    if (ext?.columns.get(f)?.filterable !== true)
      throw invalid(`facets.${i}`, `${f} is not a filterable field of this index`);
  });
  r.sort?.forEach((s, i) => {
    if (ext?.columns.get(s.field)?.sortable !== true)
      throw invalid(`sort.${i}.field`, `${s.field} is not a sortable field of this index`);
  });
  const stored = index.header.stored;
  r.highlight?.fields.forEach((f, i) => {
    if (r.highlight!.fields.indexOf(f) !== i) throw invalid(`highlight.fields.${i}`, `${f} is listed twice`);
    if (!stored.includes(f))
      throw invalid(`highlight.fields.${i}`, `${f} is not a stored field of this index`);
  });
  if (r.snippet !== undefined && !stored.includes(r.snippet.field))
    throw invalid('snippet.field', `${r.snippet.field} is not a stored field of this index`);
  const typoKeys = ext?.typoKeys != null;
  if (r.typos !== undefined && r.typos !== 0 && !typoKeys)
    throw invalid('typos', 'this index was built without typo tolerance ("typos": true when building)');
  const options: QueryOptions = {
    k: r.k,
    offset: r.offset,
    mode: r.mode,
    prefix: r.prefix,
    maxExpansions: DEFAULT_MAX_EXPANSIONS,
    typos: r.typos ?? (typoKeys ? 'auto' : 0),
    ...(r.filter === undefined ? {} : { filter: r.filter }),
    ...(r.facets === undefined ? {} : { facets: r.facets }),
    ...(r.sort === undefined ? {} : { sort: r.sort }),
    ...(r.highlight === undefined ? {} : { highlight: r.highlight }),
    ...(r.snippet === undefined ? {} : { snippet: r.snippet }),
    ...(run.deferDecorations === true ? { deferDecorations: true } : {}),
  };
  return runQuery(index, query, options);
}

/** How long highlighting and snippets may hold the event loop at a time. */
export const DECORATION_SLICE_MS = 4;

/**
 * searchRequest for a server: the hits' highlights and snippets, the costly part of a large page
 * (1,000 hits of 7 KB text with a 500-word snippet: ~1 s), are made a few milliseconds at a time,
 * letting other requests run in between instead of waiting for the whole page.
 */
export async function searchRequestYielding(index: SearchIndex, body: unknown): Promise<QueryResult> {
  const result = searchRequest(index, body, { deferDecorations: true });
  const steps = result.decorations;
  if (steps === undefined) return result;
  delete result.decorations;
  let since = performance.now();
  for (const step of steps) {
    step();
    if (performance.now() - since >= DECORATION_SLICE_MS) {
      await new Promise((resolve) => setImmediate(resolve));
      since = performance.now();
    }
  }
  return result;
}
