import FlexSearch from 'flexsearch';
import MiniSearch from 'minisearch';
import { analyze } from '../shared/search/analyzer.ts';
import { buildIndex } from '../shared/search/build.ts';
import { loadIndex } from '../shared/search/format.ts';
import { search } from '../shared/search/search.ts';
import { Database } from '../test/helpers/sqlite.ts';
import { buildCorpus, type Corpus, type CorpusDoc } from './corpus.ts';
import { printTable, type Row, summarize } from './lib/stats.ts';

export type Engine = 'quarry' | 'minisearch' | 'flexsearch' | 'fts5';

export interface SearchCoreBenchOptions {
  /** Corpus sizes. Default [10_000, 100_000]. */
  sizes?: (10_000 | 100_000)[];
  /** Engines to measure. Default all four. */
  engines?: Engine[];
  /** Sizes at which the peer engines run too (they take tens of seconds at 100k). Default [10_000]. */
  peersAt?: number[];
  /** Timed passes over the 200 queries. Default 5 (2 for the slower peers). */
  passes?: number;
  /** Progress lines; default none. */
  log?: (line: string) => void;
}

export interface SearchCoreRow extends Row {
  engine: string;
  docs: number;
  buildMs: number | null;
  loadMs: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  indexMB: number | null;
  /** Mean share of the exact BM25 top 10 found in the engine's top 10 (ties at the 10th score count). */
  overlap: number | null;
  note: string;
}

interface Measured {
  buildMs: number;
  loadMs?: number;
  bytes: number;
  /** Ordinals of the top 10 for a query. */
  top10(query: string): number[];
  note: string;
  close?(): void;
}

const FIELDS = ['title', 'body'];

/** Exact BM25 (Lucene idf, k1 1.2, b 0.75, double precision) of every document holding a query term. */
function exactBm25(docs: readonly CorpusDoc[], queries: readonly string[]): Map<string, Map<number, number>> {
  const wanted = new Set(queries.flatMap((q) => analyze(q)));
  const tf = new Map<string, Map<number, number>>([...wanted].map((t) => [t, new Map()]));
  const lengths = new Float64Array(docs.length);
  docs.forEach((d, i) => {
    for (const f of FIELDS) {
      for (const t of analyze(d[f as 'title' | 'body'])) {
        lengths[i]!++;
        const m = tf.get(t);
        if (m) m.set(i, (m.get(i) ?? 0) + 1);
      }
    }
  });
  const avg = lengths.reduce((a, b) => a + b, 0) / docs.length;
  const out = new Map<string, Map<number, number>>();
  for (const q of new Set(queries)) {
    const scores = new Map<number, number>();
    for (const t of new Set(analyze(q))) {
      const postings = tf.get(t)!;
      const idf = Math.log(1 + (docs.length - postings.size + 0.5) / (postings.size + 0.5));
      for (const [d, f] of postings) {
        const s = (idf * f * 2.2) / (f + 1.2 * (0.25 + (0.75 * lengths[d]!) / avg));
        scores.set(d, (scores.get(d) ?? 0) + s);
      }
    }
    out.set(q, scores);
  }
  return out;
}

function overlapOf(
  exact: Map<string, Map<number, number>>,
  queries: readonly string[],
  top10: (q: string) => number[],
) {
  let sum = 0;
  let counted = 0;
  for (const q of queries) {
    const scores = exact.get(q)!;
    if (scores.size === 0) continue;
    const best = [...scores.values()].sort((a, b) => b - a);
    const tenth = best[Math.min(10, best.length) - 1]!;
    const found = top10(q).filter((d) => (scores.get(d) ?? Number.NEGATIVE_INFINITY) >= tenth * (1 - 1e-9));
    sum += found.length / Math.min(10, best.length);
    counted++;
  }
  return counted === 0 ? 0 : sum / counted;
}

function time<T>(fn: () => T): [T, number] {
  const t0 = performance.now();
  const value = fn();
  return [value, performance.now() - t0];
}

function quarry(docs: CorpusDoc[]): Measured {
  const builds: number[] = [];
  let bytes = new Uint8Array(0);
  for (let i = 0; i < 3; i++) {
    const [b, ms] = time(() => buildIndex(docs, { idField: 'id', fields: FIELDS, store: ['title'] }));
    bytes = b;
    builds.push(ms);
  }
  const loads: number[] = [];
  for (let i = 0; i < 20; i++) loads.push(time(() => loadIndex(bytes))[1]);
  const index = loadIndex(bytes);
  return {
    buildMs: summarize(builds).p50,
    loadMs: summarize(loads).p50,
    bytes: bytes.length,
    top10: (q) => search(index, q, { k: 10 }).hits.map((h) => h.ordinal),
    note: 'median of 3 builds; hits include ids and stored titles',
  };
}

function minisearch(docs: CorpusDoc[]): Measured {
  const [ms, buildMs] = time(() => {
    const m = new MiniSearch<CorpusDoc & { ord: number }>({
      fields: FIELDS,
      storeFields: ['ord'],
      tokenize: analyze,
      processTerm: (t) => t,
      searchOptions: { combineWith: 'OR' },
    });
    m.addAll(docs.map((d, ord) => ({ ...d, ord })));
    return m;
  });
  return {
    buildMs,
    bytes: Buffer.byteLength(JSON.stringify(ms)),
    top10: (q) =>
      ms
        .search(q)
        .slice(0, 10)
        .map((r) => r.ord as number),
    note: 'our analyzer; BM25+ over fields; returns all matches; size = JSON',
  };
}

function flexsearch(docs: CorpusDoc[]): Measured {
  // Flat strings made before timing (a concatenation is a cons string, see drawQueries).
  const texts = JSON.parse(JSON.stringify(docs.map((d) => `${d.title}\n${d.body}`))) as string[];
  const [index, buildMs] = time(() => {
    const ix = new FlexSearch.Index({ tokenize: 'strict', encode: analyze });
    texts.forEach((text, ord) => {
      ix.add(ord, text);
    });
    return ix;
  });
  let bytes = 0;
  index.export((key, data) => {
    bytes += Buffer.byteLength(key) + Buffer.byteLength(data ?? '');
  });
  return {
    buildMs,
    bytes,
    top10: (q) => index.search(q, { limit: 10, suggest: true }) as number[],
    note: 'our analyzer; one field; own relevance, not BM25; size = export()',
  };
}

function fts5(docs: CorpusDoc[]): Measured {
  const db = new Database(':memory:');
  const [, buildMs] = time(() => {
    db.exec(
      `CREATE VIRTUAL TABLE docs USING fts5(title, body, content='', tokenize = "unicode61 remove_diacritics 2 categories 'L* N*'")`,
    );
    const insert = db.prepare('INSERT INTO docs(rowid, title, body) VALUES (?, ?, ?)');
    db.transaction(() => {
      for (const [i, d] of docs.entries()) insert.run(i, d.title, d.body);
    })();
  });
  const pages = db.pragma('page_count', { simple: true }) as number;
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const query = db.prepare('SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY bm25(docs) LIMIT 10').pluck();
  return {
    buildMs,
    bytes: pages * pageSize,
    top10: (q) => {
      const terms = [...new Set(analyze(q))];
      return terms.length === 0 ? [] : (query.all(terms.map((t) => `"${t}"`).join(' OR ')) as number[]);
    },
    note: 'contentless table; FTS5 idf can go negative; in-memory database',
    close: () => db.close(),
  };
}

const ENGINES: Record<Engine, (docs: CorpusDoc[]) => Measured> = { quarry, minisearch, flexsearch, fts5 };

function latencies(queries: readonly string[], top10: (q: string) => number[], passes: number) {
  // Three untimed passes: the first calls run before V8 has optimized (and re-optimized) the search.
  for (let p = 0; p < 3; p++) for (const q of queries) top10(q);
  const samples: number[] = [];
  for (let p = 0; p < passes; p++) {
    for (const q of queries) {
      const t0 = performance.now();
      top10(q);
      samples.push(performance.now() - t0);
    }
  }
  return summarize(samples);
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Measures every engine on each corpus size; returns one row per engine and size, plus Tantivy's. */
export async function runSearchCoreBench(opts: SearchCoreBenchOptions = {}): Promise<SearchCoreRow[]> {
  const sizes = opts.sizes ?? [10_000, 100_000];
  const engines = opts.engines ?? ['quarry', 'minisearch', 'flexsearch', 'fts5'];
  const peersAt = opts.peersAt ?? [10_000];
  const log = opts.log ?? (() => undefined);
  const rows: SearchCoreRow[] = [];
  for (const size of sizes) {
    const corpus: Corpus = await buildCorpus(size);
    log(`${size} docs, ${round(corpus.textBytes / 1e6, 1)} MB of text, ${corpus.queries.length} queries`);
    const measured: { row: SearchCoreRow; tops: number[][] }[] = [];
    for (const engine of engines) {
      if (engine !== 'quarry' && !peersAt.includes(size)) continue;
      log(`  ${engine}...`);
      const m = ENGINES[engine](corpus.docs);
      const passes = opts.passes ?? (engine === 'quarry' || engine === 'fts5' ? 5 : 2);
      const lat = latencies(corpus.queries, m.top10, passes);
      const tops = corpus.queries.map((q) => m.top10(q));
      m.close?.();
      measured.push({
        tops,
        row: {
          engine,
          docs: corpus.docs.length,
          buildMs: Math.round(m.buildMs),
          loadMs: m.loadMs === undefined ? null : round(m.loadMs, 2),
          p50Ms: round(lat.p50, 3),
          p99Ms: round(lat.p99, 3),
          indexMB: round(m.bytes / 1e6, 1),
          overlap: null,
          note: m.note,
        },
      });
    }
    // Computed after the engines ran: its maps would otherwise slow their builds (a larger heap).
    const exact = exactBm25(corpus.docs, corpus.queries);
    for (const { row, tops } of measured) {
      row.overlap = round(
        overlapOf(exact, corpus.queries, (q) => tops[corpus.queries.indexOf(q)]!),
        3,
      );
      rows.push(row);
    }
  }
  rows.push({
    engine: 'tantivy (published)',
    docs: 10_000,
    buildMs: 196,
    loadMs: null,
    p50Ms: 0.8,
    p99Ms: 3.2,
    indexMB: null,
    overlap: null,
    note: 'reference figures, not measured here',
  });
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i < 0 ? undefined : process.argv[i + 1]?.split(',').map(Number);
  };
  const rows = await runSearchCoreBench({
    sizes: arg('--sizes') as (10_000 | 100_000)[] | undefined,
    peersAt: arg('--peers-at'),
    log: (line) => console.log(line),
  });
  printTable('search core (in process)', rows);
}
