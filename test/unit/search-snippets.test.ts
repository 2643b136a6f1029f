// Snippets of array fields (the search attack review, finding 8): the items were joined by a
// space and matched as one text, so a phrase was highlighted across two items, which the index
// never lets it match. Highlights, made item by item, were right.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildExtendedIndex } from '../../shared/search/extension.ts';
import { loadIndex } from '../../shared/search/format.ts';
import { searchRequest } from '../../shared/search/request.ts';

describe('snippets of array fields', () => {
  const index = loadIndex(
    buildExtendedIndex(
      [
        { id: 'a', tags: ['apple green', 'red apple', 'green tea'] },
        { id: 'b', tags: ['red apple', 'green tea'] },
      ],
      { idField: 'id', fields: ['tags'], store: ['tags'] },
    ),
  );
  const ask = (q: string) =>
    searchRequest(index, {
      q,
      snippet: { field: 'tags', words: 20 },
      highlight: { fields: ['tags'], pre: '[', post: ']' },
    });

  it('a phrase is marked only within one item', () => {
    const { hits } = ask('"apple green"');
    assert.deepEqual(
      hits.map((h) => h.id),
      ['a'],
    );
    assert.equal(hits[0]!.snippet, '[apple] [green] red apple green tea');
    assert.deepEqual(hits[0]!.highlights, { tags: ['[apple] [green]', 'red apple', 'green tea'] });
  });

  it('words are marked in every item', () => {
    const { hits } = ask('apple');
    const b = hits.find((h) => h.id === 'b')!;
    assert.equal(b.snippet, 'red [apple] green tea');
  });
});
