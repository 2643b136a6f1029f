// Full queries (shared/search/request.ts) in process beside SQLite FTS5 doing the same, on the
// bench corpus: filtered (MATCH + WHERE on a string and a number), faceted (the top 10 plus
// counts over every match: FTS5 needs a second GROUP BY query), phrase ("two or three words"),
// typo (a word with one letter replaced: Quarry's typos "auto"; FTS5 has no typo tolerance, so
// it runs an OR of the terms Quarry corrected to — its cost for the same matching, not its own
// feature). Also the build cost of the extension (positions, columns, typo keys) over buildIndex.
import { analyze } from '../shared/search/analyzer.ts';
import { buildIndex } from '../shared/search/build.ts';
import { buildExtendedIndex } from '../shared/search/extension.ts';
import { extensionOf } from '../shared/search/extension-view.ts';
import { loadIndex, termAt } from '../shared/search/format.ts';
import { searchRequest } from '../shared/search/request.ts';
import { variantsOf } from '../shared/search/typos.ts';
import { Database } from '../test/helpers/sqlite.ts';
import { buildCorpus, drawQueries, seededRandom } from './corpus.ts';
import { type Row, summarize } from './lib/stats.ts';

const TOKENIZER = `unicode61 remove_diacritics 2 categories 'L* N*'`;

function p(samples: (() => unknown)[], passes: number) {
  for (const f of samples) f();
  const out: number[] = [];
  for (let i = 0; i < passes; i++)
    for (const f of samples) {
      const t0 = performance.now();
      f();
      out.push(performance.now() - t0);
    }
  return summarize(out);
}

export async function runSearchQueryBench(options: {
  sizes: (10_000 | 100_000)[];
  log?: (s: string) => void;
}) {
  const rows: Row[] = [];
  const log = options.log ?? (() => undefined);
  for (const size of options.sizes) {
    const corpus = await buildCorpus(size);
    const docs = corpus.docs.map((d, i) => ({ ...d, n: (i * 7919) % 100 }));
    const settings = { idField: 'id', fields: ['title', 'body'], store: ['title'], idf: 'fts5' as const };
    const base: number[] = [];
    const extended: number[] = [];
    let bytes = new Uint8Array();
    let baseBytes = 0;
    for (let i = 0; i < 2; i++) {
      let t0 = performance.now();
      baseBytes = buildIndex(docs, settings).length;
      base.push(performance.now() - t0);
      t0 = performance.now();
      bytes = buildExtendedIndex(docs, {
        ...settings,
        filterable: ['source', 'n'],
        sortable: ['n'],
        typos: true,
      });
      extended.push(performance.now() - t0);
    }
    const index = loadIndex(bytes);
    log(
      `  ${size}: base build ${Math.min(...base).toFixed(0)} ms, extended ${Math.min(...extended).toFixed(0)} ms`,
    );
    rows.push({
      kind: 'build',
      docs: docs.length,
      'quarry p50': null,
      'quarry p99': null,
      'fts5 p50': null,
      'fts5 p99': null,
      note: `buildIndex ${Math.min(...base).toFixed(0)} ms, ${(baseBytes / 1e6).toFixed(1)} MB; with the extension ${Math.min(...extended).toFixed(0)} ms, ${(bytes.length / 1e6).toFixed(1)} MB (best of 2)`,
    });
    const db = new Database(':memory:');
    db.exec(`CREATE VIRTUAL TABLE docs USING fts5(title, body, tokenize = "${TOKENIZER}")`);
    db.exec('CREATE TABLE meta(id INTEGER PRIMARY KEY, source TEXT, n INTEGER)');
    db.exec('CREATE INDEX meta_source ON meta(source, n)');
    const ins = db.prepare('INSERT INTO docs(rowid, title, body) VALUES (?, ?, ?)');
    const meta = db.prepare('INSERT INTO meta(id, source, n) VALUES (?, ?, ?)');
    db.transaction(() => {
      docs.forEach((d, i) => {
        ins.run(i, d.title, d.body);
        meta.run(i, d.source, d.n);
      });
    })();
    const queries = corpus.queries.slice(0, 60);
    const orOf = (q: string) => [...new Set(analyze(q))].map((t) => `"${t}"`).join(' OR ');
    const top = (where: string) =>
      db.prepare(
        `SELECT docs.rowid FROM docs CROSS JOIN meta ON meta.id = docs.rowid WHERE docs MATCH ? ${where} ORDER BY bm25(docs) LIMIT 10`,
      );
    const filtered = top("AND meta.source = 'spam-assassin' AND meta.n < 50");
    const plain = top('');
    const facet = db.prepare(
      'SELECT meta.source, count(*) FROM docs CROSS JOIN meta ON meta.id = docs.rowid WHERE docs MATCH ? GROUP BY meta.source',
    );
    const filter = {
      and: [
        { column: 'source', op: 'eq', value: 'spam-assassin' },
        { column: 'n', op: 'lt', value: 50 },
      ],
    };
    const phrases = drawQueries(corpus.docs, 300, seededRandom(5))
      .filter((q) => analyze(q).length >= 2)
      .slice(0, 60)
      .map((q) => `"${analyze(q).slice(0, 3).join(' ')}"`);
    const ext = extensionOf(index)!;
    const random = seededRandom(9);
    const typos: { q: string; fts: string }[] = [];
    while (typos.length < 60) {
      const w = termAt(index, Math.floor(random() * index.header.termCount));
      if (w.length < 6 || /\d/.test(w)) continue;
      const at = 1 + Math.floor(random() * (w.length - 1));
      const q = `${w.slice(0, at)}${w[at] === 'e' ? 'a' : 'e'}${w.slice(at + 1)}`;
      const terms = variantsOf(index, ext, q, 1).map((v) => `"${termAt(index, v.term)}"`);
      typos.push({ q, fts: terms.join(' OR ') });
    }
    const kinds: [string, (() => unknown)[], (() => unknown)[], string][] = [
      [
        'filtered',
        queries.map((q) => () => searchRequest(index, { q, filter, typos: 0 })),
        queries.map((q) => () => filtered.all(orOf(q))),
        "source = 'spam-assassin' and n < 50; Quarry also counts total",
      ],
      [
        'faceted',
        queries.map((q) => () => searchRequest(index, { q, facets: ['source', 'n'], typos: 0 })),
        queries.map((q) => () => [plain.all(orOf(q)), facet.all(orOf(q))]),
        'top 10 + counts by source (Quarry: by source and n)',
      ],
      [
        'phrase',
        phrases.map((q) => () => searchRequest(index, { q, typos: 0 })),
        phrases.map((q) => () => plain.all(q)),
        'two or three consecutive words',
      ],
      [
        'typo',
        typos.map(
          ({ q }) =>
            () =>
              searchRequest(index, { q, typos: 'auto' }),
        ),
        typos.map(
          ({ fts }) =>
            () =>
              plain.all(fts),
        ),
        'one letter replaced; FTS5 = OR of the corrected terms (no typo search of its own)',
      ],
    ];
    for (const [kind, ours, theirs, note] of kinds) {
      log(`  ${size}: ${kind}`);
      const a = p(ours, 3);
      const b = p(theirs, 1);
      rows.push({
        kind,
        docs: docs.length,
        'quarry p50': a.p50,
        'quarry p99': a.p99,
        'fts5 p50': b.p50,
        'fts5 p99': b.p99,
        note: `${note}; FTS5/Quarry p50 ${(b.p50 / a.p50).toFixed(2)}x`,
      });
    }
    db.close();
  }
  return rows;
}
