// Opening dataset files and index sources: exactly the one regular file a request names, under
// the data root of the request's tenant. A file is opened once (non-blocking, so a FIFO can never
// hold a worker), checked on the open descriptor (regular, where it really lives, how large, what
// its first bytes say), and the engines are handed `/proc/self/fd/<n>`: a path that names that
// open file and nothing else, with no glob characters in it and no window in which a symlink or
// a rename could swap the file between the check and the read.
import { constants, existsSync } from 'node:fs';
import { type FileHandle, open, readlink, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { QuarryConfig } from './config.ts';
import type { FileFormat } from './datasets.ts';
import { QuarryError } from './errors.ts';

/**
 * The data root of a tenant: a `dataDir` given with its API keys, else `<QUARRY_DATA_DIR>/<tenant>`.
 * Without a tenant (a deployment without API keys), the data root itself. Tenant names are
 * 1-64 letters, digits, `-` or `_` (TENANT_PATTERN), so they are always one safe path segment.
 */
export function tenantDataRoot(
  config: Pick<QuarryConfig, 'dataDir' | 'tenantDataDirs'>,
  tenant?: string,
): string {
  if (tenant === undefined) return config.dataDir;
  return config.tenantDataDirs[tenant] ?? path.join(config.dataDir, tenant);
}

/** Every directory a file dataset may live in: DuckDB's allowed_directories. */
export function allDataRoots(config: Pick<QuarryConfig, 'dataDir' | 'tenantDataDirs'>): string[] {
  return [...new Set([config.dataDir, ...Object.values(config.tenantDataDirs)])];
}

// Linux: the engines run in this process (and its threads), so they can reopen our descriptor.
const PROC_FD = existsSync('/proc/self/fd') ? '/proc/self/fd' : undefined;

export interface OpenOptions {
  /** The request field the path came from (`dataset.path`, `source.path`), named in errors. */
  readonly field: string;
  /** Checked against the file's first and last bytes (Parquet starts and ends with `PAR1`). */
  readonly format?: FileFormat;
  /** Larger files are refused with QUARRY_ERR_SOURCE_TOO_LARGE. */
  readonly maxBytes?: number;
  /** The variable that sets maxBytes, named in the error. */
  readonly maxBytesName?: string;
}

/** An open, checked data file. close() is idempotent; until then `readPath` names this file. */
export interface DataFile {
  /** The path as the request gave it, relative to the tenant root, with forward slashes. */
  readonly relPath: string;
  /** What engines open: `/proc/self/fd/<n>` (or the resolved real path where /proc is absent). */
  readonly readPath: string;
  readonly handle: FileHandle;
  readonly size: number;
  readonly mtimeMs: number;
  close(): Promise<void>;
}

const pathError = (field: string, message: string) =>
  new QuarryError('QUARRY_ERR_DATASET_PATH', `${field}: ${message}`, { field });

/**
 * Opens `relPath` under `root` as one literal regular file. Refuses `..`, absolute paths,
 * symlinks that end outside the root (judged on the opened file, so a swap after the check
 * cannot help), anything but a regular file (FIFOs, devices, sockets, directories: refused before
 * and after opening, and opened with O_NONBLOCK so none can block), files over `maxBytes`, and
 * files whose magic bytes contradict `format`.
 */
export async function openDataFile(root: string, relPath: string, options: OpenOptions): Promise<DataFile> {
  const { field } = options;
  if (relPath.includes('\0') || path.isAbsolute(relPath)) {
    throw pathError(field, 'must be a relative path under the data root');
  }
  let realRoot: string;
  try {
    realRoot = await realpath(root);
  } catch (cause) {
    throw new QuarryError(
      'QUARRY_ERR_DATASET_NOT_FOUND',
      `${field}: no file "${relPath}" under the data root`,
      {
        field,
        cause,
      },
    );
  }
  const joined = path.resolve(realRoot, relPath);
  if (!isInside(realRoot, joined)) throw pathError(field, 'leaves the data root');

  // A first look without opening: a FIFO or device is refused without ever being opened.
  const before = await stat(joined).catch((cause: NodeJS.ErrnoException) => {
    throw notFound(field, relPath, cause);
  });
  if (!before.isFile()) throw notRegular(field, relPath, kindOf(before));

  let handle: FileHandle;
  try {
    // O_NONBLOCK: if the name became a FIFO since the stat, opening it still returns at once.
    handle = await open(joined, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (cause) {
    throw notFound(field, relPath, cause as NodeJS.ErrnoException);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw notRegular(field, relPath, kindOf(info));
    const readPath = await whereOpened(handle, joined, info);
    if (readPath === undefined || !isInside(realRoot, readPath.real)) {
      throw pathError(field, 'resolves (through a link) outside the data root');
    }
    if (options.maxBytes !== undefined && info.size > options.maxBytes) {
      throw tooLarge(field, relPath, info.size, options.maxBytes, options.maxBytesName);
    }
    if (options.format !== undefined) await checkMagic(handle, info.size, options.format, field);
    let closed = false;
    return {
      relPath: path.relative(realRoot, joined).split(path.sep).join('/'),
      readPath: readPath.read,
      handle,
      size: info.size,
      mtimeMs: Math.trunc(info.mtimeMs),
      async close() {
        if (closed) return;
        closed = true;
        await handle.close().catch(() => undefined);
      },
    };
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}

/** Opens, runs `use`, closes: the file stays open (and `readPath` valid) exactly while `use` runs. */
export async function withDataFile<T>(
  root: string,
  relPath: string,
  options: OpenOptions,
  use: (file: DataFile) => Promise<T>,
): Promise<T> {
  const file = await openDataFile(root, relPath, options);
  try {
    return await use(file);
  } finally {
    await file.close();
  }
}

export function tooLarge(
  field: string,
  relPath: string,
  size: number,
  max: number,
  name?: string,
): QuarryError {
  return new QuarryError(
    'QUARRY_ERR_SOURCE_TOO_LARGE',
    `${field}: "${relPath}" has ${size} bytes, more than the ${max} allowed${name === undefined ? '' : ` (${name})`}`,
    { field },
  );
}

/** Where the open file really is (`real`) and the path engines should read (`read`). */
async function whereOpened(
  handle: FileHandle,
  joined: string,
  info: { dev: number; ino: number },
): Promise<{ real: string; read: string } | undefined> {
  if (PROC_FD !== undefined) {
    const read = `${PROC_FD}/${handle.fd}`;
    // The kernel's name for the open file: what the path resolved to at the moment of opening.
    const real = (await readlink(read)).replace(/ \(deleted\)$/, '');
    return { real, read };
  }
  // Elsewhere: resolve the name again and accept it only if it is still the file we hold.
  const real = await realpath(joined).catch(() => undefined);
  if (real === undefined) return undefined;
  const now = await stat(real).catch(() => undefined);
  if (now === undefined || now.dev !== info.dev || now.ino !== info.ino) return undefined;
  return { real, read: real };
}

const PAR1 = Buffer.from('PAR1');

/** Polars reads a Parquet file given as CSV (DuckDB refuses it): the first bytes decide for both. */
async function checkMagic(
  handle: FileHandle,
  size: number,
  format: FileFormat,
  field: string,
): Promise<void> {
  const head = Buffer.alloc(4);
  const tail = Buffer.alloc(4);
  const { bytesRead } = await handle.read(head, 0, 4, 0);
  const startsPar1 = bytesRead === 4 && head.equals(PAR1);
  if (format === 'parquet') {
    if (size >= 12) await handle.read(tail, 0, 4, size - 4);
    if (!startsPar1 || !tail.equals(PAR1)) {
      throw unreadable(field, 'is not a Parquet file (it must start and end with "PAR1")');
    }
  } else if (startsPar1) {
    throw unreadable(field, `is a Parquet file, not ${format}; give "format": "parquet"`);
  }
}

function unreadable(field: string, message: string): QuarryError {
  return new QuarryError('QUARRY_ERR_DATASET_UNREADABLE', `${field}: ${message}`, { field });
}

function notFound(field: string, relPath: string, cause: NodeJS.ErrnoException): QuarryError {
  if (cause.code === 'ELOOP') return pathError(field, 'has too many levels of symbolic links');
  if (cause.code === 'ENXIO') return notRegular(field, relPath, 'socket');
  return new QuarryError(
    'QUARRY_ERR_DATASET_NOT_FOUND',
    `${field}: no file "${relPath}" under the data root`,
    {
      field,
      cause,
    },
  );
}

function notRegular(field: string, relPath: string, kind: string): QuarryError {
  return new QuarryError(
    'QUARRY_ERR_DATASET_NOT_REGULAR',
    `${field}: "${relPath}" is a ${kind}, not a regular file`,
    { field },
  );
}

function kindOf(info: {
  isDirectory(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}): string {
  if (info.isDirectory()) return 'directory';
  if (info.isFIFO()) return 'FIFO';
  if (info.isSocket()) return 'socket';
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'device';
  return 'special file';
}

function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  // `..foo` is a file name; only `..` as a whole segment climbs out.
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}
