// Attacks on the job history, redrive and activity across tenants, through the API with API keys
// on: tenant beta must never list, page into, retry or count tenant alpha's jobs, whatever
// filters, cursors (alpha's own) or `all=true` it sends; only an admin key sees every tenant.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ApiScope } from '../../shared/config.ts';
import type { JobStatus } from '../../shared/status.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const KEYS = {
  alpha: { key: 'hist-alpha-0123456789abcdef', tenant: 'alpha', scopes: ['read', 'enqueue'] },
  beta: { key: 'hist-beta-0123456789abcdef', tenant: 'beta', scopes: ['read', 'enqueue'] },
  admin: { key: 'hist-admin-0123456789abcdef', tenant: 'ops', scopes: ['admin'] },
} as const satisfies Record<string, { key: string; tenant: string; scopes: readonly ApiScope[] }>;
type Who = keyof typeof KEYS;

const spec = (v: number) => ({ dataset: { records: [{ v }] }, metrics: [{ op: 'sum', column: 'v' }] });

describe('attacks on job history across tenants', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  const alphaJobs: string[] = [];
  const betaJobs: string[] = [];

  const call = (who: Who, method: 'GET' | 'POST', url: string) =>
    sys.app.inject({ method, url, headers: { authorization: `Bearer ${KEYS[who].key}` } });
  const ids = (body: { jobs: JobStatus[] }) => body.jobs.map((j) => j.jobId);

  before(async () => {
    redis = await startRedis();
    sys = await startSystem({
      env: {
        QUARRY_QUEUE_REDIS_URL: redis.url,
        QUARRY_API_KEYS: JSON.stringify(Object.values(KEYS)),
        QUARRY_RATE_LIMIT_RPS: '0',
      },
    });
    for (const [who, list, n] of [
      ['alpha', alphaJobs, 4],
      ['beta', betaJobs, 2],
    ] as const) {
      // The same specs in both tenants: different result keys, so different job ids.
      for (let i = 0; i < n; i++) {
        const res = await sys.app.inject({
          method: 'POST',
          url: '/v1/aggregations?wait=20000',
          payload: spec(i),
          headers: { authorization: `Bearer ${KEYS[who].key}` },
        });
        assert.equal(res.statusCode, 200, res.body);
        list.push(`agg-${res.json().resultKey}`);
      }
    }
    // One cancelled job of alpha's (a retry target): the one beta will try to retry.
    const failing = await sys.client.forTenant('alpha').aggregate(spec(99));
    await sys.client.forTenant('alpha').cancel(failing.jobId);
    await sys.client.forTenant('alpha').waitForJob(failing.jobId, { timeoutMs: 20_000 });
    alphaJobs.push(failing.jobId);
  });

  after(async () => {
    await sys?.close();
    await redis?.stop();
  });

  test("a tenant lists only its own jobs, with or without filters, and an admin sees every tenant's", async () => {
    const alpha = await call('alpha', 'GET', '/v1/jobs?limit=500');
    assert.equal(alpha.statusCode, 200, alpha.body);
    assert.deepEqual(new Set(ids(alpha.json())), new Set(alphaJobs));
    const beta = await call('beta', 'GET', '/v1/jobs?limit=500');
    assert.deepEqual(new Set(ids(beta.json())), new Set(betaJobs));
    for (const query of [
      'state=cancelled',
      'errorCode=QUARRY_ERR_JOB_CANCELLED',
      'type=aggregate',
      'limit=1',
    ]) {
      const res = await call('beta', 'GET', `/v1/jobs?${query}`);
      assert.equal(res.statusCode, 200, res.body);
      for (const id of ids(res.json())) assert.ok(betaJobs.includes(id), `${query}: ${id} is not beta's`);
    }
    const forbidden = await call('beta', 'GET', '/v1/jobs?all=true');
    assert.equal(forbidden.statusCode, 403, forbidden.body);
    assert.equal(forbidden.json().error.code, 'QUARRY_ERR_FORBIDDEN');
    const admin = await call('admin', 'GET', '/v1/jobs?all=true&limit=500');
    assert.equal(admin.statusCode, 200, admin.body);
    assert.deepEqual(new Set(ids(admin.json())), new Set([...alphaJobs, ...betaJobs]));
    const adminOwn = await call('admin', 'GET', '/v1/jobs');
    assert.deepEqual(adminOwn.json().jobs, [], "without all=true the admin key sees its own tenant's");
  });

  test("alpha's cursor walks beta's history only, never alpha's", async () => {
    const first = await call('alpha', 'GET', '/v1/jobs?limit=1');
    const cursor = first.json().nextCursor as string;
    assert.ok(cursor);
    const res = await call('beta', 'GET', `/v1/jobs?limit=500&cursor=${cursor}`);
    assert.equal(res.statusCode, 200, res.body);
    for (const id of ids(res.json())) assert.ok(betaJobs.includes(id), `${id} is not beta's`);
  });

  test("another tenant's job cannot be retried (404, as an unknown one) and stays as it was", async () => {
    const target = alphaJobs.at(-1)!;
    // Cancelled, or completed when the worker was faster than the cancellation.
    const before = await sys.client.forTenant('alpha').status(target);
    const res = await call('beta', 'POST', `/v1/jobs/${target}/retry`);
    assert.equal(res.statusCode, 404, res.body);
    assert.equal(res.json().error.code, 'QUARRY_ERR_JOB_NOT_FOUND');
    assert.deepEqual(await sys.client.forTenant('alpha').status(target), before);
    const readOnly = await sys.app.inject({
      method: 'POST',
      url: `/v1/jobs/${target}/retry`,
      headers: { authorization: 'Bearer nope' },
    });
    assert.equal(readOnly.statusCode, 401);
  });

  test("activity counts a tenant's own jobs; all=true (admin) sums every tenant", async () => {
    const total = (body: { minutes: { completed: number; cancelled: number }[] }) =>
      body.minutes.reduce((n, m) => n + m.completed + m.cancelled, 0);
    const alpha = await call('alpha', 'GET', '/v1/activity');
    assert.equal(alpha.statusCode, 200, alpha.body);
    assert.equal(total(alpha.json()), alphaJobs.length);
    const beta = await call('beta', 'GET', '/v1/activity');
    assert.equal(total(beta.json()), betaJobs.length);
    assert.equal((await call('beta', 'GET', '/v1/activity?all=true')).statusCode, 403);
    const admin = await call('admin', 'GET', '/v1/activity?all=true');
    assert.equal(total(admin.json()), alphaJobs.length + betaJobs.length);
  });
});
