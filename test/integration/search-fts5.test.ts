// Ranking checked against SQLite FTS5's bm25() on real email (SpamAssassin corpus). FTS5 is set up
// with a tokenizer matching ours (unicode61, remove_diacritics 2, letters and numbers only) and our
// index uses FTS5's idf (idf: 'fts5'); the test first proves both see the same terms, then demands
// the same top-10 lists and scores, letting only tied scores swap places.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type CorpusDoc, drawQueries, emailDocs, seededRandom } from '../../bench/corpus.ts';
import { analyze } from '../../shared/search/analyzer.ts';
import { type BuildOptions, buildIndex } from '../../shared/search/build.ts';
import { loadIndex, type SearchIndex } from '../../shared/search/format.ts';
import { type SearchHit, search } from '../../shared/search/search.ts';
import { Database, type SqliteDb } from '../helpers/sqlite.ts';

const TOKENIZER = `unicode61 remove_diacritics 2 categories 'L* N*'`;
/** Scores agree to float32 precision (ours are stored as float32 per term). */
const REL_TOL = 2e-6;

interface Fts {
  db: SqliteDb;
  close(): void;
}

function ftsOf(docs: CorpusDoc[]): Fts {
  const db = new Database(':memory:');
  db.exec(`CREATE VIRTUAL TABLE docs USING fts5(title, body, tokenize = "${TOKENIZER}")`);
  db.exec('CREATE VIRTUAL TABLE vocab USING fts5vocab(docs, row)');
  const insert = db.prepare('INSERT INTO docs(rowid, title, body) VALUES (?, ?, ?)');
  db.transaction(() => {
    for (const [i, d] of docs.entries()) insert.run(i, d.title, d.body);
  })();
  return { db, close: () => db.close() };
}

/** term -> [documents, occurrences], as our analyzer sees the corpus. */
function ourVocabulary(docs: CorpusDoc[]): Map<string, [number, number]> {
  const vocab = new Map<string, [number, number]>();
  for (const d of docs) {
    const seen = new Set<string>();
    for (const t of [...analyze(d.title), ...analyze(d.body)]) {
      const v = vocab.get(t) ?? [0, 0];
      if (!seen.has(t)) v[0]++;
      v[1]++;
      seen.add(t);
      vocab.set(t, v);
    }
  }
  return vocab;
}

function ftsVocabulary(fts: Fts): Map<string, [number, number]> {
  const rows = fts.db.prepare('SELECT term, doc, cnt FROM vocab').all() as {
    term: string;
    doc: number;
    cnt: number;
  }[];
  return new Map(rows.map((r) => [r.term, [r.doc, r.cnt]]));
}

/** Terms on which the two vocabularies differ in presence, document count or occurrences. */
function disagreements(ours: Map<string, [number, number]>, theirs: Map<string, [number, number]>): string[] {
  const out: string[] = [];
  for (const [t, v] of ours) {
    const w = theirs.get(t);
    if (w === undefined || w[0] !== v[0] || w[1] !== v[1]) out.push(t);
  }
  for (const t of theirs.keys()) if (!ours.has(t)) out.push(t);
  return out;
}

/**
 * Ordinals of the documents FTS5 tokenizes differently from us (compatibility characters it does not
 * decompose, letters its Unicode 6.1 tables do not case-fold). ASCII text tokenizes the same by
 * construction, so only documents with other characters are compared, token by token.
 */
function differentlyTokenized(docs: CorpusDoc[]): { ordinals: Set<number>; nonAscii: number } {
  const candidates = docs.flatMap((d, i) => (/\P{ASCII}/u.test(d.title + d.body) ? [i] : []));
  const probe = new Database(':memory:');
  probe.exec(`CREATE VIRTUAL TABLE docs USING fts5(title, body, tokenize = "${TOKENIZER}")`);
  probe.exec('CREATE VIRTUAL TABLE tokens USING fts5vocab(docs, instance)');
  const insert = probe.prepare('INSERT INTO docs(rowid, title, body) VALUES (?, ?, ?)');
  probe.transaction(() => {
    for (const i of candidates) insert.run(i, docs[i]!.title, docs[i]!.body);
  })();
  const theirs = new Map<number, string[][]>();
  const rows = probe.prepare('SELECT doc, col, offset, term FROM tokens').all() as {
    doc: number;
    col: string;
    offset: number;
    term: string;
  }[];
  for (const r of rows) {
    const cols = theirs.get(r.doc) ?? [[], []];
    cols[r.col === 'title' ? 0 : 1]![r.offset] = r.term;
    theirs.set(r.doc, cols);
  }
  probe.close();
  const ordinals = new Set<number>();
  for (const i of candidates) {
    const d = docs[i]!;
    const [title, body] = theirs.get(i) ?? [[], []];
    const same = (a: string[], b: string[] | undefined) =>
      a.length === (b?.length ?? 0) && a.every((t, j) => t === b![j]);
    if (!same(analyze(d.title), title) || !same(analyze(d.body), body)) ordinals.add(i);
  }
  return { ordinals, nonAscii: candidates.length };
}

function ftsTop(fts: Fts, terms: string[], all: boolean, weights: number[], limit: number) {
  const match = terms.map((t) => `"${t}"`).join(all ? ' AND ' : ' OR ');
  return fts.db
    .prepare(
      `SELECT rowid, bm25(docs, ${weights.join(', ')}) AS s FROM docs WHERE docs MATCH ? ORDER BY s LIMIT ?`,
    )
    .all(match, limit) as { rowid: number; s: number }[];
}

function ftsCount(fts: Fts, terms: string[], all: boolean): number {
  const match = terms.map((t) => `"${t}"`).join(all ? ' AND ' : ' OR ');
  return (fts.db.prepare('SELECT count(*) AS n FROM docs WHERE docs MATCH ?').get(match) as { n: number }).n;
}

const close = (a: number, b: number) =>
  Math.abs(a - b) <= REL_TOL * Math.max(Math.abs(a), Math.abs(b)) + 1e-12;

/**
 * Asserts that our top 10 equals FTS5's: the same score at every rank, and every document of one
 * list holding the same score in the other (so only tied documents can swap places).
 */
function assertSameTop(query: string, ours: SearchHit[], theirs: { rowid: number; s: number }[]): number {
  const n = Math.min(10, theirs.length);
  assert.equal(Math.min(10, ours.length), n, `${query}: hit count`);
  const theirScore = new Map(theirs.map((r) => [r.rowid, -r.s]));
  const ourScore = new Map(ours.map((h) => [h.ordinal, h.score]));
  for (let i = 0; i < n; i++) {
    const h = ours[i]!;
    const r = theirs[i]!;
    assert.ok(close(h.score, -r.s), `${query}: rank ${i} score ${h.score} vs FTS5 ${-r.s}`);
    const t = theirScore.get(h.ordinal);
    assert.ok(
      t !== undefined && close(t, h.score),
      `${query}: our doc ${h.ordinal} at rank ${i} (FTS5: ${t})`,
    );
    const o = ourScore.get(r.rowid);
    assert.ok(o !== undefined && close(o, -r.s), `${query}: FTS5 doc ${r.rowid} at rank ${i} (ours: ${o})`);
  }
  return n;
}

describe('ranking equals SQLite FTS5 bm25() on SpamAssassin emails', () => {
  let docs: CorpusDoc[];
  let fts: Fts;
  let excluded = 0;
  let total = 0;

  let nonAscii = 0;

  before(() => {
    const all = emailDocs();
    total = all.length;
    const different = differentlyTokenized(all);
    excluded = different.ordinals.size;
    nonAscii = different.nonAscii;
    docs = all.filter((_, i) => !different.ordinals.has(i));
    fts = ftsOf(docs);
  });

  after(() => fts?.close());

  it('sees the same terms, document counts and occurrences as FTS5 once a few emails are left out', () => {
    assert.ok(excluded / total < 0.02, `${excluded} of ${total} emails tokenize differently`);
    // The comparison must cover the Unicode path too, not only ASCII text.
    assert.ok(nonAscii - excluded > 300, `only ${nonAscii - excluded} kept emails have non-ASCII text`);
    const ours = ourVocabulary(docs);
    const theirs = ftsVocabulary(fts);
    assert.deepEqual(disagreements(ours, theirs), []);
    assert.ok(ours.size > 40_000);
  });

  const cases: { name: string; all: boolean; boosts?: Record<string, number>; weights: number[] }[] = [
    { name: 'any term', all: false, weights: [1, 1] },
    { name: 'all terms', all: true, weights: [1, 1] },
    { name: 'any term, title boosted 3x', all: false, boosts: { title: 3 }, weights: [3, 1] },
  ];
  for (const c of cases) {
    it(`has the same top 10 and match count for 200 queries (${c.name})`, () => {
      const options: BuildOptions = { idField: 'id', fields: ['title', 'body'], idf: 'fts5' };
      if (c.boosts) options.boosts = c.boosts;
      const index: SearchIndex = loadIndex(buildIndex(docs, options));
      const queries = drawQueries(docs, 200, seededRandom(42));
      let compared = 0;
      for (const q of queries) {
        const terms = [...new Set(analyze(q))];
        const ours = search(index, q, { k: 40, mode: c.all ? 'all' : 'any', total: true });
        const theirs = ftsTop(fts, terms, c.all, c.weights, 40);
        compared += assertSameTop(q, ours.hits, theirs);
        assert.equal(ours.total, ftsCount(fts, terms, c.all), `${q}: match count`);
      }
      assert.ok(compared > 1000, `only ${compared} ranks compared`);
    });
  }
});
