// The worker-thread side of IndexBuilder: parses the documents, builds the index, and transfers
// the bytes back. Any failure goes back as a message carrying the QuarryError code and field.
import { parentPort } from 'node:worker_threads';
import { QuarryError } from '../shared/errors.ts';
import { buildExtendedIndex } from '../shared/search/extension.ts';
import type { BuildThreadReply, BuildThreadRequest } from './index-build-thread.ts';

function reply(message: BuildThreadReply, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(message, transfer);
}

function run({ documents, options }: BuildThreadRequest): void {
  const text = typeof documents === 'string' ? documents : new TextDecoder().decode(documents);
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
  const bytes = buildExtendedIndex(parsed as Record<string, unknown>[], options);
  reply({ ok: true, bytes }, [bytes.buffer]);
}

function serve(request: BuildThreadRequest): void {
  try {
    run(request);
  } catch (error) {
    const e = error instanceof QuarryError ? error : undefined;
    reply({
      ok: false,
      code: e?.code ?? 'QUARRY_ERR_INTERNAL',
      message: error instanceof Error ? error.message : String(error),
      field: e?.field,
    });
  }
}

// Kept warm by IndexBuilder: one request per message, one build at a time.
parentPort!.on('message', (request: BuildThreadRequest) => serve(request));
