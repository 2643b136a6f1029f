// Builds a search index on a worker thread, so a large build never blocks the event loop that renews
// BullMQ job locks. Documents go in as one JSON string (copied once into the thread) or as an
// ArrayBuffer of UTF-8 JSON (transferred: the caller's buffer is detached); the index comes back
// transferred, not copied. This module holds the messages' types and a one-off build; the thread
// itself is started and kept by IndexBuilder (index-builder.ts).
import type { MessagePort, ResourceLimits } from 'node:worker_threads';
import { type ErrorCode, QuarryError } from '../shared/errors.ts';
import type { DocumentChanges } from '../shared/index-documents.ts';
import type { BuildOptions } from '../shared/search/build.ts';
import type { ExtensionOptions } from '../shared/search/extension.ts';
import { IndexBuilder } from './index-builder.ts';

export interface BuildInThreadOptions extends BuildOptions, ExtensionOptions {
  /** Heap and stack limits of the build thread; exceeding them rejects with QUARRY_ERR_INTERNAL. */
  resourceLimits?: ResourceLimits;
  /** Aborting terminates the thread and rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** A JSON array of documents, as a string or as UTF-8 bytes. */
export type BuildInput = string | ArrayBuffer;

/** A document update: the base version's kept documents (as stored, shared/index-documents.ts;
 * transferred) and the changes, applied off the caller's event loop. With the base version's
 * index bytes (transferred too), the kept documents' postings are copied from it and only the
 * changed documents analyzed (shared/search/build-update.ts); without them, or from a base that
 * cannot be updated so, the thread builds from the changed documents list (updatedDocuments). */
export interface UpdateInput {
  readonly kind: 'update';
  readonly stored: ArrayBuffer;
  readonly index?: ArrayBuffer;
  readonly changes: DocumentChanges;
  readonly idField: string;
  /** The fields the documents are projected onto. */
  readonly fields: readonly string[];
}

/** A build; with `helper`, the primary of a two-thread build (build-parallel.ts), whose helper
 * thread listens on the other end of that port. */
export interface BuildThreadRequest {
  documents: BuildInput | UpdateInput;
  options: BuildOptions & ExtensionOptions;
  helper?: MessagePort;
  /** Also send back the documents projected onto these fields (shared/index-documents.ts). */
  keep?: readonly string[];
}

/** Makes a thread the helper of one build: it takes its part from the primary over `port`. */
export interface HelperRequest {
  port: MessagePort;
}

/** What the primary sends its helper: the second part of the documents, or nothing to do. */
export type HelperTask =
  | {
      bytes: ArrayBuffer;
      offset: number;
      options: BuildOptions;
      /** Also encode the part's documents projected onto these fields (a frame, see
       * shared/index-documents.ts), sent after the partial build. */
      keep?: readonly string[];
    }
  | { skip: true };

/** The helper's second message when it keeps documents: its frame, or why it has none. */
export type HelperDocuments = { documents: Uint8Array<ArrayBuffer> } | { error: string };

export type BuildThreadReply =
  | {
      ok: true;
      bytes: Uint8Array<ArrayBuffer>;
      documents?: Uint8Array<ArrayBuffer>;
      /** An update built from its base's index (shared/search/build-update.ts). */
      fromIndex?: true;
    }
  | { ok: true; helped: true }
  | { ok: false; code: ErrorCode; message: string; field: string | undefined };

/**
 * Runs buildIndex on a worker thread of its own and stops the thread afterwards; resolves with
 * the index bytes (transferred from the thread). Workers keep warm threads instead (IndexBuilder).
 */
export async function buildIndexInThread(
  input: BuildInput,
  options: BuildInThreadOptions,
): Promise<Uint8Array<ArrayBuffer>> {
  const { resourceLimits, ...buildOptions } = options;
  if (typeof input !== 'string' && !(input instanceof ArrayBuffer)) {
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'documents must be a JSON string or an ArrayBuffer', {
      field: 'documents',
    });
  }
  const builder = new IndexBuilder({ size: 1, ...(resourceLimits === undefined ? {} : { resourceLimits }) });
  try {
    return await builder.build(input, buildOptions);
  } finally {
    await builder.close();
  }
}
