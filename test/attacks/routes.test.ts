// Attacks on authorization by route: every route the app declares (its own and plugins':
// bull-board's pages and JSON API, metrics, docs, Swagger UI assets) is walked under every kind
// of key, with the path encoded every way a router might decode (percent-encoded letters and
// slashes, double encoding, `//`, `/./`, `/../`, trailing slashes, case, query strings), through
// app.inject() and through a real listening server (node's HTTP parser, not light-my-request's
// URL normalisation). The route list comes from the app, so a new route is walked automatically.
// Expected: a 2xx/3xx only when the key has the scope of the route that actually answered
// (README policy, written here independently); a key without it gets 401/403; an unmatched
// request is a 404 whatever the key; no 5xx; another tenant never sees this tenant's data.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../api/app.ts';
import type { RouteScopeEntry } from '../../api/authorization.ts';
import type { ApiScope } from '../../shared/config.ts';
import { silentLogger } from '../../shared/logger.ts';
import { variants } from '../helpers/path-variants.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const MARKER = 'alphamarker7f3a';
const KEYS = {
  read: { key: 'attack-read-0123456789abcdef', tenant: 'alpha', scopes: ['read'] },
  enqueue: { key: 'attack-enqueue-0123456789abcdef', tenant: 'alpha', scopes: ['enqueue'] },
  metrics: { key: 'attack-metrics-0123456789abcdef', tenant: 'alpha', scopes: ['metrics'] },
  admin: { key: 'attack-admin-0123456789abcdef', tenant: 'ops', scopes: ['admin'] },
  beta: { key: 'attack-beta-0123456789abcdef', tenant: 'beta', scopes: ['read', 'enqueue'] },
} as const satisfies Record<string, { key: string; tenant: string; scopes: readonly ApiScope[] }>;
type Who = keyof typeof KEYS | 'none';
const WHO: readonly Who[] = ['none', 'read', 'enqueue', 'metrics', 'admin', 'beta'];
const alphaKey = KEYS.enqueue.key;

/** The policy as the README states it, independent of the code's declarations. */
function expectedScope(method: string, url: string): ApiScope | 'public' {
  if (url === '/admin/queues' || url.startsWith('/admin/queues/')) return 'admin';
  if (url === '/metrics') return 'metrics';
  if (url === '/docs' || url.startsWith('/docs/') || url === '/openapi.json') return 'public';
  if (url === '/healthz' || url === '/readyz') return 'public';
  // The console's page, files and session routes hold no data: its data comes from /v1.
  if (url === '/console' || url.startsWith('/console/')) return 'public';
  // Webhooks hold secrets and reach out of the network: a scope of their own, reads included.
  if (url === '/v1/webhooks' || url.startsWith('/v1/webhooks/')) return 'webhooks';
  // A search query in a body changes nothing: a read.
  if (method === 'POST' && url === '/v1/indexes/:collection/search') return 'read';
  if (url.startsWith('/v1/')) return method === 'GET' || method === 'HEAD' ? 'read' : 'enqueue';
  return 'admin';
}

function allows(who: Who, scope: ApiScope | 'public'): boolean {
  if (scope === 'public') return true;
  if (who === 'none') return false;
  const scopes: readonly string[] = KEYS[who].scopes;
  return scopes.includes(scope) || scopes.includes('admin');
}

interface Seen {
  matched: string | undefined;
}

describe('attacks on authorization by route', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let app: FastifyInstance;
  let origin: string;
  let agent: http.Agent;
  const seen = new Map<string, { promise: Promise<Seen>; resolve: (s: Seen) => void }>();
  let nextId = 0;
  const params: Record<string, string> = {};

  const slot = (id: string) => {
    let entry = seen.get(id);
    if (entry === undefined) {
      let resolve!: (s: Seen) => void;
      const promise = new Promise<Seen>((r) => {
        resolve = r;
      });
      entry = { promise, resolve };
      seen.set(id, entry);
    }
    return entry;
  };

  before(async () => {
    redis = await startRedis();
    const apiKeys = JSON.stringify(Object.values(KEYS));
    sys = await startSystem({
      env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_API_KEYS: apiKeys, QUARRY_RATE_LIMIT_RPS: '0' },
    });
    // Alpha's data, each carrying the marker another tenant must never see.
    const spec = { dataset: { records: [{ g: MARKER, v: 1 }] }, groupBy: ['g'], metrics: [{ op: 'count' }] };
    const headers = { authorization: `Bearer ${alphaKey}` };
    const agg = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations?wait=20000',
      payload: spec,
      headers,
    });
    assert.equal(agg.statusCode, 200, agg.body);
    params.resultKey = agg.json().resultKey;
    params.jobId = `agg-${params.resultKey}`;
    const index = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/alphadocs?wait=20000',
      payload: { documents: [{ id: '1', text: MARKER }], idField: 'id', fields: ['text'], store: ['text'] },
      headers,
    });
    assert.equal(index.statusCode, 200, index.body);
    params.collection = 'alphadocs';
    const schedule = await sys.app.inject({
      method: 'PUT',
      url: '/v1/schedules/alphasched',
      payload: { spec, everyMs: 3_600_000 },
      headers,
    });
    assert.equal(schedule.statusCode, 200, schedule.body);
    params.name = 'alphasched';
    params.queueName = 'aggregate';

    // The app under attack: the same deps, plus a hook that tells which route answered.
    app = buildApp({
      config: sys.config,
      client: sys.client,
      registry: await sys.client.indexRegistry(),
      logger: silentLogger(),
    });
    app.addHook('onResponse', (request, _reply, done) => {
      const id = request.headers['x-attack-id'];
      if (typeof id === 'string')
        slot(id).resolve({ matched: request.is404 ? undefined : request.routeOptions.url });
      done();
    });
    // Authorized cache hits of GET /v1/results/:resultKey are answered before Fastify's hooks.
    app.fastReads?.onAnswer((request, route) => {
      const id = request.headers['x-attack-id'];
      if (typeof id === 'string') slot(id).resolve({ matched: route });
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    origin = `127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    // The dashboard answers 503 until its own Redis connection is up: wait for it once.
    const adminHeaders = { authorization: `Bearer ${KEYS.admin.key}` };
    for (;;) {
      const res = await app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: adminHeaders });
      if (res.statusCode !== 503) break;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  });

  after(async () => {
    agent?.destroy();
    await app?.close();
    await sys?.close();
    await redis?.stop();
  });

  const headersOf = (who: Who, id: string): Record<string, string> => ({
    'x-attack-id': id,
    ...(who === 'none' ? {} : { authorization: `Bearer ${KEYS[who].key}` }),
  });

  /** Fills a route pattern with alpha's real ids (reads) or harmless ones (writes). */
  function concrete(route: RouteScopeEntry): string {
    const writes = route.method !== 'GET' && route.method !== 'HEAD';
    return route.url
      .replace(/:([A-Za-z]+)/g, (_m, name: string) => (writes ? 'ghost' : (params[name] ?? 'x')))
      .replace('*', 'index.js');
  }

  async function viaInject(method: string, path: string, who: Who) {
    const id = String(nextId++);
    const writes = method !== 'GET' && method !== 'HEAD';
    const res = await app.inject({
      method: method as 'GET',
      url: path,
      headers: { ...headersOf(who, id), ...(writes ? { 'content-type': 'application/json' } : {}) },
      ...(writes ? { payload: '{}' } : {}),
    });
    return { status: res.statusCode, body: res.body, seen: await slot(id).promise };
  }

  function viaHttp(method: string, path: string, who: Who) {
    const id = String(nextId++);
    const writes = method !== 'GET' && method !== 'HEAD';
    return new Promise<{ status: number; body: string; seen: Seen }>((resolve, reject) => {
      const [host, port] = origin.split(':') as [string, string];
      const req = http.request(
        {
          agent,
          host,
          port: Number(port),
          method,
          path,
          // Node sends a DELETE's body without a length unless told: the server would read it as
          // the next request.
          headers: {
            ...headersOf(who, id),
            ...(writes ? { 'content-type': 'application/json', 'content-length': '2' } : {}),
          },
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            body += chunk;
          });
          res.on('end', async () =>
            resolve({ status: res.statusCode ?? 0, body, seen: await slot(id).promise }),
          );
        },
      );
      req.on('error', (error) => reject(new Error(`${method} ${path} as ${who}: ${error.message}`)));
      req.end(writes ? '{}' : undefined);
    });
  }

  function judge(
    route: RouteScopeEntry,
    path: string,
    who: Who,
    answer: { status: number; body: string; seen: Seen },
    via: string,
  ): string | undefined {
    const what = `${via} ${route.method} ${path} as ${who}: ${answer.status} (route ${answer.seen.matched ?? 'none'})`;
    if (answer.status >= 500) return `${what}: a 5xx`;
    if (answer.seen.matched === undefined)
      return answer.status === 404 ? undefined : `${what}: unmatched but not 404`;
    const scope = expectedScope(route.method, answer.seen.matched);
    if (!allows(who, scope)) {
      const wanted = who === 'none' ? 401 : 403;
      if (answer.status !== wanted) return `${what}: the "${scope}" scope is missing, expected ${wanted}`;
    }
    if (who === 'beta' && answer.body.includes(MARKER)) return `${what}: another tenant's data`;
    return undefined;
  }

  async function walk(via: 'inject' | 'http', whos: readonly Who[]) {
    const send = via === 'inject' ? viaInject : viaHttp;
    const failures: string[] = [];
    let requests = 0;
    for (const route of app.routeScopes) {
      const writes = route.method !== 'GET' && route.method !== 'HEAD';
      for (const who of whos) {
        // An admin may do anything; only the dashboard's writes could hurt this test's data.
        if (who === 'admin' && writes) continue;
        const answers = await Promise.all(
          variants(concrete(route)).map(async (path) => ({
            path,
            answer: await send(route.method, path, who),
          })),
        );
        requests += answers.length;
        for (const { path, answer } of answers) {
          const failure = judge(route, path, who, answer, via);
          if (failure !== undefined) failures.push(failure);
        }
      }
    }
    return { failures, requests };
  }

  test('every route has the scope the README policy gives it, plugins included', () => {
    const routes = app.routeScopes;
    for (const url of [
      '/admin/queues/api/queues',
      '/metrics',
      '/docs/static/*',
      '/openapi.json',
      '/v1/jobs/:jobId',
    ]) {
      assert.ok(
        routes.some((r) => r.url === url),
        `${url} is listed`,
      );
    }
    const wrong = routes.filter((r) => r.scope !== expectedScope(r.method, r.url));
    assert.deepEqual(
      wrong.map((r) => `${r.method} ${r.url}: ${r.scope}`),
      [],
    );
  });

  test('the reproduced bypasses are refused: a read key gets 403 on the dashboard and metrics however encoded', async () => {
    for (const path of [
      '/%61dmin/queues/api/queues',
      '/%61dmin/queues/api/job-schedulers',
      '/%61dmin/queues/api/redis/stats',
      '/admin/queues/api/job-schedulers',
      '/admin/queues/api/redis/stats',
      '/%6Detrics',
      '/%6detrics',
    ]) {
      for (const send of [viaInject, viaHttp]) {
        const answer = await send('GET', path, 'read');
        assert.equal(answer.status, 403, `${path}: ${answer.body}`);
        assert.equal(JSON.parse(answer.body).error.code, 'QUARRY_ERR_FORBIDDEN');
      }
    }
    // The metrics scope opens /metrics (encoded or not) and nothing else.
    for (const path of ['/metrics', '/%6Detrics'])
      assert.equal((await viaHttp('GET', path, 'metrics')).status, 200);
    assert.equal((await viaHttp('GET', '/%61dmin/queues/api/queues', 'metrics')).status, 403);
    assert.equal((await viaHttp('GET', `/v1/jobs/${params.jobId}`, 'metrics')).status, 403);
  });

  test('a request no route matches is the same 404 for every key, before any auth', async () => {
    for (const path of ['/nope', '/admin', '/admin/', '/ADMIN/queues/api/queues', '/v1/job', '//metrics']) {
      const answers = await Promise.all(WHO.map((who) => viaHttp('GET', path, who)));
      assert.deepEqual(
        answers.map((a) => a.status),
        WHO.map(() => 404),
        path,
      );
      assert.equal(new Set(answers.map((a) => a.body)).size, 1, `${path}: one body for all keys`);
    }
  });

  test('every route, every encoding, every key through app.inject(): no answer exceeds the key', async () => {
    const { failures, requests } = await walk('inject', WHO);
    assert.ok(requests > 1000, `walked ${requests} requests`);
    assert.deepEqual(failures.slice(0, 20), []);
  });

  test('every route, every encoding, every key over real HTTP: no answer exceeds the key', async () => {
    const { failures, requests } = await walk('http', WHO);
    assert.ok(requests > 1000, `walked ${requests} requests`);
    assert.deepEqual(failures.slice(0, 20), []);
  });

  test('a repeated, unknown or malformed query parameter is a 400 naming it, on every route of ours', async () => {
    const ours = app.routeScopes.filter((r) => r.query !== undefined);
    assert.ok(ours.length > 10, 'our routes are listed with their query declarations');
    const bad: Record<string, string[]> = {
      wait: ['-1', 'abc', '30001', '1.5'],
      q: [''],
      k: ['0', 'abc', '1e9'],
      mode: ['x'],
      prefix: ['maybe'],
    };
    const failures: string[] = [];
    for (const route of ours) {
      const base = concrete(route);
      const cases: [string, string][] = [[`${base}?zz=1`, 'zz']];
      for (const name of route.query ?? []) {
        cases.push([`${base}?${name}=1&${name}=2`, name], [`${base}?${name}[]=1`, `${name}[]`]);
        // The others well formed, so the one at fault is the one named.
        const rest = name !== 'q' && route.query?.includes('q') ? '&q=x' : '';
        for (const value of bad[name] ?? []) {
          cases.push([`${base}?${name}=${encodeURIComponent(value)}${rest}`, name]);
        }
      }
      for (const [path, field] of cases) {
        const answer = await viaInject(route.method, path, 'admin');
        // A HEAD answer has no body: its status is all there is to check.
        const head = route.method === 'HEAD';
        const error = answer.status === 400 && !head ? JSON.parse(answer.body).error : undefined;
        if (head ? answer.status !== 400 : error?.code !== 'QUARRY_ERR_VALIDATION' || error.field !== field) {
          failures.push(`${route.method} ${path}: ${answer.status} ${answer.body.slice(0, 120)}`);
        }
      }
    }
    assert.deepEqual(failures, []);
    // The reproduced crash: a repeated q answered 500 (q.trim is not a function).
    const search = await viaHttp('GET', `/v1/indexes/${params.collection}/search?q=a&q=b`, 'read');
    assert.equal(search.status, 400, search.body);
    assert.equal(JSON.parse(search.body).error.field, 'q');
    // And a well-formed one still answers.
    const ok = await viaHttp(
      'GET',
      `/v1/indexes/${params.collection}/search?q=${MARKER}&k=5&mode=all`,
      'read',
    );
    assert.equal(ok.status, 200, ok.body);
    assert.equal(JSON.parse(ok.body).hits.length, 1);
  });

  test('a route declared without a scope stops the app from starting (fail closed)', async () => {
    const unguarded = buildApp({
      config: sys.config,
      client: sys.client,
      registry: await sys.client.indexRegistry(),
      logger: silentLogger(),
    });
    unguarded.register(async (instance) => {
      instance.delete('/v1/indexes/:collection', async () => ({ deleted: true }));
    });
    try {
      await assert.rejects(
        async () => {
          await unguarded.ready();
        },
        (error: { code?: string; message: string }) => {
          assert.equal(error.code, 'QUARRY_ERR_CONFIG');
          assert.match(error.message, /DELETE \/v1\/indexes\/:collection declares no scope/);
          return true;
        },
      );
    } finally {
      await unguarded.close().catch(() => {});
    }
  });
});
