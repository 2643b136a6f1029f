// Attacks by slow clients on a real listening API (real sockets, node's HTTP parser): bodies
// sent a byte at a time, headers sent a line at a time, connections that say nothing, idle
// keep-alive connections. Expected: each is answered 408 QUARRY_ERR_REQUEST_TIMEOUT and closed
// once its configured limit passes (small limits here), while a normal request, an SSE stream and
// a `?wait` long poll that outlive every limit keep working.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '../../shared/logger.ts';
import { startWorker, type WorkerHandle } from '../../workers/worker.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const REQUEST_TIMEOUT_MS = 1500;
const HEADERS_TIMEOUT_MS = 800;
const KEEPALIVE_TIMEOUT_MS = 1000;
/** Room for a loaded machine; node checks the limits every ~80 ms here. */
const SLACK_MS = 4000;

interface Closed {
  afterMs: number;
  data: string;
}

/** Opens a raw connection, lets `talk` trickle bytes into it, resolves when the server closes it. */
function slowClient(port: number, talk: (socket: net.Socket) => void): Promise<Closed> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = net.connect(port, '127.0.0.1', () => talk(socket));
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      data += chunk;
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve({ afterMs: performance.now() - started, data }));
  });
}

/** Writes `chunk` every `everyMs` while the socket takes writes (the test ends it otherwise). */
function trickle(socket: net.Socket, chunk: string, everyMs: number): void {
  const timer = setInterval(() => {
    if (socket.destroyed || !socket.writable) clearInterval(timer);
    else socket.write(chunk);
  }, everyMs);
  socket.on('close', () => clearInterval(timer));
}

function assertTimedOut(closed: Closed, limitMs: number, what: string): void {
  assert.match(closed.data, /^HTTP\/1\.1 408 /, `${what}: ${JSON.stringify(closed.data)}`);
  const body = JSON.parse(closed.data.slice(closed.data.indexOf('\r\n\r\n') + 4));
  assert.equal(body.error.code, 'QUARRY_ERR_REQUEST_TIMEOUT', what);
  assert.ok(closed.afterMs >= limitMs * 0.9, `${what}: closed after ${closed.afterMs} ms, before the limit`);
  assert.ok(closed.afterMs <= limitMs + SLACK_MS, `${what}: closed after ${closed.afterMs} ms`);
}

describe('attacks by slow clients', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let worker: WorkerHandle | undefined;
  let port: number;

  before(async () => {
    redis = await startRedis();
    sys = await startSystem({
      env: {
        QUARRY_QUEUE_REDIS_URL: redis.url,
        QUARRY_HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        QUARRY_HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
        QUARRY_HTTP_KEEPALIVE_TIMEOUT_MS: String(KEEPALIVE_TIMEOUT_MS),
      },
      // No worker yet: the SSE stream and the long poll must outlive the limits first.
      worker: false,
    });
    await sys.app.listen({ host: '127.0.0.1', port: 0 });
    port = (sys.app.server.address() as AddressInfo).port;
  });

  after(async () => {
    await worker?.close();
    await sys?.close();
    await redis?.stop();
  });

  test('100 bodies at a byte a tick and 20 trickled headers get 408 and are closed; SSE and ?wait outlive them', {
    timeout: 60_000,
  }, async (t) => {
    const spec = {
      dataset: { records: [{ g: 'a', v: 1 }] },
      groupBy: ['g'],
      metrics: [{ op: 'sum', column: 'v' }],
    };
    const queued = await sys.app.inject({ method: 'POST', url: '/v1/aggregations', payload: spec });
    assert.equal(queued.statusCode, 202, queued.body);
    const { jobId } = queued.json() as { jobId: string };

    // An SSE stream of the queued job, and a long poll on it, both opened before the attack.
    const events = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: `/v1/jobs/${jobId}/events` }, resolve).on('error', reject);
    });
    assert.equal(events.statusCode, 200);
    let stream = '';
    events.setEncoding('utf8');
    events.on('data', (chunk: string) => {
      stream += chunk;
    });
    const streamEnded = once(events, 'end');
    const waited = fetch(`http://127.0.0.1:${port}/v1/aggregations?wait=25000`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(spec),
    });

    const bodies = Array.from({ length: 100 }, () =>
      slowClient(port, (socket) => {
        socket.write(
          'POST /v1/aggregations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{',
        );
        trickle(socket, ' ', 100);
      }),
    );
    const headers = Array.from({ length: 20 }, () =>
      slowClient(port, (socket) => {
        socket.write('GET /healthz HTTP/1.1\r\n');
        trickle(socket, 'X-Slow: y\r\n', 100);
      }),
    );
    const silent = slowClient(port, () => {});

    // A normal request meanwhile is served at once.
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);

    const closedBodies = await Promise.all(bodies);
    for (const [i, closed] of closedBodies.entries()) assertTimedOut(closed, REQUEST_TIMEOUT_MS, `body ${i}`);
    for (const [i, closed] of (await Promise.all(headers)).entries()) {
      assertTimedOut(closed, HEADERS_TIMEOUT_MS, `headers ${i}`);
    }
    assertTimedOut(await silent, HEADERS_TIMEOUT_MS, 'silent connection');

    // Every limit has passed: the stream and the poll are still there, and end with the result.
    assert.ok(!events.complete, 'the SSE stream is still open');
    assert.match(stream, /event: status/);
    worker = await startWorker(sys.config, silentLogger());
    const answer = await waited;
    assert.equal(answer.status, 200, await answer.clone().text());
    assert.deepEqual(((await answer.json()) as { rows: unknown }).rows, [{ g: 'a', sum_v: 1 }]);
    await streamEnded;
    assert.match(stream, /"state":"completed"/);
    assert.match(stream, /event: end/);
    const slowest = Math.max(...closedBodies.map((c) => c.afterMs));
    t.diagnostic(`slowest slow-body close: ${Math.round(slowest)} ms (limit ${REQUEST_TIMEOUT_MS} ms)`);
  });

  test('an idle keep-alive connection is closed after the keep-alive timeout', {
    timeout: 30_000,
  }, async () => {
    const closed = slowClient(port, (socket) => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
    const { afterMs, data } = await closed;
    assert.match(data, /^HTTP\/1\.1 200 /);
    assert.ok(afterMs >= KEEPALIVE_TIMEOUT_MS * 0.9, `closed after ${afterMs} ms`);
    assert.ok(afterMs <= KEEPALIVE_TIMEOUT_MS + SLACK_MS, `closed after ${afterMs} ms`);
  });
});
