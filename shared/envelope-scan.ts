// CSV and NDJSON straight from a stored envelope's bytes, without JSON.parse: the worker writes
// the envelope compactly with JSON.stringify (workers/envelope.ts), so each row's text is already
// the NDJSON line, and each value's text is already its CSV field (numbers, true, false verbatim;
// a string without escapes is its own content). One pass over the bytes finds the rows array and
// each row's keys and values; only strings holding escapes are decoded. UTF-8 never puts an ASCII
// byte inside a multi-byte character, so scanning bytes for `"`, `\`, `,`, `{`, ... is exact.
// Bytes in any other shape (whitespace between tokens, a row that is not a flat object, a key
// that is no column) give `undefined`, and the caller converts from the parsed envelope instead
// (result-formats.ts), which defines the same output.

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
const NULL_BYTE = 0x6e; // n
/** Values longer than this are copied by Buffer's native copy, shorter ones by a JS loop. */
const SHORT_COPY = 64;
/** Rows scanned between two turns of the event loop. */
const SLICE_ROWS = 10_000;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

class Malformed extends Error {}

/** Whether the string token stringEnd last scanned held an escape (no object per token). */
let lastEscaped = false;

/** The end of the string token starting at `at` (its opening quote); sets lastEscaped. */
function stringEnd(bytes: Buffer, at: number): number {
  lastEscaped = false;
  for (let i = at + 1; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === BACKSLASH) {
      lastEscaped = true;
      i++;
    } else if (b === QUOTE) return i + 1;
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
  // A number, true, false or null: up to the next delimiter.
  let i = at;
  while (i < bytes.length) {
    const b = bytes[i]!;
    if (b === COMMA || b === CLOSE_BRACE || b === CLOSE_BRACKET) break;
    if (b <= 0x20 || b === QUOTE) throw new Malformed();
    i++;
  }
  if (i === at) throw new Malformed();
  return i;
}

const ROWS_KEY = Buffer.from('"rows"');
const COLUMNS_KEY = Buffer.from('"columns"');

interface Layout {
  /** The rows array's elements: [start, end) inside its brackets. */
  readonly rows: { readonly start: number; readonly end: number };
  /** The envelope's column names, in order (read from its `columns`, which precede `rows`). */
  readonly names: readonly string[];
}

const isKey = (bytes: Buffer, start: number, end: number, key: Buffer) =>
  end - start === key.length && bytes.compare(key, 0, key.length, start, end) === 0;

/** Where the rows are, and the column names, from the envelope's top-level keys. */
function layout(bytes: Buffer): Layout {
  if (bytes[0] !== OPEN_BRACE) throw new Malformed();
  let names: string[] | undefined;
  let i = 1;
  while (i < bytes.length && bytes[i] !== CLOSE_BRACE) {
    const keyEnd = stringEnd(bytes, i);
    if (bytes[keyEnd] !== COLON) throw new Malformed();
    const valueStart = keyEnd + 1;
    const end = valueEnd(bytes, valueStart);
    if (isKey(bytes, i, keyEnd, COLUMNS_KEY)) {
      const columns = JSON.parse(bytes.toString('utf8', valueStart, end)) as { name: string }[];
      names = columns.map((c) => c.name);
    } else if (isKey(bytes, i, keyEnd, ROWS_KEY)) {
      if (bytes[valueStart] !== OPEN_BRACKET || names === undefined) throw new Malformed();
      return { rows: { start: valueStart + 1, end: end - 1 }, names };
    }
    i = bytes[end] === COMMA ? end + 1 : end;
  }
  throw new Malformed();
}

/** Calls `row(start, end)` for each row object's text; yields to the event loop every SLICE_ROWS rows. */
async function eachRow(
  bytes: Buffer,
  range: { start: number; end: number },
  row: (start: number, end: number) => void,
): Promise<void> {
  let i = range.start;
  let n = 0;
  while (i < range.end) {
    if (bytes[i] !== OPEN_BRACE) throw new Malformed();
    const end = valueEnd(bytes, i);
    row(i, end);
    if (++n % SLICE_ROWS === 0) await nextTurn();
    if (end === range.end) return;
    if (bytes[end] !== COMMA) throw new Malformed();
    i = end + 1;
  }
}

/** NDJSON from stored envelope bytes: each row's text, one a line, each line ended by LF. */
export async function ndjsonFromStored(bytes: Buffer): Promise<Buffer | undefined> {
  try {
    const range = layout(bytes).rows;
    if (range.end === range.start) return Buffer.alloc(0);
    // The rows' text with each separating comma turned into LF, and a last LF.
    const out = Buffer.allocUnsafe(range.end - range.start + 1);
    bytes.copy(out, 0, range.start, range.end);
    await eachRow(bytes, range, (_start, end) => {
      out[end - range.start] = NEWLINE; // the comma after this row, or the final LF
    });
    return out;
  } catch (error) {
    if (error instanceof Malformed) return undefined;
    throw error;
  }
}

/**
 * CSV from stored envelope bytes; `csvText` is result-formats.ts's quoting of one string, and
 * `header` makes the header line from the column names. Fields as result-formats.ts defines them.
 */
export async function csvFromStored(
  bytes: Buffer,
  csvText: (text: string) => string,
  header: (names: readonly string[]) => string,
): Promise<Buffer | undefined> {
  try {
    const { rows: range, names } = layout(bytes);
    const keys = names.map((name) => Buffer.from(JSON.stringify(name)));
    const headerBytes = Buffer.from(header(names));
    // A CSV row is never longer than its JSON object (see docs/FORMATS.md): the JSON's `"key":`
    // before each value outweighs the CSV's commas, `{` `}` and the row's comma its CRLF.
    const out = Buffer.allocUnsafe(headerBytes.length + (range.end - range.start) + 2);
    let at = headerBytes.copy(out, 0);
    const starts = new Int32Array(names.length);
    const ends = new Int32Array(names.length);
    const escaped = new Uint8Array(names.length);
    // Keys are compared and short values copied in JS: a call into Buffer's native code per
    // value costs more than the loop for the few bytes most values have.
    const sameKey = (key: Buffer, start: number, end: number): boolean => {
      if (key.length !== end - start) return false;
      for (let b = 0; b < key.length; b++) if (key[b] !== bytes[start + b]) return false;
      return true;
    };
    const keyAt = (start: number, end: number, hint: number): number => {
      for (let k = 0; k < keys.length; k++) {
        const c = (hint + k) % keys.length;
        if (sameKey(keys[c]!, start, end)) return c;
      }
      throw new Malformed(); // a key that is no column
    };
    const copy = (from: number, to: number): number => {
      if (to - from > SHORT_COPY) return bytes.copy(out, at, from, to);
      for (let b = from; b < to; b++) out[at + b - from] = bytes[b]!;
      return to - from;
    };
    // Row by row, each parsed once: its keys and values, then its fields in column order.
    let i = range.start;
    let n = 0;
    while (i < range.end) {
      if (bytes[i] !== OPEN_BRACE) throw new Malformed();
      starts.fill(-1);
      i++;
      let c = 0;
      while (bytes[i] !== CLOSE_BRACE) {
        const keyEnd = stringEnd(bytes, i);
        if (bytes[keyEnd] !== COLON) throw new Malformed();
        const column = keyAt(i, keyEnd, c);
        const valueStart = keyEnd + 1;
        const first = bytes[valueStart];
        if (first === OPEN_BRACE || first === OPEN_BRACKET) throw new Malformed();
        const valueStop = first === QUOTE ? stringEnd(bytes, valueStart) : valueEnd(bytes, valueStart);
        escaped[column] = first === QUOTE && lastEscaped ? 1 : 0;
        starts[column] = valueStart;
        ends[column] = valueStop;
        c = column + 1;
        i = bytes[valueStop] === COMMA ? valueStop + 1 : valueStop;
        if (i >= range.end) throw new Malformed();
      }
      i++; // past the row's closing brace
      for (let k = 0; k < names.length; k++) {
        if (k > 0) out[at++] = COMMA;
        const vs = starts[k]!;
        if (vs < 0 || bytes[vs] === NULL_BYTE) continue; // missing or null: an empty field
        const ve = ends[k]!;
        if (bytes[vs] !== QUOTE) {
          at += copy(vs, ve); // a number, true or false: verbatim
        } else if (escaped[k] === 1) {
          at += out.write(csvText(JSON.parse(bytes.toString('utf8', vs, ve)) as string), at);
        } else if (ve - vs === 2) {
          out[at++] = QUOTE; // the empty string is ""
          out[at++] = QUOTE;
        } else {
          // Without escapes the content holds no quote, CR or LF; only a comma needs quotes.
          let comma = false;
          for (let b = vs + 1; b < ve - 1; b++) {
            if (bytes[b] === COMMA) {
              comma = true;
              break;
            }
          }
          at += comma ? copy(vs, ve) : copy(vs + 1, ve - 1);
        }
      }
      out[at++] = CR;
      out[at++] = NEWLINE;
      if (i === range.end) break;
      if (bytes[i] !== COMMA) throw new Malformed();
      i++;
      if (++n % SLICE_ROWS === 0) await nextTurn();
    }
    return out.subarray(0, at);
  } catch (error) {
    if (error instanceof Malformed) return undefined;
    throw error;
  }
}
