// JSON value tokens read straight from bytes, for the conversions of stored envelope bytes
// (envelope-scan.ts, arrow-stored.ts): a string's content unescaped into UTF-8 (as CSV or as
// plain text), a number token read as the double JSON.parse gives, and the instant of an ISO 8601
// string as Date.parse gives it. Each has a fast path for the forms the worker writes and defers
// to the engine's own parser (Number, JSON.parse, Date.parse) for anything else, so results are
// the same as parsing the envelope. A token that is not JSON throws Malformed: the caller then
// parses the whole envelope, which reports it as JSON.parse does.

export class Malformed extends Error {}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const CR = 0x0d;
const NEWLINE = 0x0a;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const LOWER_E = 0x65;
const UPPER_E = 0x45;

/** Set by unescapeInto: whether the decoded text holds a CSV special (`"`, `,`, CR, LF). */
export const decoded = { csvSpecial: false };

function hexAt(bytes: Uint8Array, at: number, end: number): number {
  if (at + 4 > end) throw new Malformed();
  let v = 0;
  for (let k = at; k < at + 4; k++) {
    const b = bytes[k]!;
    const d =
      b >= 0x30 && b <= 0x39 ? b - 0x30 : (b | 0x20) >= 0x61 && (b | 0x20) <= 0x66 ? (b | 0x20) - 0x57 : -1;
    if (d < 0) throw new Malformed();
    v = (v << 4) | d;
  }
  return v;
}

/**
 * The content of a JSON string token, `bytes[from, to)` (inside its quotes), unescaped into
 * `out` at `at` as UTF-8; returns the end. A lone surrogate becomes U+FFFD, as Buffer's UTF-8
 * encoding of the JSON.parse'd string writes it. With `csv`, double quotes are doubled, and
 * `decoded.csvSpecial` says whether the text needs enclosing quotes. `out` needs no more room
 * than the token's length: no escape decodes to more bytes than its own text.
 */
export function unescapeInto(
  bytes: Uint8Array,
  from: number,
  to: number,
  out: Uint8Array,
  at: number,
  csv: boolean,
): number {
  let special = false;
  let i = from;
  while (i < to) {
    const b = bytes[i]!;
    if (b !== BACKSLASH) {
      if (b === COMMA || b === CR || b === NEWLINE) special = true;
      out[at++] = b;
      i++;
      continue;
    }
    const e = bytes[i + 1];
    i += 2;
    let unit = -1;
    if (e === QUOTE) {
      special = true;
      out[at++] = QUOTE;
      if (csv) out[at++] = QUOTE;
    } else if (e === BACKSLASH || e === 0x2f) out[at++] = e;
    else if (e === 0x6e) {
      special = true;
      out[at++] = NEWLINE;
    } else if (e === 0x72) {
      special = true;
      out[at++] = CR;
    } else if (e === 0x74) out[at++] = 0x09;
    else if (e === 0x62) out[at++] = 0x08;
    else if (e === 0x66) out[at++] = 0x0c;
    else if (e === 0x75) {
      unit = hexAt(bytes, i, to);
      i += 4;
    } else throw new Malformed();
    if (unit < 0) continue;
    let cp = unit;
    if (unit >= 0xd800 && unit <= 0xdfff) {
      // A high surrogate followed by an escaped low one is one code point; any other is lone.
      if (unit <= 0xdbff && i + 6 <= to && bytes[i] === BACKSLASH && bytes[i + 1] === 0x75) {
        const low = hexAt(bytes, i + 2, to);
        if (low >= 0xdc00 && low <= 0xdfff) {
          cp = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
          i += 6;
        } else cp = 0xfffd;
      } else cp = 0xfffd;
    }
    if (cp < 0x80) {
      if (cp === QUOTE || cp === COMMA || cp === CR || cp === NEWLINE) special = true;
      out[at++] = cp;
      if (csv && cp === QUOTE) out[at++] = QUOTE;
    } else if (cp < 0x800) {
      out[at++] = 0xc0 | (cp >> 6);
      out[at++] = 0x80 | (cp & 0x3f);
    } else if (cp < 0x10000) {
      out[at++] = 0xe0 | (cp >> 12);
      out[at++] = 0x80 | ((cp >> 6) & 0x3f);
      out[at++] = 0x80 | (cp & 0x3f);
    } else {
      out[at++] = 0xf0 | (cp >> 18);
      out[at++] = 0x80 | ((cp >> 12) & 0x3f);
      out[at++] = 0x80 | ((cp >> 6) & 0x3f);
      out[at++] = 0x80 | (cp & 0x3f);
    }
  }
  decoded.csvSpecial = special;
  return at;
}

/** Exact powers of ten as doubles (10^22 is the largest). */
const POW10 = Array.from({ length: 23 }, (_, k) => 10 ** k);
const TWO_53 = 2 ** 53;
const FIVE_10 = 5 ** 10;

/** Where the number readNumber read ends. */
export const scanned = { end: 0 };

/**
 * The double JSON.parse reads from the number token `bytes[start, end)`; a token outside JSON's
 * number grammar throws Malformed.
 */
export function numberAt(bytes: Uint8Array, start: number, end: number): number {
  const v = readNumber(bytes, start, end);
  if (scanned.end !== end) throw new Malformed();
  return v;
}

/**
 * The JSON number starting at `start` (not past `limit`), as the double JSON.parse reads; sets
 * `scanned.end` to where it ends. Fast paths, each exact (one correctly rounded operation on exact
 * operands): up to 15 significant digits with a decimal exponent within ±22 (m × 10^e or
 * m / 10^-e), and integers of 16 to 19 digits as hi × 10^10 + lo when hi × 5^10 < 2^53 (every
 * integer below 2^63). Anything else, Number() of the text.
 */
export function readNumber(bytes: Uint8Array, start: number, limit: number): number {
  let i = start;
  const negative = bytes[i] === MINUS;
  if (negative) i++;
  const intStart = i;
  let m = 0;
  while (i < limit) {
    const d = bytes[i]! - ZERO;
    if (d < 0 || d > 9) break;
    m = m * 10 + d;
    i++;
  }
  const intDigits = i - intStart;
  if (intDigits === 0 || (intDigits > 1 && bytes[intStart] === ZERO)) throw new Malformed();
  if (i === limit || (bytes[i] !== DOT && (bytes[i]! | 0x20) !== LOWER_E)) {
    // An integer: the common token.
    scanned.end = i;
    let v = m;
    if (intDigits > 15) {
      v = intDigits <= 19 ? longInteger(bytes, intStart, i) : Number.NaN;
      if (Number.isNaN(v)) v = Number(latin1(bytes, intStart, i));
    }
    return negative ? -v : v;
  }
  let digits = intDigits;
  let exponent = 0;
  if (bytes[i] === DOT) {
    const fracStart = ++i;
    while (i < limit) {
      const d = bytes[i]! - ZERO;
      if (d < 0 || d > 9) break;
      m = m * 10 + d;
      i++;
    }
    if (i === fracStart) throw new Malformed();
    digits += i - fracStart;
    exponent = fracStart - i;
  }
  if (i < limit && (bytes[i] === LOWER_E || bytes[i] === UPPER_E)) {
    i++;
    const sign = bytes[i] === MINUS ? -1 : 1;
    if (bytes[i] === MINUS || bytes[i] === PLUS) i++;
    const expStart = i;
    let e = 0;
    while (i < limit) {
      const d = bytes[i]! - ZERO;
      if (d < 0 || d > 9) break;
      if (e < 1e6) e = e * 10 + d;
      i++;
    }
    if (i === expStart) throw new Malformed();
    exponent += sign * e;
  }
  scanned.end = i;
  let v: number;
  if (digits <= 15 && exponent >= -22 && exponent <= 22) {
    v = exponent < 0 ? m / POW10[-exponent]! : exponent === 0 ? m : m * POW10[exponent]!;
  } else {
    v = Number(latin1(bytes, intStart, i));
  }
  return negative ? -v : v;
}

/**
 * The digits `bytes[start, end)` (16 to 19 of them) as hi × 10^10 + lo, exact when hi × 5^10 <
 * 2^53 (every integer below 2^63); NaN when larger.
 */
function longInteger(bytes: Uint8Array, start: number, end: number): number {
  let hi = 0;
  let lo = 0;
  const split = end - 10;
  for (let k = start; k < split; k++) hi = hi * 10 + (bytes[k]! - ZERO);
  for (let k = split; k < end; k++) lo = lo * 10 + (bytes[k]! - ZERO);
  return hi * FIVE_10 < TWO_53 ? hi * 1e10 + lo : Number.NaN;
}

const latin1 = (bytes: Uint8Array, start: number, end: number) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1', start, end);

// Instants. Date.parse of the ISO forms the worker writes (YYYY-MM-DD, and
// YYYY-MM-DDTHH:MM:SS[.sss] with Z or ±HH:MM) computed from the digits; any other form, or a
// field out of its plain range (Date.parse rolls 2023-02-29 over to March 1 and takes 24:00), is
// left to Date.parse.

const MS_PER_DAY = 86_400_000;

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;

/** The two digits at `at` as a number, or -1 if one is not a digit (or is past the end). */
function twoDigits(bytes: Uint8Array, at: number): number {
  const a = bytes[at]! - ZERO;
  const b = bytes[at + 1]! - ZERO;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

/**
 * Milliseconds since the epoch of the string content `bytes[from, to)` in one of the forms above
 * (only YYYY-MM-DD when `dateOnly`), or NaN when it is in none of them (then ask Date.parse).
 */
export function fastInstant(bytes: Uint8Array, from: number, to: number, dateOnly: boolean): number {
  const n = to - from;
  if (n < 10 || bytes[from + 4] !== MINUS || bytes[from + 7] !== MINUS) return Number.NaN;
  const century = twoDigits(bytes, from);
  const yy = twoDigits(bytes, from + 2);
  const year = century * 100 + yy;
  const month = twoDigits(bytes, from + 5);
  const day = twoDigits(bytes, from + 8);
  if (century < 0 || yy < 0 || month < 1 || month > 12 || day < 1) return Number.NaN;
  if (day > (month === 2 && isLeap(year) ? 29 : MONTH_DAYS[month - 1]!)) return Number.NaN;
  const date = daysFromCivil(year, month, day) * MS_PER_DAY;
  if (n === 10) return date;
  if (
    dateOnly ||
    n < 20 ||
    bytes[from + 10] !== 0x54 ||
    bytes[from + 13] !== 0x3a ||
    bytes[from + 16] !== 0x3a
  ) {
    return Number.NaN;
  }
  const hour = twoDigits(bytes, from + 11);
  const minute = twoDigits(bytes, from + 14);
  const second = twoDigits(bytes, from + 17);
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return Number.NaN;
  let at = from + 19;
  let ms = 0;
  if (bytes[at] === DOT) {
    const hundreds = twoDigits(bytes, at + 1);
    const ones = bytes[at + 3]! - ZERO;
    if (hundreds < 0 || !(ones >= 0 && ones <= 9)) return Number.NaN;
    ms = hundreds * 10 + ones;
    at += 4;
  }
  let offsetMinutes = 0;
  if (at + 1 === to && bytes[at] === 0x5a) {
    // Z
  } else if (at + 6 === to && (bytes[at] === PLUS || bytes[at] === MINUS) && bytes[at + 3] === 0x3a) {
    const oh = twoDigits(bytes, at + 1);
    const om = twoDigits(bytes, at + 4);
    if (oh < 0 || oh > 23 || om < 0 || om > 59) return Number.NaN;
    offsetMinutes = (bytes[at] === MINUS ? -1 : 1) * (oh * 60 + om);
  } else return Number.NaN;
  return date + hour * 3_600_000 + minute * 60_000 + second * 1000 + ms - offsetMinutes * 60_000;
}
