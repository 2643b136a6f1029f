// The hit path of GET /v1/results/:resultKey in front of Fastify (api/fast-reads.ts), against
// Fastify itself: the same app listening on a real socket (requests reach the fast path first)
// and through inject() (Fastify's handler alone), request by request. Every answer — status,
// body, headers, the access line, the request-duration metric — must be the same; only an
// authorized cache hit may be answered by the fast path, everything else falls through to
// Fastify untouched (refusals, misses, other formats, queries, HEAD, cookies). Real redis-server,
// real worker, real HTTP.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../api/app.ts';
import { ACCESS_LOG_MESSAGE } from '../../api/request-log.ts';
import { createQuarry, type QuarryClient } from '../../producers/client.ts';
import { createLogger, silentLogger } from '../../shared/logger.ts';
import { createMetrics } from '../../shared/metrics.ts';
import { startWorker, type WorkerHandle } from '../../workers/worker.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { testConfig } from '../helpers/system.ts';

const KEYS = {
  acme: 'fast-acme-key-0123456789abcdef',
  reader: 'fast-reader-key-0123456789abcdef',
  writer: 'fast-writer-key-0123456789abcdef',
  other: 'fast-other-key-0123456789abcdef',
};
const API_KEYS = JSON.stringify([
  { key: KEYS.acme, tenant: 'acme', scopes: ['enqueue', 'read', 'metrics'] },
  { key: KEYS.reader, tenant: 'acme', scopes: ['read'] },
  { key: KEYS.writer, tenant: 'acme', scopes: ['enqueue'] },
  { key: KEYS.other, tenant: 'other', scopes: ['enqueue', 'read'] },
]);
const bearer = (key: string) => `Bearer ${key}`;
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
/** Headers that differ between a socket and inject() by transport, not by the answer. */
const TRANSPORT = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding']);

type Line = Record<string, unknown>;

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

describe('fast result reads', () => {
  let redis: RedisServer;
  let worker: WorkerHandle;
  let client: QuarryClient;
  let app: FastifyInstance;
  let base: string;
  let resultKey: string;
  let env: Record<string, string>;
  let registry: Awaited<ReturnType<QuarryClient['indexRegistry']>>;
  const lines: Line[] = [];

  /** A second app on the same Redis and prefix, with `extra` settings. */
  function appWith(extra: Record<string, string>): FastifyInstance {
    const config = testConfig({ ...env, ...extra });
    return buildApp({ config, client, registry, logger: silentLogger(), metrics: createMetrics('api') });
  }

  before(async () => {
    redis = await startRedis();
    const config = testConfig({ QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_API_KEYS: API_KEYS });
    env = { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_API_KEYS: API_KEYS, QUARRY_PREFIX: config.prefix };
    worker = await startWorker(config, silentLogger());
    await worker.ready;
    client = createQuarry({ config, logger: silentLogger(), failFast: true });
    await client.ready();
    registry = await client.indexRegistry();
    app = buildApp({
      config,
      client,
      registry,
      logger: createLogger({
        level: 'info',
        name: 'quarry-api',
        destination: { write: (l: string) => void lines.push(JSON.parse(l) as Line) },
      }),
      metrics: createMetrics('api'),
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    assert.ok(address !== null && typeof address === 'object');
    base = `http://127.0.0.1:${address.port}`;
    // POST ?wait puts the result's bytes in the API's cache, as a producer's first read would.
    const made = await app.inject({
      method: 'POST',
      url: '/v1/aggregations?wait=20000',
      payload: spec,
      headers: { authorization: bearer(KEYS.acme) },
    });
    assert.equal(made.statusCode, 200, made.body);
    resultKey = made.json().resultKey as string;
  });

  after(async () => {
    await app?.close();
    await client?.close();
    await worker?.close();
    await redis?.stop();
  });

  /** The headers of an answer, less the transport's. */
  function answerHeaders(entries: Iterable<[string, unknown]>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of entries) if (!TRANSPORT.has(k)) out[k] = String(v);
    return out;
  }

  async function overSocket(method: string, url: string, headers: Record<string, string>): Promise<Answer> {
    const res = await fetch(`${base}${url}`, { method, headers });
    return { status: res.status, headers: answerHeaders(res.headers.entries()), body: await res.text() };
  }

  async function throughFastify(
    method: string,
    url: string,
    headers: Record<string, string>,
  ): Promise<Answer> {
    const res = await app.inject({ method: method as 'GET', url, headers });
    return { status: res.statusCode, headers: answerHeaders(Object.entries(res.headers)), body: res.body };
  }

  /** The access line of the request with id `id`, without what varies by run (time, ms). */
  function accessLine(id: string): Line {
    const line = lines.find((l) => l.msg === ACCESS_LOG_MESSAGE && l.reqId === id);
    assert.ok(line, `an access line for ${id}`);
    const { time: _t, ms, ...rest } = line;
    assert.equal(typeof ms, 'number');
    return rest;
  }

  test('each request answers the same over the fast path as through Fastify; only authorized hits are fast', async () => {
    const hex = 'f'.repeat(32);
    const url = `/v1/results/${resultKey}`;
    const acme = bearer(KEYS.acme);
    const cases: {
      name: string;
      method?: string;
      url: string;
      headers: Record<string, string>;
      fast: boolean;
    }[] = [
      {
        name: 'hit',
        url,
        headers: { authorization: acme },
        fast: true,
      },
      {
        name: 'hit, read-only key, Accept json',
        url,
        headers: { authorization: bearer(KEYS.reader), accept: 'application/json' },
        fast: true,
      },
      {
        name: 'hit, Accept with a wildcard',
        url,
        headers: { authorization: `bearer   ${KEYS.acme}  `, accept: 'text/html;q=0.5, */*;q=0.1' },
        fast: true,
      },
      {
        name: 'csv by Accept',
        url,
        headers: { authorization: acme, accept: 'text/csv' },
        fast: false,
      },
      {
        name: 'a query',
        url: `/v1/results/${resultKey}?format=json`,
        headers: { authorization: acme },
        fast: false,
      },
      {
        name: 'an unknown query',
        url: `/v1/results/${resultKey}?x=1`,
        headers: { authorization: acme },
        fast: false,
      },
      { name: 'no key', url, headers: {}, fast: false },
      {
        name: 'a wrong key',
        url,
        headers: { authorization: bearer(`${KEYS.acme}x`) },
        fast: false,
      },
      {
        name: 'a key without read',
        url,
        headers: { authorization: bearer(KEYS.writer) },
        fast: false,
      },
      {
        name: "another tenant's key",
        url,
        headers: { authorization: bearer(KEYS.other) },
        fast: false,
      },
      {
        name: 'a miss',
        url: `/v1/results/${hex}`,
        headers: { authorization: acme },
        fast: false,
      },
      {
        name: 'upper-case hex',
        url: `/v1/results/${resultKey.toUpperCase()}`,
        headers: { authorization: acme },
        fast: false,
      },
      {
        name: 'percent-encoded',
        url: `/v1/results/%3${resultKey.slice(0, 1)}${resultKey.slice(1)}`,
        headers: { authorization: acme },
        fast: false,
      },
      {
        name: 'trailing slash',
        url: `/v1/results/${resultKey}/`,
        headers: { authorization: acme },
        fast: false,
      },
      {
        name: 'not acceptable',
        url,
        headers: { authorization: acme, accept: 'image/png' },
        fast: false,
      },
      {
        name: 'HEAD',
        method: 'HEAD',
        url,
        headers: { authorization: acme },
        fast: false,
      },
      {
        name: 'a session cookie, no key',
        url,
        headers: { cookie: 'quarry_session=forged' },
        fast: false,
      },
    ];
    const reads = app.fastReads;
    assert.ok(reads, 'the fast path is on by default');
    for (const [i, c] of cases.entries()) {
      const method = c.method ?? 'GET';
      const id = `fast-${i}`;
      const headers = { ...c.headers, 'x-request-id': id };
      const servedBefore: number = reads.served;
      const socket = await overSocket(method, c.url, headers);
      assert.equal(
        reads.served - servedBefore,
        c.fast ? 1 : 0,
        `${c.name}: ${c.fast ? 'fast' : 'through Fastify'}`,
      );
      const socketLine = accessLine(id);
      lines.length = 0;
      const fastify = await throughFastify(method, c.url, headers);
      assert.equal(reads.served - servedBefore, c.fast ? 1 : 0, 'inject() never reaches the fast path');
      assert.deepEqual(socket, fastify, `${c.name}: the same answer`);
      assert.deepEqual(socketLine, accessLine(id), `${c.name}: the same access line`);
      lines.length = 0;
      if (c.fast) assert.equal(socket.status, 200);
    }
    // No id sent: the fast path draws one, as Fastify does, and echoes it.
    const drawn = await overSocket('GET', `/v1/results/${resultKey}`, { authorization: bearer(KEYS.acme) });
    assert.match(drawn.headers['x-request-id'] ?? '', /^[0-9a-f-]{36}$/);
  });

  test('fast answers are counted in the request-duration histogram under the route pattern', async () => {
    const count = async () => {
      const res = await app.inject({
        method: 'GET',
        url: '/metrics',
        headers: { authorization: bearer(KEYS.acme) },
      });
      const m =
        /^quarry_http_request_duration_seconds_count\{method="GET",route="\/v1\/results\/:resultKey",status_code="200"\} (\d+)$/m.exec(
          res.body,
        );
      return Number(m?.[1] ?? 0);
    };
    const served = app.fastReads!.served;
    const b = await count();
    for (let i = 0; i < 3; i++) {
      const res = await overSocket('GET', `/v1/results/${resultKey}`, { authorization: bearer(KEYS.acme) });
      assert.equal(res.status, 200);
    }
    assert.equal(app.fastReads!.served - served, 3);
    assert.equal((await count()) - b, 3);
  });

  test("a key's rate limit holds on the fast path: past the burst, Fastify answers the 429", async () => {
    const limited = appWith({ QUARRY_RATE_LIMIT_RPS: '1', QUARRY_RATE_LIMIT_BURST: '3' });
    await limited.listen({ host: '127.0.0.1', port: 0 });
    try {
      const address = limited.server.address();
      assert.ok(address !== null && typeof address === 'object');
      // Fastify's route fills this app's cache (one token), then the fast path serves the rest.
      const url = `http://127.0.0.1:${address.port}/v1/results/${resultKey}`;
      const statuses: number[] = [];
      const retry: (string | null)[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await fetch(url, { headers: { authorization: bearer(KEYS.acme) } });
        statuses.push(res.status);
        retry.push(res.headers.get('retry-after'));
        await res.arrayBuffer();
      }
      assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
      assert.equal(limited.fastReads!.served, 2, 'the first read filled the cache through Fastify');
      assert.equal(retry[3], '1');
    } finally {
      await limited.close();
    }
  });

  test('QUARRY_API_FAST_READS=0: no fast path; the same reads through Fastify', async () => {
    const plain = appWith({ QUARRY_API_FAST_READS: '0' });
    assert.equal(plain.fastReads, undefined);
    await plain.listen({ host: '127.0.0.1', port: 0 });
    try {
      const address = plain.server.address();
      assert.ok(address !== null && typeof address === 'object');
      for (let i = 0; i < 2; i++) {
        const res = await fetch(`http://127.0.0.1:${address.port}/v1/results/${resultKey}`, {
          headers: { authorization: bearer(KEYS.acme) },
        });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('vary'), 'Accept');
        assert.deepEqual(
          await res.json(),
          await app
            .inject({
              method: 'GET',
              url: `/v1/results/${resultKey}`,
              headers: { authorization: bearer(KEYS.acme) },
            })
            .then((r) => r.json()),
        );
      }
    } finally {
      await plain.close();
    }
  });
});
