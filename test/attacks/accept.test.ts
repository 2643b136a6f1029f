// Attacks on content negotiation of the result routes (GET /v1/results/:key, /v1/aliases/:name),
// through a real listening server and raw sockets, so node's own HTTP parser sees every byte:
// an Accept of thousands of media ranges, one enormous range, headers past node's limit, a range
// with thousands of parameters, q-values that are not q-values (1e999, NaN, -1, hex, 1.0001),
// wildcards that do not exist (`*/csv`), repeated Accept headers, non-ASCII and mixed case,
// `?format=` given twice or carrying CRLF, and fifty requests at once for one conversion.
// Expected (README "Result formats", written here independently of api/accept.ts): a 4xx with
// a QUARRY_ERR_* code naming `accept` or `format`, or the format the header asks for; never a
// 5xx, never a header the request injected, and the same bytes for every concurrent request.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

interface RawAnswer {
  readonly status: number;
  readonly headers: string[];
  readonly body: Buffer;
}

/** Sends `head` (request line and headers, CRLF-separated) as is and reads the whole answer. */
function raw(port: number, head: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.end(`${head}\r\nConnection: close\r\n\r\n`, 'latin1');
    });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      const lines = all.subarray(0, split).toString('latin1').split('\r\n');
      const status = Number(lines[0]!.split(' ')[1]);
      resolve({ status, headers: lines.slice(1), body: all.subarray(split + 4) });
    });
  });
}

const header = (a: RawAnswer, name: string) =>
  a.headers
    .find((h) => h.toLowerCase().startsWith(`${name.toLowerCase()}:`))
    ?.slice(name.length + 1)
    .trim();

const CSV = 'text/csv; charset=utf-8; header=present';
const ARROW = 'application/vnd.apache.arrow.stream';
const JSON_TYPE = 'application/json; charset=utf-8';

describe('attacks: Accept and ?format= on the result routes', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let port: number;
  let resultKey: string;

  before(async () => {
    redis = await startRedis();
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url } });
    const res = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations?wait=20000',
      payload: {
        dataset: {
          records: [
            { k: 'a', v: 1 },
            { k: 'b', v: 2 },
            { k: 'a', v: null },
          ],
        },
        groupBy: ['k'],
        metrics: [{ op: 'count' }, { op: 'sum', column: 'v' }],
      },
    });
    assert.equal(res.statusCode, 200, res.body);
    resultKey = res.json().resultKey;
    await sys.app.listen({ host: '127.0.0.1', port: 0 });
    port = (sys.app.server.address() as AddressInfo).port;
  });

  after(async () => {
    await sys?.close();
    await redis?.stop();
  });

  const get = (headers: string[], query = '') =>
    raw(port, [`GET /v1/results/${resultKey}${query} HTTP/1.1`, 'Host: 127.0.0.1', ...headers].join('\r\n'));

  /** A Quarry error answer: its status, code and field. */
  function errorOf(a: RawAnswer): { code: string; field?: string } {
    assert.equal(header(a, 'content-type'), JSON_TYPE);
    return JSON.parse(a.body.toString('utf8')).error;
  }

  test('thousands of media ranges: a 400 naming accept', async () => {
    const a = await get([`Accept: ${'x/y,'.repeat(3000)}text/csv`]);
    assert.equal(a.status, 400);
    assert.deepEqual(
      { ...errorOf(a), message: undefined },
      { code: 'QUARRY_ERR_VALIDATION', field: 'accept', message: undefined },
    );
    assert.equal(header(a, 'vary'), 'Accept');
  });

  test('one enormous range is a 406; headers past the limit are a 431; neither a 5xx', async () => {
    const big = await get([`Accept: text/${'c'.repeat(12_000)}`]);
    assert.equal(big.status, 406);
    assert.equal(errorOf(big).code, 'QUARRY_ERR_NOT_ACCEPTABLE');
    assert.equal(errorOf(big).field, 'accept');
    const tooBig = await get([`Accept: text/${'c'.repeat(40_000)}`]);
    assert.equal(tooBig.status, 431);
  });

  test('a range with thousands of parameters reads its first q', async () => {
    const a = await get([`Accept: application/json;q=0.1, text/csv;q=0.5${';x=y'.repeat(2000)};q=1`]);
    assert.equal(a.status, 200);
    assert.equal(header(a, 'content-type'), CSV);
  });

  test('q-values that are not q-values make their range admit nothing', async () => {
    for (const q of ['1e999', 'NaN', '-1', '0x1', '1.0001', '', '2', '0.5.5', 'Infinity']) {
      const alone = await get([`Accept: text/csv;q=${q}`]);
      assert.equal(alone.status, 406, `q=${q} alone`);
      assert.equal(errorOf(alone).code, 'QUARRY_ERR_NOT_ACCEPTABLE');
      const withArrow = await get([`Accept: text/csv;q=${q}, ${ARROW};q=0.2`]);
      assert.equal(withArrow.status, 200, `q=${q} beside arrow`);
      assert.equal(header(withArrow, 'content-type'), ARROW, `q=${q}: the valid range wins`);
    }
  });

  test('wildcards: */* and application/* are json, text/* csv; */csv, */*;q=0 and garbage admit nothing', async () => {
    const expect = async (accept: string, status: number, type?: string) => {
      const a = await get([`Accept: ${accept}`]);
      assert.equal(a.status, status, accept);
      if (type !== undefined) assert.equal(header(a, 'content-type'), type, accept);
      if (status >= 400) assert.equal(errorOf(a).code, 'QUARRY_ERR_NOT_ACCEPTABLE', accept);
    };
    await expect('*/*', 200, JSON_TYPE);
    await expect('application/*', 200, JSON_TYPE);
    await expect('text/*', 200, CSV);
    await expect('TEXT/CSV', 200, CSV);
    await expect('*/csv', 406);
    await expect('*/*;q=0', 406);
    await expect(';;;,,,//,/,a/', 406);
    await expect('text/csv\u00ff', 406);
    await expect('application/vnd.apache.arrow.file', 406);
    // Excluded explicitly, the wildcard does not bring it back.
    await expect('text/csv;q=0, text/*', 406);
    await expect('application/json;q=0, */*;q=0.5', 200, CSV);
  });

  test('repeated Accept headers are one list', async () => {
    const a = await get([`Accept: ${ARROW}`, 'Accept: text/csv;q=0.1']);
    assert.equal(a.status, 200);
    assert.equal(header(a, 'content-type'), ARROW);
    const b = await get(['Accept: text/html', 'Accept: text/csv;q=0.1']);
    assert.equal(header(b, 'content-type'), CSV);
  });

  test('?format= twice, unknown, or carrying CRLF: a 400 naming format, nothing injected', async () => {
    for (const query of [
      '?format=csv&format=arrow',
      '?format=xml',
      '?format=csv%0d%0aX-Evil:%201',
      '?format=',
    ]) {
      const a = await get(['Accept: text/csv'], query);
      assert.equal(a.status, 400, query);
      const error = errorOf(a);
      assert.equal(error.code, 'QUARRY_ERR_VALIDATION', query);
      assert.equal(error.field, 'format', query);
      assert.equal(header(a, 'x-evil'), undefined);
    }
    const crlfInHeader = await raw(
      port,
      `GET /v1/results/${resultKey} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/csv\rX-Evil: 1`,
    );
    assert.ok(crlfInHeader.status < 500, `status ${crlfInHeader.status}`);
    assert.equal(header(crlfInHeader, 'x-evil'), undefined);
  });

  test('fifty requests at once for one conversion get the same bytes', async () => {
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => get([`Accept: ${i % 2 === 0 ? ARROW : 'text/csv'}`])),
    );
    const arrow = answers.filter((a) => header(a, 'content-type') === ARROW);
    const csv = answers.filter((a) => header(a, 'content-type') === CSV);
    assert.equal(arrow.length, 25);
    assert.equal(csv.length, 25);
    for (const a of arrow) assert.ok(a.body.equals(arrow[0]!.body));
    for (const a of csv) assert.ok(a.body.equals(csv[0]!.body));
    assert.equal(csv[0]!.body.toString('utf8'), 'k,count,sum_v\r\na,2,1\r\nb,1,2\r\n');
  });
});
