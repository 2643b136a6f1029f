// The worker-thread side of IndexBuilder: parses the documents, builds the index, and transfers
// the bytes back. Any failure goes back as a message carrying the QuarryError code and field.
// A thread is either a primary (a whole build, or the first part of a two-thread one) or, for
// one build, a helper analyzing the second part for its primary (shared/search/build-parallel.ts).
import { type MessagePort, parentPort } from 'node:worker_threads';
import { QuarryError } from '../shared/errors.ts';
import { encodeDocuments, encodeDocumentsPart, updatedDocuments } from '../shared/index-documents.ts';
import {
  checkOptions,
  collectDocs,
  newCollected,
  writeCollectedWithPositions,
} from '../shared/search/build.ts';
import {
  findSplit,
  mergePartial,
  PARALLEL_MIN_BYTES,
  type PartialBuild,
  parsePart,
  partialOf,
  partialTransfer,
} from '../shared/search/build-parallel.ts';
import { buildUpdate } from '../shared/search/build-update.ts';
import {
  buildExtendedIndex,
  extendIndex,
  needsDocuments,
  splitExtensionOptions,
} from '../shared/search/extension.ts';
import type {
  BuildThreadReply,
  BuildThreadRequest,
  HelperDocuments,
  HelperRequest,
  HelperTask,
} from './index-build-thread.ts';

function reply(message: BuildThreadReply, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(message, transfer);
}

function parseAll(text: string): unknown[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'documents are not valid JSON', {
      field: 'documents',
      cause,
    });
  }
  if (!Array.isArray(parsed)) {
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'documents must be a JSON array of objects', {
      field: 'documents',
    });
  }
  return parsed;
}

const decoder = new TextDecoder();

function nextMessage<T>(port: MessagePort): Promise<T> {
  return new Promise((resolve) => port.once('message', resolve));
}

/** The port's messages in order, none lost between two reads (a port without a listener drops them). */
function messagesOf(port: MessagePort): <T>() => Promise<T> {
  const queued: unknown[] = [];
  const waiting: ((m: unknown) => void)[] = [];
  port.on('message', (m: unknown) => {
    const resolve = waiting.shift();
    if (resolve === undefined) queued.push(m);
    else resolve(m);
  });
  return <T>() =>
    new Promise<T>((resolve) => {
      if (queued.length > 0) resolve(queued.shift() as T);
      else waiting.push(resolve as (m: unknown) => void);
    });
}

interface Built {
  bytes: Uint8Array<ArrayBuffer>;
  /** The documents, when the request keeps them and they were not encoded yet. */
  docs?: readonly object[];
  /** The kept documents, encoded (by the two threads of a parallel build, one part each). */
  documents?: Uint8Array<ArrayBuffer>;
  /** An update built from its base's index. */
  fromIndex?: true;
}

/** The JSON bytes of the documents; an update's are made here (its kept documents, changed). */
function jsonOf(documents: BuildThreadRequest['documents']): Uint8Array | undefined {
  if (typeof documents === 'string') return undefined;
  if (documents instanceof ArrayBuffer) return new Uint8Array(documents);
  return updatedDocuments(
    new Uint8Array(documents.stored),
    documents.changes,
    documents.idField,
    documents.fields,
  );
}

async function run({ documents, options, helper, keep }: BuildThreadRequest): Promise<Built> {
  if (typeof documents === 'object' && !(documents instanceof ArrayBuffer) && documents.index !== undefined) {
    let updated: Built | null;
    try {
      updated = await buildUpdate(documents, documents.index, options, keep);
    } catch (error) {
      helper?.postMessage({ skip: true } satisfies HelperTask);
      helper?.close();
      throw error;
    }
    if (updated !== null) {
      helper?.postMessage({ skip: true } satisfies HelperTask);
      helper?.close();
      return { ...updated, fromIndex: true };
    }
  }
  let bytes: Uint8Array | undefined;
  let split: { at: number; before: number } | null;
  let settings: ReturnType<typeof splitExtensionOptions> | undefined;
  try {
    bytes = jsonOf(documents);
    split =
      helper !== undefined && bytes !== undefined && bytes.length >= PARALLEL_MIN_BYTES
        ? findSplit(bytes)
        : null;
    if (split !== null) settings = splitExtensionOptions(options);
  } catch (error) {
    // The helper waits for its part: release it, or the build never ends.
    helper?.postMessage({ skip: true } satisfies HelperTask);
    helper?.close();
    throw error;
  }
  if (split === null || settings === undefined) {
    helper?.postMessage({ skip: true } satisfies HelperTask);
    helper?.close();
    const text = bytes === undefined ? (documents as string) : decoder.decode(bytes);
    const docs = parseAll(text) as object[];
    return { bytes: buildExtendedIndex(docs, options), docs };
  }
  const { base, extension } = settings;
  // The second part goes to the helper as its own array: "[" + what follows the comma.
  const second = bytes!.slice(split.at);
  second[0] = 0x5b;
  const next = messagesOf(helper!);
  helper!.postMessage(
    {
      bytes: second.buffer,
      offset: split.before,
      options: base,
      ...(keep === undefined ? {} : { keep }),
    } satisfies HelperTask,
    [second.buffer],
  );
  const part = next<PartialBuild>();
  const opts = checkOptions(base);
  const collected = newCollected(true);
  try {
    bytes![split.at] = 0x5d;
    const first = parsePart(decoder.decode(bytes!.subarray(0, split.at + 1))) as object[];
    collectDocs(first, opts, collected);
    // Each thread encodes the documents of its part, this one on the thread pool meanwhile.
    const firstMember = keep === undefined ? undefined : encodeDocumentsPart(first, keep, true);
    firstMember?.catch(() => {});
    // Typed columns read every document: then the second part is parsed here too, while the
    // helper analyzes it. A parse error is left for the helper to report.
    const wanted = needsDocuments(extension);
    bytes![split.at] = 0x5b;
    const rest = wanted ? parseOrNull(bytes!.subarray(split.at)) : null;
    mergePartial(collected, await part, opts);
    const docs = wanted
      ? first.concat(rest ?? (parsePart(decoder.decode(bytes!.subarray(split.at))) as object[]))
      : undefined;
    const { bytes: written, positions } = writeCollectedWithPositions(collected, opts);
    const index = extendIndex(written, positions, docs, extension);
    if (firstMember === undefined) return { bytes: index };
    const secondMember = await next<HelperDocuments>();
    if ('error' in secondMember) throw new QuarryError('QUARRY_ERR_INTERNAL', secondMember.error);
    const documents = Buffer.concat([await firstMember, secondMember.documents]);
    return {
      bytes: index,
      documents: new Uint8Array(documents.buffer, documents.byteOffset, documents.length),
    };
  } finally {
    helper!.close();
  }
}

function parseOrNull(part: Uint8Array): object[] | null {
  try {
    return parsePart(decoder.decode(part)) as object[];
  } catch {
    return null;
  }
}

async function serve(request: BuildThreadRequest): Promise<void> {
  try {
    const built = await run(request);
    const { bytes } = built;
    const from = built.fromIndex === true ? { fromIndex: true as const } : {};
    if (request.keep === undefined) {
      reply({ ok: true, bytes, ...from }, [bytes.buffer]);
      return;
    }
    const documents = built.documents ?? encodeDocuments(built.docs!, request.keep);
    reply({ ok: true, bytes, documents, ...from }, [bytes.buffer, documents.buffer]);
  } catch (error) {
    reply(failure(error));
  }
}

function failure(error: unknown): BuildThreadReply {
  const e = error instanceof QuarryError ? error : undefined;
  return {
    ok: false,
    code: e?.code ?? 'QUARRY_ERR_INTERNAL',
    message: error instanceof Error ? error.message : String(error),
    field: e?.field,
  };
}

async function help({ port }: HelperRequest): Promise<void> {
  try {
    const task = await nextMessage<HelperTask>(port);
    if ('bytes' in task) {
      const collected = newCollected(true);
      let error: unknown;
      let docs: object[] = [];
      try {
        const opts = checkOptions(task.options);
        docs = parsePart(decoder.decode(task.bytes)) as object[];
        collectDocs(docs, opts, collected, task.offset);
      } catch (e) {
        error = e;
      }
      const partial = partialOf(collected, task.offset, error);
      port.postMessage(partial, partialTransfer(partial));
      // After a failure the primary throws it and wants no documents.
      if (task.keep !== undefined && error === undefined) {
        let message: HelperDocuments;
        try {
          message = { documents: await encodeDocumentsPart(docs, task.keep, false) };
        } catch (e) {
          message = { error: `encoding the kept documents: ${e instanceof Error ? e.message : String(e)}` };
        }
        port.postMessage(message, 'documents' in message ? [message.documents.buffer] : []);
      }
    }
    reply({ ok: true, helped: true });
  } catch (error) {
    reply(failure(error));
  } finally {
    port.close();
  }
}

// Kept warm by IndexBuilder: one request per message, one build at a time.
parentPort!.on('message', (request: BuildThreadRequest | HelperRequest) => {
  if ('port' in request) void help(request);
  else void serve(request);
});
