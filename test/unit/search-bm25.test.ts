// BM25 as built and searched: scores worked out by hand on a four-document corpus, then the whole
// pipeline held to an independent double-precision BM25 on real text (State of the Union addresses).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { drawQueries, seededRandom, sotuPassages } from '../../bench/corpus.ts';
import { analyzeReference } from '../../shared/search/analyzer.ts';
import { type BuildOptions, buildIndex } from '../../shared/search/build.ts';
import { loadIndex, type SearchIndex } from '../../shared/search/format.ts';
import { type SearchOptions, search } from '../../shared/search/search.ts';

// Tokens per document (title + body):
//   a: red fox | the quick red fox jumps   -> 2 + 5 = 7
//   b: lazy dog | the dog sleeps           -> 2 + 3 = 5
//   c: red | red red dog dogs              -> 1 + 4 = 5
//   d: lazy dog | the dog sleeps           -> 5 (same text as b: every score of b ties with d)
// N = 4, avgLen = 22 / 4 = 5.5, k1 = 1.2, b = 0.75
// K(len) = k1 * (1 - b + b * len / avgLen)
//   K(7) = 1.2 * (0.25 + 0.75 * 7 / 5.5) = 1.2 * 1.2045455 = 1.4454545
//   K(5) = 1.2 * (0.25 + 0.75 * 5 / 5.5) = 1.2 * 0.9318182 = 1.1181818
// idf(df) = ln(1 + (N - df + 0.5) / (df + 0.5))
//   df 1: ln(1 + 3.5 / 1.5) = ln(3.3333333) = 1.2039728   (fox, quick, jumps, dogs)
//   df 2: ln(1 + 2.5 / 2.5) = ln(2)         = 0.6931472   (red, lazy, sleeps)
//   df 3: ln(1 + 1.5 / 3.5) = ln(1.4285714) = 0.3566749   (the, dog)
// score = idf * tf * (k1 + 1) / (tf + K(len))
const CORPUS = [
  { id: 'a', title: 'Red fox', body: 'The quick red fox jumps' },
  { id: 'b', title: 'Lazy dog', body: 'The dog sleeps' },
  { id: 'c', title: 'Red', body: 'red, RED dog! Dogs?' },
  { id: 'd', title: 'Lazy dog', body: 'The dog sleeps' },
];
// red in a, tf 2:  0.6931472 * 4.4 / (2 + 1.4454545) = 0.6931472 * 1.2770449 = 0.8851800
const RED_A = 0.88518004;
// red in c, tf 3:  0.6931472 * 6.6 / (3 + 1.1181818) = 0.6931472 * 1.6026490 = 1.1108716
const RED_C = 1.11087164;
// fox in a, tf 2:  1.2039728 * 4.4 / 3.4454545 = 1.2039728 * 1.2770449 = 1.5375273
const FOX_A = 1.53752728;
// dog in b and d, tf 2 (title + body): 0.3566749 * 4.4 / 3.1181818 = 0.3566749 * 1.4110787 = 0.5032964
const DOG_B = 0.50329642;
// dog in c, tf 1:  0.3566749 * 2.2 / 2.1181818 = 0.3566749 * 1.0386266 = 0.3704521
const DOG_C = 0.37045209;
// dogs in c, tf 1: 1.2039728 * 1.0386266 = 1.2504782
const DOGS_C = 1.25047819;
// the in a, tf 1:  0.3566749 * 2.2 / (1 + 1.4454545) = 0.3566749 * 0.8996283 = 0.3208749
const THE_A = 0.32087486;
// the in b, tf 1:  0.3566749 * 1.0386266 = 0.3704521 (same numbers as dog in c)
const THE_B = 0.37045209;

const OPTIONS: BuildOptions = { idField: 'id', fields: ['title', 'body'], store: ['title'] };

function indexOf(options: Partial<BuildOptions> = {}): SearchIndex {
  return loadIndex(buildIndex(CORPUS, { ...OPTIONS, ...options }));
}

/** Asserts ids and scores in order; scores are float32 sums, so compared to 1e-6 relative. */
function assertHits(
  index: SearchIndex,
  query: string,
  expected: [string, number][],
  opts: SearchOptions = {},
) {
  const { hits } = search(index, query, opts);
  assert.deepEqual(
    hits.map((h) => h.id),
    expected.map(([id]) => id),
    `ids for ${JSON.stringify(query)}`,
  );
  hits.forEach((h, i) => {
    const want = expected[i]![1];
    assert.ok(Math.abs(h.score - want) <= 1e-6 * Math.max(want, 1e-6), `${h.id}: ${h.score} vs ${want}`);
  });
}

describe('BM25 on a hand-computed corpus', () => {
  const index = indexOf();

  it('records N and the average document length', () => {
    assert.equal(index.header.docCount, 4);
    assert.equal(index.header.avgDocLength, 5.5);
    assert.deepEqual(index.header.scorer, { k1: 1.2, b: 0.75, idf: 'lucene' });
  });

  it('scores one term', () => {
    assertHits(index, 'red', [
      ['c', RED_C],
      ['a', RED_A],
    ]);
    assertHits(index, 'fox', [['a', FOX_A]]);
  });

  it('sums the scores of distinct query terms', () => {
    // a: fox + red = 1.5375273 + 0.8851800 = 2.4227073; c: red only
    assertHits(index, 'fox red', [
      ['a', FOX_A + RED_A],
      ['c', RED_C],
    ]);
    // Repeating a term or changing its case does not count it twice.
    assertHits(index, 'RED, red! Fox fox', [
      ['a', FOX_A + RED_A],
      ['c', RED_C],
    ]);
  });

  it('breaks exact ties by document order', () => {
    assertHits(index, 'dog', [
      ['b', DOG_B],
      ['d', DOG_B],
      ['c', DOG_C],
    ]);
    assertHits(index, 'sleeps lazy', [
      ['b', search(index, 'sleeps lazy').hits[0]!.score],
      ['d', search(index, 'sleeps lazy').hits[0]!.score],
    ]);
  });

  it("matches any term by default and every term with mode 'all'", () => {
    // c: red + dog = 1.1108716 + 0.3704521 = 1.4813237
    assertHits(index, 'red dog', [
      ['c', RED_C + DOG_C],
      ['a', RED_A],
      ['b', DOG_B],
      ['d', DOG_B],
    ]);
    assertHits(index, 'red dog', [['c', RED_C + DOG_C]], { mode: 'all' });
    assertHits(index, 'red cat', [], { mode: 'all' });
    assertHits(index, 'red cat', [
      ['c', RED_C],
      ['a', RED_A],
    ]);
  });

  it('counts matching documents and honours k', () => {
    assert.equal(search(index, 'red dog').total, 4);
    assert.equal(search(index, 'red dog', { mode: 'all' }).total, 1);
    assertHits(index, 'red dog', [['c', RED_C + DOG_C]], { k: 1 });
    assert.deepEqual(search(index, 'red', { k: 0 }), { hits: [], total: 2 });
    assert.deepEqual(search(index, 'cat'), { hits: [], total: 0 });
    assert.deepEqual(search(index, ' ,. '), { hits: [], total: 0 });
  });

  it('returns stored fields, ids and ordinals', () => {
    const [hit] = search(index, 'fox').hits;
    assert.deepEqual(hit, { id: 'a', score: hit!.score, ordinal: 0, fields: { title: 'Red fox' } });
    assert.deepEqual(search(index, 'fox', { fields: false }).hits[0]!.fields, {});
  });

  it('matches the last term as a prefix, scoring the best expansion per document', () => {
    // dog* = dog | dogs; c holds both: max(0.3704521, 1.2504782) = 1.2504782, not their sum
    assertHits(
      index,
      'dog',
      [
        ['c', DOGS_C],
        ['b', DOG_B],
        ['d', DOG_B],
      ],
      { prefix: true },
    );
    // the + do*: b = 0.3704521 + 0.5032964 = 0.8737485; a has only "the"
    assertHits(
      index,
      'the do',
      [
        ['c', DOGS_C],
        ['b', THE_B + DOG_B],
        ['d', THE_B + DOG_B],
        ['a', THE_A],
      ],
      { prefix: true },
    );
    assertHits(index, 'red do', [['c', RED_C + DOGS_C]], { prefix: true, mode: 'all' });
    assertHits(index, 'qu', [['a', search(index, 'quick').hits[0]!.score]], { prefix: true });
    assertHits(index, 'qu', []);
  });

  it('counts a token in a boosted field w times toward tf, leaving lengths alone', () => {
    // title boost 2: red in a: tf = 2*1 + 1 = 3: 0.6931472 * 6.6 / (3 + 1.4454545) = 1.0290897
    //                red in c: tf = 2*1 + 2 = 4: 0.6931472 * 8.8 / (4 + 1.1181818) = 1.1917699
    assertHits(indexOf({ boosts: { title: 2 } }), 'red', [
      ['c', 1.19176993],
      ['a', 1.02908968],
    ]);
    assert.deepEqual(indexOf({ boosts: { title: 2 } }).header.boosts, { title: 2, body: 1 });
  });

  it("uses SQLite FTS5's idf with idf: 'fts5'", () => {
    // idf = ln((N - df + 0.5) / (df + 0.5)), clamped to 1e-6 when <= 0:
    //   df 1: ln(3.5 / 1.5) = 0.8472979;  df 2: ln(1) = 0 -> 1e-6
    // a: fox + red = 0.8472979 * 1.2770449 + 1e-6 * 1.2770449 = 1.0820387;  c: 1e-6 * 1.6026490
    assertHits(indexOf({ idf: 'fts5' }), 'fox red', [
      ['a', 1.08203865],
      ['c', 1.602649e-6],
    ]);
  });

  it('rejects k outside 0..MAX_K and unknown modes', () => {
    assert.throws(() => search(index, 'red', { k: 1001 }), { code: 'QUARRY_ERR_VALIDATION', field: 'k' });
    assert.throws(() => search(index, 'red', { k: 1.5 }), { code: 'QUARRY_ERR_VALIDATION', field: 'k' });
    assert.throws(() => search(index, 'red', { mode: 'some' as 'any' }), { field: 'mode' });
  });
});

/** Double-precision BM25 straight from the definition, sharing no code with the index. */
function referenceBm25(docs: readonly Record<string, unknown>[], fields: string[]) {
  const tfs = docs.map((d) => {
    const tf = new Map<string, number>();
    let len = 0;
    for (const f of fields) {
      for (const t of analyzeReference(String(d[f] ?? ''))) {
        tf.set(t, (tf.get(t) ?? 0) + 1);
        len++;
      }
    }
    return { tf, len };
  });
  const avg = tfs.reduce((n, d) => n + d.len, 0) / docs.length;
  return (query: string, k: number, all: boolean) => {
    const terms = [...new Set(analyzeReference(query))];
    const df = new Map(terms.map((t) => [t, tfs.filter((d) => d.tf.has(t)).length]));
    const scored: { ord: number; score: number }[] = [];
    tfs.forEach(({ tf, len }, ord) => {
      let score = 0;
      let matched = 0;
      for (const t of terms) {
        const f = tf.get(t);
        if (f === undefined) continue;
        matched++;
        const n = df.get(t)!;
        const idf = Math.log(1 + (docs.length - n + 0.5) / (n + 0.5));
        score += (idf * f * 2.2) / (f + 1.2 * (0.25 + (0.75 * len) / avg));
      }
      if (matched > 0 && (!all || matched === terms.length)) scored.push({ ord, score });
    });
    scored.sort((x, y) => y.score - x.score || x.ord - y.ord);
    return { top: scored.slice(0, k), total: scored.length };
  };
}

describe('BM25 on real text against a reference implementation', () => {
  const docs = sotuPassages().filter((_, i) => i % 7 === 0);
  const index = loadIndex(buildIndex(docs, { idField: 'id', fields: ['title', 'body'] }));
  const queries = drawQueries(docs, 60, seededRandom(7));
  const reference = referenceBm25(docs as unknown as Record<string, unknown>[], ['title', 'body']);

  for (const mode of ['any', 'all'] as const) {
    it(`ranks like double-precision BM25 (${docs.length} passages, mode ${mode})`, () => {
      let compared = 0;
      for (const q of queries) {
        const want = reference(q, 10, mode === 'all');
        const got = search(index, q, { k: 10, mode, total: true });
        assert.equal(got.total, want.total, q);
        assert.equal(got.hits.length, want.top.length, q);
        got.hits.forEach((h, i) => {
          const w = want.top[i]!;
          assert.ok(Math.abs(h.score - w.score) <= 1e-5 * w.score, `${q}: score ${h.score} vs ${w.score}`);
          // Float32 scores may reorder only documents whose exact scores are within rounding.
          if (h.ordinal !== w.ord) {
            const theirs = want.top.find((x) => x.ord === h.ordinal);
            assert.ok(theirs && Math.abs(theirs.score - w.score) <= 1e-6 * w.score, `${q}: order at ${i}`);
          }
        });
        compared += got.hits.length;
      }
      assert.ok(compared > 200, `only ${compared} hits compared`);
    });
  }

  it('returns the same hits with and without pruning', () => {
    for (const q of queries) {
      assert.deepEqual(search(index, q, { k: 10 }).hits, search(index, q, { k: 10, total: true }).hits, q);
    }
  });
});

describe('pruning on every State of the Union passage', () => {
  // Rare words read first (sparse), then stopwords holding most documents: the pruning check runs
  // between them, and what it keeps is sought or read in the stopwords' postings; a stopword last
  // is read in one pass that offers final scores (addLastAndOffer). Also stopwords alone: by
  // blocks (block-max.ts; 174 blocks here) or, when too many blocks stay in reach, dense.
  const docs = sotuPassages();
  const index = loadIndex(buildIndex(docs, { idField: 'id', fields: ['title', 'body'] }));
  const random = seededRandom(11);
  const drawn = drawQueries(docs, 80, random);
  const stop = ['the', 'of', 'and', 'to', 'in', 'a', 'that', 'we'];
  const pick = () => stop[Math.floor(random() * stop.length)]!;
  const queries = drawn.flatMap((q) => [
    `${q} ${pick()} ${pick()}`,
    `${pick()} ${q}`,
    `${pick()} ${pick()}`,
    `${pick()} ${pick()} ${pick()} ${pick()}`,
  ]);

  it('returns the same hits with and without pruning, and the count when it does not prune', () => {
    let pruned = 0;
    for (const q of queries) {
      for (const k of [1, 10, 50]) {
        const fast = search(index, q, { k });
        const full = search(index, q, { k, total: true });
        assert.deepEqual(fast.hits, full.hits, `${q} (k ${k})`);
        if (fast.total === undefined) pruned++;
        else assert.equal(fast.total, full.total, q);
      }
    }
    assert.ok(pruned > queries.length, `pruning ran for only ${pruned} of ${queries.length * 3} searches`);
  });
});
