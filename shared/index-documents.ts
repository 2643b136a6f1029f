// What a document update needs of a version: its documents projected onto the fields the index
// uses (id, indexed, stored, filterable, sortable), kept beside the index bytes, and the build
// settings read back from the index header. An update is the base version's documents minus the
// deleted and replaced ids plus the new ones: untouched documents keep their order, a replaced
// document keeps its place, new ones are appended (so the result is the document list a full
// build of the same collection would be given, and its bytes equal that build's).
import { promisify } from 'node:util';
import { gunzipSync, gzip, gzipSync } from 'node:zlib';
import { QuarryError } from './errors.ts';
import type { BuildOptions } from './search/build.ts';
import type { ExtensionOptions } from './search/extension.ts';
import type { IndexHeader } from './search/format.ts';

/** How a version's documents are stored: gzip (level 1) of a JSON array, in one member or two. */
export const DOCUMENTS_ENCODING = 'json.gz';

const gzipAsync = promisify(gzip);

export type IndexSettings = BuildOptions & ExtensionOptions;

/** The build settings of a version, as its header records them. */
export function settingsOf(header: IndexHeader): IndexSettings {
  return {
    idField: header.idField,
    fields: header.fields,
    store: header.stored,
    boosts: header.boosts,
    analyzer: header.analyzer,
    ...(header.ext === undefined
      ? {}
      : { filterable: header.ext.filterable, sortable: header.ext.sortable, typos: header.ext.typos }),
  };
}

/** Every field the index reads of a document, the id first. */
export function projectedFields(settings: IndexSettings): string[] {
  return [
    ...new Set([
      settings.idField,
      ...settings.fields,
      ...(settings.store ?? []),
      ...(settings.filterable ?? []),
      ...(settings.sortable ?? []),
    ]),
  ];
}

/** `doc` with only `fields` (absent ones stay absent). */
export function project(doc: object, fields: readonly string[]): Record<string, unknown> {
  const d = doc as Readonly<Record<string, unknown>>;
  const out: Record<string, unknown> = {};
  for (const f of fields) if (d[f] !== undefined) out[f] = d[f];
  return out;
}

/** The projected documents as stored: gzip of their JSON array. */
export function encodeDocuments(docs: readonly object[], fields: readonly string[]): Uint8Array<ArrayBuffer> {
  return ownBytes(gzipSync(projectedJson(docs, fields), { level: 1 }));
}

function projectedJson(docs: readonly object[], fields: readonly string[]): string {
  return JSON.stringify(docs.map((d) => project(d, fields)));
}

/** The bytes of `b` in an ArrayBuffer of their own (zlib's may be pooled), to transfer. */
function ownBytes(b: Buffer): Uint8Array<ArrayBuffer> {
  return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)) as Uint8Array<ArrayBuffer>;
}

/**
 * One part of a two-thread build's stored documents: a gzip member of the part's JSON array text
 * without the bracket it shares with the other part (`first`: the closing one, replaced by a comma;
 * else the opening one). The first part's member followed by the second's is a gzip stream (RFC
 * 1952 allows several members) of the JSON array of all the documents, the text encodeDocuments
 * would compress. Runs on the thread pool: the calling thread goes on with the build.
 */
export async function encodeDocumentsPart(
  docs: readonly object[],
  fields: readonly string[],
  first: boolean,
): Promise<Uint8Array<ArrayBuffer>> {
  const json = projectedJson(docs, fields);
  return ownBytes(await gzipAsync(first ? `${json.slice(0, -1)},` : json.slice(1), { level: 1 }));
}

/** The stored documents back as the text of a JSON array. */
export function decodeDocuments(bytes: Uint8Array): Buffer {
  return gunzipSync(bytes);
}

/** An id as the build compares them (build.ts: String of a non-empty string or a finite number). */
export function idOf(value: unknown): string | null {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return null;
}

/** What one update changes: documents added or replaced by id, ids deleted. */
export interface DocumentChanges {
  readonly documents: readonly object[];
  readonly ids: readonly (string | number)[];
}

/**
 * The base documents with `changes` applied: deleted ids removed, replaced documents in place,
 * new ones appended in the order given. Throws QUARRY_ERR_VALIDATION naming
 * `documents.<i>.<idField>` for a document without a valid id.
 */
/** Throws QUARRY_ERR_VALIDATION naming the first added document without a valid id. */
export function checkChanges(changes: DocumentChanges, idField: string): void {
  changes.documents.forEach((doc, i) => {
    if (idOf((doc as Record<string, unknown>)[idField]) === null) {
      throw new QuarryError(
        'QUARRY_ERR_VALIDATION',
        `documents.${i}.${idField}: the id must be a non-empty string or a number`,
        { field: `documents.${i}.${idField}` },
      );
    }
  });
}

/**
 * The documents a version keeps (`stored`, as encodeDocuments wrote them) with `changes` applied,
 * as the UTF-8 text of a JSON array: what a build of the next version reads.
 */
export function updatedDocuments(
  stored: Uint8Array,
  changes: DocumentChanges,
  idField: string,
  fields: readonly string[],
): Uint8Array {
  const base = JSON.parse(decodeDocuments(stored).toString('utf8')) as object[];
  const text = Buffer.from(JSON.stringify(applyChanges(base, changes, idField, fields)));
  return new Uint8Array(text.buffer, text.byteOffset, text.length);
}

export function applyChanges(
  base: readonly object[],
  changes: DocumentChanges,
  idField: string,
  fields: readonly string[],
): object[] {
  checkChanges(changes, idField);
  const upserts = new Map<string, Record<string, unknown>>();
  for (const doc of changes.documents)
    upserts.set(idOf((doc as Record<string, unknown>)[idField])!, project(doc, fields));
  const deleted = new Set(changes.ids.map(String));
  const out: object[] = [];
  for (const doc of base) {
    const id = idOf((doc as Record<string, unknown>)[idField]) ?? '';
    if (deleted.has(id) && !upserts.has(id)) continue;
    const replacement = upserts.get(id);
    if (replacement !== undefined) {
      out.push(replacement);
      upserts.delete(id);
    } else out.push(doc);
  }
  for (const doc of upserts.values()) out.push(doc);
  return out;
}
