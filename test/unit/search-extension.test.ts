// The index extension (shared/search/extension.ts): positions equal the analyzer's tokens, typed
// columns hold each document's values in order, typo keys are sorted, and version 1 still loads.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { brownDocs } from '../../bench/corpus.ts';
import { analyze } from '../../shared/search/analyzer.ts';
import { buildIndex } from '../../shared/search/build.ts';
import { buildExtendedIndex, FIELD_SHIFT, POSITION_MASK, typoKey } from '../../shared/search/extension.ts';
import { extensionOf } from '../../shared/search/extension-view.ts';
import { loadIndex, termAt } from '../../shared/search/format.ts';
import { search } from '../../shared/search/search.ts';
import { analyzeWith } from '../../shared/search/stemmer.ts';

describe('index extension', () => {
  const docs = brownDocs()
    .slice(0, 300)
    .map((d, i) => ({ ...d, n: i % 7, tags: i % 3 === 0 ? [] : [`t${i % 5}`, 'all'], odd: i % 2 === 1 }));

  it('keeps every token position: per document and field, the terms at their positions are the analyzed text', () => {
    const index = loadIndex(buildExtendedIndex(docs, { idField: 'id', fields: ['title', 'body'] }));
    const ext = extensionOf(index)!;
    const rebuilt = docs.map(() => [[] as string[], [] as string[]]);
    for (let t = 0; t < index.header.termCount; t++) {
      const term = termAt(index, t);
      for (let p = index.postingOffsets[t]!; p < index.postingOffsets[t + 1]!; p++) {
        const d = index.postingDocs[p]!;
        for (let q = ext.positionOffsets[p]!; q < ext.positionOffsets[p + 1]!; q++) {
          const pos = ext.positions[q]!;
          rebuilt[d]![pos >>> FIELD_SHIFT]![pos & POSITION_MASK] = term;
        }
      }
    }
    docs.forEach((d, i) => {
      assert.deepEqual(rebuilt[i]![0], analyze(d.title));
      assert.deepEqual(rebuilt[i]![1], analyze(d.body));
      assert.equal(ext.docLengths[i], analyze(d.title).length + analyze(d.body).length);
    });
  });

  it('numbers positions across array items and under the english analyzer as the format says', () => {
    // Each item of an array is followed by one unused position; numbers and booleans are text.
    const mixed = docs.slice(0, 120).map((d, i) => ({
      id: d.id,
      title: i % 4 === 0 ? [d.title, 'running jumps', ['nested items', 7]] : d.title,
      body: i % 5 === 0 ? [true, d.body.slice(0, 300)] : d.body.slice(0, 600),
    }));
    for (const analyzer of ['unicode-words-v1', 'english'] as const) {
      const index = loadIndex(
        buildExtendedIndex(mixed, { idField: 'id', fields: ['title', 'body'], analyzer }),
      );
      const ext = extensionOf(index)!;
      const expected = mixed.map((d) => {
        const slots = new Map<number, string>();
        [d.title, d.body].forEach((value, f) => {
          let next = 0;
          const walk = (v: unknown): void => {
            if (Array.isArray(v)) {
              for (const item of v) {
                walk(item);
                next++;
              }
            } else
              for (const term of analyzeWith(analyzer, String(v)))
                slots.set((f << FIELD_SHIFT) | next++, term);
          };
          walk(value);
        });
        return slots;
      });
      const actual = mixed.map(() => new Map<number, string>());
      for (let t = 0; t < index.header.termCount; t++) {
        for (let p = index.postingOffsets[t]!; p < index.postingOffsets[t + 1]!; p++) {
          const positions = [...ext.positions.subarray(ext.positionOffsets[p]!, ext.positionOffsets[p + 1]!)];
          assert.deepEqual(
            positions,
            [...positions].sort((a, b) => a - b),
            'ascending within a posting',
          );
          for (const pos of positions) actual[index.postingDocs[p]!]!.set(pos, termAt(index, t));
        }
      }
      mixed.forEach((_, i) => {
        assert.deepEqual(
          [...actual[i]!].sort((a, b) => a[0] - b[0]),
          [...expected[i]!].sort((a, b) => a[0] - b[0]),
        );
        assert.equal(ext.docLengths[i], expected[i]!.size);
      });
    }
  });

  it('stores typed columns in document order, values sorted', () => {
    const index = loadIndex(
      buildExtendedIndex(docs, {
        idField: 'id',
        fields: ['title'],
        filterable: ['tags', 'odd', 'source'],
        sortable: ['n'],
        typos: true,
      }),
    );
    const ext = extensionOf(index)!;
    const valuesOf = (field: string, d: number) => {
      const c = ext.columns.get(field)!;
      return [...c.codes.subarray(c.offsets[d]!, c.offsets[d + 1]!)].map((code) => c.values[code]);
    };
    assert.equal(ext.columns.get('tags')!.kind, 'strings');
    assert.equal(ext.columns.get('n')!.kind, 'number');
    assert.equal(ext.columns.get('odd')!.kind, 'boolean');
    assert.equal(ext.columns.get('source')!.kind, 'string');
    docs.forEach((d, i) => {
      assert.deepEqual(valuesOf('tags', i).sort(), [...d.tags].sort());
      assert.deepEqual(valuesOf('n', i), [d.n]);
      assert.deepEqual(valuesOf('odd', i), [d.odd]);
      assert.deepEqual(valuesOf('source', i), [d.source]);
    });
    const keys = ext.typoKeys!;
    for (let i = 1; i < keys.length; i++) assert.ok(keys[i - 1]! <= keys[i]!);
    for (let i = 0; i < keys.length; i++) assert.equal(keys[i], typoKey(termAt(index, ext.typoTerms![i]!)));
  });

  it('refuses mixed kinds and sorting by arrays, naming the field', () => {
    const mixed = [
      { id: 1, t: 'a', x: 1 },
      { id: 2, t: 'b', x: 'one' },
    ];
    assert.throws(() => buildExtendedIndex(mixed, { idField: 'id', fields: ['t'], filterable: ['x'] }), {
      code: 'QUARRY_ERR_VALIDATION',
      field: 'documents.1.x',
    });
    assert.throws(() => buildExtendedIndex(docs, { idField: 'id', fields: ['title'], sortable: ['tags'] }), {
      field: 'sortable.0',
    });
    assert.throws(
      () =>
        buildExtendedIndex([{ id: 1, t: 'a', x: { y: 1 } }], {
          idField: 'id',
          fields: ['t'],
          filterable: ['x'],
        }),
      { field: 'documents.0.x' },
    );
  });

  it('reads a version 1 index (no extension) and answers the same', () => {
    const v1 = buildIndex(docs, { idField: 'id', fields: ['title', 'body'] });
    new DataView(v1.buffer).setUint16(4, 1, true);
    const old = loadIndex(v1);
    assert.equal(extensionOf(old), null);
    const extended = loadIndex(buildExtendedIndex(docs, { idField: 'id', fields: ['title', 'body'] }));
    assert.deepEqual(search(old, 'the jury said', { k: 20 }), search(extended, 'the jury said', { k: 20 }));
  });
});
