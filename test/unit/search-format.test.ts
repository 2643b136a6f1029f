// The binary index format: round trip, zero-copy loading, refusal of unknown versions and damaged
// bytes, the sorted dictionary, build input validation, and builds on a worker thread.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { brownDocs } from '../../bench/corpus.ts';
import { isQuarryError } from '../../shared/errors.ts';
import { analyze } from '../../shared/search/analyzer.ts';
import { buildIndex } from '../../shared/search/build.ts';
import { buildExtendedIndex } from '../../shared/search/extension.ts';
import {
  docId,
  FORMAT_VERSION,
  findTerm,
  loadIndex,
  prefixRange,
  readHeader,
  SECTION_NAMES,
  storedFields,
  termAt,
} from '../../shared/search/format.ts';
import { search } from '../../shared/search/search.ts';
import { nativeTypeStripping } from '../../shared/ts-runtime.ts';
import { buildIndexInThread } from '../../workers/index-build-thread.ts';

const docs = brownDocs().slice(0, 400);
const OPTIONS = { idField: 'id', fields: ['title', 'body'], store: ['title', 'source'] };
const bytes = buildIndex(docs, OPTIONS);

describe('index format', () => {
  it('round-trips header, ids, stored fields and terms', () => {
    const index = loadIndex(bytes);
    const { header } = index;
    assert.equal(header.docCount, docs.length);
    assert.deepEqual(header.fields, ['title', 'body']);
    assert.deepEqual(header.stored, ['title', 'source']);
    assert.equal(header.idField, 'id');
    assert.equal(header.analyzer, 'unicode-words-v1');
    const lengths = docs.map((d) => analyze(d.title).length + analyze(d.body).length);
    assert.equal(header.avgDocLength, lengths.reduce((a, b) => a + b, 0) / docs.length);
    docs.forEach((d, i) => {
      assert.equal(docId(index, i), d.id);
      assert.deepEqual(storedFields(index, i), { title: d.title, source: d.source });
    });
    const vocabulary = new Set(docs.flatMap((d) => [...analyze(d.title), ...analyze(d.body)]));
    assert.equal(header.termCount, vocabulary.size);
    for (const term of vocabulary) assert.equal(termAt(index, findTerm(index, term)), term);
    assert.equal(findTerm(index, 'notawordinbrown'), -1);
  });

  it('stores postings sorted by ordinal with positive scores and per-term maxima', () => {
    const index = loadIndex(bytes);
    const { postingOffsets: off, postingDocs, postingScores, termMaxScores } = index;
    for (let t = 0; t < index.header.termCount; t++) {
      let max = 0;
      for (let p = off[t]!; p < off[t + 1]!; p++) {
        if (p > off[t]!) assert.ok(postingDocs[p]! > postingDocs[p - 1]!);
        assert.ok(postingScores[p]! > 0);
        max = Math.max(max, postingScores[p]!);
      }
      assert.equal(termMaxScores[t], max);
    }
  });

  it('loads without copying: every section is a view onto the input buffer', () => {
    const index = loadIndex(bytes);
    assert.equal(index.copied, false);
    for (const name of SECTION_NAMES) {
      const view = index[name];
      assert.equal(view.buffer, bytes.buffer, name);
      assert.equal(view.byteOffset % 4, 0, name);
    }
  });

  it('loads from an offset inside a larger buffer (as a Redis reply slice) without copying', () => {
    const big = new Uint8Array(bytes.length + 64);
    big.set(bytes, 24);
    const index = loadIndex(big.subarray(24, 24 + bytes.length));
    assert.equal(index.copied, false);
    assert.equal(index.postingDocs.buffer, big.buffer);
    assert.deepEqual(search(index, 'jury said').hits, search(loadIndex(bytes), 'jury said').hits);
  });

  it('copies once when the input is misaligned, and still answers the same', () => {
    const big = new Uint8Array(bytes.length + 1);
    big.set(bytes, 1);
    const index = loadIndex(big.subarray(1));
    assert.equal(index.copied, true);
    assert.deepEqual(search(index, 'the county').hits, search(loadIndex(bytes), 'the county').hits);
  });

  it('is deterministic', () => {
    assert.deepEqual(buildIndex(docs, OPTIONS), bytes);
  });

  it('rejects unknown format versions', () => {
    const copy = bytes.slice();
    new DataView(copy.buffer).setUint16(4, FORMAT_VERSION + 1, true);
    assert.throws(() => loadIndex(copy), { code: 'QUARRY_ERR_VALIDATION', field: 'index.version' });
    assert.throws(() => readHeader(copy), new RegExp(`format version ${FORMAT_VERSION + 1}`));
  });

  it('rejects bad magic, truncation and a damaged header', () => {
    const magic = bytes.slice();
    magic[0] = 0x58;
    assert.throws(() => loadIndex(magic), { field: 'index.magic' });
    assert.throws(() => loadIndex(bytes.subarray(0, 10)), { field: 'index.magic' });
    assert.throws(() => loadIndex(bytes.slice(0, bytes.length - 100)), { field: /^index\.sections/ });
    const header = bytes.slice();
    header[16] = 0x7b + 1;
    assert.throws(() => loadIndex(header), { field: 'index.header' });
  });

  it('sorts the dictionary by code point, so prefixes are ranges', () => {
    // U+FF9E (halfwidth katakana mark, a letter) sorts below U+1D400 (an astral letter) by code
    // point, though its UTF-16 code unit is above the surrogates'.
    const odd = [
      { id: '1', t: 'zebra zeal zero' },
      { id: '2', t: 'ｰﾞ 𝔸𝔹 éclair eclat' },
      { id: '3', t: 'ze ẞig' },
    ];
    const index = loadIndex(buildIndex(odd, { idField: 'id', fields: ['t'] }));
    const terms = Array.from({ length: index.header.termCount }, (_, t) => termAt(index, t));
    const byCodePoint = [...terms].sort((a, b) => {
      const x = [...a].map((c) => c.codePointAt(0)!);
      const y = [...b].map((c) => c.codePointAt(0)!);
      for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
      return x.length - y.length;
    });
    assert.deepEqual(terms, byCodePoint);
    const [from, to] = prefixRange(index, 'ze');
    assert.deepEqual(
      terms.slice(from, to),
      terms.filter((t) => t.startsWith('ze')),
    );
    assert.equal(to - from, 4);
  });
});

describe('build input validation', () => {
  const fields = { idField: 'id', fields: ['t'] };
  it('names the document without an id', () => {
    assert.throws(() => buildIndex([{ id: 'x', t: 'a' }, { t: 'b' }], fields), {
      code: 'QUARRY_ERR_VALIDATION',
      field: 'documents.1.id',
    });
    assert.throws(() => buildIndex([{ id: '', t: 'a' }], fields), { field: 'documents.0.id' });
    assert.throws(() => buildIndex([{ id: { x: 1 }, t: 'a' }], fields), { field: 'documents.0.id' });
  });

  it('names both documents of a repeated id', () => {
    assert.throws(
      () => buildIndex([{ id: 7, t: 'a' }, { id: 'x' }, { id: '7', t: 'b' }], fields),
      (e: unknown) => isQuarryError(e) && e.field === 'documents.2.id' && /document 0/.test(e.message),
    );
  });

  it('rejects field values it cannot index, and bad options', () => {
    assert.throws(() => buildIndex([{ id: 1, t: { nested: 'x' } }], fields), { field: 'documents.0.t' });
    assert.throws(() => buildIndex([], { idField: 'id', fields: [] }), { field: 'fields' });
    assert.throws(() => buildIndex([], { idField: 'id', fields: ['t'], boosts: { u: 2 } }), {
      field: 'boosts.u',
    });
    assert.throws(() => buildIndex([], { idField: 'id', fields: ['t'], boosts: { t: 0 } }), {
      field: 'boosts.t',
    });
  });

  it('indexes numbers, booleans and arrays; an empty corpus searches to nothing', () => {
    const index = loadIndex(buildIndex([{ id: 1, t: ['alpha', 42, true, null] }], fields));
    assert.deepEqual(
      search(index, 'alpha 42 true').hits.map((h) => h.id),
      ['1'],
    );
    assert.deepEqual(search(loadIndex(buildIndex([], fields)), 'alpha'), { hits: [], total: 0 });
  });
});

describe('buildIndexInThread', () => {
  const json = JSON.stringify(docs);
  // Threads build what workers serve: buildIndex plus the extension (extension.ts).
  const extended = buildExtendedIndex(docs, OPTIONS);

  it('builds the same bytes as buildExtendedIndex, from a JSON string', async () => {
    assert.deepEqual(await buildIndexInThread(json, OPTIONS), extended);
  });

  it('takes the documents as a transferred ArrayBuffer', async () => {
    const input = new TextEncoder().encode(json).buffer;
    const result = await buildIndexInThread(input, OPTIONS);
    assert.equal(input.byteLength, 0, 'the input buffer was transferred, not copied');
    assert.equal(result.byteOffset, 0);
    assert.equal(result.buffer.byteLength, result.length, 'the result owns its whole buffer');
    assert.deepEqual(result, extended);
  });

  it('rejects with the QuarryError code and field from the thread', async () => {
    await assert.rejects(buildIndexInThread('[{"id":1},{"t":"x"}]', { idField: 'id', fields: ['t'] }), {
      name: 'QuarryError',
      code: 'QUARRY_ERR_VALIDATION',
      field: 'documents.1.id',
    });
    await assert.rejects(buildIndexInThread('{"id":1}', { idField: 'id', fields: ['t'] }), {
      field: 'documents',
    });
    await assert.rejects(buildIndexInThread('not json', { idField: 'id', fields: ['t'] }), {
      field: 'documents',
    });
  });

  it('rejects when the thread runs out of its heap limit', async () => {
    const many = JSON.stringify(
      Array.from({ length: 200_000 }, (_, i) => ({ id: i, t: `word${i} other${i}` })),
    );
    await assert.rejects(
      buildIndexInThread(many, {
        idField: 'id',
        fields: ['t'],
        resourceLimits: { maxOldGenerationSizeMb: 8 },
      }),
      (e: unknown) =>
        isQuarryError(e) &&
        e.code === 'QUARRY_ERR_INTERNAL' &&
        (e.cause as { code?: string }).code === 'ERR_WORKER_OUT_OF_MEMORY',
    );
  });

  it('stops on abort', async () => {
    const controller = new AbortController();
    const pending = buildIndexInThread(json, { ...OPTIONS, signal: controller.signal });
    controller.abort(new Error('stop'));
    await assert.rejects(pending, /stop/);
  });

  it('works when the parent runs under the tsx CLI, under node --import tsx, and on Node type stripping', async () => {
    const script = path.join(tmpdir(), `quarry-thread-${process.pid}.mts`);
    const entry = new URL('../../workers/index-build-thread.ts', import.meta.url).href;
    await writeFile(
      script,
      `import { buildIndexInThread } from ${JSON.stringify(entry)};
const bytes = await buildIndexInThread('[{"id":"a","t":"hello"}]', { idField: 'id', fields: ['t'] });
process.stdout.write(String(bytes.length));`,
    );
    const tsxCli = new URL('../../node_modules/tsx/dist/cli.mjs', import.meta.url).pathname;
    const run = promisify(execFile);
    try {
      for (const args of [
        [tsxCli, script],
        ['--import', 'tsx', script],
        // And without tsx where Node strips types itself (Node 24).
        ...(nativeTypeStripping ? [[script]] : []),
      ]) {
        const { stdout } = await run(process.execPath, args, {
          cwd: new URL('../..', import.meta.url).pathname,
        });
        assert.ok(Number(stdout) > 100, `${args.join(' ')} printed ${stdout}`);
      }
    } finally {
      await rm(script, { force: true });
    }
  });
});
