// The conversions straight from stored envelope bytes (shared/envelope-scan.ts for CSV,
// shared/arrow-stored.ts for Arrow, shared/json-text.ts for the tokens) against the conversions
// of the parsed envelope (shared/result-formats.ts toCsv, toArrow), which are an independent
// implementation of docs/FORMATS.md: the same bytes on generated envelopes of every column type
// (escapes, unicode, \u escapes with surrogate pairs and lone surrogates, nulls and missing keys,
// integers past 2^53 and at Int64's edges, dates and timestamps in and out of the fast forms,
// values of another type than their column's, keys in another order than the columns). Then the
// token readers alone: numbers against JSON.parse, instants against Date.parse, and hand-worked
// unescapes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { tableFromIPC } from 'apache-arrow';
import fc from 'fast-check';
import type { ResultColumn, ResultEnvelope } from '../../shared/aggregation.ts';
import { arrowFromStored } from '../../shared/arrow-stored.ts';
import { csvFromStored } from '../../shared/envelope-scan.ts';
import { decoded, fastInstant, Malformed, numberAt, unescapeInto } from '../../shared/json-text.ts';
import { convertStored, csvHeader, csvText, toArrow, toCsv } from '../../shared/result-formats.ts';
import { serializeEnvelope } from '../../workers/envelope.ts';

function envelope(columns: ResultColumn[], rows: Record<string, unknown>[]): ResultEnvelope {
  return {
    resultKey: 'e'.repeat(32),
    columns,
    rows,
    rowCount: rows.length,
    totalRows: rows.length,
    engine: 'polars',
    computedAt: '2026-12-03T00:00:00.000Z',
    durationMs: 7,
  };
}

const stored = async (e: ResultEnvelope) => Buffer.from(await serializeEnvelope(e), 'utf8');

/** Both Arrow paths, and both CSV paths, give the same bytes; the byte paths do not fall back. */
async function assertSame(e: ResultEnvelope): Promise<void> {
  const bytes = await stored(e);
  const parsed = JSON.parse(bytes.toString('utf8')) as ResultEnvelope;
  const arrow = await arrowFromStored(bytes);
  assert.ok(arrow !== undefined, 'compact bytes are scanned, not parsed');
  assert.deepEqual(Buffer.from(arrow), Buffer.from(await toArrow(parsed)));
  const csv = await csvFromStored(bytes, csvText, csvHeader);
  assert.ok(csv !== undefined, 'compact bytes are scanned, not parsed');
  assert.deepEqual(csv, Buffer.from(await toCsv(parsed), 'utf8'));
}

const TYPES: ResultColumn['type'][] = ['integer', 'float', 'string', 'boolean', 'date', 'timestamp', 'null'];

const text = fc.oneof(
  fc.string({ maxLength: 10 }),
  fc.string({ unit: 'binary', maxLength: 6 }),
  fc.constantFrom(
    '',
    ',',
    '"',
    '\\',
    '/',
    '\n',
    '\r\n',
    '\t\b\f',
    '\u0000\u001f',
    '\u2028',
    'é',
    '😀',
    '\ud800',
    '\udc00x',
  ),
);
const date = fc.oneof(
  fc
    .record({
      y: fc.integer({ min: 0, max: 9999 }),
      m: fc.integer({ min: 0, max: 13 }),
      d: fc.integer({ min: 0, max: 32 }),
    })
    .map(
      ({ y, m, d }) =>
        `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`,
    ),
  fc.constantFrom(
    '2024-02-29',
    '2023-02-29',
    '2023-02-30',
    '1970-01-01',
    '2024-1-01',
    '2024-01-01T00:00:00Z',
  ),
);
const two = (n: number) => String(n).padStart(2, '0');
const timestamp = fc.oneof(
  fc
    .date({ min: new Date(-62_167_219_200_000), max: new Date(253_402_300_799_999), noInvalidDate: true })
    .map((d) => d.toISOString()),
  fc
    .record({
      day: date,
      h: fc.integer({ min: 0, max: 24 }),
      mi: fc.integer({ min: 0, max: 60 }),
      s: fc.integer({ min: 0, max: 60 }),
      ms: fc.option(fc.integer({ min: 0, max: 999 })),
      zone: fc.oneof(
        fc.constant('Z'),
        fc
          .record({
            sign: fc.constantFrom('+', '-'),
            h: fc.integer({ min: 0, max: 25 }),
            m: fc.integer({ min: 0, max: 60 }),
          })
          .map(({ sign, h, m }) => `${sign}${two(h)}:${two(m)}`),
      ),
    })
    .map(
      ({ day, h, mi, s, ms, zone }) =>
        `${day}T${two(h)}:${two(mi)}:${two(s)}${ms === null ? '' : `.${String(ms).padStart(3, '0')}`}${zone}`,
    ),
  fc.constantFrom(
    '2024-03-10T00:00:00-05:00',
    '2024-01-01T24:00:00.000Z',
    '2024-01-01t00:00:00Z',
    '2024-01-01T10:00Z',
    'nope',
  ),
);
const integer = fc.oneof(
  fc.integer(),
  fc.maxSafeInteger(),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n }).map(Number),
  fc.constantFrom(2 ** 53 + 2, 2 ** 60, -(2 ** 63), 2 ** 63, 2 ** 63 - 1024, 1e19, 1e21, -0, 0),
);
const float = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer({ min: -1_000_000, max: 1_000_000 }).map((n) => n / 100),
  fc.constantFrom(5e-324, 1e-7, 1.7976931348623157e308, 0.1 + 0.2, 123456789012345.6),
);

/** Values of a column's type, mostly; nulls; now and then one of another type. */
function columnValue(type: ResultColumn['type']): fc.Arbitrary<unknown> {
  const own: Record<ResultColumn['type'], fc.Arbitrary<unknown>> = {
    integer,
    float,
    string: text,
    boolean: fc.boolean(),
    date,
    timestamp,
    null: fc.constant(null),
  };
  const other = fc.oneof(text, integer, fc.boolean());
  return fc.oneof(
    { weight: 8, arbitrary: own[type] },
    { weight: 2, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: other },
  );
}

const name = fc.oneof(
  fc.constantFrom('a', 'b,c', 'q"', '__proto__', 'constructor', '10', '2', 'é😀', 'rows'),
  fc.string({ minLength: 1, maxLength: 5 }),
);

const generated = fc
  .uniqueArray(fc.tuple(name, fc.constantFrom(...TYPES)), {
    minLength: 1,
    maxLength: 7,
    selector: ([n]) => n,
  })
  .chain((cols) =>
    fc.tuple(
      fc.constant(cols),
      fc.array(
        fc.tuple(...cols.map(([, type]) => fc.option(columnValue(type), { nil: undefined, freq: 12 }))),
        {
          maxLength: 12,
        },
      ),
    ),
  );

describe('conversions from stored bytes agree with the parsed envelope', () => {
  test('Arrow and CSV on generated envelopes of every column type', async () => {
    await fc.assert(
      fc.asyncProperty(generated, async ([cols, values]) => {
        // A value of `undefined` leaves the key out of that row.
        const rows = values.map((vs) => {
          const row: Record<string, unknown> = {};
          cols.forEach(([n], i) => {
            if (vs[i] !== undefined)
              Object.defineProperty(row, n, { value: vs[i], enumerable: true, writable: true });
          });
          return row;
        });
        await assertSame(
          envelope(
            cols.map(([n, type]) => ({ name: n, type })),
            rows,
          ),
        );
      }),
      { numRuns: 400 },
    );
  });

  test('every column type over more rows than a slice, in order and out of order', async () => {
    const columns: ResultColumn[] = TYPES.map((type, i) => ({ name: `${type}${i}`, type }));
    const rows = Array.from({ length: 25_000 }, (_, r) => ({
      integer0: r % 17 === 0 ? null : r * 2 ** 40,
      float1: r / 8,
      string2: r % 5 === 0 ? `café "${r}", \u0001` : `s${r}`,
      boolean3: r % 3 === 0,
      date4: r % 11 === 0 ? null : new Date(r * 86_400_000).toISOString().slice(0, 10),
      timestamp5: new Date(r * 3_600_123).toISOString(),
      null6: null,
    }));
    await assertSame(envelope(columns, rows));
    // Integer-like names: JSON.stringify writes those keys first, not in column order.
    const reordered = columns.map((c, i) => ({ ...c, name: i === 3 ? '7' : c.name }));
    await assertSame(
      envelope(
        reordered,
        rows.map(({ boolean3, ...rest }) => ({ ...rest, 7: boolean3 })),
      ),
    );
  });

  test('Arrow from bytes: exact Int64 values (past 2^53, at the edges), and the metadata', async () => {
    const values = [2 ** 53 + 2, 2 ** 60, -(2 ** 63), 2 ** 63 - 1024, -1, 0, 2 ** 60 + 4096];
    const e = envelope(
      [{ name: 'n', type: 'integer' }],
      values.map((n) => ({ n })),
    );
    const arrow = await arrowFromStored(await stored(e));
    const table = tableFromIPC(arrow!);
    assert.equal(String(table.schema.fields[0]!.type), 'Int64');
    assert.deepEqual(
      table.getChild('n')!.toArray(),
      BigInt64Array.from([
        9007199254740994n,
        2n ** 60n,
        -(2n ** 63n),
        9223372036854774784n,
        -1n,
        0n,
        2n ** 60n + 4096n,
      ]),
    );
    assert.equal(table.schema.metadata.get('quarry.engine'), 'polars');
    assert.equal(table.schema.metadata.get('quarry.durationMs'), '7');
  });

  test('no rows, and bytes not in the compact form: the parsed envelope decides', async () => {
    const empty = envelope(
      TYPES.map((type) => ({ name: type, type })),
      [],
    );
    await assertSame(empty);
    assert.equal(tableFromIPC((await arrowFromStored(await stored(empty)))!).numRows, 0);
    const e = envelope([{ name: 'a', type: 'integer' }], [{ a: 1 }, { a: 2 }]);
    const pretty = Buffer.from(JSON.stringify(e, null, 1));
    assert.equal(await arrowFromStored(pretty), undefined);
    assert.deepEqual(await convertStored(pretty, 'arrow'), Buffer.from(await toArrow(e)));
    const nested = Buffer.from(
      JSON.stringify(envelope([{ name: 'a', type: 'string' }], [{ a: { x: [1] } }])),
    );
    assert.equal(await arrowFromStored(nested), undefined);
  });
});

describe('token readers', () => {
  const num = (s: string) => numberAt(Buffer.from(s), 0, s.length);

  test('numbers: the double JSON.parse reads, from JSON.stringify of any double', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.maxSafeInteger(), integer),
        (x) => {
          const s = JSON.stringify(x);
          assert.ok(Object.is(num(s), JSON.parse(s)), s);
        },
      ),
      { numRuns: 3000 },
    );
  });

  test('numbers: any text in JSON number grammar, as JSON.parse reads it', () => {
    const digits = (min: number, max: number) =>
      fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: min, maxLength: max });
    const token = fc
      .tuple(
        fc.constantFrom('', '-'),
        fc.oneof(
          fc.constant('0'),
          fc.tuple(fc.constantFrom(...'123456789'), digits(0, 21)).map(([a, b]) => a + b),
        ),
        fc.option(
          digits(1, 20).map((d) => `.${d}`),
          { nil: '' },
        ),
        fc.option(
          fc
            .tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), digits(1, 4))
            .map((p) => p.join('')),
          { nil: '' },
        ),
      )
      .map((p) => p.join(''));
    fc.assert(
      fc.property(token, (s) => {
        assert.ok(Object.is(num(s), JSON.parse(s)), s);
      }),
      { numRuns: 3000 },
    );
    for (const s of [
      '9007199254740993',
      '9223372036854775807',
      '9223372036854775808',
      '12345678901234567890',
      '1e400',
      '-0',
      '0.1e-400',
    ]) {
      assert.ok(Object.is(num(s), JSON.parse(s)), s);
    }
  });

  test('numbers: text outside the grammar is refused', () => {
    for (const s of ['01', '1.', '.5', '+1', '1e', '--1', '0x10', 'Infinity', '1_0', '-']) {
      assert.throws(() => num(s), Malformed, s);
    }
  });

  test('instants: the fast forms give what Date.parse gives, the rest are left to it', () => {
    fc.assert(
      fc.property(fc.oneof(date, timestamp), (s) => {
        const fast = fastInstant(Buffer.from(s), 0, s.length, false);
        if (!Number.isNaN(fast)) assert.equal(fast, Date.parse(s), s);
        const day = fastInstant(Buffer.from(s), 0, s.length, true);
        if (!Number.isNaN(day)) assert.ok(/^\d{4}-\d{2}-\d{2}$/.test(s) && day === Date.parse(s), s);
      }),
      { numRuns: 3000 },
    );
    // The worker's forms take the fast path.
    for (const s of [
      '2024-03-10T07:30:00.000Z',
      '1999-12-31',
      '2024-03-10T00:00:00-05:00',
      '0000-01-01T00:00:00Z',
    ]) {
      assert.equal(fastInstant(Buffer.from(s), 0, s.length, false), Date.parse(s), s);
    }
  });

  test('unescape: \\u escapes with surrogate pairs, lone surrogates as U+FFFD, CSV quotes doubled', () => {
    const decode = (json: string, csv: boolean) => {
      const inner = Buffer.from(json.slice(1, -1));
      const out = Buffer.alloc(inner.length);
      const end = unescapeInto(inner, 0, inner.length, out, 0, csv);
      return out.subarray(0, end).toString('utf8');
    };
    assert.equal(decode('"caf\\u00e9 \\ud83d\\ude00"', false), 'café 😀');
    assert.equal(decode('"\\ud83d\\u0041 \\udc00 \\ud800"', false), '\ufffdA \ufffd \ufffd');
    assert.equal(decode('"\\ud83d\\ud83d\\ude00"', false), '\ufffd😀');
    assert.equal(decode('"a\\"b\\u0022\\\\\\/\\b\\f\\n\\r\\t"', false), 'a"b"\\/\b\f\n\r\t');
    assert.equal(decode('"a\\"b\\u0022"', true), 'a""b""');
    // Whether the field needs quotes, also when the special comes as a \u escape.
    for (const [json, special] of [
      ['"\\u002c"', true],
      ['"\\u000a"', true],
      ['"\\u0022"', true],
      ['"\\u00e9\\t"', false],
    ] as const) {
      decode(json, true);
      assert.equal(decoded.csvSpecial, special, json);
    }
    assert.throws(() => decode('"\\x"', false));
    assert.throws(() => decode('"\\u12"', false));
  });
});
