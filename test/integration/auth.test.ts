// API keys and tenants: 401 without a valid key, 403 without the scope, 429 past the rate; a
// tenant sees only its own jobs, results and collections (anything else is a 404); without
// keys the API refuses to serve on a non-loopback address.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildApp } from '../../api/app.ts';
import { silentLogger } from '../../shared/logger.ts';
import { tsExecArgv } from '../../shared/ts-runtime.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const KEYS = {
  alpha: 'alpha-key-0123456789abcdef',
  beta: 'beta-key-0123456789abcdef',
  reader: 'reader-key-0123456789abcdef',
};
const API_KEYS = JSON.stringify([
  { key: KEYS.alpha, tenant: 'alpha', scopes: ['enqueue', 'read'] },
  { key: KEYS.beta, tenant: 'beta', scopes: ['enqueue', 'read'] },
  { key: KEYS.reader, tenant: 'alpha', scopes: ['read'] },
]);
const spec = {
  dataset: {
    records: [
      { g: 'a', v: 1 },
      { g: 'b', v: 2 },
      { g: 'a', v: 5 },
    ],
  },
  groupBy: ['g'],
  metrics: [{ op: 'sum', column: 'v' }],
};
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

describe('API keys and tenants', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  before(async () => {
    redis = await startRedis();
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_API_KEYS: API_KEYS } });
  });
  after(async () => {
    await sys?.close();
    await redis?.stop();
  });

  test('401 without a valid key, 403 without the scope; health needs no key', async () => {
    const none = await sys.app.inject({ method: 'POST', url: '/v1/aggregations', payload: spec });
    assert.equal(none.statusCode, 401);
    assert.equal(none.json().error.code, 'QUARRY_ERR_UNAUTHORIZED');
    const wrong = await sys.app.inject({
      method: 'GET',
      url: '/v1/jobs/agg-0000000000000000',
      headers: bearer(`${KEYS.alpha}x`),
    });
    assert.equal(wrong.statusCode, 401);
    const readOnly = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations',
      payload: spec,
      headers: bearer(KEYS.reader),
    });
    assert.equal(readOnly.statusCode, 403);
    assert.equal(readOnly.json().error.code, 'QUARRY_ERR_FORBIDDEN');
    assert.equal((await sys.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
  });

  test('a tenant sees only its own jobs, results and collections', async () => {
    const a = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations?wait=20000',
      payload: spec,
      headers: bearer(KEYS.alpha),
    });
    assert.equal(a.statusCode, 200, a.body);
    const resultKey = a.json().resultKey as string;
    const jobId = `agg-${resultKey}`;
    // Same tenant, another key with read scope: sees it.
    assert.equal(
      (await sys.app.inject({ method: 'GET', url: `/v1/jobs/${jobId}`, headers: bearer(KEYS.reader) }))
        .statusCode,
      200,
    );
    assert.equal(
      (await sys.app.inject({ method: 'GET', url: `/v1/results/${resultKey}`, headers: bearer(KEYS.reader) }))
        .statusCode,
      200,
    );
    // Another tenant: 404 for the job, the result and the events.
    for (const url of [`/v1/jobs/${jobId}`, `/v1/results/${resultKey}`, `/v1/jobs/${jobId}/events`]) {
      const res = await sys.app.inject({ method: 'GET', url, headers: bearer(KEYS.beta) });
      assert.equal(res.statusCode, 404, url);
    }
    const cancel = await sys.app.inject({
      method: 'DELETE',
      url: `/v1/jobs/${jobId}`,
      headers: bearer(KEYS.beta),
    });
    assert.equal(cancel.statusCode, 404);
    // The same spec from the other tenant is its own job, computed for it.
    const b = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations?wait=20000',
      payload: spec,
      headers: bearer(KEYS.beta),
    });
    assert.equal(b.statusCode, 200);
    assert.equal(b.headers['x-quarry-cache'], 'miss', 'no cache shared across tenants');
    assert.notEqual(b.json().resultKey, resultKey);
    assert.deepEqual(b.json().rows, a.json().rows);

    const built = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/docs?wait=20000',
      payload: { documents: [{ id: '1', text: 'hello tenant' }], idField: 'id', fields: ['text'] },
      headers: bearer(KEYS.alpha),
    });
    assert.equal(built.statusCode, 200, built.body);
    const found = await sys.app.inject({
      method: 'GET',
      url: '/v1/indexes/docs/search?q=hello',
      headers: bearer(KEYS.reader),
    });
    assert.equal(found.statusCode, 200);
    assert.equal(found.json().hits[0].id, '1');
    for (const url of ['/v1/indexes/docs/search?q=hello', '/v1/indexes/docs']) {
      const res = await sys.app.inject({ method: 'GET', url, headers: bearer(KEYS.beta) });
      assert.equal(res.statusCode, 404, url);
    }
  });

  test("operators' routes need admin; the API docs are public", async () => {
    const admin = 'admin-key-0123456789abcdef';
    const withAdmin = buildApp({
      config: {
        ...sys.config,
        apiKeys: [...sys.config.apiKeys, { key: admin, tenant: 'ops', scopes: ['admin'] }],
      },
      client: sys.client,
      registry: await sys.client.indexRegistry(),
      logger: silentLogger(),
    });
    try {
      for (const url of ['/metrics', '/admin/queues/api/queues']) {
        assert.equal(
          (await withAdmin.inject({ method: 'GET', url, headers: bearer(KEYS.alpha) })).statusCode,
          403,
          url,
        );
        assert.equal((await withAdmin.inject({ method: 'GET', url })).statusCode, 401, url);
        // The dashboard answers 503 until its own Redis connection is up: poll briefly.
        let status = 0;
        for (const end = Date.now() + 5000; Date.now() < end && status !== 200; ) {
          status = (await withAdmin.inject({ method: 'GET', url, headers: bearer(admin) })).statusCode;
          if (status === 503) await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.equal(status, 200, url);
      }
      assert.equal((await withAdmin.inject({ method: 'GET', url: '/openapi.json' })).statusCode, 200);
    } finally {
      await withAdmin.close();
    }
  });

  test('429 with Retry-After past the per-key rate', async () => {
    const limited = buildApp({
      config: { ...sys.config, rateLimitPerSecond: 1, rateLimitBurst: 2 },
      client: sys.client,
      registry: await sys.client.indexRegistry(),
      logger: silentLogger(),
    });
    try {
      const codes: number[] = [];
      let retryAfter: unknown;
      for (let i = 0; i < 4; i++) {
        const res = await limited.inject({
          method: 'GET',
          url: '/v1/jobs/agg-0000000000000000',
          headers: bearer(KEYS.beta),
        });
        codes.push(res.statusCode);
        if (res.statusCode === 429) retryAfter = res.headers['retry-after'];
      }
      assert.deepEqual(codes.slice(0, 2), [404, 404]);
      assert.ok(codes.slice(2).includes(429), codes.join(','));
      assert.ok(Number(retryAfter) >= 1);
      // Another key has its own budget.
      const other = await limited.inject({
        method: 'GET',
        url: '/v1/jobs/agg-0000000000000000',
        headers: bearer(KEYS.alpha),
      });
      assert.equal(other.statusCode, 404);
    } finally {
      await limited.close();
    }
  });

  test('without keys the API refuses a non-loopback address', async () => {
    const child = spawn(process.execPath, [...tsExecArgv(), 'api/main.ts'], {
      cwd: path.resolve(import.meta.dirname, '../..'),
      env: {
        ...process.env,
        QUARRY_API_HOST: '0.0.0.0',
        QUARRY_QUEUE_REDIS_URL: redis.url,
        QUARRY_API_KEYS: '',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => {
      output += c;
    });
    const code = await new Promise((resolve) => child.once('exit', resolve));
    assert.equal(code, 1);
    assert.match(output, /refusing to serve without API keys/);
  });
});
