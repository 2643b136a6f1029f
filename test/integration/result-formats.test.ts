// Result formats end to end: a real worker computes a result over a Parquet file whose column
// names and values need quoting (commas, quotes, newlines in values, `__proto__`), with nulls, an integer
// past 2^53, a timestamp and a date; GET /v1/results/:key and GET /v1/aliases/:name then answer
// it as the stored JSON, CSV, NDJSON and an Arrow stream (read back with apache-arrow), chosen by
// `?format=` or Accept; the SDK and the CLI give the same bytes. The expected CSV is written out
// by hand from the data, not derived from the converter.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { tableFromIPC } from 'apache-arrow';
import type { ResultEnvelope } from '../../shared/aggregation.ts';
import { cliEnv, runCli } from '../helpers/cli.ts';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const TWO_TO_60 = 2n ** 60n;
const COMMA = 'a,b';
const QUOTE = 'say "hi"';
// Column names cannot hold control characters (the spec refuses them); values can.
const MIXED = 'it\'s, "x"';

/** Three rows, one per group; the middle one all nulls but an empty string. */
async function writeDataset(dir: string): Promise<void> {
  const instance = await DuckDBInstance.create(':memory:');
  const c = await instance.connect();
  await c.run(`COPY (
    SELECT * FROM (VALUES
      ('x, "quoted"' || chr(10) || 'line', 'p1', ${TWO_TO_60}::BIGINT, 1.5::DOUBLE,
        TIMESTAMP '2024-03-10 07:30:00', DATE '2024-03-10', true),
      (NULL, '', NULL, NULL, NULL, NULL, NULL),
      ('plain', 'p3', -5::BIGINT, 2.25::DOUBLE, TIMESTAMP '1999-12-31 23:59:59.123', DATE '1999-12-31', false)
    ) AS t("a,b", "__proto__", "say ""hi""", "it's, ""x""", ts, d, flag)
  ) TO '${path.join(dir, 'odd.parquet')}' (FORMAT parquet)`);
  c.closeSync();
  instance.closeSync();
}

const spec = {
  dataset: { path: 'odd.parquet' },
  groupBy: [COMMA, '__proto__', 'ts'],
  metrics: [
    { op: 'count' },
    { op: 'max', column: QUOTE },
    { op: 'min', column: 'd' },
    { op: 'avg', column: MIXED },
    { op: 'max', column: 'flag' },
  ],
  orderBy: [{ column: '__proto__', direction: 'asc' }],
  engine: 'duckdb',
};

// By hand: RFC 4180 quoting, CRLF, null empty, the empty string "", numbers as JSON writes them
// (2^60 prints as 1152921504606847000, which JSON.parse reads back as 2^60 exactly).
const EXPECTED_CSV = [
  `"a,b",__proto__,ts,count,"max_say ""hi""",min_d,"avg_it's, ""x""",max_flag`,
  ',"",,1,,,,',
  '"x, ""quoted""\nline",p1,2024-03-10T07:30:00.000Z,1,1152921504606847000,2024-03-10,1.5,true',
  'plain,p3,1999-12-31T23:59:59.123Z,1,-5,1999-12-31,2.25,false',
]
  .map((line) => `${line}\r\n`)
  .join('');

describe('result formats: json, csv, ndjson, arrow', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let resultKey: string;
  let stored: Buffer;

  before(async () => {
    redis = await startRedis();
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-formats-'));
    await writeDataset(dataDir);
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_DATA_DIR: dataDir } });
    const res = await sys.app.inject({ method: 'POST', url: '/v1/aggregations?wait=20000', payload: spec });
    assert.equal(res.statusCode, 200, res.body);
    resultKey = res.json().resultKey;
    stored = (await sys.client.resultBytes(resultKey))!;
    assert.ok(stored !== null);
  });

  after(async () => {
    await sys?.close();
    await redis?.stop();
  });

  const get = (url: string, accept?: string) =>
    sys.app.inject({ method: 'GET', url, headers: accept === undefined ? {} : { accept } });

  test('json (default, */*, application/json) is the stored bytes, unchanged', async () => {
    for (const accept of [undefined, '*/*', 'application/json', 'text/html, */*;q=0.1']) {
      const res = await get(`/v1/results/${resultKey}`, accept);
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
      assert.equal(res.headers.vary, 'Accept');
      assert.ok(res.rawPayload.equals(stored), `accept ${accept}: the stored bytes`);
    }
    const envelope = JSON.parse(stored.toString('utf8')) as ResultEnvelope;
    assert.equal(envelope.rowCount, 3);
    assert.ok(Object.hasOwn(envelope.rows[1]!, '__proto__'));
  });

  test('csv by ?format= and by Accept: RFC 4180, header row, CRLF, quoting, nulls empty', async () => {
    for (const [url, accept] of [
      [`/v1/results/${resultKey}?format=csv`, undefined],
      [`/v1/results/${resultKey}`, 'text/csv'],
      [`/v1/results/${resultKey}`, 'application/json;q=0.5, text/csv'],
      // ?format= wins over Accept
      [`/v1/results/${resultKey}?format=csv`, 'application/json'],
    ] as const) {
      const res = await get(url, accept);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.headers['content-type'], 'text/csv; charset=utf-8; header=present');
      assert.equal(res.headers.vary, 'Accept');
      assert.equal(res.body, EXPECTED_CSV);
    }
  });

  test('ndjson: one row object per line, as the envelope has it', async () => {
    const res = await get(`/v1/results/${resultKey}`, 'application/x-ndjson');
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'application/x-ndjson; charset=utf-8');
    const lines = res.body.split('\n');
    assert.equal(lines.pop(), '', 'every line ends with LF');
    const envelope = JSON.parse(stored.toString('utf8')) as ResultEnvelope;
    assert.deepEqual(
      lines.map((l) => JSON.parse(l)),
      envelope.rows,
    );
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.ok(Object.hasOwn(first, '__proto__'));
    assert.equal(Object.getOwnPropertyDescriptor(first, '__proto__')?.value, '');
    assert.deepEqual(JSON.parse(lines[1]!)[`avg_${MIXED}`], 1.5);
    assert.equal(JSON.parse(lines[1]!)[`max_${QUOTE}`], Number(TWO_TO_60));
  });

  test('arrow: an IPC stream with typed columns, read back with apache-arrow', async () => {
    const res = await get(`/v1/results/${resultKey}?format=arrow`);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'application/vnd.apache.arrow.stream');
    const table = tableFromIPC(res.rawPayload);
    assert.equal(table.numRows, 3);
    assert.deepEqual(
      table.schema.fields.map((f) => [f.name, String(f.type)]),
      [
        [COMMA, 'Utf8'],
        ['__proto__', 'Utf8'],
        ['ts', 'Timestamp<MILLISECOND, UTC>'],
        ['count', 'Int64'],
        [`max_${QUOTE}`, 'Int64'],
        ['min_d', 'Date32<DAY>'],
        [`avg_${MIXED}`, 'Float64'],
        ['max_flag', 'Bool'],
      ],
    );
    const column = (name: string) => table.getChild(name)!.toArray() as unknown as ArrayLike<unknown>;
    const values = (name: string) => [0, 1, 2].map((i) => table.getChild(name)!.get(i));
    assert.deepEqual(values(COMMA), [null, 'x, "quoted"\nline', 'plain']);
    assert.deepEqual(values('__proto__'), ['', 'p1', 'p3']);
    assert.deepEqual(values('ts'), [
      null,
      Date.UTC(2024, 2, 10, 7, 30),
      Date.UTC(1999, 11, 31, 23, 59, 59, 123),
    ]);
    // Int64 exactly: 2^60 is 1152921504606846976, not the double JSON prints.
    assert.deepEqual(values(`max_${QUOTE}`), [null, TWO_TO_60, -5n]);
    assert.deepEqual(values('count'), [1n, 1n, 1n]);
    assert.deepEqual(values('min_d'), [null, Date.UTC(2024, 2, 10), Date.UTC(1999, 11, 31)]);
    assert.deepEqual(values(`avg_${MIXED}`), [null, 1.5, 2.25]);
    assert.deepEqual(values('max_flag'), [null, true, false]);
    assert.equal(column('count').length, 3);
    assert.equal(table.schema.metadata.get('quarry.resultKey'), resultKey);
    assert.equal(table.schema.fields[2]!.metadata.get('quarry.type'), 'timestamp');
  });

  test('the same bytes again (cached), and an unsupported format is a 400 naming format or a 406', async () => {
    const once = await get(`/v1/results/${resultKey}?format=arrow`);
    const again = await get(`/v1/results/${resultKey}?format=arrow`);
    assert.ok(once.rawPayload.equals(again.rawPayload));

    const bad = await get(`/v1/results/${resultKey}?format=xml`);
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, 'QUARRY_ERR_VALIDATION');
    assert.equal(bad.json().error.field, 'format');

    const none = await get(`/v1/results/${resultKey}`, 'text/html, application/xml;q=0.9');
    assert.equal(none.statusCode, 406);
    assert.equal(none.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(none.headers.vary, 'Accept');
    assert.equal(none.json().error.code, 'QUARRY_ERR_NOT_ACCEPTABLE');
    assert.equal(none.json().error.field, 'accept');

    const refused = await get(`/v1/results/${resultKey}`, 'application/json;q=0, text/csv;q=0');
    assert.equal(refused.statusCode, 406);

    const missing = await get(`/v1/results/${'0'.repeat(32)}?format=csv`);
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().error.code, 'QUARRY_ERR_RESULT_NOT_FOUND');
  });

  test('an alias answers in the same formats, naming its result key', async () => {
    const put = await sys.app.inject({
      method: 'PUT',
      url: '/v1/schedules/odd',
      payload: { spec, everyMs: 60_000 },
    });
    assert.equal(put.statusCode, 200, put.body);
    const deadline = Date.now() + 15_000;
    let csv = await get('/v1/aliases/odd', 'text/csv');
    while (csv.statusCode === 404 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      csv = await get('/v1/aliases/odd', 'text/csv');
    }
    assert.equal(csv.statusCode, 200, csv.body);
    assert.equal(csv.headers['content-type'], 'text/csv; charset=utf-8; header=present');
    assert.equal(csv.headers.vary, 'Accept');
    assert.equal(csv.body, EXPECTED_CSV);
    const aliasKey = csv.headers['x-quarry-result-key'] as string;
    const arrow = await get('/v1/aliases/odd?format=arrow');
    assert.equal(arrow.headers['x-quarry-result-key'], aliasKey);
    assert.equal(tableFromIPC(arrow.rawPayload).numRows, 3);
    const json = await get('/v1/aliases/odd');
    assert.equal(JSON.parse(json.body).rowCount, 3);
    assert.equal((await get('/v1/aliases/odd?format=yaml')).json().error.field, 'format');
  });

  test('SDK result(key, { format }) and CLI `result --format` give the same bytes as the API', async () => {
    assert.equal(await sys.client.result(resultKey, { format: 'csv' }), EXPECTED_CSV);
    const ndjson = await get(`/v1/results/${resultKey}?format=ndjson`);
    assert.equal(await sys.client.result(resultKey, { format: 'ndjson' }), ndjson.body);
    const arrow = await get(`/v1/results/${resultKey}?format=arrow`);
    const sdkArrow = await sys.client.result(resultKey, { format: 'arrow' });
    assert.ok(sdkArrow !== null && Buffer.from(sdkArrow).equals(arrow.rawPayload));
    assert.equal((await sys.client.result(resultKey))?.rowCount, 3);

    const cli = await runCli(['result', resultKey, '--format', 'csv'], cliEnv(sys.config));
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(cli.stdout, EXPECTED_CSV);
    const bad = await runCli(['result', resultKey, '--format', 'xml'], cliEnv(sys.config));
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--format must be one of table, json, csv, ndjson, arrow/);
  });
});
