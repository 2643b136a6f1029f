// The Arrow IPC stream of a stored envelope built from its bytes, without JSON.parse: one pass
// finds every row's values (envelope-scan.ts RowScanner), then each column goes straight into
// the typed arrays Arrow holds (Float64Array, BigInt64Array, Int32Array, offsets and one UTF-8
// buffer, validity bitmaps), framed by apache-arrow's makeData and tableToIPC without its
// per-value builders. The columns are those result-formats.ts's toArrow makes from the parsed
// envelope, byte for byte (docs/FORMATS.md: Arrow); `undefined` when the bytes are not in the
// worker's compact form, and the caller parses them instead.
import {
  Bool,
  type DataType,
  DateDay,
  Field,
  Float64,
  Int64,
  makeData,
  Null,
  RecordBatch,
  Schema,
  Struct,
  Table,
  TimestampMillisecond,
  tableToIPC,
  Utf8,
} from 'apache-arrow';
import type { ResultColumn, ResultEnvelope } from './aggregation.ts';
import { eachRow, layout, nextTurn, RowScanner, SLICE_ROWS } from './envelope-scan.ts';
import { fastInstant, Malformed, numberAt, unescapeInto } from './json-text.ts';

export interface ColumnData {
  readonly type: DataType;
  readonly data: ReturnType<typeof makeData>;
}

type EnvelopeMeta = Pick<ResultEnvelope, 'resultKey' | 'engine' | 'computedAt' | 'durationMs'>;

/** The IPC stream of one record batch of these columns, with Quarry's field and schema metadata. */
export function arrowStream(
  columns: readonly ResultColumn[],
  built: readonly ColumnData[],
  meta: EnvelopeMeta,
  length: number,
): Uint8Array {
  const fields = columns.map(
    (c, i) => new Field(c.name, built[i]!.type, true, new Map([['quarry.type', c.type]])),
  );
  const schema = new Schema(
    fields,
    new Map([
      ['quarry.resultKey', meta.resultKey],
      ['quarry.engine', meta.engine],
      ['quarry.computedAt', meta.computedAt],
      ['quarry.durationMs', String(meta.durationMs)],
    ]),
  );
  const struct = makeData({
    type: new Struct(fields),
    length,
    nullCount: 0,
    children: built.map((b) => b.data),
  });
  return tableToIPC(new Table(schema, [new RecordBatch(schema, struct)]), 'stream');
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const NULL_BYTE = 0x6e; // n
const TRUE_BYTE = 0x74; // t
const MINUS = 0x2d;
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
const KINDS: Readonly<Record<string, number>> = {
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
class ColumnBuilder {
  readonly #bytes: Buffer;
  readonly #kinds: Uint8Array;
  readonly #width: number;
  #capacity: number;
  /** A byte per value, 1 when it is present and not null (packed into the bitmap at the end). */
  readonly #present: Uint8Array[] = [];
  readonly #numbers: Float64Array[] = [];
  /** Integer columns whose values so far are all integers inside Int64's range. */
  readonly #fitsInt64: Uint8Array;
  readonly #bits: Uint8Array[] = [];
  readonly #text: Uint8Array[] = [];
  readonly #textEnd: Int32Array;
  readonly #offsets: Int32Array[] = [];
  readonly #tokenStarts: Int32Array[] = [];
  readonly #tokenEnds: Int32Array[] = [];
  /** Date or timestamp columns holding a value that does not parse. */
  readonly #unparsed: Uint8Array;

  constructor(bytes: Buffer, kinds: Uint8Array, capacity: number) {
    this.#bytes = bytes;
    this.#kinds = kinds;
    this.#width = kinds.length;
    this.#capacity = capacity;
    this.#fitsInt64 = kinds.map((k) => (k === INTEGER ? 1 : 0));
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

  /** Row r's values: column c's token is `bytes[starts[c], ends[c])`, or absent when starts[c] < 0. */
  row(r: number, starts: Int32Array, ends: Int32Array): void {
    if (r === this.#capacity) this.#grow();
    for (let c = 0; c < this.#width; c++) this.#put(c, r, starts[c]!, ends[c]!);
  }

  #put(c: number, r: number, s: number, e: number): void {
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
        this.#fitsInt64[c] = 0; // a string or boolean: valid, and 0, as the parsed envelope makes it
        return;
      }
      const v = numberAt(bytes, s, e);
      this.#numbers[c]![r] = v;
      if (this.#fitsInt64[c] === 1 && (!Number.isInteger(v) || v < -INT64_LIMIT || v >= INT64_LIMIT)) {
        this.#fitsInt64[c] = 0;
      }
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
    if (kind === INTEGER && this.#fitsInt64[c] === 1) {
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

const ROW_COUNT = Buffer.from('"rowCount":');

/** The envelope's rowCount, read from its tail, as a first capacity (the rows themselves decide). */
function capacityHint(bytes: Buffer): number {
  const at = bytes.lastIndexOf(ROW_COUNT);
  if (at < 0) return 1024;
  let n = 0;
  for (let i = at + ROW_COUNT.length; i < bytes.length && bytes[i]! >= 0x30 && bytes[i]! <= 0x39; i++) {
    n = n * 10 + bytes[i]! - 0x30;
  }
  return Math.max(16, Math.min(n, bytes.length >> 2));
}

export async function arrowFromStored(bytes: Buffer): Promise<Uint8Array | undefined> {
  try {
    if (bytes.length >= 2 ** 31) return undefined; // token offsets are Int32
    const { columns, rowsStart } = layout(bytes);
    if (!columns.every((c) => Object.hasOwn(KINDS, c.type))) return undefined;
    const width = columns.length;
    const builder = new ColumnBuilder(
      bytes,
      Uint8Array.from(columns, (c) => KINDS[c.type]!),
      capacityHint(bytes),
    );
    const scanner = new RowScanner(
      bytes,
      columns.map((c) => c.name),
    );
    const starts = new Int32Array(width);
    const ends = new Int32Array(width);
    let rows = 0;
    const rowsEnd = await eachRow(bytes, rowsStart, (start) => {
      const end = scanner.scan(start, starts, ends, 0);
      builder.row(rows++, starts, ends);
      return end;
    });
    // The envelope without its rows: what is left of it, parsed (and so checked) as JSON.
    const meta = JSON.parse(
      `${bytes.toString('utf8', 0, rowsStart)}${bytes.toString('utf8', rowsEnd)}`,
    ) as EnvelopeMeta;
    const built: ColumnData[] = [];
    for (let c = 0; c < width; c++) {
      if (c > 0 && rows > SLICE_ROWS) await nextTurn();
      built.push(builder.column(c, rows));
    }
    return arrowStream(columns as readonly ResultColumn[], built, meta, rows);
  } catch (error) {
    if (error instanceof Malformed) return undefined;
    throw error;
  }
}
