// An update built from its base version's index (shared/search/build-update.ts) against the oracle
// it must equal: a full build of the updated document list (applyChanges), byte for byte, and the
// kept documents JSON.stringify writes of that list. Generated collections mix boosts that are not
// whole numbers, arrays, numbers and booleans in indexed fields, unicode terms, typed columns,
// both analyzers and typo keys; the changes replace, add, repeat and delete ids, known or not.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { QuarryError } from '../../shared/errors.ts';
import {
  applyChanges,
  type DocumentChanges,
  decodeDocuments,
  encodeDocuments,
  project,
  projectedFields,
} from '../../shared/index-documents.ts';
import { buildUpdate } from '../../shared/search/build-update.ts';
import { buildExtendedIndex } from '../../shared/search/extension.ts';

const WORDS = [
  'apple',
  'apples',
  'running',
  'runs',
  'run',
  'Zoë',
  'naïve',
  'über',
  '日本',
  'x1',
  'a',
  'the',
  '😀ok',
];
const text = fc.array(fc.constantFrom(...WORDS), { maxLength: 12 }).map((words) => words.join(' '));
const indexed = fc.oneof(
  { weight: 6, arbitrary: text },
  { weight: 1, arbitrary: fc.array(text, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.integer({ min: -5, max: 50 }) },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
);
const tag = fc.oneof(fc.constantFrom('red', 'green', 'blue'), fc.constant(null), fc.constant(undefined));
const idArb = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'));

/** Changed documents may also be ones a build refuses: an object to index, a number in a column of strings. */
const hostile = <T>(valid: fc.Arbitrary<T>, bad: unknown) =>
  fc.oneof({ weight: 12, arbitrary: valid }, { weight: 1, arbitrary: fc.constant(bad) });

function docArb(id: fc.Arbitrary<string | number>, changed = false) {
  return fc.record({
    id,
    title: indexed,
    body: changed ? hostile(indexed, { a: 1 }) : indexed,
    tag: changed ? hostile(tag, 7) : tag,
    n: fc.oneof(fc.double({ min: -100, max: 100, noNaN: true }), fc.constant(undefined)),
    extra: fc.string({ maxLength: 3 }),
  });
}

const settings = fc.record({
  analyzer: fc.constantFrom('unicode-words-v1' as const, 'english' as const),
  boosts: fc.oneof(fc.constant({}), fc.constant({ title: 1.7 }), fc.constant({ title: 0.3, body: 2.1 })),
  store: fc.constantFrom([], ['title'], ['tag', 'extra']),
  filterable: fc.constantFrom(undefined, ['tag'], ['tag', 'n']),
  sortable: fc.constantFrom(undefined, ['n']),
  typos: fc.boolean(),
});

/** Documents with distinct ids (later repeats dropped), as a full build requires. */
function distinct<T extends { id: string | number }>(docs: T[]): T[] {
  const seen = new Set<string>();
  return docs.filter((d) => !seen.has(String(d.id)) && seen.add(String(d.id)) !== undefined);
}

function clean(doc: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(doc).filter(([, v]) => v !== undefined));
}

/**
 * The order rule written plainly, apart from changeOrder (which the update and applyChanges share):
 * a base document given again is replaced by the last one given, in place; else a deleted one is
 * dropped; documents with new ids follow in the order their ids first appear, each as given last.
 */
function plainly(
  base: Record<string, unknown>[],
  changes: DocumentChanges,
  idField: string,
  fields: readonly string[],
): object[] {
  const id = (doc: object) => String((doc as Record<string, unknown>)[idField]);
  const last = (key: string) => changes.documents.findLast((doc) => id(doc) === key);
  const out: object[] = [];
  for (const doc of base) {
    const given = last(id(doc));
    if (given !== undefined) out.push(project(given, fields));
    else if (!changes.ids.some((k) => String(k) === id(doc))) out.push(doc);
  }
  const known = new Set(base.map(id));
  for (const doc of changes.documents) {
    if (known.has(id(doc))) continue;
    known.add(id(doc));
    out.push(project(last(id(doc))!, fields));
  }
  return out;
}

async function compare(
  baseDocs: Record<string, unknown>[],
  changes: DocumentChanges,
  options: Parameters<typeof buildExtendedIndex>[1],
): Promise<'same' | 'failed' | 'fallback'> {
  const fields = projectedFields(options);
  const baseBytes = buildExtendedIndex(baseDocs, options);
  const stored = encodeDocuments(baseDocs, fields);
  const kept = JSON.parse(decodeDocuments(stored).toString('utf8')) as Record<string, unknown>[];
  const list = applyChanges(kept, changes, options.idField, fields);
  assert.deepEqual(list, plainly(kept, changes, options.idField, fields), 'the order rule');
  let expected: Uint8Array | QuarryError;
  try {
    expected = buildExtendedIndex(list, options);
  } catch (error) {
    expected = error as QuarryError;
  }
  let actual: Awaited<ReturnType<typeof buildUpdate>> | QuarryError;
  try {
    actual = await buildUpdate(
      { stored, changes, idField: options.idField, fields },
      baseBytes,
      options,
      fields,
    );
  } catch (error) {
    actual = error as QuarryError;
  }
  if (actual === null) return 'fallback';
  if (expected instanceof Error) {
    assert.ok(
      actual instanceof QuarryError,
      `the full build failed (${expected.message}); the update did not`,
    );
    assert.deepEqual(
      [actual.code, actual.field, actual.message],
      [expected.code, expected.field, expected.message],
    );
    return 'failed';
  }
  if (actual instanceof Error) throw actual;
  assert.ok(Buffer.from(actual.bytes).equals(Buffer.from(expected)), 'index bytes differ from a full build');
  assert.equal(decodeDocuments(actual.documents!).toString('utf8'), JSON.stringify(list));
  return 'same';
}

test('an update built from its base index equals a full build of the updated list, byte for byte', async () => {
  let fallbacks = 0;
  let failed = 0;
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(docArb(idArb), { maxLength: 30 }),
      fc.array(docArb(idArb, true), { maxLength: 8 }),
      fc.array(idArb, { maxLength: 6 }),
      settings,
      async (base, upserts, ids, s) => {
        runs++;
        const options = { idField: 'id', fields: ['title', 'body'], ...s };
        const outcome = await compare(
          distinct(base).map(clean),
          { documents: upserts.map(clean), ids },
          Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as typeof options,
        );
        if (outcome === 'fallback') fallbacks++;
        if (outcome === 'failed') failed++;
      },
    ),
    { numRuns: 300 },
  );
  assert.equal(fallbacks, 0, `${fallbacks} of ${runs} bases were not updatable from their index`);
  // Both sides must have been tried: refused changes, and (most) accepted ones.
  assert.ok(failed > 0 && failed < runs / 2, `${failed} of ${runs} updates failed`);
});

test('an update from an update: the chain stays equal to full builds', async () => {
  const options = { idField: 'id', fields: ['title', 'body'], filterable: ['tag'], typos: true };
  const fields = projectedFields(options);
  let docs: Record<string, unknown>[] = Array.from({ length: 200 }, (_, i) => ({
    id: i,
    title: WORDS[i % WORDS.length],
    body: `${WORDS[(i * 7) % WORDS.length]} ${WORDS[(i * 3) % WORDS.length]} ${i}`,
    tag: ['red', 'green', 'blue'][i % 3],
  }));
  let bytes: Uint8Array = buildExtendedIndex(docs, options);
  let stored: Uint8Array = encodeDocuments(docs, fields);
  for (let round = 0; round < 4; round++) {
    const changes = {
      documents: [
        { id: round * 10, title: `revised ${round}`, body: 'new words only here', tag: 'violet' },
        { id: 1000 + round, title: 'appended', body: 'run', tag: 'red' },
      ],
      ids: [round * 10 + 1, round * 10 + 2, 'unknown'],
    };
    const built = await buildUpdate({ stored, changes, idField: 'id', fields }, bytes, options, fields);
    assert.ok(built !== null);
    docs = applyChanges(docs, changes, 'id', fields) as Record<string, unknown>[];
    assert.ok(
      Buffer.from(built.bytes).equals(Buffer.from(buildExtendedIndex(docs, options))),
      `round ${round}`,
    );
    bytes = built.bytes;
    stored = built.documents!;
  }
});

test('a base whose typed column holds arrays is built from its documents (null)', async () => {
  const options = { idField: 'id', fields: ['body'], filterable: ['tags'] };
  const docs = [
    { id: 1, body: 'one', tags: ['a', 'b'] },
    { id: 2, body: 'two', tags: 'a' },
  ];
  const fields = projectedFields(options);
  const built = await buildUpdate(
    { stored: encodeDocuments(docs, fields), changes: { documents: [], ids: [1] }, idField: 'id', fields },
    buildExtendedIndex(docs, options),
    options,
    fields,
  );
  assert.equal(built, null);
});
