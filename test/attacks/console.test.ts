// Attacks on the console's sessions, with real Redis: forged, tampered, expired, revoked and
// doubled cookies are 401; a write made with the cookie but without its CSRF token (or with
// another session's) is 403 QUARRY_ERR_CSRF while the same write with a Bearer key needs none; the
// cookie gets exactly its key's scopes, from the route that matched, under every encoding of every
// route; tenant A's cookie never reads tenant B's jobs. And the page: no framing, no inline
// scripts, only its own files; without keys (loopback) it is open.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../api/app.ts';
import { Authenticator } from '../../api/auth.ts';
import { ConsoleSessions, CSRF_HEADER, SESSION_COOKIE } from '../../api/console-session.ts';
import type { ApiKey, ApiScope } from '../../shared/config.ts';
import { silentLogger } from '../../shared/logger.ts';
import { variants } from '../helpers/path-variants.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const SECRET = 'console-attack-secret-0123456789abcdef';
const MARKER = 'betamarker5c1d';
const KEYS = {
  alpha: { key: 'console-alpha-0123456789abcdef', tenant: 'alpha', scopes: ['read', 'enqueue'] },
  alphaRead: { key: 'console-alpha-read-0123456789ab', tenant: 'alpha', scopes: ['read'] },
  beta: { key: 'console-beta-0123456789abcdef', tenant: 'beta', scopes: ['read', 'enqueue'] },
} as const satisfies Record<string, ApiKey>;
const spec = (g: string) => ({
  dataset: { records: [{ g, v: 1 }] },
  groupBy: ['g'],
  metrics: [{ op: 'count' }],
});

interface Signed {
  cookie: string;
  csrf: string;
}

/** The cookie pair (`name=value`) out of a Set-Cookie header. */
const cookiePair = (setCookie: string) => setCookie.split(';')[0]!;

describe('attacks on console sessions', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let app: FastifyInstance;
  const seen = new Map<string, string | undefined>();
  let alpha: Signed;
  let alphaRead: Signed;
  let betaJob: string;
  let alphaJob: string;

  async function signIn(key: string): Promise<Signed> {
    const res = await app.inject({ method: 'POST', url: '/console/session', payload: { key } });
    assert.equal(res.statusCode, 200, res.body);
    const header = String(res.headers['set-cookie']);
    return { cookie: cookiePair(header), csrf: res.json().csrf };
  }

  async function enqueueAs(key: string, g: string): Promise<string> {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/aggregations',
      payload: spec(g),
      headers: { authorization: `Bearer ${key}` },
    });
    assert.equal(res.statusCode, 202, res.body);
    return res.json().jobId as string;
  }

  before(async () => {
    redis = await startRedis();
    sys = await startSystem({
      env: {
        QUARRY_QUEUE_REDIS_URL: redis.url,
        QUARRY_API_KEYS: JSON.stringify(Object.values(KEYS)),
        QUARRY_RATE_LIMIT_RPS: '0',
        QUARRY_CONSOLE_SECRET: SECRET,
      },
      worker: false,
    });
    app = buildApp({
      config: sys.config,
      client: sys.client,
      registry: await sys.client.indexRegistry(),
      logger: silentLogger(),
    });
    // Which route answered each request (undefined: none), told by the x-attack-id it carried.
    app.addHook('onResponse', (request, _reply, done) => {
      const id = request.headers['x-attack-id'];
      if (typeof id === 'string') seen.set(id, request.is404 ? undefined : request.routeOptions.url);
      done();
    });
    // Authorized cache hits of GET /v1/results/:resultKey are answered before Fastify's hooks.
    app.fastReads?.onAnswer((request, route) => {
      const id = request.headers['x-attack-id'];
      if (typeof id === 'string') seen.set(id, route);
    });
    await app.ready();
    betaJob = await enqueueAs(KEYS.beta.key, MARKER);
    alphaJob = await enqueueAs(KEYS.alpha.key, 'alpha-one');
    alpha = await signIn(KEYS.alpha.key);
    alphaRead = await signIn(KEYS.alphaRead.key);
  });

  after(async () => {
    await app?.close();
    await sys?.close();
    await redis?.stop();
  });

  test('sign-in sets a signed HttpOnly SameSite=Strict cookie; a wrong or missing key does not', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/console/session',
      payload: { key: KEYS.alpha.key },
    });
    assert.equal(res.statusCode, 200);
    const header = String(res.headers['set-cookie']);
    const attributes = header.split(';').map((a) => a.trim());
    assert.ok(attributes[0]!.startsWith(`${SESSION_COOKIE}=v1.`), header);
    for (const wanted of [
      'HttpOnly',
      'SameSite=Strict',
      'Path=/',
      `Max-Age=${sys.config.consoleSessionTtlS}`,
    ]) {
      assert.ok(attributes.includes(wanted), `${wanted} in ${header}`);
    }
    assert.ok(!header.includes(KEYS.alpha.key), 'the key itself is not in the cookie');
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.deepEqual(
      { tenant: res.json().tenant, scopes: res.json().scopes },
      { tenant: 'alpha', scopes: ['read', 'enqueue'] },
    );

    const wrong = await app.inject({
      method: 'POST',
      url: '/console/session',
      payload: { key: 'not-a-configured-key-0123456789' },
    });
    assert.equal(wrong.statusCode, 401);
    assert.equal(wrong.json().error.code, 'QUARRY_ERR_UNAUTHORIZED');
    assert.equal(wrong.headers['set-cookie'], undefined);
    for (const payload of [{}, { key: 7 }, { key: '' }, { key: 'x'.repeat(513) }, []]) {
      const bad = await app.inject({ method: 'POST', url: '/console/session', payload });
      assert.equal(bad.statusCode, 400, JSON.stringify(payload));
      assert.deepEqual([bad.json().error.code, bad.json().error.field], ['QUARRY_ERR_VALIDATION', 'key']);
    }
    const form = await app.inject({
      method: 'POST',
      url: '/console/session',
      payload: `key=${KEYS.alpha.key}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(form.statusCode, 415, 'a cross-site HTML form cannot sign anyone in');

    const who = await app.inject({
      method: 'GET',
      url: '/console/session',
      headers: { cookie: alpha.cookie },
    });
    assert.equal(who.json().tenant, 'alpha');
    assert.equal(who.json().csrf, alpha.csrf);
    const nobody = await app.inject({ method: 'GET', url: '/console/session' });
    assert.deepEqual(nobody.json(), { signedIn: false, mode: 'keys' });
  });

  test('guessing keys: past 10 failed sign-ins an address is refused, even with a good key', async () => {
    const from = (remoteAddress: string, key: string) =>
      app.inject({ method: 'POST', url: '/console/session', payload: { key }, remoteAddress });
    for (let i = 0; i < 10; i++) {
      const wrong = await from('203.0.113.7', `guess-${i}-0123456789abcdef`);
      assert.equal(wrong.statusCode, 401, `guess ${i}`);
    }
    const refused = await from('203.0.113.7', KEYS.alpha.key);
    assert.equal(refused.statusCode, 429, refused.body);
    assert.equal(refused.json().error.code, 'QUARRY_ERR_RATE_LIMITED');
    assert.ok(Number(refused.headers['retry-after']) >= 1, 'with Retry-After');
    assert.equal(refused.headers['set-cookie'], undefined, 'no session for the guesser');
    assert.equal((await from('198.51.100.9', KEYS.alpha.key)).statusCode, 200, 'other addresses sign in');
  });

  test('the cookie authenticates /v1 as its tenant: tenant A never reads tenant B', async () => {
    const list = await app.inject({ method: 'GET', url: '/v1/jobs', headers: { cookie: alpha.cookie } });
    assert.equal(list.statusCode, 200, list.body);
    const ids = list.json().jobs.map((j: { jobId: string }) => j.jobId);
    assert.ok(ids.includes(alphaJob), 'alpha sees its job');
    assert.ok(!ids.includes(betaJob), "alpha does not see beta's job");
    assert.ok(!list.body.includes(MARKER));
    const direct = await app.inject({
      method: 'GET',
      url: `/v1/jobs/${betaJob}`,
      headers: { cookie: alpha.cookie },
    });
    assert.equal(direct.statusCode, 404);
    const all = await app.inject({
      method: 'GET',
      url: '/v1/jobs?all=true',
      headers: { cookie: alpha.cookie },
    });
    assert.equal(all.statusCode, 403, 'all=true needs admin, with a cookie too');
    const cancel = await app.inject({
      method: 'DELETE',
      url: `/v1/jobs/${betaJob}`,
      headers: { cookie: alpha.cookie, [CSRF_HEADER]: alpha.csrf },
    });
    assert.equal(cancel.statusCode, 404, "alpha cannot cancel beta's job");
    const beta = await app.inject({
      method: 'GET',
      url: `/v1/jobs/${betaJob}`,
      headers: { authorization: `Bearer ${KEYS.beta.key}` },
    });
    assert.equal(beta.json().state, 'queued', "beta's job is untouched");
  });

  test('forged, tampered, expired, revoked, doubled or garbage cookies are 401', async () => {
    const logger = silentLogger();
    const keys: ApiKey[] = Object.values(KEYS);
    const rate = { perSecond: 0, burst: 1 };
    const other = new ConsoleSessions({
      secret: 'another-secret-0123456789abcdefgh',
      ttlS: 3600,
      auth: new Authenticator(keys, rate),
      logger,
    });
    const past = new ConsoleSessions({
      secret: SECRET,
      ttlS: 60,
      auth: new Authenticator(keys, rate),
      logger,
      now: () => Date.now() - 61_000,
    });
    const extraKey = {
      key: 'console-gone-0123456789abcdef',
      tenant: 'alpha',
      scopes: ['admin'] as ApiScope[],
    };
    const revoked = new ConsoleSessions({
      secret: SECRET,
      ttlS: 3600,
      auth: new Authenticator([...keys, extraKey], rate),
      logger,
    });
    const [, payload, signature] = alpha.cookie.slice(SESSION_COOKIE.length + 1).split('.') as [
      string,
      string,
      string,
    ];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    const reencode = (changed: object) =>
      Buffer.from(JSON.stringify({ ...claims, ...changed })).toString('base64url');
    const flipped = signature.startsWith('A') ? `B${signature.slice(1)}` : `A${signature.slice(1)}`;
    const cases: Record<string, string> = {
      forged: other.issue(KEYS.alpha.key).cookie,
      expired: past.issue(KEYS.alpha.key).cookie,
      revoked: revoked.issue(extraKey.key).cookie,
      'tenant changed': `v1.${reencode({ t: 'beta' })}.${signature}`,
      'expiry pushed': `v1.${reencode({ exp: claims.exp + 86400 })}.${signature}`,
      'signature flipped': `v1.${payload}.${flipped}`,
      'no signature': `v1.${payload}`,
      'other format': `v2.${payload}.${signature}`,
      garbage: 'eyJ0IjoiYWxwaGEifQ',
      empty: '',
      huge: `v1.${'A'.repeat(5000)}.${signature}`,
    };
    for (const [what, value] of Object.entries(cases)) {
      const res = await app.inject({
        method: 'GET',
        url: '/v1/jobs',
        headers: { cookie: `${SESSION_COOKIE}=${value}` },
      });
      assert.equal(res.statusCode, 401, `${what}: ${res.body}`);
      assert.equal(res.json().error.code, 'QUARRY_ERR_UNAUTHORIZED', what);
      const who = await app.inject({
        method: 'GET',
        url: '/console/session',
        headers: { cookie: `${SESSION_COOKIE}=${value}` },
      });
      assert.equal(who.json().signedIn, false, `${what}: not signed in`);
    }
    // A second cookie of the name (planted for a parent domain, say): neither is trusted.
    const doubled = await app.inject({
      method: 'GET',
      url: '/v1/jobs',
      headers: { cookie: `${alpha.cookie}; ${SESSION_COOKIE}=${cases.forged}` },
    });
    assert.equal(doubled.statusCode, 401);
    // The real one still works: the cases above failed for what they changed.
    const ok = await app.inject({
      method: 'GET',
      url: '/v1/jobs',
      headers: { cookie: `other=1; ${alpha.cookie}` },
    });
    assert.equal(ok.statusCode, 200);
  });

  test('writes with the cookie need the CSRF token; Bearer writes never do', async () => {
    const write = (headers: Record<string, string>) =>
      app.inject({ method: 'POST', url: '/v1/aggregations', payload: spec('csrf'), headers });
    const missing = await write({ cookie: alpha.cookie });
    assert.equal(missing.statusCode, 403, missing.body);
    assert.deepEqual(
      [missing.json().error.code, missing.json().error.field],
      ['QUARRY_ERR_CSRF', CSRF_HEADER],
    );
    for (const token of [alphaRead.csrf, `${alpha.csrf}x`, alpha.csrf.slice(1), '']) {
      const wrong = await write({ cookie: alpha.cookie, [CSRF_HEADER]: token });
      assert.equal(wrong.statusCode, 403, `token ${token}`);
      assert.equal(wrong.json().error.code, 'QUARRY_ERR_CSRF');
    }
    const right = await write({ cookie: alpha.cookie, [CSRF_HEADER]: alpha.csrf });
    assert.equal(right.statusCode, 202, right.body);
    const bearer = await write({ authorization: `Bearer ${KEYS.alpha.key}` });
    assert.equal(bearer.statusCode, 202, 'a Bearer write needs no CSRF token');
    // A Bearer key wins over a cookie: the request acts as the key, with no CSRF check.
    const both = await write({ authorization: `Bearer ${KEYS.beta.key}`, cookie: alpha.cookie });
    assert.equal(both.statusCode, 202);
    const bothJob = both.json().jobId as string;
    const asBeta = await app.inject({
      method: 'GET',
      url: `/v1/jobs/${bothJob}`,
      headers: { authorization: `Bearer ${KEYS.beta.key}` },
    });
    assert.equal(asBeta.statusCode, 200, "the write with both went to the key's tenant");
    const asAlpha = await app.inject({
      method: 'GET',
      url: `/v1/jobs/${bothJob}`,
      headers: { cookie: alpha.cookie },
    });
    assert.equal(asAlpha.statusCode, 404, "not to the cookie's");
    // Sign-out is a write too.
    const out = await app.inject({
      method: 'DELETE',
      url: '/console/session',
      headers: { cookie: alpha.cookie },
    });
    assert.equal(out.statusCode, 403);
    assert.equal(out.json().error.code, 'QUARRY_ERR_CSRF');
    const outOk = await app.inject({
      method: 'DELETE',
      url: '/console/session',
      headers: { cookie: alpha.cookie, [CSRF_HEADER]: alpha.csrf },
    });
    assert.equal(outOk.statusCode, 204);
    assert.match(String(outOk.headers['set-cookie']), new RegExp(`^${SESSION_COOKIE}=; .*Max-Age=0`));
  });

  test('the cookie has exactly its key scopes, from the matched route, under every encoding', async () => {
    const failures: string[] = [];
    let n = 0;
    // A finished job of alpha's: its event stream ends at once (a queued one's would stay open).
    const done = await enqueueAs(KEYS.alpha.key, 'alpha-cancelled');
    const cancelled = await app.inject({
      method: 'DELETE',
      url: `/v1/jobs/${done}`,
      headers: { authorization: `Bearer ${KEYS.alpha.key}` },
    });
    assert.equal(cancelled.json().state, 'cancelled');
    const params: Record<string, string> = {
      jobId: done,
      collection: 'none',
      name: 'none',
      resultKey: 'x',
    };
    for (const route of app.routeScopes) {
      const writes = route.method !== 'GET' && route.method !== 'HEAD';
      const base = route.url
        .replace(/:([A-Za-z]+)/g, (_m, name: string) => (writes ? 'ghost' : (params[name] ?? 'x')))
        .replace('*', 'index.js');
      for (const path of variants(base)) {
        for (const [who, session] of [
          ['alphaRead', alphaRead],
          ['alpha', alpha],
        ] as const) {
          const id = String(n++);
          const res = await app.inject({
            method: route.method as 'GET',
            url: path,
            headers: {
              'x-attack-id': id,
              cookie: session.cookie,
              // Writes carry the token: what is tested is the scope, not the CSRF check.
              ...(writes ? { 'content-type': 'application/json', [CSRF_HEADER]: session.csrf } : {}),
            },
            ...(writes ? { payload: '{}' } : {}),
          });
          const matched = seen.get(id);
          const what = `${route.method} ${path} as ${who}'s cookie: ${res.statusCode} (route ${matched ?? 'none'})`;
          if (res.statusCode >= 500) failures.push(`${what}: a 5xx`);
          if (matched === undefined) {
            if (res.statusCode !== 404) failures.push(`${what}: unmatched but not 404`);
            continue;
          }
          const scope = app.routeScopes.find((r) => r.url === matched && r.method === route.method)?.scope;
          const scopes: readonly string[] = KEYS[who].scopes;
          const allowed = scope === 'public' || (scope !== undefined && scopes.includes(scope));
          if (!allowed && res.statusCode !== 403) failures.push(`${what}: lacks "${scope}", expected 403`);
          if (res.body.includes(MARKER)) failures.push(`${what}: another tenant's data`);
        }
      }
    }
    assert.ok(n > 500, `walked ${n} requests`);
    assert.deepEqual(failures.slice(0, 20), []);
    // The reproduced shapes: the dashboard and metrics stay closed to a non-admin cookie.
    for (const url of ['/admin/queues/api/queues', '/%61dmin/queues/api/queues', '/metrics', '/%6Detrics']) {
      const res = await app.inject({ method: 'GET', url, headers: { cookie: alpha.cookie } });
      assert.equal(res.statusCode, 403, url);
    }
    const readWrite = await app.inject({
      method: 'POST',
      url: '/v1/aggregations',
      payload: spec('read-only'),
      headers: { cookie: alphaRead.cookie, [CSRF_HEADER]: alphaRead.csrf },
    });
    assert.equal(readWrite.statusCode, 403);
    assert.equal(readWrite.json().error.code, 'QUARRY_ERR_FORBIDDEN');
  });

  test('the page: strict CSP, no framing, only its own files', async () => {
    const page = await app.inject({ method: 'GET', url: '/console' });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.doesNotMatch(
      page.body,
      /<script>(?!<\/script>)|https?:\/\//,
      'no inline scripts, nothing from the network',
    );
    const js = await app.inject({ method: 'GET', url: '/console/assets/app.js' });
    assert.equal(js.statusCode, 200);
    assert.match(String(js.headers['content-type']), /^text\/javascript/);
    for (const url of [
      '/console/assets/nope.js',
      '/console/assets/..%2Fconsole-session.ts',
      '/console/assets/%2e%2e%2fapp.ts',
      '/console/assets/index.html',
      '/console/../package.json',
    ]) {
      const res = await app.inject({ method: 'GET', url });
      assert.equal(res.statusCode, 404, url);
    }
  });
});

describe('the console without API keys (loopback)', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  before(async () => {
    redis = await startRedis();
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url }, worker: false });
  });
  after(async () => {
    await sys?.close();
    await redis?.stop();
  });

  test('opens directly: no sign-in, /v1 answers without a key', async () => {
    const who = await sys.app.inject({ method: 'GET', url: '/console/session' });
    assert.deepEqual(who.json(), {
      signedIn: true,
      mode: 'open',
      tenant: null,
      scopes: ['admin'],
      csrf: null,
    });
    const jobs = await sys.app.inject({ method: 'GET', url: '/v1/jobs' });
    assert.equal(jobs.statusCode, 200);
    const signIn = await sys.app.inject({
      method: 'POST',
      url: '/console/session',
      payload: { key: 'x'.repeat(20) },
    });
    assert.equal(signIn.statusCode, 400);
    assert.equal(signIn.json().error.field, 'key');
  });
});
