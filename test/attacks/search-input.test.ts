// Attacks on search requests that once held the API's event loop for 20-60 s each (a second
// pair of eyes, 2026-12-07), replayed through the HTTP API against a real worker and Redis. Each
// is refused with a 400 naming the field before any work, or answered with bounded work.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MAX_FILTER_CONDITIONS } from '../../shared/filter-tree.ts';
import { MAX_PHRASE_TOKENS } from '../../shared/search/request.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

/** The field an error answer names (`{ error: { code, message, field } }`). */
const fieldOf = (body: Record<string, unknown>) => (body.error as { field?: string } | undefined)?.field;

describe('attacks: search requests', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  // Documents of one word repeated: every start position of a phrase of it matches.
  const documents = [
    { id: 'a', body: 'the '.repeat(20_000), price: 1 },
    { id: 'b', body: 'the '.repeat(20_000), price: 2 },
    { id: 'c', body: 'the cat sat on the mat', price: 3 },
  ];

  before(async () => {
    redis = await startRedis();
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url } });
    const res = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/words?wait=30000',
      payload: { documents, idField: 'id', fields: ['body'], store: ['body'], filterable: ['price'] },
    });
    assert.equal(res.statusCode, 200, res.body);
  });
  after(async () => {
    await sys?.close();
    await redis?.stop();
  });

  async function search(body: unknown, collection = 'words') {
    const res = await sys.app.inject({
      method: 'POST',
      url: `/v1/indexes/${collection}/search`,
      payload: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    });
    return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> };
  }

  test('a phrase of 1,000 tokens (was 22 s of one request): 400 naming q; the bound itself answers', async () => {
    const long = await search({ q: `"${'the '.repeat(1000)}"` });
    assert.equal(long.status, 400);
    assert.equal(fieldOf(long.body), 'q');
    // Negated phrases count too.
    const negated = await search({ q: `cat -"${'the '.repeat(MAX_PHRASE_TOKENS + 1)}"` });
    assert.equal(negated.status, 400);
    assert.equal(fieldOf(negated.body), 'q');
    // At the bound, a phrase of the repeated word matches where it should (every start of a
    // run of 64 in 20,000), read forward once per token instead of searched at every start.
    const atBound = await search({ q: `"${'the '.repeat(MAX_PHRASE_TOKENS)}"`, k: 10 });
    assert.equal(atBound.status, 200, JSON.stringify(atBound.body));
    assert.deepEqual((atBound.body.hits as { id: string }[]).map((h) => h.id).sort(), ['a', 'b']);
    assert.equal(atBound.body.total, 2);
    const short = await search({ q: '"the mat"' });
    assert.deepEqual(
      (short.body.hits as { id: string }[]).map((h) => h.id),
      ['c'],
    );
  });

  test('a highlight field or facet listed twice (64 times: 51 s): 400 naming the repeat', async () => {
    const highlight = await search({ q: 'cat', highlight: { fields: ['body', 'body'] } });
    assert.equal(highlight.status, 400);
    assert.equal(fieldOf(highlight.body), 'highlight.fields.1');
    const facets = await search({ q: 'cat', facets: ['price', 'price'] });
    assert.equal(facets.status, 400);
    assert.equal(fieldOf(facets.body), 'facets.1');
  });

  test('a filter of 64 × 64 × 64 conditions (61 s): 400 at the first condition past the bound', async () => {
    const leaf = { column: 'price', op: 'between', value: [2, 3] };
    const wide = {
      or: Array.from({ length: 64 }, () => ({
        or: Array.from({ length: 64 }, () => ({ or: Array(64).fill(leaf) })),
      })),
    };
    const res = await search({ q: '', filter: wide });
    assert.equal(res.status, 400, JSON.stringify(res.body).slice(0, 300));
    // 256 conditions fit in 4 × 64; the 257th is the first of the fifth group of 64.
    assert.equal(fieldOf(res.body), 'filter.or.0.or.4.or.0');
    // At the bound: answered, and exactly.
    const fits = {
      or: Array.from({ length: 4 }, () => ({ or: Array(MAX_FILTER_CONDITIONS / 4).fill(leaf) })),
    };
    const ok = await search({ q: '', filter: fits, k: 10 });
    assert.equal(ok.status, 200, JSON.stringify(ok.body).slice(0, 300));
    assert.equal(ok.body.total, 2);
    // The same bound holds for aggregation filters (one grammar).
    const agg = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations',
      payload: JSON.stringify({
        dataset: { records: [{ price: 1 }] },
        groupBy: ['price'],
        metrics: [{ op: 'count' }],
        filters: [wide],
      }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(agg.statusCode, 400);
    assert.equal(fieldOf(JSON.parse(agg.body)), 'filters.0.or.0.or.4.or.0');
  });

  test('fields named constructor, toString and __proto__ are fields like others (were NaN scores, refused builds, dropped facets)', async () => {
    const docs = [
      { id: '1', title: 'zebra', constructor: 'striped horse', color: '__proto__', __proto__x: 1 },
      { id: '2', title: 'zebra crossing', constructor: 'road', color: '__proto__' },
      { id: '3', title: 'lion', color: 'tan' },
    ].map((d) => {
      // A real own `__proto__` field, as JSON.parse makes from the request text.
      const withProto = JSON.parse(JSON.stringify(d).replace('"__proto__x"', '"__proto__"'));
      return withProto as Record<string, unknown>;
    });
    const built = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/protos?wait=30000',
      payload: JSON.stringify({
        documents: docs,
        idField: 'id',
        fields: ['title', 'constructor', 'toString'],
        store: ['title', '__proto__'],
        filterable: ['color', 'valueOf'],
      }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(built.statusCode, 200, built.body);
    const res = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/protos/search',
      payload: JSON.stringify({
        q: 'zebra',
        facets: ['color'],
        highlight: { fields: ['title', '__proto__'] },
      }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(res.statusCode, 200, res.body);
    const body = JSON.parse(res.body) as {
      hits: { id: string; score: number; fields: Record<string, unknown> }[];
      total: number;
      facets: Record<string, Record<string, number>>;
    };
    assert.deepEqual(body.hits.map((h) => h.id).sort(), ['1', '2']);
    for (const h of body.hits) assert.ok(Number.isFinite(h.score) && h.score > 0, `score ${h.score}`);
    assert.ok(Object.hasOwn(body.facets.color!, '__proto__'), JSON.stringify(body.facets));
    assert.equal(Object.getOwnPropertyDescriptor(body.facets.color!, '__proto__')?.value, 2);
    const first = body.hits.find((h) => h.id === '1')!;
    assert.ok(Object.hasOwn(first.fields, '__proto__'), JSON.stringify(first.fields));
    assert.equal(Object.getOwnPropertyDescriptor(first.fields, '__proto__')?.value, 1);
    // A word of the `constructor` field scores like a word of any field.
    const ctor = await search({ q: 'striped' }, 'protos');
    assert.deepEqual(
      (ctor.body.hits as { id: string }[]).map((h) => h.id),
      ['1'],
    );
  });

  test('prefix expands the last word even when it came earlier too ("ap pear ap" was 0 hits)', async () => {
    const built = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/fruit?wait=30000',
      payload: JSON.stringify({
        documents: [
          { id: '1', text: 'pear and apple' },
          { id: '2', text: 'pear and apricot' },
          { id: '3', text: 'pear alone' },
        ],
        idField: 'id',
        fields: ['text'],
      }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(built.statusCode, 200, built.body);
    for (const q of ['pear ap', 'ap pear ap']) {
      const post = await search({ q, prefix: true, mode: 'all' }, 'fruit');
      assert.deepEqual((post.body.hits as { id: string }[]).map((h) => h.id).sort(), ['1', '2'], `POST ${q}`);
      const get = await sys.app.inject({
        method: 'GET',
        url: `/v1/indexes/fruit/search?q=${encodeURIComponent(q)}&prefix=true&mode=all`,
      });
      assert.deepEqual(
        (JSON.parse(get.body).hits as { id: string }[]).map((h) => h.id).sort(),
        ['1', '2'],
        `GET ${q}: ${get.body}`,
      );
    }
  });

  test('a page of 1,000 highlighted hits with 500-word snippets (~1 s) lets the event loop run meanwhile', async () => {
    const text = Array.from({ length: 1200 }, (_, i) => (i % 7 === 0 ? 'the' : `word${i % 97}`)).join(' ');
    const built = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/heavy?wait=30000',
      payload: JSON.stringify({
        documents: Array.from({ length: 1000 }, (_, i) => ({ id: String(i), b: `${text} ${i}` })),
        idField: 'id',
        fields: ['b'],
        store: ['b'],
      }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(built.statusCode, 200, built.body.slice(0, 300));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 2);
    const t0 = performance.now();
    const res = await search(
      { q: 'the', k: 1000, highlight: { fields: ['b'] }, snippet: { field: 'b', words: 500 } },
      'heavy',
    );
    const ms = performance.now() - t0;
    clearInterval(timer);
    assert.equal(res.status, 200);
    assert.equal((res.body.hits as unknown[]).length, 1000);
    const first = (res.body.hits as { highlights: { b: string }; snippet: string }[])[0]!;
    assert.ok(first.highlights.b.includes('<em>the</em>') && first.snippet.includes('<em>the</em>'));
    // Made all at once, the page held the loop for its whole time: a timer fired before and after.
    assert.ok(ms > 40, `the page took ${ms} ms: too light to tell`);
    assert.ok(ticks >= 5, `a 2 ms timer fired ${ticks} times in ${Math.round(ms)} ms`);
  });
});
