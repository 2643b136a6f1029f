// INSTANT_PATTERN (read by DuckDB and Polars to type NDJSON string columns) against isInstant
// (which types inline records): on strings built near the form, the pattern plus "the date
// exists" (the engines' parse) holds exactly where isInstant does.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { INSTANT_PATTERN, isInstant } from '../../shared/datasets.ts';

const two = (max: number) => fc.integer({ min: 0, max }).map((n) => String(n).padStart(2, '0'));

const nearInstant = fc
  .tuple(
    fc.oneof(fc.integer({ min: 0, max: 9999 }), fc.constantFrom(0, 1, 1900, 2000, 2023, 2024)),
    two(13),
    two(32),
    fc.constantFrom('T', 'T', 't', ' '),
    two(24),
    two(60),
    two(60),
    fc.oneof(fc.constant(''), fc.stringMatching(/^\.[0-9]{0,4}$/)),
    fc.oneof(
      fc.constantFrom('Z', 'z', ''),
      fc.tuple(fc.constantFrom('+', '-'), two(24), two(60)).map((p) => `${p[0]}${p[1]}:${p[2]}`),
    ),
  )
  .map(([y, ...rest]) => {
    const [mo, d, sep, h, mi, s, frac, zone] = rest;
    return `${String(y).padStart(4, '0')}-${mo}-${d}${sep}${h}:${mi}:${s}${frac}${zone}`;
  });

/** The day exists in its month (what a strict parse of a matching string adds). */
function dayExists(s: string): boolean {
  const [y, mo, d] = [Number(s.slice(0, 4)), Number(s.slice(5, 7)), Number(s.slice(8, 10))];
  const at = new Date(0);
  at.setUTCFullYear(y, mo - 1, d);
  return at.getUTCMonth() === mo - 1 && at.getUTCDate() === d;
}

test('INSTANT_PATTERN and a real date are isInstant', () => {
  const pattern = new RegExp(INSTANT_PATTERN);
  fc.assert(
    fc.property(nearInstant, (s) => {
      assert.equal(pattern.test(s) && dayExists(s), isInstant(s), s);
    }),
    { numRuns: 5000 },
  );
  for (const s of ['2024-02-29T00:00:00Z', '2024-03-10T01:30:00.123-08:00', '0001-01-01T00:00:00+23:59']) {
    assert.ok(pattern.test(s) && isInstant(s), s);
  }
  for (const s of [
    '0000-01-01T00:00:00Z',
    '2024-03-10T01:30:00',
    '2024-03-10 01:30:00Z',
    '2024-03-10T01:30:00.1234Z',
  ]) {
    assert.ok(!pattern.test(s) && !isInstant(s), s);
  }
});
