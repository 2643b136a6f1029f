// Hostile webhooks: URLs that aim at the network Quarry runs in (loopback, private, link-local,
// cloud metadata, IPv4-mapped and NAT64 IPv6, numeric spellings of 127.0.0.1, other schemes,
// credentials) are refused with a 400 naming `url`; a receiver's redirect to an internal address
// is not followed; a URL registered while allowed is checked again when it is delivered to (a
// worker that does not allow it sends nothing); a huge answer is read only up to its bound;
// bad bodies get a 400 naming the field; webhooks are a scope of their own and per tenant.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { silentLogger } from '../../shared/logger.ts';
import { startWorker } from '../../workers/worker.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem, testConfig } from '../helpers/system.ts';
import { startReceiver } from '../helpers/webhook-receiver.ts';

const SECRET = 'hostile-secret-0123456789';
const put = (sys: TestSystem, name: string, payload: unknown, headers: Record<string, string> = {}) =>
  sys.app.inject({ method: 'PUT', url: `/v1/webhooks/${name}`, payload: payload as object, headers });

async function deliveriesOf(sys: TestSystem, name: string, until: (d: Record<string, unknown>[]) => boolean) {
  for (let i = 0; i < 400; i++) {
    const list = ((await sys.client.webhooks.deliveries(name)) ?? []) as unknown as Record<string, unknown>[];
    if (until(list)) return list;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the deliveries of ${name} never reached the expected state`);
}

const job = (sys: TestSystem, a: number) =>
  sys.client.aggregate({ dataset: { records: [{ a }] }, metrics: [{ op: 'sum', column: 'a' }] });

describe('attacks on webhooks', () => {
  let redis: RedisServer;
  let raw: Redis;
  before(async () => {
    redis = await startRedis();
    raw = new Redis(redis.url);
  });
  after(async () => {
    raw?.disconnect();
    await redis?.stop();
  });

  test('internal addresses and other schemes are refused at registration, naming url', async () => {
    const inside = await startReceiver();
    const sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url }, worker: false });
    try {
      const p = inside.port;
      const internal = [
        `http://127.0.0.1:${p}/hook`,
        `http://localhost:${p}/hook`,
        `http://LOCALHOST.:${p}/hook`,
        `http://[::1]:${p}/hook`,
        `http://[::ffff:127.0.0.1]:${p}/hook`,
        `http://[::ffff:7f00:1]:${p}/hook`,
        `http://2130706433:${p}/hook`,
        `http://0x7f000001:${p}/hook`,
        `http://127.1:${p}/hook`,
        'http://0.0.0.0/',
        'http://10.1.2.3/',
        'http://172.16.0.1/',
        'http://192.168.1.1/',
        'http://100.64.0.1/',
        'http://169.254.169.254/latest/meta-data/',
        'http://[fe80::1]/',
        'http://[fd00::1]/',
        'http://[::ffff:a9fe:a9fe]/',
        'http://[64:ff9b::a9fe:a9fe]/',
        'http://224.0.0.1/',
        'https://255.255.255.255/',
      ];
      const schemes = [
        'ftp://example.com/hook',
        'file:///etc/passwd',
        `gopher://127.0.0.1:${p}/_INFO`,
        'javascript:alert(1)',
        `redis://127.0.0.1:6379`,
        'http://user:secret@example.com/hook',
        'not a url',
      ];
      for (const url of [...internal, ...schemes]) {
        const res = await put(sys, 'evil', { url, events: ['job.completed'], secret: SECRET });
        assert.equal(res.statusCode, 400, `${url}: ${res.body}`);
        const error = res.json().error;
        assert.deepEqual(
          [error.code, error.field],
          ['QUARRY_ERR_WEBHOOK_TARGET', 'url'],
          `${url}: ${res.body}`,
        );
      }
      const long = await put(sys, 'evil', {
        url: `http://example.com/${'a'.repeat(2100)}`,
        events: ['job.completed'],
        secret: SECRET,
      });
      assert.deepEqual([long.statusCode, long.json().error.field], [400, 'url']);
      const list = await sys.app.inject({ method: 'GET', url: '/v1/webhooks' });
      assert.deepEqual(list.json(), { webhooks: [] });
      assert.equal(await raw.exists(`${sys.config.prefix}:webhooks`), 0, 'nothing was stored');
      assert.equal(inside.received.length, 0);
    } finally {
      await sys.close();
      await inside.close();
    }
  });

  test('bad bodies and names get a 400 naming the field; unknown webhooks a 404', async () => {
    const sys = await startSystem({
      env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_WEBHOOK_ALLOW: '127.0.0.1' },
      worker: false,
    });
    try {
      const url = 'http://127.0.0.1:9/hook';
      const cases: [unknown, string][] = [
        [{ url, secret: SECRET }, 'events'],
        [{ url, events: [], secret: SECRET }, 'events'],
        [{ url, events: ['job.started'], secret: SECRET }, 'events.0'],
        [{ url, events: ['job.failed', 'job.failed'], secret: SECRET }, 'events'],
        [{ url, events: ['job.failed'], secret: 'short' }, 'secret'],
        [{ url, events: ['job.failed'] }, 'secret'],
        [{ events: ['job.failed'], secret: SECRET }, 'url'],
        [{ url: 42, events: ['job.failed'], secret: SECRET }, 'url'],
        [{ url, events: ['job.failed'], secret: SECRET, extra: 1 }, 'extra'],
      ];
      for (const [body, field] of cases) {
        const res = await put(sys, 'hook', body);
        assert.equal(res.statusCode, 400, `${JSON.stringify(body)}: ${res.body}`);
        assert.equal(res.json().error.field, field, `${JSON.stringify(body)}: ${res.body}`);
      }
      const badName = await put(sys, 'a%20b', { url, events: ['job.failed'], secret: SECRET });
      assert.deepEqual([badName.statusCode, badName.json().error.field], [400, 'name']);
      for (const [method, path] of [
        ['GET', '/v1/webhooks/nope'],
        ['DELETE', '/v1/webhooks/nope'],
        ['GET', '/v1/webhooks/nope/deliveries'],
      ] as const) {
        const res = await sys.app.inject({ method, url: path });
        assert.deepEqual(
          [res.statusCode, res.json().error.code],
          [404, 'QUARRY_ERR_WEBHOOK_NOT_FOUND'],
          path,
        );
      }
      assert.equal((await put(sys, 'hook', { url, events: ['job.failed'], secret: SECRET })).statusCode, 200);
      const limit = await sys.app.inject({ method: 'GET', url: '/v1/webhooks/hook/deliveries?limit=0' });
      assert.deepEqual([limit.statusCode, limit.json().error.field], [400, 'limit']);
      const got = await sys.app.inject({ method: 'GET', url: '/v1/webhooks/hook' });
      assert.ok(!got.body.includes(SECRET) && got.json().secretHint === `…${SECRET.slice(-4)}`, got.body);
    } finally {
      await sys.close();
    }
  });

  test('at most 20 webhooks a tenant, even when 30 PUTs race; a replacement keeps createdAt', async () => {
    const sys = await startSystem({
      env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_WEBHOOK_ALLOW: '127.0.0.1' },
      worker: false,
    });
    try {
      const body = (i: number) => ({
        url: `http://127.0.0.1:9/h${i}`,
        events: ['job.failed'],
        secret: SECRET,
      });
      const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => put(sys, `h${i}`, body(i))));
      const codes = answers.map((a) => a.statusCode);
      assert.equal(codes.filter((c) => c === 200).length, 20, codes.join(','));
      for (const a of answers.filter((x) => x.statusCode !== 200)) {
        assert.deepEqual([a.statusCode, a.json().error.code], [409, 'QUARRY_ERR_WEBHOOK_LIMIT']);
      }
      assert.equal((await sys.client.webhooks.list()).length, 20);
      const kept = answers.find((a) => a.statusCode === 200)!.json();
      await new Promise((r) => setTimeout(r, 5));
      const replaced = await put(sys, kept.name, { ...body(99), events: ['job.completed'] });
      assert.equal(replaced.statusCode, 200, 'replacing one at the limit is allowed');
      assert.deepEqual(
        [replaced.json().createdAt, replaced.json().events, replaced.json().url],
        [kept.createdAt, ['job.completed'], 'http://127.0.0.1:9/h99'],
      );
      assert.notEqual(replaced.json().updatedAt, kept.updatedAt);
    } finally {
      await sys.close();
    }
  });

  test('a redirect to an internal address is not followed; a huge answer is read only up to its bound', async () => {
    const internal = await startReceiver();
    const redirecting = await startReceiver(() => ({
      status: 302,
      headers: { location: `http://127.0.0.1:${internal.port}/internal` },
    }));
    const huge = await startReceiver(() => ({ status: 200, body: 'x'.repeat(4 * 1024 * 1024) }));
    const sys = await startSystem({
      env: {
        QUARRY_QUEUE_REDIS_URL: redis.url,
        QUARRY_WEBHOOK_ALLOW: '127.0.0.1',
        QUARRY_WEBHOOK_FIRST_RETRY_MS: '100',
        QUARRY_WEBHOOK_TIMEOUT_MS: '2000',
      },
    });
    try {
      for (const [name, url] of [
        ['redirect', redirecting.url],
        ['huge', huge.url],
      ] as const) {
        assert.equal(
          (await put(sys, name, { url, events: ['job.completed'], secret: SECRET })).statusCode,
          200,
        );
      }
      await (await job(sys, 11)).wait({ timeoutMs: 10_000 });
      const redirects = await deliveriesOf(
        sys,
        'redirect',
        (d) => Number(d[0]?.attempts ?? 0) >= 2 && d[0]?.lastStatus === 302,
      );
      assert.equal(redirects[0]!.status, 'pending', 'a 3xx is a failed attempt, retried');
      assert.match(String(redirects[0]!.lastError), /^redirect not followed \(HTTP 302/);
      assert.equal(internal.received.length, 0, 'the redirect target was never asked');
      const big = await deliveriesOf(sys, 'huge', (d) => d[0]?.status === 'delivered');
      assert.ok(
        String(big[0]!.lastBody).length <= 1024,
        `kept ${String(big[0]!.lastBody).length} characters`,
      );
    } finally {
      await sys.close();
      for (const r of [internal, redirecting, huge]) await r.close();
    }
  });

  test('a URL allowed when registered is checked again at delivery: a worker that does not allow it sends nothing', async () => {
    const inside = await startReceiver();
    const api = await startSystem({
      env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_WEBHOOK_ALLOW: '127.0.0.0/8' },
      worker: false,
    });
    // The same prefix, without QUARRY_WEBHOOK_ALLOW: as if the name now resolved to loopback.
    const strict = testConfig({
      QUARRY_QUEUE_REDIS_URL: redis.url,
      QUARRY_PREFIX: api.config.prefix,
      QUARRY_WEBHOOK_FIRST_RETRY_MS: '100',
    });
    const worker = await startWorker(strict, silentLogger());
    try {
      await worker.ready;
      assert.equal(
        (await put(api, 'inside', { url: inside.url, events: ['job.completed'], secret: SECRET })).statusCode,
        200,
      );
      await (await job(api, 12)).wait({ timeoutMs: 10_000 });
      const d = await deliveriesOf(api, 'inside', (list) => Number(list[0]?.attempts ?? 0) >= 2);
      assert.match(String(d[0]!.lastError), /private, loopback or link-local/);
      assert.equal(d[0]!.lastStatus, null);
      assert.equal(inside.received.length, 0);
    } finally {
      await worker.close();
      await api.close();
      await inside.close();
    }
  });

  test('webhooks need the webhooks scope (or admin) and are per tenant', async () => {
    const keys = [
      { key: 'hooks-read-0123456789abcdef', tenant: 'acme', scopes: ['read', 'enqueue'] },
      { key: 'hooks-acme-0123456789abcdef', tenant: 'acme', scopes: ['webhooks', 'enqueue'] },
      { key: 'hooks-beta-0123456789abcdef', tenant: 'beta', scopes: ['webhooks', 'enqueue'] },
    ];
    const acmeReceiver = await startReceiver();
    const betaReceiver = await startReceiver();
    const sys = await startSystem({
      env: {
        QUARRY_QUEUE_REDIS_URL: redis.url,
        QUARRY_API_KEYS: JSON.stringify(keys),
        QUARRY_WEBHOOK_ALLOW: '127.0.0.1',
      },
    });
    const as = (i: number) => ({ authorization: `Bearer ${keys[i]!.key}` });
    try {
      const body = (url: string) => ({ url, events: ['job.completed'], secret: SECRET });
      const denied = await put(sys, 'h', body(acmeReceiver.url), as(0));
      assert.deepEqual([denied.statusCode, denied.json().error.code], [403, 'QUARRY_ERR_FORBIDDEN']);
      const list = await sys.app.inject({ method: 'GET', url: '/v1/webhooks', headers: as(0) });
      assert.equal(list.statusCode, 403, 'reading webhooks needs the scope too');
      assert.equal((await put(sys, 'h', body(acmeReceiver.url), as(1))).statusCode, 200);
      assert.equal(
        (await put(sys, 'h', body(betaReceiver.url), as(2))).statusCode,
        200,
        'the same name, another tenant',
      );
      const betaSees = await sys.app.inject({ method: 'GET', url: '/v1/webhooks/h', headers: as(2) });
      assert.equal(betaSees.json().url, betaReceiver.url);
      // Each tenant's job reaches its own receiver only.
      const enqueue = (i: number, a: number) =>
        sys.app.inject({
          method: 'POST',
          url: '/v1/aggregations',
          headers: as(i),
          payload: { dataset: { records: [{ a }] }, metrics: [{ op: 'sum', column: 'a' }] },
        });
      const acmeJob = (await enqueue(1, 21)).json().jobId;
      const betaJob = (await enqueue(2, 22)).json().jobId;
      const [a] = await acmeReceiver.waitFor(1);
      const [b] = await betaReceiver.waitFor(1);
      assert.equal(JSON.parse(a!.body).jobId, acmeJob);
      assert.equal(JSON.parse(b!.body).jobId, betaJob);
      await deliveriesOf(sys, 'h', () => true);
      assert.equal(acmeReceiver.received.length, 1);
      assert.equal(betaReceiver.received.length, 1);
    } finally {
      await sys.close();
      await acmeReceiver.close();
      await betaReceiver.close();
    }
  });
});
