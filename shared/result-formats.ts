// The formats a result envelope can be read in besides its stored JSON: CSV (RFC 4180), NDJSON
// and an Arrow IPC stream, converted from the envelope (docs/FORMATS.md defines each exactly).
// Shared by the API (GET /v1/results, /v1/aliases) and the SDK/CLI, which read Redis directly.
// Conversions work a slice of rows (or a column) at a time with a turn of the event loop in
// between, as the worker's serialization does (workers/envelope.ts): a 100,000-row result must
// not hold the API's event loop for the whole conversion.
import { Bool, DateDay, Float64, Int64, makeData, Null, TimestampMillisecond, Utf8 } from 'apache-arrow';
import type { ResultColumn, ResultEnvelope } from './aggregation.ts';
import type { ColumnData } from './arrow-columns.ts';
import { arrowFromStored, arrowStream } from './arrow-stored.ts';
import { csvFromStored, ndjsonFromStored } from './envelope-scan.ts';

export const RESULT_FORMATS = ['json', 'csv', 'ndjson', 'arrow'] as const;
export type ResultFormat = (typeof RESULT_FORMATS)[number];
/** The formats converted from the stored JSON envelope. */
export type ConvertedFormat = Exclude<ResultFormat, 'json'>;

/** The Content-Type each format is served with. */
export const FORMAT_CONTENT_TYPES: Readonly<Record<ResultFormat, string>> = {
  json: 'application/json; charset=utf-8',
  csv: 'text/csv; charset=utf-8; header=present',
  ndjson: 'application/x-ndjson; charset=utf-8',
  arrow: 'application/vnd.apache.arrow.stream',
};

export const isResultFormat = (value: string): value is ResultFormat =>
  (RESULT_FORMATS as readonly string[]).includes(value);

/** Rows converted between two turns of the event loop. */
const SLICE_ROWS = 10_000;
const CRLF = '\r\n';
const MS_PER_DAY = 86_400_000;
/** Int64's range as doubles: 2^63 itself is already out of range. */
const INT64_LIMIT = 2 ** 63;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Stored envelope bytes converted straight from the bytes (envelope-scan.ts, arrow-stored.ts),
 * unless they are not in the worker's compact form; then from the parsed envelope. The output is
 * the same either way.
 */
export async function convertStored(bytes: Buffer, format: ConvertedFormat): Promise<Buffer> {
  const direct =
    format === 'csv'
      ? await csvFromStored(bytes, csvText, csvHeader)
      : format === 'ndjson'
        ? await ndjsonFromStored(bytes)
        : await arrowFromStored(bytes);
  if (direct !== undefined) return Buffer.isBuffer(direct) ? direct : asBuffer(direct);
  return convertResult(JSON.parse(bytes.toString('utf8')) as ResultEnvelope, format);
}

export async function convertResult(envelope: ResultEnvelope, format: ConvertedFormat): Promise<Buffer> {
  switch (format) {
    case 'csv':
      return Buffer.from(await toCsv(envelope), 'utf8');
    case 'ndjson':
      return Buffer.from(await toNdjson(envelope), 'utf8');
    case 'arrow':
      return asBuffer(await toArrow(envelope));
  }
}

const asBuffer = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * Stored envelope bytes read in a format: the envelope itself for json, CSV or NDJSON text, or
 * the bytes of an Arrow IPC stream (what the SDK's `result(key, { format })` returns).
 */
export async function envelopeAs(
  bytes: Buffer,
  format: ResultFormat,
): Promise<ResultEnvelope | string | Uint8Array> {
  switch (format) {
    case 'json':
      return JSON.parse(bytes.toString('utf8')) as ResultEnvelope;
    case 'csv':
    case 'ndjson':
      return (await convertStored(bytes, format)).toString('utf8');
    case 'arrow': {
      const out = await convertStored(bytes, format);
      return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    }
  }
}

/**
 * A column's value in a row. Rows come from JSON.parse, which makes every key an own property
 * ("__proto__" included); a name Object.prototype also has is read only when the row owns it.
 */
function reader(name: string): (row: Record<string, unknown>) => unknown {
  if (!(name in Object.prototype)) return (row) => row[name];
  return (row) => (Object.hasOwn(row, name) ? row[name] : undefined);
}

// CSV (RFC 4180): a header row of the column names, one record per row, CRLF after every
// record. A field holding a comma, a double quote, CR or LF is quoted, its quotes doubled. Null
// is an empty field; the empty string is `""`, so the two stay apart. Numbers as JSON writes them.

const NEEDS_QUOTES = /[",\r\n]/;

/** One string as a CSV field. */
export function csvText(text: string): string {
  if (text === '') return '""';
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return csvText(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return csvText(JSON.stringify(value));
}

/** The CSV header line of these column names. */
export const csvHeader = (names: readonly string[]) => names.map(csvText).join(',') + CRLF;

export async function toCsv(envelope: ResultEnvelope): Promise<string> {
  const { columns, rows } = envelope;
  const read = columns.map((c) => reader(c.name));
  const parts: string[] = [csvHeader(columns.map((c) => c.name))];
  for (let start = 0; start < rows.length; start += SLICE_ROWS) {
    if (start > 0) await nextTurn();
    const end = Math.min(rows.length, start + SLICE_ROWS);
    let chunk = '';
    for (let i = start; i < end; i++) {
      const row = rows[i]!;
      let line = '';
      for (let c = 0; c < read.length; c++) {
        if (c > 0) line += ',';
        line += csvField(read[c]!(row));
      }
      chunk += line + CRLF;
    }
    parts.push(chunk);
  }
  return parts.join('');
}

// NDJSON: each row of the envelope as JSON writes it there, one a line, each line ended by LF.

export async function toNdjson(envelope: ResultEnvelope): Promise<string> {
  const { rows } = envelope;
  const parts: string[] = [];
  for (let start = 0; start < rows.length; start += SLICE_ROWS) {
    if (start > 0) await nextTurn();
    const end = Math.min(rows.length, start + SLICE_ROWS);
    let chunk = '';
    for (let i = start; i < end; i++) chunk += `${JSON.stringify(rows[i])}\n`;
    parts.push(chunk);
  }
  return parts.join('');
}

// Arrow IPC stream: one record batch, a column per envelope column, typed by the envelope's
// column type: integer Int64 (Float64 if a value is not an integer inside Int64's range),
// float Float64, string Utf8, boolean Bool, date Date32 (days), timestamp Timestamp(ms, "UTC"),
// null Null. A date or timestamp column holding a value that does not parse is sent as Utf8.
// Each field's metadata says its Quarry type (`quarry.type`); the schema's, the envelope's
// resultKey, engine, computedAt and durationMs.

function validity(values: readonly unknown[]): { bitmap: Uint8Array; nulls: number } {
  const bitmap = new Uint8Array((values.length + 7) >> 3);
  let nulls = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) nulls++;
    else bitmap[i >> 3]! |= 1 << (i & 7);
  }
  return { bitmap, nulls };
}

function numberColumn(values: readonly unknown[], asInt: boolean): ColumnData {
  const { bitmap, nulls } = validity(values);
  if (asInt) {
    const data = new BigInt64Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v === 'number') data[i] = BigInt(v);
    }
    const type = new Int64();
    return {
      type,
      data: makeData({ type, length: values.length, nullCount: nulls, nullBitmap: bitmap, data }),
    };
  }
  const data = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'number') data[i] = v;
  }
  const type = new Float64();
  return {
    type,
    data: makeData({ type, length: values.length, nullCount: nulls, nullBitmap: bitmap, data }),
  };
}

function fitsInt64(values: readonly unknown[]): boolean {
  for (const v of values) {
    if (v === null || v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < -INT64_LIMIT || v >= INT64_LIMIT) return false;
  }
  return true;
}

const encoder = new TextEncoder();

function stringColumn(values: readonly unknown[]): ColumnData {
  const { bitmap, nulls } = validity(values);
  const texts = values.map((v) =>
    v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v),
  );
  let bytes = 0;
  for (const t of texts) bytes += Buffer.byteLength(t, 'utf8');
  const data = new Uint8Array(bytes);
  const valueOffsets = new Int32Array(values.length + 1);
  let at = 0;
  for (let i = 0; i < texts.length; i++) {
    at += encoder.encodeInto(texts[i]!, data.subarray(at)).written;
    valueOffsets[i + 1] = at;
  }
  const type = new Utf8();
  return {
    type,
    data: makeData({ type, length: values.length, nullCount: nulls, nullBitmap: bitmap, data, valueOffsets }),
  };
}

function boolColumn(values: readonly unknown[]): ColumnData {
  const { bitmap, nulls } = validity(values);
  const data = new Uint8Array((values.length + 7) >> 3);
  for (let i = 0; i < values.length; i++) if (values[i] === true) data[i >> 3]! |= 1 << (i & 7);
  const type = new Bool();
  return {
    type,
    data: makeData({ type, length: values.length, nullCount: nulls, nullBitmap: bitmap, data }),
  };
}

/** Milliseconds since the epoch of each value, or undefined when one does not parse. */
function instants(values: readonly unknown[], kind: 'date' | 'timestamp'): number[] | undefined {
  const out = new Array<number>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) {
      out[i] = 0;
      continue;
    }
    if (typeof v !== 'string') return undefined;
    // A bare YYYY-MM-DD parses as UTC midnight; a date must be exactly that form.
    if (kind === 'date' && !/^\d{4}-\d{2}-\d{2}$/.test(v)) return undefined;
    const ms = Date.parse(v);
    if (Number.isNaN(ms)) return undefined;
    out[i] = ms;
  }
  return out;
}

function temporalColumn(values: readonly unknown[], kind: 'date' | 'timestamp'): ColumnData {
  const ms = instants(values, kind);
  if (ms === undefined) return stringColumn(values);
  const { bitmap, nulls } = validity(values);
  if (kind === 'date') {
    const data = Int32Array.from(ms, (t) => Math.floor(t / MS_PER_DAY));
    const type = new DateDay();
    return {
      type,
      data: makeData({ type, length: values.length, nullCount: nulls, nullBitmap: bitmap, data }),
    };
  }
  const data = BigInt64Array.from(ms, (t) => BigInt(t));
  const type = new TimestampMillisecond('UTC');
  return {
    type,
    data: makeData({ type, length: values.length, nullCount: nulls, nullBitmap: bitmap, data }),
  };
}

function arrowColumn(column: ResultColumn, values: readonly unknown[]): ColumnData {
  switch (column.type) {
    case 'integer':
      return numberColumn(values, fitsInt64(values));
    case 'float':
      return numberColumn(values, false);
    case 'string':
      return stringColumn(values);
    case 'boolean':
      return boolColumn(values);
    case 'date':
    case 'timestamp':
      return temporalColumn(values, column.type);
    case 'null': {
      const type = new Null();
      return { type, data: makeData({ type, length: values.length, nullCount: values.length }) };
    }
  }
}

export async function toArrow(envelope: ResultEnvelope): Promise<Uint8Array> {
  const { columns, rows } = envelope;
  const built: ColumnData[] = [];
  for (let c = 0; c < columns.length; c++) {
    if (c > 0 && rows.length > SLICE_ROWS) await nextTurn();
    const read = reader(columns[c]!.name);
    const values = new Array<unknown>(rows.length);
    for (let i = 0; i < rows.length; i++) values[i] = read(rows[i]!);
    built.push(arrowColumn(columns[c]!, values));
  }
  return arrowStream(columns, built, envelope, rows.length);
}
