// Two-thread index builds (shared/search/build-parallel.ts through IndexBuilder): the bytes equal
// a single-thread build of the same documents (the extension too: positions, columns, typo keys;
// and with the english analyzer), and every kind of bad input fails with the error
// (code, message, field) the single-thread build gives, wherever in the input it sits.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { brownDocs } from '../../bench/corpus.ts';
import { QuarryError } from '../../shared/errors.ts';
import {
  applyChanges,
  type DocumentChanges,
  decodeDocuments,
  encodeDocuments,
  project,
  projectedFields,
} from '../../shared/index-documents.ts';
import { type BuildOptions, buildIndex } from '../../shared/search/build.ts';
import { findSplit, PARALLEL_MIN_BYTES } from '../../shared/search/build-parallel.ts';
import { buildExtendedIndex, type ExtensionOptions } from '../../shared/search/extension.ts';
import type { UpdateInput } from '../../workers/index-build-thread.ts';
import { IndexBuilder } from '../../workers/index-builder.ts';

// Real text (the Brown corpus) plus non-ASCII words, numbers, arrays, nulls and escapes, so that
// both parts hold terms the other lacks and quotes, backslashes and brackets sit inside strings.
const brown = brownDocs();
const docs: Record<string, unknown>[] = Array.from({ length: 3000 }, (_, i) => {
  const b = brown[i % brown.length]!;
  return {
    id: i % 7 === 0 ? i : `d${i}`,
    title: i % 5 === 0 ? `Ünïcödé ΣΊΣΥΦΟΣ 東京 ${b.title} "q\\"x\\\\" ,]}` : b.title,
    body: i % 3 === 0 ? [b.body.slice(0, 400), i, true, null] : b.body.slice(0, 600),
    tags: i % 11 === 0 ? null : [`tag${i % 13}`, `t-${i}`],
  };
});
const OPTIONS: BuildOptions = {
  idField: 'id',
  fields: ['title', 'body', 'tags'],
  store: ['title'],
  boosts: { title: 2 },
};
const json = JSON.stringify(docs);
const EXTENDED: BuildOptions & ExtensionOptions = {
  ...OPTIONS,
  filterable: ['tags', 'title'],
  sortable: ['title'],
  typos: true,
};

function input(text: string): ArrayBuffer {
  const b = Buffer.from(text);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;
}

/** The error buildIndex throws for `list`, as [code, message, field]. */
function singleError(list: unknown[], options = OPTIONS): [string, string, string | undefined] {
  try {
    buildIndex(list as object[], options);
  } catch (e) {
    assert.ok(e instanceof QuarryError);
    return [e.code, e.message, e.field];
  }
  assert.fail('the single-thread build did not fail');
}

describe('two-thread builds', () => {
  it('cut the input where the second part starts with a whole document', () => {
    assert.ok(json.length >= PARALLEL_MIN_BYTES, `test input of ${json.length} bytes is too small`);
    const bytes = Buffer.from(json);
    const split = findSplit(bytes)!;
    const a = JSON.parse(`${bytes.subarray(0, split.at).toString()}]`) as unknown[];
    const b = JSON.parse(`[${bytes.subarray(split.at + 1).toString()}`) as unknown[];
    assert.equal(a.length, split.before);
    assert.deepEqual([...a, ...b], docs);
    assert.ok(Math.abs(split.at - bytes.length / 2) < 10_000);
    assert.equal(findSplit(Buffer.from('{"a": [1, 2]}')), null);
    assert.equal(findSplit(Buffer.from('[{"a": "x,y"}]')), null);
  });

  it('write the same bytes as one thread', async () => {
    const builder = new IndexBuilder({ size: 1, threadsPerBuild: 2 });
    try {
      const expected = buildExtendedIndex(docs, OPTIONS);
      for (let round = 0; round < 2; round++) {
        const bytes = await builder.build(input(json), OPTIONS);
        assert.ok(Buffer.from(bytes).equals(Buffer.from(expected)), `round ${round}: bytes differ`);
      }
      // Also with the whitespace JSON.stringify adds when pretty-printing.
      const pretty = await builder.build(input(JSON.stringify(docs, null, 2)), OPTIONS);
      assert.ok(Buffer.from(pretty).equals(Buffer.from(expected)));
      // Typed columns and typo keys, and the english analyzer (stemmed terms and positions).
      for (const options of [EXTENDED, { ...EXTENDED, analyzer: 'english' as const }]) {
        const bytes = await builder.build(input(json), options);
        assert.ok(
          Buffer.from(bytes).equals(Buffer.from(buildExtendedIndex(docs, options))),
          `${options.analyzer ?? 'default'}: bytes differ`,
        );
      }
      assert.deepEqual(builder.started, { single: 0, parallel: 5 });
      // Small inputs stay on one thread.
      await builder.build(input(JSON.stringify(docs.slice(0, 10))), OPTIONS);
      assert.deepEqual(builder.started, { single: 1, parallel: 5 });
    } finally {
      await builder.close();
    }
  });

  it('keep the documents as one thread does: each part encoded on its own thread, one frame each', async () => {
    const builder = new IndexBuilder({ size: 1, threadsPerBuild: 2 });
    const fields = projectedFields(EXTENDED);
    const expected = decodeDocuments(encodeDocuments(docs, fields)).toString();
    try {
      for (const options of [OPTIONS, EXTENDED]) {
        const kept = await builder.buildKeeping(input(json), options, fields);
        assert.ok(Buffer.from(kept.bytes).equals(Buffer.from(buildExtendedIndex(docs, options))));
        assert.equal(decodeDocuments(kept.documents).toString(), expected);
        // Two frames (each starts with the bytes QDBR), not one.
        assert.equal(Buffer.from(kept.documents).subarray(0, 4).toString('latin1'), 'QDBR');
        assert.equal(Buffer.from(kept.documents).indexOf('QDBR', 1, 'latin1') > 0, true);
      }
      assert.equal(builder.started.parallel, 2);
      // A failure in the second part: the build fails as one thread's would, and the next one works.
      const late = docs.length - 5;
      const bad = docs.map((d, i) => (i === late ? { ...d, id: 'd1' } : d));
      await assert.rejects(builder.buildKeeping(input(JSON.stringify(bad)), OPTIONS, fields), {
        code: 'QUARRY_ERR_VALIDATION',
        field: `documents.${late}.id`,
      });
      const again = await builder.buildKeeping(input(json), OPTIONS, fields);
      assert.equal(decodeDocuments(again.documents).toString(), expected);
    } finally {
      await builder.close();
    }
  });

  // A build that never answers fails here instead of holding the suite.
  it('apply an update to kept documents on the build thread: the bytes of a full build of the result', {
    timeout: 60_000,
  }, async () => {
    const builder = new IndexBuilder({ size: 1, threadsPerBuild: 2 });
    const fields = projectedFields(OPTIONS);
    const stored = encodeDocuments(docs, fields);
    const changes = {
      documents: [
        { ...docs[10]!, body: 'replaced in its place' },
        { id: 'new-1', title: 'appended', body: 'a new document' },
      ],
      ids: ['d20', 'absent'],
    };
    const update = (bytes: Uint8Array): UpdateInput => ({
      kind: 'update',
      stored: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer,
      changes,
      idField: 'id',
      fields,
    });
    try {
      assert.ok(
        stored.length * 2 >= PARALLEL_MIN_BYTES,
        `kept documents of ${stored.length} bytes are too small`,
      );
      const merged = applyChanges(docs, changes, 'id', fields);
      const kept = await builder.buildKeeping(update(stored), OPTIONS, fields);
      assert.ok(Buffer.from(kept.bytes).equals(Buffer.from(buildExtendedIndex(merged, OPTIONS))));
      assert.equal(decodeDocuments(kept.documents).toString(), JSON.stringify(merged));
      assert.deepEqual(builder.started, { single: 0, parallel: 1 });
      // Versions kept before brotli frames hold gzip (one member or two): an update reads them.
      const text = Buffer.from(JSON.stringify(docs.map((d) => project(d, fields))));
      const half = text.indexOf('},{', text.length >> 1) + 1;
      for (const old of [
        gzipSync(text, { level: 1 }),
        Buffer.concat([gzipSync(text.subarray(0, half + 1)), gzipSync(text.subarray(half + 1))]),
      ]) {
        assert.equal(decodeDocuments(old).toString(), text.toString());
        const fromOld = await builder.buildKeeping(update(old), OPTIONS, fields);
        assert.ok(Buffer.from(fromOld.bytes).equals(Buffer.from(buildExtendedIndex(merged, OPTIONS))));
        assert.equal(decodeDocuments(fromOld.documents).toString(), JSON.stringify(merged));
      }
      // Kept documents in neither encoding fail the build; the group keeps working.
      await assert.rejects(builder.build(update(Buffer.from('neither gzip nor frames')), OPTIONS), {
        code: 'QUARRY_ERR_INTERNAL',
      });
      // Also when they are large enough for two threads: the helper is released, nothing hangs.
      const noise = Buffer.alloc(PARALLEL_MIN_BYTES, 7);
      await assert.rejects(builder.build(update(noise), OPTIONS), { code: 'QUARRY_ERR_INTERNAL' });
      assert.deepEqual(builder.started, { single: 1, parallel: 4 });
      // The same for settings the thread refuses before the helper has its part.
      await assert.rejects(
        builder.build(input(json), { ...OPTIONS, filterable: 'title' as unknown as string[] }),
        { code: 'QUARRY_ERR_VALIDATION', field: 'filterable' },
      );
      assert.deepEqual(builder.started, { single: 1, parallel: 5 });
      const small = encodeDocuments(docs.slice(0, 30), fields);
      const again = await builder.build(update(small), OPTIONS);
      const expected = buildExtendedIndex(applyChanges(docs.slice(0, 30), changes, 'id', fields), OPTIONS);
      assert.ok(Buffer.from(again).equals(Buffer.from(expected)));
    } finally {
      await builder.close();
    }
  });

  it('an update given its base index: built from it on one thread, the bytes of a full build of the result', {
    timeout: 60_000,
  }, async () => {
    const builder = new IndexBuilder({ size: 1, threadsPerBuild: 2 });
    // Scalar typed columns (a column of arrays is updated from the documents, below).
    const options = { ...OPTIONS, filterable: ['title'], sortable: ['title'], typos: true };
    const fields = projectedFields(options);
    const stored = encodeDocuments(docs, fields);
    const base = buildExtendedIndex(docs, options);
    const changes = {
      documents: [
        { ...docs[10]!, body: 'replaced in its place' },
        { id: 'new-1', title: 'appended', body: 'a new document' },
      ],
      ids: ['d20', 'absent', 14],
    };
    const copy = (b: Uint8Array) => b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;
    const update = (kept: Uint8Array, index: Uint8Array, c: DocumentChanges = changes): UpdateInput => ({
      kind: 'update',
      stored: copy(kept),
      index: copy(index),
      changes: c,
      idField: 'id',
      fields,
    });
    try {
      const merged = applyChanges(docs, changes, 'id', fields);
      const built = await builder.buildKeeping(update(stored, base), options, fields);
      assert.ok(Buffer.from(built.bytes).equals(Buffer.from(buildExtendedIndex(merged, options))));
      assert.equal(decodeDocuments(built.documents).toString(), JSON.stringify(merged));
      assert.deepEqual(builder.updates, { fromIndex: 1, fromDocuments: 0 });
      assert.deepEqual(builder.started, { single: 1, parallel: 0 });
      // A changed document the build refuses: the full build's error, the group keeps working.
      const bad = { documents: [{ id: 'd30', title: 'x', body: { not: 'text' } }], ids: [] };
      await assert.rejects(builder.build(update(stored, base, bad), options), {
        code: 'QUARRY_ERR_VALIDATION',
        message: singleError(applyChanges(docs, bad, 'id', fields), OPTIONS)[1],
        field: 'documents.30.body',
      });
      // Kept documents that are not the index's (another count) fail; nothing hangs.
      await assert.rejects(
        builder.buildKeeping(update(encodeDocuments(docs.slice(1), fields), base), options, fields),
        { code: 'QUARRY_ERR_INTERNAL', message: /kept documents: 2999 where the index holds 3000/ },
      );
      // A base whose typed column holds arrays (tags) is updated from its documents, alike.
      const withArrays = await builder.buildKeeping(
        update(encodeDocuments(docs, projectedFields(EXTENDED)), buildExtendedIndex(docs, EXTENDED)),
        EXTENDED,
        projectedFields(EXTENDED),
      );
      const mergedArrays = applyChanges(docs, changes, 'id', projectedFields(EXTENDED));
      assert.ok(
        Buffer.from(withArrays.bytes).equals(Buffer.from(buildExtendedIndex(mergedArrays, EXTENDED))),
      );
      assert.deepEqual(builder.updates, { fromIndex: 1, fromDocuments: 1 });
    } finally {
      await builder.close();
    }
  });

  it('fail with the single-thread error wherever the bad document is', async () => {
    const builder = new IndexBuilder({ size: 1, threadsPerBuild: 2 });
    try {
      const late = docs.length - 5;
      const cases: [string, unknown[]][] = [
        ['an id repeated across the parts', docs.map((d, i) => (i === late ? { ...d, id: 'd1' } : d))],
        [
          'an id repeated in the second part',
          docs.map((d, i) => (i === late ? { ...d, id: `d${late - 1}` } : d)),
        ],
        ['an id repeated in the first part', docs.map((d, i) => (i === 4 ? { ...d, id: 'd2' } : d))],
        ['a missing id in the second part', docs.map((d, i) => (i === late ? { ...d, id: undefined } : d))],
        [
          'an object value in the second part',
          docs.map((d, i) => (i === late ? { ...d, body: { x: 1 } } : d)),
        ],
        ['a non-object in the second part', docs.map((d, i) => (i === late ? 7 : d))],
        // Both: the first in input order wins (the first part's), as on one thread.
        ['errors in both parts', docs.map((d, i) => (i === late ? 7 : i === 3 ? { ...d, id: '' } : d))],
        // The repeat comes before the second part's own failure: it wins.
        [
          'a repeat before a failure',
          docs.map((d, i) => (i === late - 3 ? { ...d, id: 'd1' } : i === late ? 7 : d)),
        ],
      ];
      for (const [name, list] of cases) {
        const expected = singleError(list);
        await assert.rejects(
          builder.build(input(JSON.stringify(list)), OPTIONS),
          (e: unknown) =>
            e instanceof QuarryError &&
            assert.deepEqual([e.code, e.message, e.field], expected, name) === undefined,
          name,
        );
      }
      // A trailing comma or a hole is not JSON, even though each part alone would parse.
      for (const text of [`${json.slice(0, -1)},]`, `[,${json.slice(1)}`]) {
        await assert.rejects(
          builder.build(input(text), OPTIONS),
          (e: unknown) =>
            e instanceof QuarryError && e.code === 'QUARRY_ERR_VALIDATION' && e.field === 'documents',
        );
      }
      assert.ok(builder.started.parallel >= cases.length, JSON.stringify(builder.started));
      // The group keeps working after failures.
      const bytes = await builder.build(input(json), OPTIONS);
      assert.ok(Buffer.from(bytes).equals(Buffer.from(buildExtendedIndex(docs, OPTIONS))));
    } finally {
      await builder.close();
    }
  });
});
