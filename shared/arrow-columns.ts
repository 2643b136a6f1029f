// Arrow columns filled a value at a time from the value tokens of stored envelope bytes
// (arrow-stored.ts scans the rows): each column goes straight into the typed arrays Arrow holds
// (Float64Array, BigInt64Array, Int32Array, offsets and one UTF-8 buffer, validity bitmaps),
// with the types and values result-formats.ts's toArrow gives the parsed envelope.
import {
  Bool,
  type DataType,
  DateDay,
  Float64,
  Int64,
  makeData,
  Null,
  TimestampMillisecond,
  Utf8,
} from 'apache-arrow';
import { type RowScanner, stringEnd } from './envelope-scan.ts';
import { fastInstant, numberAt, readNumber, scanned, unescapeInto } from './json-text.ts';

export interface ColumnData {
  readonly type: DataType;
  readonly data: ReturnType<typeof makeData>;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const NULL_BYTE = 0x6e; // n
const TRUE_BYTE = 0x74; // t
const MINUS = 0x2d;
const CLOSE_BRACE = 0x7d;
const COMMA = 0x2c;
const ZERO = 0x30;
/** A token start meaning: the value is a number, stored already. */
const STORED = -2;
/** `null` as a little-endian 32-bit word. */
const NULL_WORD = 0x6c6c756e;
const MS_PER_DAY = 86_400_000;
const INT64_LIMIT = 2 ** 63;
const TWO_32 = 2 ** 32;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;

// Column kinds, as small integers so the per-value switch stays one shape.
const INTEGER = 0;
const FLOAT = 1;
const STRING = 2;
const BOOLEAN = 3;
const DATE = 4;
const TIMESTAMP = 5;
const NULL = 6;
export const KINDS: Readonly<Record<string, number>> = {
  integer: INTEGER,
  float: FLOAT,
  string: STRING,
  boolean: BOOLEAN,
  date: DATE,
  timestamp: TIMESTAMP,
  null: NULL,
};

const NONE = new Float64Array(0);
const NO_BYTES = new Uint8Array(0);
const NO_INTS = new Int32Array(0);

/**
 * Every column's Arrow buffers, filled a value at a time as the rows are scanned (one pass over
 * the bytes). Numbers and instants go into a Float64Array (an integer column becomes Int64 at
 * the end if every value fits); a date or timestamp column also keeps its tokens, for the Utf8
 * it becomes when a value does not parse.
 */
export class ColumnBuilder {
  readonly #bytes: Buffer;
  readonly #view: DataView;
  readonly #scanner: RowScanner;
  /** The row being read: each column's token. */
  readonly #starts: Int32Array;
  readonly #ends: Int32Array;
  readonly #kinds: Uint8Array;
  readonly #width: number;
  #capacity: number;
  /** A byte per value, 1 when it is present and not null (packed into the bitmap at the end). */
  readonly #present: Uint8Array[] = [];
  readonly #numbers: Float64Array[] = [];
  /** Number columns holding a string or boolean (Float64 then, as the parsed envelope makes it). */
  readonly #nonNumber: Uint8Array;
  readonly #bits: Uint8Array[] = [];
  readonly #text: Uint8Array[] = [];
  readonly #textEnd: Int32Array;
  readonly #offsets: Int32Array[] = [];
  readonly #tokenStarts: Int32Array[] = [];
  readonly #tokenEnds: Int32Array[] = [];
  /** Date or timestamp columns holding a value that does not parse. */
  readonly #unparsed: Uint8Array;

  constructor(bytes: Buffer, scanner: RowScanner, kinds: Uint8Array, capacity: number) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#scanner = scanner;
    this.#kinds = kinds;
    this.#width = kinds.length;
    this.#starts = new Int32Array(this.#width);
    this.#ends = new Int32Array(this.#width);
    this.#capacity = capacity;
    this.#nonNumber = new Uint8Array(this.#width);
    this.#textEnd = new Int32Array(this.#width);
    this.#unparsed = new Uint8Array(this.#width);
    for (let c = 0; c < this.#width; c++) {
      const kind = kinds[c]!;
      const temporal = kind === DATE || kind === TIMESTAMP;
      this.#present.push(new Uint8Array(capacity));
      this.#numbers.push(kind <= FLOAT || temporal ? new Float64Array(capacity) : NONE);
      this.#bits.push(kind === BOOLEAN ? new Uint8Array((capacity + 7) >> 3) : NO_BYTES);
      this.#text.push(kind === STRING ? new Uint8Array(1024) : NO_BYTES);
      this.#offsets.push(kind === STRING ? new Int32Array(capacity + 1) : NO_INTS);
      this.#tokenStarts.push(temporal ? new Int32Array(capacity) : NO_INTS);
      this.#tokenEnds.push(temporal ? new Int32Array(capacity) : NO_INTS);
    }
  }

  /** Reads the row starting at `i` (its `{`) as row r; returns the end of the row (past its `}`). */
  row(i: number, r: number): number {
    if (r === this.#capacity) this.#grow();
    const starts = this.#starts;
    const ends = this.#ends;
    let end = this.#inOrder(i, r);
    if (end < 0) {
      // Undo the numbers the attempt stored, and read the row key by key.
      for (let c = 0; c < this.#width; c++) {
        if (this.#kinds[c]! > FLOAT) continue;
        this.#present[c]![r] = 0;
        this.#numbers[c]![r] = 0;
      }
      end = this.#scanner.scan(i, starts, ends, 0);
    }
    for (let c = 0; c < this.#width; c++) this.#put(c, r, starts[c]!, ends[c]!);
    return end;
  }

  /**
   * The row's tokens when its keys are the columns in order, reading numbers on the way (a
   * number column's digits are then read once); -1 for any other row, which the scanner reads.
   */
  #inOrder(i: number, r: number): number {
    const bytes = this.#bytes;
    const scanner = this.#scanner;
    const kinds = this.#kinds;
    const limit = bytes.length;
    let at = i;
    for (let c = 0; c < this.#width; c++) {
      const s = scanner.key(c, at);
      if (s < 0) return -1;
      const first = bytes[s]!;
      let e: number;
      if (first === QUOTE) e = stringEnd(bytes, s);
      else if (first === NULL_BYTE) {
        if (s + 4 > limit || this.#view.getInt32(s, true) !== NULL_WORD) return -1;
        e = s + 4;
      } else if (kinds[c]! <= FLOAT && (first === MINUS || (first >= 0x30 && first <= 0x39))) {
        // Integers of up to 15 digits, the common number, read here; any other, by readNumber.
        let k = s;
        let m = 0;
        if (first !== ZERO && first !== MINUS) {
          while (k < limit) {
            const d = bytes[k]! - ZERO;
            if (d < 0 || d > 9) break;
            m = m * 10 + d;
            k++;
          }
        }
        const next = bytes[k];
        if (k > s && k - s <= 15 && (next === COMMA || next === CLOSE_BRACE)) e = k;
        else {
          m = readNumber(bytes, s, limit);
          e = scanned.end;
        }
        this.#numbers[c]![r] = m;
        this.#present[c]![r] = 1;
        this.#starts[c] = STORED;
        at = e;
        continue;
      } else e = scanner.scalar(s);
      this.#starts[c] = s;
      this.#ends[c] = e;
      at = e;
    }
    return bytes[at] === CLOSE_BRACE ? at + 1 : -1;
  }

  /** Column c's token `bytes[s, e)` of row r (absent when s < 0; STORED: a number already stored). */
  #put(c: number, r: number, s: number, e: number): void {
    if (s === STORED) return;
    const bytes = this.#bytes;
    const kind = this.#kinds[c]!;
    const present = s >= 0 && bytes[s] !== NULL_BYTE;
    if (kind === STRING) {
      if (present) {
        this.#present[c]![r] = 1;
        this.#appendText(c, s, e);
      }
      this.#offsets[c]![r + 1] = this.#textEnd[c]!;
      return;
    }
    if (!present || kind === NULL) return;
    this.#present[c]![r] = 1;
    const first = bytes[s]!;
    if (kind === BOOLEAN) {
      if (first === TRUE_BYTE) this.#bits[c]![r >> 3]! |= 1 << (r & 7);
    } else if (kind <= FLOAT) {
      if (first !== MINUS && (first < 0x30 || first > 0x39)) {
        this.#nonNumber[c] = 1; // a string or boolean: valid, and 0, as the parsed envelope makes it
        return;
      }
      this.#numbers[c]![r] = numberAt(bytes, s, e);
    } else {
      this.#tokenStarts[c]![r] = s;
      this.#tokenEnds[c]![r] = e;
      if (this.#unparsed[c] === 1) return;
      const ms = instant(bytes, s, e, kind === DATE);
      if (Number.isNaN(ms)) this.#unparsed[c] = 1;
      else this.#numbers[c]![r] = ms;
    }
  }

  /** A string's content, or another value's JSON text, onto the column's UTF-8 bytes. */
  #appendText(c: number, s: number, e: number): void {
    const bytes = this.#bytes;
    let data = this.#text[c]!;
    let at = this.#textEnd[c]!;
    if (at + (e - s) > data.length) {
      const grown = new Uint8Array(Math.max(data.length * 2, at + (e - s)));
      grown.set(data.subarray(0, at));
      this.#text[c] = grown;
      data = grown;
    }
    if (bytes[s] !== QUOTE) {
      for (let b = s; b < e; b++) data[at++] = bytes[b]!;
    } else {
      for (let b = s + 1; b < e - 1; b++) {
        const x = bytes[b]!;
        if (x === BACKSLASH) {
          at = unescapeInto(bytes, b, e - 1, data, at, false);
          break;
        }
        data[at++] = x;
      }
    }
    this.#textEnd[c] = at;
  }

  #grow(): void {
    const capacity = this.#capacity * 2;
    const bitmap = (old: Uint8Array) =>
      old.length === 0 ? old : copied(new Uint8Array((capacity + 7) >> 3), old);
    for (let c = 0; c < this.#width; c++) {
      this.#present[c] = copied(new Uint8Array(capacity), this.#present[c]!);
      this.#bits[c] = bitmap(this.#bits[c]!);
      const numbers = this.#numbers[c]!;
      if (numbers.length > 0) this.#numbers[c] = copied(new Float64Array(capacity), numbers);
      const offsets = this.#offsets[c]!;
      if (offsets.length > 0) this.#offsets[c] = copied(new Int32Array(capacity + 1), offsets);
      const starts = this.#tokenStarts[c]!;
      if (starts.length > 0) {
        this.#tokenStarts[c] = copied(new Int32Array(capacity), starts);
        this.#tokenEnds[c] = copied(new Int32Array(capacity), this.#tokenEnds[c]!);
      }
    }
    this.#capacity = capacity;
  }

  /** Column c of `rows` rows, as Arrow data. */
  column(c: number, rows: number): ColumnData {
    const kind = this.#kinds[c]!;
    const length = rows;
    const present = this.#present[c]!;
    const nullBitmap = new Uint8Array((rows + 7) >> 3);
    let nullCount = 0;
    for (let r = 0; r < rows; r++) {
      if (present[r] === 1) nullBitmap[r >> 3]! |= 1 << (r & 7);
      else nullCount++;
    }
    const numbers = this.#numbers[c]!.subarray(0, rows);
    if (kind === NULL) {
      const type = new Null();
      return { type, data: makeData({ type, length, nullCount: length }) };
    }
    if (kind === STRING) {
      const type = new Utf8();
      const valueOffsets = this.#offsets[c]!.subarray(0, rows + 1);
      const data = this.#text[c]!.subarray(0, this.#textEnd[c]);
      return { type, data: makeData({ type, length, nullCount, nullBitmap, data, valueOffsets }) };
    }
    if (kind === BOOLEAN) {
      const type = new Bool();
      const data = this.#bits[c]!.subarray(0, (rows + 7) >> 3);
      return { type, data: makeData({ type, length, nullCount, nullBitmap, data }) };
    }
    if (kind === INTEGER && this.#nonNumber[c] === 0 && fitsInt64(numbers)) {
      const type = new Int64();
      return { type, data: makeData({ type, length, nullCount, nullBitmap, data: int64Of(numbers) }) };
    }
    if (kind <= FLOAT) {
      const type = new Float64();
      return { type, data: makeData({ type, length, nullCount, nullBitmap, data: numbers }) };
    }
    if (this.#unparsed[c] === 1) return this.#textColumn(c, rows, nullCount, nullBitmap);
    if (kind === DATE) {
      const type = new DateDay();
      const data = new Int32Array(rows);
      for (let r = 0; r < rows; r++) data[r] = Math.floor(numbers[r]! / MS_PER_DAY);
      return { type, data: makeData({ type, length, nullCount, nullBitmap, data }) };
    }
    const type = new TimestampMillisecond('UTC');
    return { type, data: makeData({ type, length, nullCount, nullBitmap, data: int64Of(numbers) }) };
  }

  /** A date or timestamp column holding a value that does not parse: each value's text, as Utf8. */
  #textColumn(c: number, rows: number, nullCount: number, nullBitmap: Uint8Array): ColumnData {
    const starts = this.#tokenStarts[c]!;
    const ends = this.#tokenEnds[c]!;
    const present = this.#present[c]!;
    this.#text[c] = new Uint8Array(1024);
    this.#textEnd[c] = 0;
    const valueOffsets = new Int32Array(rows + 1);
    for (let r = 0; r < rows; r++) {
      if (present[r] === 1) this.#appendText(c, starts[r]!, ends[r]!);
      valueOffsets[r + 1] = this.#textEnd[c]!;
    }
    const type = new Utf8();
    const data = this.#text[c]!.subarray(0, this.#textEnd[c]);
    return { type, data: makeData({ type, length: rows, nullCount, nullBitmap, data, valueOffsets }) };
  }
}

/** Whether every value is an integer inside Int64's range (a null's 0 is). */
function fitsInt64(values: Float64Array): boolean {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isInteger(v) || v < -INT64_LIMIT || v >= INT64_LIMIT) return false;
  }
  return true;
}

function copied<T extends Uint8Array | Int32Array | Float64Array>(into: T, from: T): T {
  into.set(from as never);
  return into;
}

/**
 * Milliseconds since the epoch of a date or timestamp token, as the parsed envelope gives them
 * (Date.parse of the string; a date only in the form YYYY-MM-DD), or NaN when it does not parse.
 */
function instant(bytes: Buffer, s: number, e: number, dateOnly: boolean): number {
  if (bytes[s] !== QUOTE) return Number.NaN; // not a string
  const ms = fastInstant(bytes, s + 1, e - 1, dateOnly);
  if (!Number.isNaN(ms)) return ms;
  const text = JSON.parse(bytes.toString('utf8', s, e)) as string;
  if (dateOnly && !DATE_ONLY.test(text)) return Number.NaN;
  return Date.parse(text);
}

/**
 * Int64 of integral doubles inside Int64's range, in place (each value's 8 bytes become its
 * Int64), written as two 32-bit words, without a BigInt per value.
 */
function int64Of(values: Float64Array): BigInt64Array {
  const out = new BigInt64Array(values.buffer, values.byteOffset, values.length);
  if (!LITTLE_ENDIAN) {
    for (let i = 0; i < values.length; i++) out[i] = BigInt(values[i]!);
    return out;
  }
  const words = new Int32Array(values.buffer, values.byteOffset, values.length * 2);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    words[2 * i] = v; // ToInt32: the low 32 bits, two's complement
    words[2 * i + 1] = Math.floor(v / TWO_32);
  }
  return out;
}
