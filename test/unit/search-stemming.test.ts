// The `english` analyzer: the index header records it, builds index Porter stems, queries are
// stemmed the same way (so inflected forms find each other), scores equal a unicode-words-v1
// index of the stemmed text, and the request schema takes it or refuses an unknown name by field.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stemmer } from 'stemmer';
import { brownDocs } from '../../bench/corpus.ts';
import { isQuarryError } from '../../shared/errors.ts';
import { parseIndexRequest } from '../../shared/indexing.ts';
import { buildExtendedIndex } from '../../shared/search/extension.ts';
import {
  analyze,
  analyzeWith,
  buildIndex,
  loadIndex,
  readHeader,
  search,
} from '../../shared/search/index.ts';
import { searchRequest } from '../../shared/search/request.ts';

const docs = [
  { id: 'a', text: 'The connection was connected by connecting wires' },
  { id: 'b', text: 'Running runners run quickly' },
  { id: 'c', text: 'Ünïcödé café and 2024 numbers' },
];

describe('english analyzer', () => {
  it('is recorded in the header; the default stays unicode-words-v1', () => {
    const english = buildIndex(docs, { idField: 'id', fields: ['text'], analyzer: 'english' });
    assert.equal(readHeader(english).analyzer, 'english');
    assert.equal(
      readHeader(buildIndex(docs, { idField: 'id', fields: ['text'] })).analyzer,
      'unicode-words-v1',
    );
  });

  it('matches inflected forms at query time; unicode-words-v1 does not', () => {
    const english = loadIndex(buildIndex(docs, { idField: 'id', fields: ['text'], analyzer: 'english' }));
    const plain = loadIndex(buildIndex(docs, { idField: 'id', fields: ['text'] }));
    assert.deepEqual(
      search(english, 'connections', { k: 3 }).hits.map((h) => h.id),
      ['a'],
    );
    assert.deepEqual(
      search(english, 'runs', { k: 3 }).hits.map((h) => h.id),
      ['b'],
    );
    assert.deepEqual(search(plain, 'connections', { k: 3 }).hits, []);
    assert.deepEqual(
      search(english, 'cafe 2024', { k: 3 }).hits.map((h) => h.id),
      ['c'],
    );
    assert.deepEqual(analyzeWith('english', 'Connected RUNNING'), ['connect', 'run']);
  });

  it('scores equal an unstemmed index of the stemmed text (real corpus)', () => {
    const corpus = brownDocs().slice(0, 200);
    const stemmedText = corpus.map((d) => ({
      id: d.id,
      body: analyze(d.body)
        .map((t) => stemmer(t))
        .join(' '),
    }));
    const english = loadIndex(buildIndex(corpus, { idField: 'id', fields: ['body'], analyzer: 'english' }));
    const reference = loadIndex(buildIndex(stemmedText, { idField: 'id', fields: ['body'] }));
    assert.equal(english.header.termCount, reference.header.termCount);
    for (const q of ['running dogs', 'governments elected', 'the happiest children']) {
      const stemmedQuery = analyzeWith('english', q).join(' ');
      assert.deepEqual(
        search(english, q, { k: 10 }).hits.map((h) => [h.id, h.score]),
        search(reference, stemmedQuery, { k: 10 }).hits.map((h) => [h.id, h.score]),
        q,
      );
    }
  });

  it('is a request setting; an unknown analyzer is refused naming the field', () => {
    const limits = { maxIndexDocuments: 100, maxInlineBytes: 1 << 20 };
    const ok = parseIndexRequest(
      'c',
      { documents: docs, idField: 'id', fields: ['text'], analyzer: 'english' },
      limits,
    );
    assert.equal(ok.job.analyzer, 'english');
    assert.throws(
      () =>
        parseIndexRequest(
          'c',
          { documents: docs, idField: 'id', fields: ['text'], analyzer: 'klingon' },
          limits,
        ),
      (e: unknown) => isQuarryError(e) && e.code === 'QUARRY_ERR_VALIDATION' && e.field === 'analyzer',
    );
    assert.throws(
      () => buildIndex(docs, { idField: 'id', fields: ['text'], analyzer: 'klingon' as 'english' }),
      (e: unknown) => isQuarryError(e) && e.field === 'analyzer',
    );
  });
});

describe('english analyzer in full queries (POST search)', () => {
  const options = {
    idField: 'id',
    fields: ['text'],
    store: ['text'],
    analyzer: 'english' as const,
    filterable: ['id'],
  };
  const index = loadIndex(buildExtendedIndex(docs, options));

  it('matches phrases and negations by their stems, with positions of stemmed tokens', () => {
    const ids = (body: object) => searchRequest(index, body).hits.map((h) => h.id);
    // "connected by connecting" as "connects by connection": the same stems in a row.
    assert.deepEqual(ids({ q: '"connects by connection"' }), ['a']);
    assert.deepEqual(ids({ q: '"connecting connected"' }), []);
    assert.deepEqual(ids({ q: 'runs -connections' }), ['b']);
    assert.deepEqual(ids({ q: 'running -runner' }), []);
  });

  it('highlights the original words whose stems matched', () => {
    const [hit] = searchRequest(index, {
      q: 'connections',
      highlight: { fields: ['text'] },
      snippet: { field: 'text', words: 3 },
    }).hits;
    assert.equal(
      hit?.highlights?.text,
      'The <em>connection</em> was <em>connected</em> by <em>connecting</em> wires',
    );
    assert.equal(hit?.snippet, '…<em>connection</em> was <em>connected</em>…');
  });
});
