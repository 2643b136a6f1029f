// A fault inside the fast read path (api/fast-reads.ts) must not crash the API: the server's
// request listener has no catch above it. Before the answer is written Fastify answers (here a
// stand-in), after it the answer stands; either way the fault is logged. A real HTTP server
// around a FastReads whose dependencies fault where asked.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Authenticator } from '../../api/auth.ts';
import { FastReads, fastReadsServer } from '../../api/fast-reads.ts';
import { ResultCache } from '../../api/result-cache.ts';
import { createLogger } from '../../shared/logger.ts';
import { createMetrics } from '../../shared/metrics.ts';

type Line = Record<string, unknown>;

describe('fast result reads: a fault of the path', () => {
  const KEY = 'fault-key-0123456789abcdef0123';
  const resultKey = 'a'.repeat(32);

  /** A real HTTP server around a FastReads whose deps fault where asked; Fastify stands in as 418. */
  async function serverWith(fault: 'before' | 'after') {
    const errors: Line[] = [];
    const logger = createLogger({
      level: 'info',
      name: 'quarry-api',
      destination: { write: (l: string) => void errors.push(JSON.parse(l) as Line) },
    });
    const results = new ResultCache({ maxBytes: 1 << 20, ttlMs: 60_000 });
    results.set(`acme/${resultKey}`, Buffer.from('{"ok":true}'));
    if (fault === 'before') {
      results.get = () => {
        throw new Error('cache fault');
      };
    }
    const metrics = createMetrics('api');
    if (fault === 'after') {
      metrics.httpRequestDuration.observe = () => {
        throw new Error('metrics fault');
      };
    }
    const reads = new FastReads({
      auth: new Authenticator([{ key: KEY, tenant: 'acme', scopes: ['read'] }], { perSecond: 0, burst: 1 }),
      results,
      ownTenant: undefined,
      metrics,
      logger,
    });
    const server = fastReadsServer(() => reads)((_request, response) => {
      response.writeHead(418);
      response.end('fastify');
    }, {});
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    return { server, errors, url: `http://127.0.0.1:${port}/v1/results/${resultKey}` };
  }

  test('before the answer is written, Fastify answers; after, the answer stands; the fault is logged, the process lives', async () => {
    for (const fault of ['before', 'after'] as const) {
      const { server, errors, url } = await serverWith(fault);
      try {
        const res = await fetch(url, { headers: { authorization: `Bearer ${KEY}` } });
        const body = await res.text();
        if (fault === 'before') assert.deepEqual([res.status, body], [418, 'fastify']);
        else assert.deepEqual([res.status, body], [200, '{"ok":true}']);
        const logged = errors.find((l) => l.msg === 'fast result read failed');
        assert.ok(logged, `${fault}: the fault is logged`);
        assert.equal(logged.level, 'error');
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    }
  });
});
