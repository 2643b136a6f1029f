// Conversions straight from a stored envelope's bytes, without JSON.parse: the worker writes the
// envelope compactly with JSON.stringify (workers/envelope.ts), so each row's text is already the
// NDJSON line, and each value's text is already its CSV field (numbers, true, false verbatim; a
// string without escapes is its own content). One pass over the bytes finds the rows array and,
// for each row, where each column's value is (RowScanner, also used by arrow-stored.ts); only
// strings holding escapes are decoded (json-text.ts). UTF-8 never puts an ASCII byte inside a
// multi-byte character, so scanning bytes for `"`, `\`, `,`, `{`, ... is exact.
// Bytes in any other shape (whitespace between tokens, a row that is not a flat object, a key
// that is no column) give `undefined`, and the caller converts from the parsed envelope instead
// (result-formats.ts), which defines the same output.
import { decoded, Malformed, unescapeInto } from './json-text.ts';

const QUOTE = 0x22; // "
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const NEWLINE = 0x0a;
const CR = 0x0d;
/** Rows scanned between two turns of the event loop. */
export const SLICE_ROWS = 10_000;

export const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The end of the string token starting at `at` (its opening quote). */
export function stringEnd(bytes: Buffer, at: number): number {
  for (let i = at + 1; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === BACKSLASH) i++;
    else if (b === QUOTE) return i + 1;
  }
  throw new Malformed();
}

/** The end of the JSON value starting at `at` (compact: no whitespace anywhere). */
function valueEnd(bytes: Buffer, at: number): number {
  const first = bytes[at];
  if (first === QUOTE) return stringEnd(bytes, at);
  if (first === OPEN_BRACE || first === OPEN_BRACKET) {
    let depth = 0;
    for (let i = at; i < bytes.length; i++) {
      const b = bytes[i]!;
      if (b === QUOTE) i = stringEnd(bytes, i) - 1;
      else if (b === OPEN_BRACE || b === OPEN_BRACKET) depth++;
      else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
        depth--;
        if (depth === 0) return i + 1;
      } else if (b <= 0x20) throw new Malformed();
    }
    throw new Malformed();
  }
  return scalarEnd(bytes, at);
}

/** Bytes by what they are inside a number, true, false or null: 0 part of it, 1 its end, 2 neither. */
const SCALAR_BYTE = Uint8Array.from({ length: 256 }, (_, b) =>
  b === COMMA || b === CLOSE_BRACE || b === CLOSE_BRACKET ? 1 : b <= 0x20 || b === QUOTE ? 2 : 0,
);

/** The end of a number, true, false or null: up to the next delimiter. */
function scalarEnd(bytes: Buffer, at: number): number {
  let i = at;
  const n = bytes.length;
  while (i < n && SCALAR_BYTE[bytes[i]!] === 0) i++;
  if (i === at || (i < n && SCALAR_BYTE[bytes[i]!] === 2)) throw new Malformed();
  return i;
}

const ROWS_KEY = Buffer.from('"rows"');
const COLUMNS_KEY = Buffer.from('"columns"');

export interface StoredLayout {
  /** The envelope's columns, in order (read from its `columns`, which precede `rows`). */
  readonly columns: readonly { readonly name: string; readonly type: string }[];
  /** The first byte inside the rows array's bracket. */
  readonly rowsStart: number;
}

const isKey = (bytes: Buffer, start: number, end: number, key: Buffer) =>
  end - start === key.length && bytes.compare(key, 0, key.length, start, end) === 0;

/** Where the rows begin, and the columns, from the envelope's top-level keys before `rows`. */
export function layout(bytes: Buffer): StoredLayout {
  if (bytes[0] !== OPEN_BRACE) throw new Malformed();
  let columns: { name: string; type: string }[] | undefined;
  let i = 1;
  while (i < bytes.length && bytes[i] !== CLOSE_BRACE) {
    const keyEnd = stringEnd(bytes, i);
    if (bytes[keyEnd] !== COLON) throw new Malformed();
    const valueStart = keyEnd + 1;
    if (isKey(bytes, i, keyEnd, ROWS_KEY)) {
      if (bytes[valueStart] !== OPEN_BRACKET || columns === undefined) throw new Malformed();
      // Two columns of one name read one value each; leave that to the parsed envelope.
      if (new Set(columns.map((c) => c.name)).size !== columns.length) throw new Malformed();
      return { columns, rowsStart: valueStart + 1 };
    }
    const end = valueEnd(bytes, valueStart);
    if (isKey(bytes, i, keyEnd, COLUMNS_KEY)) {
      columns = JSON.parse(bytes.toString('utf8', valueStart, end)) as { name: string; type: string }[];
    }
    i = bytes[end] === COMMA ? end + 1 : end;
  }
  throw new Malformed();
}

/**
 * Finds each column's value in one row object: `starts[base + c]` and `ends[base + c]` bound
 * column c's value token, or are -1 when the row has no such key. Rows as the worker writes them
 * have their keys in column order, which is checked byte by byte against each key's JSON text;
 * any other order is read key by key (a repeated key: the last one, as JSON.parse does).
 */
export class RowScanner {
  readonly #bytes: Buffer;
  readonly #view: DataView;
  /** Each column's key as the row holds it: `{"name":` for the first, `,"name":` after. */
  readonly #keys: Buffer[];
  /**
   * The keys as little-endian 32-bit words, compared four bytes a load: key c's words are
   * `words[wordStart[c], wordStart[c + 1])`, at byte offsets `wordAt[...]` inside the key (the
   * last word overlaps the one before when the length is not a multiple of four).
   */
  readonly #words: Int32Array;
  readonly #wordAt: Int32Array;
  readonly #wordStart: Int32Array;
  readonly #width: number;

  constructor(bytes: Buffer, names: readonly string[]) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#keys = names.map((name, c) => Buffer.from(`${c === 0 ? '{' : ','}${JSON.stringify(name)}:`));
    this.#width = names.length;
    const words: number[] = [];
    const wordAt: number[] = [];
    const wordStart = [0];
    for (const key of this.#keys) {
      // Every key is at least four bytes: `{"":` or `,"":`.
      const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
      for (let at = 0; at < key.length; at += 4) {
        const from = Math.min(at, key.length - 4);
        words.push(view.getInt32(from, true));
        wordAt.push(from);
      }
      wordStart.push(words.length);
    }
    this.#words = Int32Array.from(words);
    this.#wordAt = Int32Array.from(wordAt);
    this.#wordStart = Int32Array.from(wordStart);
  }

  /** Past column c's key when the bytes at `at` are that key, else -1. */
  key(c: number, at: number): number {
    const end = at + this.#keys[c]!.length;
    if (end > this.#bytes.length) return -1;
    const view = this.#view;
    const words = this.#words;
    const wordAt = this.#wordAt;
    const last = this.#wordStart[c + 1]!;
    for (let w = this.#wordStart[c]!; w < last; w++) {
      if (view.getInt32(at + wordAt[w]!, true) !== words[w]) return -1;
    }
    return end;
  }

  /** Reads the row starting at `i` (its `{`); returns the end of the row (past its `}`). */
  scan(i: number, starts: Int32Array, ends: Int32Array, base: number): number {
    const bytes = this.#bytes;
    let at = i;
    let c = 0;
    for (; c < this.#width; c++) {
      const valueStart = this.key(c, at);
      if (valueStart < 0) break;
      const end = bytes[valueStart] === QUOTE ? stringEnd(bytes, valueStart) : this.scalar(valueStart);
      starts[base + c] = valueStart;
      ends[base + c] = end;
      at = end;
    }
    if (c === this.#width && bytes[at] === CLOSE_BRACE) return at + 1;
    return this.#anyOrder(i, starts, ends, base);
  }

  /** A number, true, false or null (an object or array in a row is left to JSON.parse). */
  scalar(at: number): number {
    const first = this.#bytes[at];
    if (first === OPEN_BRACE || first === OPEN_BRACKET) throw new Malformed();
    return scalarEnd(this.#bytes, at);
  }

  #anyOrder(i: number, starts: Int32Array, ends: Int32Array, base: number): number {
    const bytes = this.#bytes;
    if (bytes[i] !== OPEN_BRACE) throw new Malformed();
    starts.fill(-1, base, base + this.#width);
    ends.fill(-1, base, base + this.#width);
    let at = i + 1;
    let c = 0;
    while (bytes[at] !== CLOSE_BRACE) {
      if (bytes[at] !== QUOTE) throw new Malformed();
      const keyEnd = stringEnd(bytes, at);
      if (bytes[keyEnd] !== COLON) throw new Malformed();
      const column = this.#column(at, keyEnd, c);
      const valueStart = keyEnd + 1;
      const end = bytes[valueStart] === QUOTE ? stringEnd(bytes, valueStart) : this.scalar(valueStart);
      starts[base + column] = valueStart;
      ends[base + column] = end;
      c = column + 1;
      at = bytes[end] === COMMA ? end + 1 : end;
      if (at >= bytes.length) throw new Malformed();
    }
    return at + 1;
  }

  /** The column whose key is `bytes[start, end)`, trying `hint` first. */
  #column(start: number, end: number, hint: number): number {
    const bytes = this.#bytes;
    for (let k = 0; k < this.#width; k++) {
      const c = (hint + k) % this.#width;
      const key = this.#keys[c]!;
      // The key text without its leading `{` or `,` and trailing `:`.
      if (key.length - 2 !== end - start) continue;
      let b = 0;
      while (b < end - start && bytes[start + b] === key[b + 1]) b++;
      if (b === end - start) return c;
    }
    throw new Malformed(); // a key that is no column
  }
}

/**
 * Calls `row(start)` for each row of the rows array starting at `rowsStart`, which returns the
 * row's end; yields to the event loop every SLICE_ROWS rows. Returns the index of the rows
 * array's closing bracket.
 */
export async function eachRow(
  bytes: Buffer,
  rowsStart: number,
  row: (start: number) => number,
): Promise<number> {
  let i = rowsStart;
  if (bytes[i] === CLOSE_BRACKET) return i;
  for (let n = 1; ; n++) {
    const end = row(i);
    if (bytes[end] === CLOSE_BRACKET) return end;
    if (bytes[end] !== COMMA) throw new Malformed();
    i = end + 1;
    if (n % SLICE_ROWS === 0) await nextTurn();
  }
}

/** NDJSON from stored envelope bytes: each row's text, one a line, each line ended by LF. */
export async function ndjsonFromStored(bytes: Buffer): Promise<Buffer | undefined> {
  try {
    const { rowsStart } = layout(bytes);
    // The rows' text with each separating comma turned into LF, and a last LF.
    const out = Buffer.allocUnsafe(bytes.length - rowsStart);
    bytes.copy(out, 0, rowsStart);
    const rowsEnd = await eachRow(bytes, rowsStart, (start) => {
      if (bytes[start] !== OPEN_BRACE) throw new Malformed();
      const end = valueEnd(bytes, start);
      out[end - rowsStart] = NEWLINE; // the comma after this row, or the final LF
      return end;
    });
    return rowsEnd === rowsStart ? Buffer.alloc(0) : exact(out, rowsEnd - rowsStart + 1);
  } catch (error) {
    if (error instanceof Malformed) return undefined;
    throw error;
  }
}

/** The first `length` bytes, in a buffer of their own when the rest would waste a quarter of it. */
const exact = (out: Buffer, length: number) =>
  length * 4 >= out.length * 3 ? out.subarray(0, length) : Buffer.from(out.subarray(0, length));

/**
 * CSV from stored envelope bytes; `header` makes the header line from the column names. Fields
 * follow result-formats.ts's `csvText` (the second argument, which the bytes need not call):
 * null or missing empty, numbers and booleans verbatim, a string quoted when it holds `"`, `,`,
 * CR or LF (its quotes doubled), the empty string `""`.
 */
export async function csvFromStored(
  bytes: Buffer,
  _csvText: (text: string) => string,
  header: (names: readonly string[]) => string,
): Promise<Buffer | undefined> {
  try {
    const { columns, rowsStart } = layout(bytes);
    const names = columns.map((c) => c.name);
    const width = names.length;
    const headerBytes = Buffer.from(header(names));
    // A CSV row is never longer than its JSON object: the JSON's `"key":` before each value
    // outweighs the CSV's commas, and the `}` and comma (or `]`) after a row its CRLF.
    const out = Buffer.allocUnsafe(headerBytes.length + (bytes.length - rowsStart) + 2);
    let at = headerBytes.copy(out, 0);
    const scanner = new RowScanner(bytes, names);
    const starts = new Int32Array(width);
    const ends = new Int32Array(width);
    await eachRow(bytes, rowsStart, (start) => {
      const end = scanner.scan(start, starts, ends, 0);
      for (let c = 0; c < width; c++) {
        if (c > 0) out[at++] = COMMA;
        if (starts[c]! >= 0) at = csvField(bytes, starts[c]!, ends[c]!, out, at);
      }
      out[at++] = CR;
      out[at++] = NEWLINE;
      return end;
    });
    return exact(out, at);
  } catch (error) {
    if (error instanceof Malformed) return undefined;
    throw error;
  }
}

const NULL_BYTE = 0x6e; // n

/** The CSV field of the value token `bytes[start, end)` written at `at`; returns the new end. */
function csvField(bytes: Buffer, start: number, end: number, out: Buffer, at: number): number {
  const first = bytes[start];
  if (first === NULL_BYTE) return at; // null: an empty field
  if (first !== QUOTE) {
    for (let b = start; b < end; b++) out[at++] = bytes[b]!; // a number, true or false: verbatim
    return at;
  }
  if (end - start === 2) {
    out[at] = QUOTE; // the empty string is ""
    out[at + 1] = QUOTE;
    return at + 2;
  }
  // The content is copied as it is; in the rare field that needs quotes it moves one byte on.
  const field = at;
  let special = false;
  for (let b = start + 1; b < end - 1; b++) {
    const x = bytes[b]!;
    if (x === BACKSLASH) {
      at = unescapeInto(bytes, b, end - 1, out, at, true);
      special = decoded.csvSpecial || special;
      break;
    }
    if (x === COMMA) special = true;
    out[at++] = x;
  }
  if (!special) return at;
  out.copyWithin(field + 1, field, at);
  out[field] = QUOTE;
  out[at + 1] = QUOTE;
  return at + 2;
}
