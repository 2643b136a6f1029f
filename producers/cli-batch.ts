// `quarry aggregate --batch <specs.ndjson | ->`: one aggregation spec per line (blank lines
// skipped), enqueued with client.aggregateMany in a few round trips per QUARRY_MAX_BATCH_ITEMS
// specs. Prints one JSON line per spec, in input order: `{"line", "jobId", "resultKey",
// "cached"}`, or `{"line", "error": {code, message, field}}` for a spec Quarry refused (a line
// that is not JSON included): a bad line does not stop the others. A summary goes to stderr.
// Exit codes follow cli.ts: 0 every spec queued or cached; 3 if Redis refused or was away for
// any (the rest may be queued: their lines say so); else 2 if any was refused.
import { readFile } from 'node:fs/promises';
import { isQuarryError, QuarryError } from '../shared/errors.ts';
import { redisFailureCode } from '../shared/redis-errors.ts';
import type { QuarryClient } from './client.ts';

const out = (text: string) => process.stdout.write(`${text}\n`);
const err = (text: string) => process.stderr.write(`${text}\n`);

/** A file (or stdin) that cannot be read: cli.ts prints it as one line, exit 2. */
export class BatchInputError extends Error {}

async function readText(source: string): Promise<string> {
  try {
    if (source !== '-') return await readFile(source, 'utf8');
    let data = '';
    process.stdin.setEncoding('utf8');
    for await (const chunk of process.stdin) data += chunk;
    return data;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EISDIR'
          ? 'it is a directory'
          : code === 'EACCES' || code === 'EPERM'
            ? 'permission denied'
            : (error as Error).message;
    throw new BatchInputError(`cannot read ${source === '-' ? 'stdin' : `"${source}"`}: ${why}`);
  }
}

/** The NDJSON lines as specs (or the error of a line that is not JSON), with their line numbers. */
export function parseNdjson(text: string): { line: number; spec?: unknown; error?: QuarryError }[] {
  const entries: { line: number; spec?: unknown; error?: QuarryError }[] = [];
  for (const [n, raw] of text.split('\n').entries()) {
    if (raw.trim() === '') continue;
    try {
      entries.push({ line: n + 1, spec: JSON.parse(raw) });
    } catch (cause) {
      entries.push({
        line: n + 1,
        error: new QuarryError(
          'QUARRY_ERR_BODY_INVALID_JSON',
          `line ${n + 1} is not valid JSON: ${(cause as Error).message}`,
          { cause },
        ),
      });
    }
  }
  return entries;
}

export async function aggregateBatchCommand(client: QuarryClient, source: string): Promise<number> {
  const entries = parseNdjson(await readText(source));
  if (entries.length === 0)
    throw new BatchInputError(`${source === '-' ? 'stdin' : `"${source}"`} holds no spec`);
  const specs = entries.filter((e) => e.error === undefined);
  const items = await client.aggregateMany(specs.map((e) => e.spec));
  const answers = new Map(specs.map((e, n) => [e.line, items[n]!]));
  let queued = 0;
  let cached = 0;
  let refused = 0;
  let redisDown = false;
  for (const entry of entries) {
    const item = answers.get(entry.line);
    if (item?.ok) {
      if (item.handle.cached) cached++;
      else queued++;
      const { jobId, resultKey } = item.handle;
      out(JSON.stringify({ line: entry.line, jobId, resultKey, cached: item.handle.cached }));
      continue;
    }
    refused++;
    const error = entry.error ?? item?.error;
    if (redisFailureCode(error) !== undefined) redisDown = true;
    const body = isQuarryError(error)
      ? error.toJSON().error
      : { code: 'QUARRY_ERR_INTERNAL', message: error instanceof Error ? error.message : String(error) };
    out(JSON.stringify({ line: entry.line, error: body }));
  }
  err(`${entries.length} specs: ${queued} queued · ${cached} cached · ${refused} refused`);
  if (redisDown) return 3;
  return refused > 0 ? 2 : 0;
}
