// Datasets: inline records (validated, typed, canonicalized here) and files under the data
// root (opened and checked by data-files.ts, fingerprinted by path + size + mtime or content).
import { createHash } from 'node:crypto';
import { type FileHandle, realpath } from 'node:fs/promises';
import path from 'node:path';
import { type DataFile, withDataFile } from './data-files.ts';
import { QuarryError } from './errors.ts';
import { readFileColumnNames } from './file-columns.ts';
import { compareCodePoints } from './hashing.ts';

export const FILE_FORMATS = ['parquet', 'csv', 'ndjson'] as const;
export type FileFormat = (typeof FILE_FORMATS)[number];

export type ColumnType = 'integer' | 'float' | 'string' | 'boolean' | 'date' | 'timestamp' | 'null';
export type Scalar = string | number | boolean | null;
export type InlineRecord = Record<string, Scalar>;

export interface ColumnInfo {
  readonly name: string;
  readonly type: ColumnType;
}

export interface InlineDataset {
  readonly rows: number;
  /** Every column found in any record, sorted by code point. Missing values are null. */
  readonly columns: readonly ColumnInfo[];
  /** The records as canonical JSON (keys sorted); hashed for the fingerprint, read by engines. */
  readonly json: string;
}

const EXTENSIONS: Record<string, FileFormat> = {
  '.parquet': 'parquet',
  '.pq': 'parquet',
  '.csv': 'csv',
  '.ndjson': 'ndjson',
  '.jsonl': 'ndjson',
};

export function formatFromPath(relPath: string): FileFormat | undefined {
  return EXTENSIONS[path.extname(relPath).toLowerCase()];
}

const MAX_COLUMNS = 1024;
const SAFE = Number.MAX_SAFE_INTEGER;

/**
 * Validates inline records in one pass and produces their canonical JSON. Kept out of zod on
 * purpose: this runs on every request (cache hits too) and must cost well under a millisecond
 * per thousand records.
 */
export function prepareInlineRecords(records: unknown, maxBytes: number): InlineDataset {
  const field = 'dataset.records';
  if (!Array.isArray(records)) throw invalid(field, 'must be an array of objects');
  // Column name -> bit set of the JS types seen (1 int, 2 float, 4 string, 8 boolean, 16 a
  // string that is an RFC 3339 instant: a column of only those is a timestamp column).
  const seen = new Map<string, number>();
  for (let i = 0; i < records.length; i++) {
    const record = records[i];
    if (record === null || typeof record !== 'object' || Array.isArray(record)) {
      throw invalid(`${field}.${i}`, 'must be an object of column values');
    }
    for (const key in record) {
      const value = (record as Record<string, unknown>)[key];
      let bit: number;
      switch (typeof value) {
        case 'number':
          if (!Number.isFinite(value)) throw invalid(`${field}.${i}.${key}`, 'must be a finite number');
          bit = Number.isInteger(value) && value <= SAFE && value >= -SAFE ? 1 : 2;
          break;
        case 'string':
          // A lone surrogate cannot be encoded as UTF-8: engines would each mangle it differently.
          if (!(value as unknown as { isWellFormed(): boolean }).isWellFormed()) {
            throw invalid(`${field}.${i}.${key}`, 'must be well-formed Unicode (no lone surrogates)');
          }
          bit = isInstant(value) ? 16 : 4;
          break;
        case 'boolean':
          bit = 8;
          break;
        case 'object':
          if (value === null) {
            bit = 0;
            break;
          }
          throw invalid(`${field}.${i}.${key}`, 'must be a string, number, boolean or null (no nesting)');
        default:
          throw invalid(`${field}.${i}.${key}`, 'must be a string, number, boolean or null');
      }
      const before = seen.get(key);
      if (before === undefined) {
        if (seen.size >= MAX_COLUMNS) throw invalid(field, `more than ${MAX_COLUMNS} distinct columns`);
        checkColumnName(key, `${field}.${i}`);
        seen.set(key, bit);
      } else if ((before | bit) !== before) {
        const merged = before | bit;
        if (popcountKinds(merged) > 1) {
          throw invalid(
            `${field}.${i}.${key}`,
            `column "${key}" mixes ${kindsOf(merged).join(' and ')} values`,
          );
        }
        seen.set(key, merged);
      }
    }
  }
  const names = [...seen.keys()].sort(compareCodePoints);
  const columns = names.map((name) => ({ name, type: columnType(seen.get(name)!) }));
  // A replacer array fixes the key order of every object: sorted keys without rebuilding objects.
  const json = JSON.stringify(records, names);
  if (json.length > maxBytes) {
    throw new QuarryError(
      'QUARRY_ERR_DATASET_TOO_LARGE',
      `inline records take ${json.length} bytes, more than the ${maxBytes} allowed (QUARRY_MAX_INLINE_BYTES); put large data in a file under the data root`,
      { field },
    );
  }
  return { rows: records.length, columns, json };
}

// Numbers (int 1, float 2) form one kind, strings (timestamps 16 among them) another, booleans a third.
function popcountKinds(bits: number): number {
  return (bits & 3 ? 1 : 0) + (bits & 20 ? 1 : 0) + (bits & 8 ? 1 : 0);
}

const INSTANT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,3})?(?:Z|[+-](\d{2}):(\d{2}))$/;

/**
 * An RFC 3339 instant as inline data writes one: `YYYY-MM-DDTHH:MM:SS[.sss]` then `Z` or an
 * offset `±HH:MM`, a real date and time (docs/AGGREGATION.md, "Timestamps").
 */
export function isInstant(s: string): boolean {
  const m = INSTANT.exec(s);
  if (m === null) return false;
  const [y, mo, d, h, mi, sec, oh, om] = m.slice(1).map((g) => (g === undefined ? 0 : Number(g))) as number[];
  const days = new Date(Date.UTC(2000, mo!, 0)).getUTCDate(); // a leap year: Feb 29 is checked below
  return (
    y! >= 1 &&
    mo! >= 1 &&
    mo! <= 12 &&
    d! >= 1 &&
    d! <= days &&
    !(mo === 2 && d === 29 && !(y! % 4 === 0 && (y! % 100 !== 0 || y! % 400 === 0))) &&
    h! < 24 &&
    mi! < 60 &&
    sec! < 60 &&
    oh! < 24 &&
    om! < 60
  );
}

/**
 * isInstant's form as one regular expression that DuckDB (RE2) and Polars (Rust's regex) read
 * alike: the year 0001-9999, month, day 01-31, hour, minute, second and offset in range. It
 * does not know month lengths: the engines' own parse of a matching string (null for 2023-02-29)
 * completes the check. NDJSON string columns whose every value passes both are timestamp columns
 * (workers/engines: DuckDB's columnsOf, Polars' prepareFile), as inline ones are.
 */
export const INSTANT_PATTERN =
  '^([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])' +
  'T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,3})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$';

function kindsOf(bits: number): string[] {
  const out: string[] = [];
  if (bits & 3) out.push('number');
  if (bits & 20) out.push('string');
  if (bits & 8) out.push('boolean');
  return out;
}

function columnType(bits: number): ColumnType {
  if (bits & 4) return 'string';
  if (bits & 16) return 'timestamp';
  if (bits & 8) return 'boolean';
  if (bits & 2) return 'float';
  if (bits & 1) return 'integer';
  return 'null';
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

/** Column names: 1-256 characters, no control characters. They are always quoted in SQL. */
export function checkColumnName(name: string, field: string): void {
  // `__proto__` is allowed: engines and the reference build rows with own properties only.
  if (
    name.length === 0 ||
    name.length > 256 ||
    CONTROL_CHARACTERS.test(name) ||
    !(name as unknown as { isWellFormed(): boolean }).isWellFormed()
  ) {
    throw invalid(
      field,
      `column name ${JSON.stringify(name.slice(0, 40))} must have 1-256 characters and no control characters`,
    );
  }
}

function invalid(field: string, message: string): QuarryError {
  return new QuarryError('QUARRY_ERR_VALIDATION', `${field}: ${message}`, { field });
}

export interface FileFingerprint {
  /** Path relative to the data root, normalized with forward slashes. */
  readonly path: string;
  readonly format: FileFormat;
  readonly size: number;
  readonly mtimeMs: number;
  /** With `fingerprint: "content"`: SHA-256 (128 bits) of the bytes; then mtime does not count. */
  readonly contentHash?: string;
}

/** How a file dataset is fingerprinted: `stat` (path + size + mtime, the default) or `content`. */
export type FingerprintMode = 'stat' | 'content';

/** Reads an open file through SHA-256 in 1 MiB chunks, stopping when `signal` aborts. */
export async function hashFile(handle: FileHandle, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  const chunk = Buffer.allocUnsafe(1 << 20);
  let position = 0;
  for (;;) {
    signal?.throwIfAborted();
    const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
    if (bytesRead === 0) break;
    hash.update(chunk.subarray(0, bytesRead));
    position += bytesRead;
  }
  return hash.digest('hex').slice(0, 32);
}

/**
 * Resolves a dataset path under a data root as openDataFile does (shared/data-files.ts) and
 * returns where the file really is. For checks only: readers hold the file open instead.
 */
export async function resolveDataFile(
  dataDir: string,
  relPath: string,
  field = 'dataset.path',
): Promise<string> {
  return withDataFile(dataDir, relPath, { field }, async (file) => realpath(file.readPath));
}

/** The format a file dataset declares, or the one its extension says. */
export function datasetFormat(relPath: string, explicitFormat: FileFormat | undefined): FileFormat {
  const format = explicitFormat ?? formatFromPath(relPath);
  if (format === undefined) {
    throw new QuarryError(
      'QUARRY_ERR_VALIDATION',
      `dataset.format: cannot tell the format of "${relPath}" from its extension; give "format": parquet, csv or ndjson`,
      { field: 'dataset.format' },
    );
  }
  return format;
}

/** The fingerprint of an open, checked file (see openDataFile). */
export async function fingerprintOpenFile(
  file: DataFile,
  format: FileFormat,
  mode: FingerprintMode = 'stat',
  signal?: AbortSignal,
): Promise<FileFingerprint> {
  return {
    path: file.relPath,
    format,
    size: file.size,
    mtimeMs: file.mtimeMs,
    ...(mode === 'content' ? { contentHash: await hashFile(file.handle, signal) } : {}),
  };
}

/**
 * Opens, checks and fingerprints a file dataset under `dataDir` (the tenant's data root) and
 * reads its column names where the file states them (file-columns.ts), all on one open file.
 */
export async function inspectFile(
  dataDir: string,
  relPath: string,
  explicitFormat: FileFormat | undefined,
  mode: FingerprintMode = 'stat',
): Promise<{ fingerprint: FileFingerprint; columns: ColumnInfo[] | undefined }> {
  const format = datasetFormat(relPath, explicitFormat);
  return withDataFile(dataDir, relPath, { field: 'dataset.path', format }, async (file) => ({
    fingerprint: await fingerprintOpenFile(file, format, mode),
    columns: await readFileColumnNames(file.handle, file.size, format),
  }));
}

/** Opens, checks and fingerprints a file dataset under `dataDir` (the tenant's data root). */
export async function fingerprintFile(
  dataDir: string,
  relPath: string,
  explicitFormat: FileFormat | undefined,
  mode: FingerprintMode = 'stat',
): Promise<FileFingerprint> {
  const format = datasetFormat(relPath, explicitFormat);
  return withDataFile(dataDir, relPath, { field: 'dataset.path', format }, (file) =>
    fingerprintOpenFile(file, format, mode),
  );
}
