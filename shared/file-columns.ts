// The column names of a file dataset, read at enqueue from its first or last bytes (a CSV header,
// a Parquet footer) so that a spec naming a column the file lacks is a 400, not a failed job.
// Names only: the type of every column is reported as `null`, which checkSpecColumns accepts for
// any use, so only engines decide types (at the worker). Where the names cannot be known for sure
// (NDJSON, whose later lines may add keys; a header past 64 KiB; an unusual footer) the answer is
// `undefined` and the worker checks alone. A CSV's dialect is fixed (a comma, `"` quotes), as the
// engines read it: a semicolon file is one column named by its whole header line.
import type { FileHandle } from 'node:fs/promises';
import type { ColumnInfo, FileFormat } from './datasets.ts';

const HEADER_BYTES = 64 * 1024;
const MAX_FOOTER_BYTES = 16 * 1024 * 1024;

export async function readFileColumnNames(
  handle: FileHandle,
  size: number,
  format: FileFormat,
): Promise<ColumnInfo[] | undefined> {
  const names =
    format === 'csv'
      ? await csvHeader(handle)
      : format === 'parquet'
        ? await parquetNames(handle, size)
        : undefined;
  if (names === undefined || names.length === 0) return undefined;
  const distinct = new Set(names);
  // A repeated CSV header name: each engine names the second copy its own way (DuckDB `x_1`,
  // Polars `x_duplicated_0`), so only the names the header states can be used, the first copy
  // for the repeated one. A Parquet footer with repeats is left to the engines.
  if (distinct.size !== names.length && format !== 'csv') return undefined;
  return [...distinct].map((name) => ({ name, type: 'null' as const }));
}

async function csvHeader(handle: FileHandle): Promise<string[] | undefined> {
  const buffer = Buffer.alloc(HEADER_BYTES);
  const { bytesRead } = await handle.read(buffer, 0, HEADER_BYTES, 0);
  let text = buffer.subarray(0, bytesRead).toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const names: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch !== '"') field += ch;
      else if (text[i + 1] === '"') {
        field += '"';
        i++;
      } else quoted = false;
    } else if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') {
      names.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      names.push(field);
      return names;
    } else field += ch;
  }
  return undefined; // no end of line within the first 64 KiB: leave it to the engines
}

/** Top-level column names from the Thrift (compact protocol) FileMetaData at the file's end. */
async function parquetNames(handle: FileHandle, size: number): Promise<string[] | undefined> {
  if (size < 12) return undefined;
  const tail = Buffer.alloc(8);
  await handle.read(tail, 0, 8, size - 8);
  const length = tail.readUInt32LE(0);
  if (length === 0 || length > MAX_FOOTER_BYTES || length > size - 12) return undefined;
  const footer = Buffer.alloc(length);
  await handle.read(footer, 0, length, size - 8 - length);
  try {
    const elements = readSchema(new Compact(footer));
    if (elements === undefined || elements.length === 0) return undefined;
    const names: string[] = [];
    let i = 1;
    const skip = (at: number): number => {
      let next = at + 1;
      for (let k = 0; k < (elements[at]?.children ?? 0); k++) next = skip(next);
      return next;
    };
    for (let k = 0; k < (elements[0]!.children ?? 0); k++) {
      const element = elements[i];
      if (element?.name === undefined) return undefined;
      names.push(element.name);
      i = skip(i);
    }
    return names;
  } catch {
    return undefined; // a footer this reader does not understand: the engines will say
  }
}

interface SchemaElement {
  name?: string;
  children?: number;
}

function readSchema(r: Compact): SchemaElement[] | undefined {
  let id = 0;
  for (;;) {
    const header = r.byte();
    if (header === 0) return undefined;
    const type = header & 0x0f;
    id = header >> 4 === 0 ? r.zigzag() : id + (header >> 4);
    if (id === 2 && type === 9) {
      const { size, elementType } = r.listHeader();
      if (elementType !== 12) return undefined;
      const out: SchemaElement[] = [];
      for (let k = 0; k < size; k++) out.push(readElement(r));
      return out;
    }
    r.skip(type);
  }
}

function readElement(r: Compact): SchemaElement {
  const element: SchemaElement = {};
  let id = 0;
  for (;;) {
    const header = r.byte();
    if (header === 0) return element;
    const type = header & 0x0f;
    id = header >> 4 === 0 ? r.zigzag() : id + (header >> 4);
    if (id === 4 && type === 8) element.name = r.binary().toString('utf8');
    else if (id === 5 && type === 5) element.children = r.zigzag();
    else r.skip(type);
  }
}

/** Just enough of Thrift's compact protocol to walk a struct and skip what it does not need. */
class Compact {
  #at = 0;
  readonly buffer: Buffer;
  constructor(buffer: Buffer) {
    this.buffer = buffer;
  }

  byte(): number {
    if (this.#at >= this.buffer.length) throw new RangeError('footer ends early');
    return this.buffer[this.#at++]!;
  }

  varint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 63) throw new RangeError('varint too long');
    }
  }

  zigzag(): number {
    const n = this.varint();
    return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
  }

  binary(): Buffer {
    const length = this.varint();
    if (this.#at + length > this.buffer.length) throw new RangeError('footer ends early');
    const out = this.buffer.subarray(this.#at, this.#at + length);
    this.#at += length;
    return out;
  }

  listHeader(): { size: number; elementType: number } {
    const b = this.byte();
    const size = b >> 4 === 15 ? this.varint() : b >> 4;
    return { size, elementType: b & 0x0f };
  }

  // Inside a list or map a boolean takes a byte of its own.
  #element(type: number): void {
    if (type === 1 || type === 2) this.#at++;
    else this.skip(type);
  }

  skip(type: number): void {
    switch (type) {
      case 1:
      case 2:
        return; // booleans live in the field header
      case 3:
        this.#at++;
        return;
      case 4:
      case 5:
      case 6:
        this.varint();
        return;
      case 7:
        this.#at += 8;
        return;
      case 8:
        this.binary();
        return;
      case 9:
      case 10: {
        const { size, elementType } = this.listHeader();
        for (let k = 0; k < size; k++) this.#element(elementType);
        return;
      }
      case 11: {
        const size = this.varint();
        if (size === 0) return;
        const kinds = this.byte();
        for (let k = 0; k < size; k++) {
          this.#element(kinds >> 4);
          this.#element(kinds & 0x0f);
        }
        return;
      }
      case 12: {
        for (;;) {
          const header = this.byte();
          if (header === 0) return;
          if (header >> 4 === 0) this.zigzag();
          this.skip(header & 0x0f);
        }
      }
      default:
        throw new RangeError(`unknown compact type ${type}`);
    }
  }
}
