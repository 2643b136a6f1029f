// Document updates of a collection: the bodies of POST and DELETE /v1/indexes/:collection/documents,
// bounded like inline builds (QUARRY_MAX_INDEX_DOCUMENTS documents or ids, QUARRY_MAX_INLINE_BYTES
// of JSON), and the job payload they become: an index job whose settings are the live version's
// (read from its header) and whose source is `update`, the changes travelling inline.
import { z } from 'zod';
import { validationError } from './aggregation.ts';
import { QuarryError } from './errors.ts';
import { type DocumentChanges, type IndexSettings, idOf } from './index-documents.ts';
import { checkCollection, type IndexJobData, type IndexLimits } from './indexing.ts';
import { own } from './own-fields.ts';
import { isIndexable } from './search/build.ts';
import { isColumnScalar } from './search/extension.ts';
import { parseWith } from './zod-messages.ts';

export const UpsertSchema = z.strictObject({ documents: z.array(z.unknown()).min(1) });
export const DeleteSchema = z.strictObject({
  ids: z.array(z.union([z.string().min(1).max(1024), z.number().finite()])).min(1),
});

export type UpsertRequestInput = z.input<typeof UpsertSchema>;
export type DeleteRequestInput = z.input<typeof DeleteSchema>;

/** A checked update: its changes as the job carries them (JSON), and their counts. */
export interface ParsedUpdate {
  readonly collection: string;
  readonly changes: DocumentChanges;
  readonly json: string;
}

function tooMany(field: string, n: number, what: string, limits: IndexLimits): QuarryError {
  return new QuarryError(
    'QUARRY_ERR_DATASET_TOO_LARGE',
    `${field}: ${n} ${what}, more than the ${limits.maxIndexDocuments} allowed in one update (QUARRY_MAX_INDEX_DOCUMENTS)`,
    { field },
  );
}

function bounded(
  collection: string,
  changes: DocumentChanges,
  field: string,
  limits: IndexLimits,
): ParsedUpdate {
  const json = JSON.stringify(changes);
  if (json.length > limits.maxInlineBytes) {
    throw new QuarryError(
      'QUARRY_ERR_DATASET_TOO_LARGE',
      `${field} take ${json.length} bytes, more than QUARRY_MAX_INLINE_BYTES (${limits.maxInlineBytes})`,
      { field },
    );
  }
  return { collection, changes, json };
}

/** `{ "documents": [...] }`: added, or replacing the document of the same id. */
export function parseUpsert(collection: unknown, input: unknown, limits: IndexLimits): ParsedUpdate {
  const name = checkCollection(collection);
  const parsed = parseWith(UpsertSchema, input);
  if (!parsed.success) throw validationError(parsed.error);
  const { documents } = parsed.data;
  if (documents.length > limits.maxIndexDocuments) {
    throw tooMany('documents', documents.length, 'documents', limits);
  }
  documents.forEach((d, i) => {
    if (d === null || typeof d !== 'object' || Array.isArray(d)) {
      throw new QuarryError('QUARRY_ERR_VALIDATION', `documents.${i}: must be an object`, {
        field: `documents.${i}`,
      });
    }
  });
  return bounded(name, { documents: documents as object[], ids: [] }, 'documents', limits);
}

/** `{ "ids": [...] }`: the documents of these ids removed (an id not in the collection is ignored). */
export function parseDelete(collection: unknown, input: unknown, limits: IndexLimits): ParsedUpdate {
  const name = checkCollection(collection);
  const parsed = parseWith(DeleteSchema, input);
  if (!parsed.success) throw validationError(parsed.error);
  const { ids } = parsed.data;
  if (ids.length > limits.maxIndexDocuments) throw tooMany('ids', ids.length, 'ids', limits);
  return bounded(name, { documents: [], ids }, 'ids', limits);
}

/**
 * Checks the documents' ids against the live version's id field (a 400 naming
 * `documents.<i>.<idField>` for a missing or repeated one) and makes the job payload.
 */
export function updateJob(
  update: ParsedUpdate,
  settings: IndexSettings,
  tenant: string | undefined,
): IndexJobData {
  const seen = new Map<string, number>();
  update.changes.documents.forEach((doc, i) => {
    const field = `documents.${i}.${settings.idField}`;
    const id = idOf(own(doc as Record<string, unknown>, settings.idField));
    if (id === null) {
      throw new QuarryError(
        'QUARRY_ERR_VALIDATION',
        `${field}: the collection's id field "${settings.idField}" must be a non-empty string or a number`,
        { field },
      );
    }
    const previous = seen.get(id);
    if (previous !== undefined) {
      throw new QuarryError('QUARRY_ERR_VALIDATION', `${field}: repeats the id of documents.${previous}`, {
        field,
      });
    }
    seen.set(id, i);
    checkValues(doc as Record<string, unknown>, i, settings);
  });
  const { idField, fields, store = [], boosts, analyzer, filterable, sortable, typos } = settings;
  return {
    v: 1,
    ...(tenant === undefined ? {} : { tenant }),
    collection: update.collection,
    idField,
    fields,
    store,
    ...(boosts === undefined ? {} : { boosts }),
    ...(filterable === undefined ? {} : { filterable }),
    ...(sortable === undefined ? {} : { sortable }),
    ...(typos === undefined ? {} : { typos }),
    ...(analyzer === undefined ? {} : { analyzer }),
    source: { kind: 'update', documents: update.changes.documents.length, ids: update.changes.ids.length },
  };
}

/** The changes a job carries inline, read back by the worker. */
export function parseChanges(text: string): DocumentChanges {
  const parsed = JSON.parse(text) as DocumentChanges;
  if (!Array.isArray(parsed?.documents) || !Array.isArray(parsed?.ids)) {
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'malformed update changes', { field: 'job.changes' });
  }
  return parsed;
}

/**
 * The values the build would refuse whatever the other documents hold, refused now with a 400
 * naming `documents.<i>.<field>` (not a 202 and then a failed job naming the document's place in
 * the merged collection): an indexed field that is not text, numbers, booleans or arrays of them;
 * a filterable or sortable one that is not a string, a finite number, a boolean or (filterable
 * only) an array of strings.
 */
function checkValues(doc: Readonly<Record<string, unknown>>, i: number, settings: IndexSettings): void {
  const fail = (field: string, message: string) => {
    const path = `documents.${i}.${field}`;
    return new QuarryError('QUARRY_ERR_VALIDATION', `${path} ${message}`, { field: path });
  };
  for (const field of settings.fields) {
    if (!isIndexable(own(doc, field)))
      throw fail(field, 'must be a string, number, boolean or an array of them');
  }
  const sortable = new Set(settings.sortable ?? []);
  for (const field of new Set([...(settings.filterable ?? []), ...sortable])) {
    const v = own(doc, field);
    if (v === null || v === undefined) continue;
    if (Array.isArray(v)) {
      if (sortable.has(field)) throw fail(field, 'is sortable: it holds one value, not an array');
      if (!v.every((x) => typeof x === 'string')) throw fail(field, 'must hold only strings in an array');
    } else if (!isColumnScalar(v)) {
      throw fail(field, 'must be a string, a finite number, a boolean or an array of strings');
    }
  }
}
