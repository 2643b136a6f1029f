// The kept index-build threads: a build past the thread heap limit fails with a code and the
// builder goes on; an aborted build rejects with the abort reason; results equal an in-process
// build.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QuarryError } from '../../shared/errors.ts';
import { buildIndex, loadIndex, search } from '../../shared/search/index.ts';
import { IndexBuilder } from '../../workers/index-builder.ts';

const small = [
  { id: 'a', t: 'red fox jumps' },
  { id: 'b', t: 'lazy brown dog' },
  { id: 'c', t: 'red red wine' },
];

test('a build past the heap limit fails with a code; the builder keeps working', async () => {
  const builder = new IndexBuilder({ size: 1, resourceLimits: { maxOldGenerationSizeMb: 32 } });
  try {
    const huge = JSON.stringify(
      Array.from({ length: 60_000 }, (_, i) => ({ id: String(i), t: `word${i} `.repeat(40) })),
    );
    await assert.rejects(
      builder.build(huge, { idField: 'id', fields: ['t'] }),
      (e: unknown) =>
        e instanceof QuarryError && e.code === 'QUARRY_ERR_INTERNAL' && /memory/.test(e.message),
    );
    const bytes = await builder.build(JSON.stringify(small), { idField: 'id', fields: ['t'] });
    const expected = buildIndex(small, { idField: 'id', fields: ['t'] });
    assert.deepEqual(
      search(loadIndex(bytes), 'red', { k: 3 }).hits.map((h) => [h.id, h.score]),
      search(loadIndex(expected), 'red', { k: 3 }).hits.map((h) => [h.id, h.score]),
    );
  } finally {
    await builder.close();
  }
});

test('an aborted build rejects with the reason; a validation error keeps its code and field', async () => {
  const builder = new IndexBuilder({ size: 1 });
  try {
    const controller = new AbortController();
    const reason = new QuarryError('QUARRY_ERR_JOB_CANCELLED', 'stop');
    const docs = JSON.stringify(
      Array.from({ length: 50_000 }, (_, i) => ({ id: String(i), t: `w${i % 977} x y z` })),
    );
    const running = builder.build(docs, { idField: 'id', fields: ['t'], signal: controller.signal });
    controller.abort(reason);
    await assert.rejects(running, (e: unknown) => e === reason);
    await assert.rejects(
      builder.build(JSON.stringify([{ id: 1 }, { id: 1 }]), { idField: 'id', fields: ['t'] }),
      (e: unknown) => e instanceof QuarryError && e.code === 'QUARRY_ERR_VALIDATION' && e.field !== undefined,
    );
  } finally {
    await builder.close();
  }
});
