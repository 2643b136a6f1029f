// The search capability's public surface: analyzer, index builder, binary format and query engine.

export { ANALYZER_NAME, type AnalyzerName, analyze, analyzeReference, hashTerm } from './analyzer.ts';
export { BM25_B, BM25_K1, type BuildOptions, buildIndex } from './build.ts';
export {
  docId,
  FORMAT_VERSION,
  findTerm,
  type IdfKind,
  type IndexHeader,
  loadIndex,
  prefixRange,
  readHeader,
  type ScorerSettings,
  type SearchIndex,
  storedFields,
  termAt,
} from './format.ts';
export {
  DEFAULT_K,
  DEFAULT_MAX_EXPANSIONS,
  MAX_K,
  type SearchHit,
  type SearchOptions,
  type SearchResult,
  search,
} from './search.ts';
export { ANALYZER_NAMES, analyzeWith, ENGLISH } from './stemmer.ts';
