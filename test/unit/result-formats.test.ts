// The result formats' converters, two ways: hand-worked cases for CSV and NDJSON (every expected
// string written out here), and a property that the two independent implementations agree: the
// byte scanner over stored envelope bytes (shared/envelope-scan.ts) and the conversion of the
// parsed envelope (shared/result-formats.ts), on generated envelopes with awkward column names
// (`__proto__`, integer-like keys that JSON objects reorder, quotes, commas, non-ASCII), strings
// with escapes, lone surrogates and commas, numbers at the edges of double, nulls and booleans.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { tableFromIPC } from 'apache-arrow';
import fc from 'fast-check';
import type { ResultColumn, ResultEnvelope } from '../../shared/aggregation.ts';
import { csvFromStored, ndjsonFromStored } from '../../shared/envelope-scan.ts';
import { convertStored, csvHeader, csvText, toArrow, toCsv, toNdjson } from '../../shared/result-formats.ts';
import { serializeEnvelope } from '../../workers/envelope.ts';

function envelope(columns: ResultColumn[], rows: Record<string, unknown>[]): ResultEnvelope {
  return {
    resultKey: 'f'.repeat(32),
    columns,
    rows,
    rowCount: rows.length,
    totalRows: rows.length,
    engine: 'duckdb',
    computedAt: '2026-01-01T00:00:00.000Z',
    durationMs: 3,
  };
}

/** As the worker stores it, then as the API reads it back. */
async function stored(e: ResultEnvelope): Promise<Buffer> {
  return Buffer.from(await serializeEnvelope(e), 'utf8');
}

describe('result formats: hand-worked cases', () => {
  const e = envelope(
    [
      { name: 'k,1', type: 'string' },
      { name: '10', type: 'integer' },
      { name: 'q"', type: 'float' },
      { name: 'b', type: 'boolean' },
    ],
    [
      { 'k,1': 'a', 10: 1, 'q"': 0.5, b: true },
      { 'k,1': '', 10: null, 'q"': null, b: null },
      { 'k,1': 'x\r\ny "z"', 10: -3, 'q"': 1e21, b: false },
      { 'k,1': 'é,😀', 10: 2 ** 53 + 2, 'q"': 5e-324, b: false },
    ],
  );
  const csv =
    '"k,1",10,"q""",b\r\n' +
    'a,1,0.5,true\r\n' +
    '"",,,\r\n' +
    '"x\r\ny ""z""",-3,1e+21,false\r\n' +
    '"é,😀",9007199254740994,5e-324,false\r\n';

  test('CSV: header, CRLF, quoting, null empty and the empty string ""', async () => {
    assert.equal(await toCsv(e), csv);
    assert.equal((await convertStored(await stored(e), 'csv')).toString('utf8'), csv);
  });

  test('NDJSON: one row per line, keys as JSON orders them', async () => {
    const ndjson =
      '{"10":1,"k,1":"a","q\\"":0.5,"b":true}\n' +
      '{"10":null,"k,1":"","q\\"":null,"b":null}\n' +
      '{"10":-3,"k,1":"x\\r\\ny \\"z\\"","q\\"":1e+21,"b":false}\n' +
      '{"10":9007199254740994,"k,1":"é,😀","q\\"":5e-324,"b":false}\n';
    assert.equal(await toNdjson(e), ndjson);
    assert.equal((await convertStored(await stored(e), 'ndjson')).toString('utf8'), ndjson);
  });

  test('no rows: the header alone; an empty NDJSON; an Arrow stream of zero rows', async () => {
    const empty = envelope([{ name: 'a', type: 'integer' }], []);
    assert.equal((await convertStored(await stored(empty), 'csv')).toString('utf8'), 'a\r\n');
    assert.equal((await convertStored(await stored(empty), 'ndjson')).length, 0);
    const table = tableFromIPC(await convertStored(await stored(empty), 'arrow'));
    assert.equal(table.numRows, 0);
    assert.equal(String(table.schema.fields[0]!.type), 'Int64');
  });

  test('Arrow: integers outside Int64 become Float64; unparseable timestamps Utf8; all-null Null', async () => {
    const odd = envelope(
      [
        { name: 'big', type: 'integer' },
        { name: 'ts', type: 'timestamp' },
        { name: 'n', type: 'null' },
      ],
      [
        { big: 1e19, ts: 'not a time', n: null },
        { big: 1, ts: null, n: null },
      ],
    );
    const table = tableFromIPC(await toArrow(odd));
    assert.deepEqual(
      table.schema.fields.map((f) => String(f.type)),
      ['Float64', 'Utf8', 'Null'],
    );
    assert.equal(table.getChild('big')!.get(0), 1e19);
    assert.equal(table.getChild('ts')!.get(0), 'not a time');
    assert.equal(table.getChild('n')!.get(1), null);
  });

  test('bytes not in the compact form (pretty-printed) still convert, by the parsed envelope', async () => {
    const pretty = Buffer.from(JSON.stringify(e, null, 2));
    assert.equal(await csvFromStored(pretty, csvText, csvHeader), undefined);
    assert.equal((await convertStored(pretty, 'csv')).toString('utf8'), csv);
  });
});

// Generated envelopes: both implementations must give the same bytes.
const name = fc.oneof(
  fc.constantFrom(
    '__proto__',
    'constructor',
    '0',
    '10',
    '-1',
    'a,b',
    'q"x',
    'é',
    '😀',
    'rows',
    'columns',
    '',
  ),
  fc.string({ minLength: 1, maxLength: 6 }),
);
const text = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('', ',', '"', '""', '\\', '\n', '\r\n', '\ud800', 'a,"b"', '{"rows":[1]}', '\u2028'),
);
const number = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -0, 2 ** 53 + 2, 1e21, 5e-324, -1.5e308),
);
const value = fc.oneof(fc.constant(null), text, number, fc.boolean());

const generated = fc
  .uniqueArray(name, { minLength: 1, maxLength: 6 })
  .chain((names) =>
    fc.tuple(
      fc.constant(names),
      fc.array(fc.array(value, { minLength: names.length, maxLength: names.length }), { maxLength: 8 }),
    ),
  );

describe('result formats: the byte scanner agrees with the parsed-envelope conversion', () => {
  test('CSV and NDJSON, on generated envelopes', async () => {
    await fc.assert(
      fc.asyncProperty(generated, async ([names, values]) => {
        const rows = values.map((vs) => Object.fromEntries(names.map((n, i) => [n, vs[i]])));
        const e = envelope(
          names.map((n) => ({ name: n, type: 'string' })),
          rows,
        );
        const bytes = await stored(e);
        const parsed = JSON.parse(bytes.toString('utf8')) as ResultEnvelope;
        const csv = await csvFromStored(bytes, csvText, csvHeader);
        const ndjson = await ndjsonFromStored(bytes);
        assert.ok(csv !== undefined && ndjson !== undefined, 'compact bytes are scanned, not parsed');
        // As bytes, which is what is served: a lone surrogate is U+FFFD in UTF-8 either way.
        assert.deepEqual(csv, Buffer.from(await toCsv(parsed), 'utf8'));
        assert.deepEqual(ndjson, Buffer.from(await toNdjson(parsed), 'utf8'));
      }),
      { numRuns: 300 },
    );
  });
});
