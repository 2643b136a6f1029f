// The `quarry` command line (`npm run quarry -- <command>`): a thin shell over the SDK that
// explains itself: every failure is one line on stderr, and the exit code says which kind.
//   0 ok (also: cancel of a job that had already finished: nothing to do)
//   1 the job failed, was cancelled, or did not finish in time (--wait, watch); no alias result yet
//   2 bad usage or input: unknown command or flag, an unreadable or invalid file, a request
//     Quarry refuses (any 4xx code), or an id or name that names nothing (job, result, index,
//     schedule)
//   3 a Redis server did not answer (the message names its URL, password masked)
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { ResultEnvelope } from '../shared/aggregation.ts';
import { loadConfig, type QuarryConfig } from '../shared/config.ts';
import { isQuarryError, QuarryError } from '../shared/errors.ts';
import { describeRoleRedis } from '../shared/redis.ts';
import { RESULT_FORMATS, toArrow, toCsv, toNdjson } from '../shared/result-formats.ts';
import { isFinalState, type JobEvent, type JobStatus } from '../shared/status.ts';
import { aggregateBatchCommand, BatchInputError } from './cli-batch.ts';
import { JobsUsageError, jobsCommand, retryCommand } from './cli-jobs.ts';
import { describeState, formatTable, objectRows, statusRows } from './cli-output.ts';
import { WebhooksUsageError, webhooksCommand } from './cli-webhooks.ts';
import { createQuarry, type QuarryClient } from './client.ts';

const HELP = `quarry: enqueue and inspect Quarry jobs

Usage:
  quarry aggregate <spec.json | -> [--wait] [--timeout <ms>] [--json | --format <f>]
  quarry aggregate --batch <specs.ndjson | ->      (one spec per line; one JSON line per spec)
  quarry index <collection> <request.json | -> [--wait] [--timeout <ms>] [--json]
  quarry search <collection> <query...> [--k <n>] [--all] [--prefix] [--json]
  quarry delete-index <collection> [--json]        (every API process stops serving it)
  quarry schedule add <name> <spec.json | -> (--every <30s|5m|1h|ms> | --cron "<pattern>" [--tz <zone>])
  quarry schedule list [--json]  |  quarry schedule rm <name>
  quarry alias <name> [--json | --format <f>]       (the newest result of a schedule)
  quarry status <jobId> [--json]
  quarry watch <jobId> [--json]
  quarry cancel <jobId> [--json]
  quarry result <resultKey> [--json | --format <f>]
  quarry jobs [--state <s>] [--type aggregate|index] [--since <ISO time>] [--limit <n>]
              [--cursor <c>] [--all] [--json]      (job history, newest first)
  quarry retry <jobId> [--wait] [--timeout <ms>] [--json]  (a failed or cancelled job runs again)
  quarry webhooks put <name> --url <url> --events <type,…> --secret <s | -> [--json]
  quarry webhooks list | get <name> | rm <name> | deliveries <name> [--limit <n>]  [--json]

Options:
  --wait          wait for the result and print it (progress goes to stderr)
  --batch         aggregate: the file holds one spec per line (NDJSON), enqueued together
  --timeout <ms>  how long --wait waits (default 60000)
  --json          print JSON instead of a table
  --format <f>    how a result is printed: table (default), json (the envelope), csv, ndjson,
                  arrow (an Arrow IPC stream: binary, so stdout must not be a terminal)
  --k <n>         search: number of hits (default 10)
  --all           search: documents must hold every term (default: any); jobs: every tenant's
  --prefix        search: the last term also matches longer words
  --state <s>     jobs: queued, active, completed, failed or cancelled
  --type <t>      jobs: aggregate or index
  --since <time>  jobs: created at or after this ISO 8601 time
  --limit <n>     jobs: how many (default 50, at most 500)
  --cursor <c>    jobs: the next page (printed after a full page)
  --url <url>     webhooks put: where to POST (http or https; a public address)
  --events <list> webhooks put: job.completed, job.failed, job.cancelled, index.live (comma-separated)
  --secret <s>    webhooks put: the signing secret (16+ characters); - reads it from stdin
  -h, --help      this help

Configuration comes from the QUARRY_* environment variables (see README.md).
Exit codes: 0 ok; 1 the job failed, was cancelled or timed out; 2 bad usage or input, or an
unknown job, result, index or schedule; 3 a Redis server did not answer.`;

const out = (text: string) => process.stdout.write(`${text}\n`);
const err = (text: string) => process.stderr.write(`${text}\n`);

async function readSpec(source: string): Promise<unknown> {
  let text: string;
  try {
    text =
      source === '-'
        ? await new Promise<string>((resolve, reject) => {
            let data = '';
            process.stdin.setEncoding('utf8');
            process.stdin.on('data', (chunk) => {
              data += chunk;
            });
            process.stdin.on('end', () => resolve(data));
            process.stdin.on('error', reject);
          })
        : await readFile(source, 'utf8');
  } catch (error) {
    throw new InputError(`cannot read ${source === '-' ? 'stdin' : `"${source}"`}: ${fileProblem(error)}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InputError(
      `${source === '-' ? 'stdin' : `"${source}"`} is not valid JSON: ${(error as Error).message}`,
    );
  }
}

function fileProblem(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'it is a directory';
  return (error as Error).message;
}

/** Bad usage: one line, with a pointer to --help. Exit 2. */
class UsageError extends Error {}
/** Bad input (a file that cannot be read or parsed): one line. Exit 2. */
class InputError extends Error {}

function noJob(jobId: string): QuarryError {
  return new QuarryError(
    'QUARRY_ERR_JOB_NOT_FOUND',
    `no job ${jobId} (never existed, or its record expired)`,
  );
}

/** How `--format` prints a result: a table, or one of the result formats (docs/FORMATS.md). */
const PRINT_FORMATS = ['table', ...RESULT_FORMATS] as const;
type PrintFormat = (typeof PRINT_FORMATS)[number];

/** Writes to stdout and resolves once the bytes are handed off (a large result to a pipe). */
const write = (data: string | Uint8Array) =>
  new Promise<void>((resolve, reject) => {
    process.stdout.write(data, (error) => (error ? reject(error) : resolve()));
  });

async function printEnvelope(envelope: ResultEnvelope, format: PrintFormat): Promise<void> {
  switch (format) {
    case 'json':
      return write(`${JSON.stringify(envelope)}\n`);
    case 'csv':
      return write(await toCsv(envelope));
    case 'ndjson':
      return write(await toNdjson(envelope));
    case 'arrow':
      if (process.stdout.isTTY)
        throw new UsageError('--format arrow writes binary: redirect stdout to a file or a pipe');
      return write(await toArrow(envelope));
    case 'table':
      break;
  }
  out(formatTable(envelope.columns, envelope.rows));
  err(
    `${envelope.rowCount} rows · ${envelope.engine} · ${envelope.durationMs} ms · result ${envelope.resultKey}`,
  );
}

function progressPrinter(): { onEvent: (event: JobEvent) => void; done: () => void } {
  const tty = process.stderr.isTTY;
  let last = '';
  return {
    onEvent(event) {
      // Final states are reported by the caller, with the error when there is one.
      if (isFinalState(event.state)) return;
      const text = describeState(event);
      if (text === last) return;
      last = text;
      if (tty) process.stderr.write(`\r\x1b[K${text}`);
      else err(text);
    },
    done() {
      if (tty && last) process.stderr.write('\r\x1b[K');
    },
  };
}

/**
 * Waits for a job and reports how it ended when it did not complete: `job X failed · CODE: …`,
 * `job X cancelled · …`, or `job X did not finish within N ms (active · compute 40%)`. Exit 1.
 */
async function waitOrExplain<T>(
  client: QuarryClient,
  jobId: string,
  flags: Flags,
  wait: (onEvent: (event: JobEvent) => void) => Promise<T>,
): Promise<{ value: T } | { code: number }> {
  const progress = progressPrinter();
  try {
    return { value: await wait(progress.onEvent) };
  } catch (error) {
    if (!isQuarryError(error) || error.code === 'QUARRY_ERR_REDIS_UNAVAILABLE') throw error;
    progress.done();
    const status = await client.status(jobId);
    if (error.code === 'QUARRY_ERR_WAIT_TIMEOUT') {
      err(
        `${error.code}: job ${jobId} did not finish within ${flags.timeout} ms${status ? ` (${describeState(status)})` : ''}`,
      );
    } else if (status !== null && isFinalState(status.state)) {
      err(`job ${jobId} ${describeState(status)}`);
    } else {
      err(`${error.code}: ${error.message}`);
    }
    return { code: 1 };
  } finally {
    progress.done();
  }
}

async function run(client: QuarryClient, command: string, args: string[], flags: Flags): Promise<number> {
  switch (command) {
    case 'aggregate': {
      if (flags.batch) {
        if (args.length !== 1)
          throw new UsageError('aggregate --batch takes one NDJSON file (or - for stdin)');
        if (flags.wait)
          throw new UsageError('--batch enqueues only: follow its jobs with watch, status or result');
        return aggregateBatchCommand(client, args[0]!);
      }
      if (args.length !== 1) throw new UsageError('aggregate takes one spec file (or - for stdin)');
      const handle = await client.aggregate(await readSpec(args[0]!));
      if (!flags.wait) {
        out(JSON.stringify({ jobId: handle.jobId, resultKey: handle.resultKey, cached: handle.cached }));
        return 0;
      }
      const waited = await waitOrExplain(client, handle.jobId, flags, (onEvent) =>
        handle.wait({ timeoutMs: flags.timeout, onEvent }),
      );
      if ('code' in waited) return waited.code;
      await printEnvelope(waited.value, flags.format);
      return 0;
    }
    case 'index': {
      if (args.length !== 2)
        throw new UsageError('index takes a collection and a request file (or - for stdin)');
      const handle = await client.index(args[0]!, await readSpec(args[1]!));
      if (!flags.wait) {
        out(JSON.stringify({ jobId: handle.jobId, collection: handle.collection }));
        return 0;
      }
      const waited = await waitOrExplain(client, handle.jobId, flags, (onEvent) =>
        handle.wait({ timeoutMs: flags.timeout, onEvent }),
      );
      if ('code' in waited) return waited.code;
      out(
        flags.json
          ? JSON.stringify(waited.value)
          : formatTable([{ name: 'field' }, { name: 'value' }], objectRows(waited.value)),
      );
      return 0;
    }
    case 'search': {
      if (args.length < 2) throw new UsageError('search takes a collection and a query');
      const result = await client.search(args[0]!, args.slice(1).join(' '), {
        k: flags.k,
        mode: flags.all ? 'all' : 'any',
        prefix: flags.prefix,
      });
      if (flags.json) {
        out(JSON.stringify(result));
        return 0;
      }
      const rows = result.hits.map((h, i) => ({
        rank: i + 1,
        id: h.id,
        score: h.score,
        fields: JSON.stringify(h.fields).slice(0, 80),
      }));
      out(formatTable([{ name: 'rank' }, { name: 'id' }, { name: 'score' }, { name: 'fields' }], rows));
      err(`${result.total} matching · version ${result.version}`);
      return 0;
    }
    case 'delete-index': {
      if (args.length !== 1) throw new UsageError('delete-index takes one collection');
      const deleted = await client.deleteIndex(args[0]!);
      out(flags.json ? JSON.stringify(deleted) : `deleted ${deleted.collection}`);
      return 0;
    }
    case 'watch': {
      if (args.length !== 1) throw new UsageError('watch takes one job id');
      const jobId = args[0]!;
      if ((await client.status(jobId)) === null) throw noJob(jobId);
      let last: JobEvent | JobStatus | undefined;
      for await (const event of client.watch(jobId)) {
        last = event;
        out(flags.json ? JSON.stringify(event) : `${new Date().toISOString()}  ${describeState(event)}`);
      }
      return last?.state === 'completed' ? 0 : 1;
    }
    case 'cancel': {
      if (args.length !== 1) throw new UsageError('cancel takes one job id');
      const jobId = args[0]!;
      const before = await client.status(jobId);
      if (before === null) throw noJob(jobId);
      if (isFinalState(before.state)) {
        // Nothing to do is not a failure: the job is in a final state either way.
        out(flags.json ? JSON.stringify(before) : `job ${jobId} already ${before.state}; nothing to cancel`);
        return 0;
      }
      const status = await client.cancel(jobId);
      if (flags.json) out(JSON.stringify(status));
      else if (status.state === 'cancelled') out(`job ${jobId} cancelled`);
      else if (isFinalState(status.state))
        out(`job ${jobId} ${status.state} before the cancellation reached it; nothing to cancel`);
      else err(`job ${jobId}: cancellation requested, but it is still ${describeState(status)}`);
      return isFinalState(status.state) ? 0 : 1;
    }
    case 'schedule': {
      const [action, name, file] = args;
      if (action === 'list') {
        const list = await client.schedules.list();
        if (flags.json) out(JSON.stringify(list));
        else
          out(
            formatTable(
              ['name', 'everyMs', 'cron', 'next', 'resultKey', 'refreshedAt'].map((n) => ({ name: n })),
              list as unknown as Record<string, unknown>[],
            ),
          );
        return 0;
      }
      if (action === 'rm' && name !== undefined) {
        if (!(await client.schedules.remove(name)))
          throw new QuarryError('QUARRY_ERR_SCHEDULE_NOT_FOUND', `no schedule ${name}`);
        err(`removed ${name}`);
        return 0;
      }
      if (action === 'add' && name !== undefined && file !== undefined) {
        if ((flags.every === undefined) === (flags.cron === undefined)) {
          throw new UsageError('schedule add takes --every or --cron');
        }
        const info = await client.schedules.put(name, {
          spec: await readSpec(file),
          ...(flags.every === undefined ? {} : { everyMs: parseDuration(flags.every) }),
          ...(flags.cron === undefined ? {} : { cron: flags.cron }),
          ...(flags.tz === undefined ? {} : { tz: flags.tz }),
        });
        out(flags.json ? JSON.stringify(info) : `scheduled ${info.name}; next run ${info.next ?? 'now'}`);
        return 0;
      }
      throw new UsageError('schedule add <name> <spec> --every|--cron, schedule list, or schedule rm <name>');
    }
    case 'alias': {
      if (args.length !== 1) throw new UsageError('alias takes one schedule name');
      const name = args[0]!;
      const found = await client.schedules.alias(name);
      if (found === null) {
        if ((await client.schedules.get(name)) === null)
          throw new QuarryError('QUARRY_ERR_SCHEDULE_NOT_FOUND', `no schedule ${name}`);
        err(`schedule ${name} has no result yet (its first run has not completed)`);
        return 1;
      }
      await printEnvelope(JSON.parse(found.bytes.toString('utf8')) as ResultEnvelope, flags.format);
      return 0;
    }
    case 'status': {
      if (args.length !== 1) throw new UsageError('status takes one job id');
      const status = await client.status(args[0]!);
      if (status === null) throw noJob(args[0]!);
      out(
        flags.json
          ? JSON.stringify(status)
          : formatTable([{ name: 'field' }, { name: 'value' }], statusRows(status)),
      );
      return 0;
    }
    case 'result': {
      if (args.length !== 1) throw new UsageError('result takes one result key');
      const envelope = await client.result(args[0]!);
      if (envelope === null)
        throw new QuarryError(
          'QUARRY_ERR_RESULT_NOT_FOUND',
          `no result ${args[0]} (never computed, or expired)`,
        );
      await printEnvelope(envelope, flags.format);
      return 0;
    }
    case 'jobs':
      return jobsCommand(client, args, flags);
    case 'retry':
      return retryCommand(client, args, flags);
    case 'webhooks':
      return webhooksCommand(client, args, flags);
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

/** `30s`, `5m`, `1h`, `2d` or plain milliseconds. */
function parseDuration(text: string): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim());
  if (match === null)
    throw new UsageError(`--every: "${text}" is not a duration (30s, 5m, 1h or milliseconds)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] ?? 'ms']!;
  return Number(match[1]) * unit;
}

interface Flags {
  wait: boolean;
  batch: boolean;
  json: boolean;
  /** How results print: `--format`, or json with `--json`. */
  format: PrintFormat;
  timeout: number;
  k: number;
  all: boolean;
  prefix: boolean;
  every: string | undefined;
  cron: string | undefined;
  tz: string | undefined;
  state: string | undefined;
  type: string | undefined;
  limit: string | undefined;
  cursor: string | undefined;
  since: string | undefined;
  url: string | undefined;
  events: string | undefined;
  secret: string | undefined;
}

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        wait: { type: 'boolean', default: false },
        batch: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        format: { type: 'string' },
        timeout: { type: 'string', default: '60000' },
        k: { type: 'string', default: '10' },
        all: { type: 'boolean', default: false },
        prefix: { type: 'boolean', default: false },
        every: { type: 'string' },
        cron: { type: 'string' },
        tz: { type: 'string' },
        state: { type: 'string' },
        type: { type: 'string' },
        limit: { type: 'string' },
        cursor: { type: 'string' },
        since: { type: 'string' },
        url: { type: 'string' },
        events: { type: 'string' },
        secret: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    err(`quarry: ${(error as Error).message} (see quarry --help)`);
    return 2;
  }
  const [command, ...args] = parsed.positionals;
  if (parsed.values.help || command === undefined) {
    if (command === undefined && !parsed.values.help) {
      err(HELP);
      return 2;
    }
    out(HELP);
    return 0;
  }
  const timeout = positiveInteger(parsed.values.timeout as string);
  const k = positiveInteger(parsed.values.k as string);
  if (timeout === undefined || k === undefined) {
    err(
      `quarry: ${timeout === undefined ? '--timeout' : '--k'} must be a positive whole number (see quarry --help)`,
    );
    return 2;
  }
  const format = (parsed.values.format as string | undefined) ?? (parsed.values.json ? 'json' : 'table');
  if (!(PRINT_FORMATS as readonly string[]).includes(format)) {
    err(`quarry: --format must be one of ${PRINT_FORMATS.join(', ')} (see quarry --help)`);
    return 2;
  }
  if (parsed.values.json && format !== 'json') {
    err(`quarry: --json and --format ${format} disagree; give one (see quarry --help)`);
    return 2;
  }
  let config: QuarryConfig;
  let client: QuarryClient;
  try {
    config = loadConfig();
    client = createQuarry({ config, failFast: true });
  } catch (error) {
    err(isQuarryError(error) ? `${error.code}: ${error.message}` : String(error));
    return 2;
  }
  let redisDown = false;
  try {
    if (!(await readyWithin(client, READY_TIMEOUT_MS))) {
      redisDown = true;
      err(
        `QUARRY_ERR_REDIS_UNAVAILABLE: ${await unreachable(client, config, `did not answer within ${READY_TIMEOUT_MS / 1000} s`)}`,
      );
      return 3;
    }
    return await run(client, command, args, {
      wait: parsed.values.wait === true,
      batch: parsed.values.batch === true,
      json: parsed.values.json === true,
      format: format as PrintFormat,
      timeout,
      k,
      all: parsed.values.all === true,
      prefix: parsed.values.prefix === true,
      every: parsed.values.every as string | undefined,
      cron: parsed.values.cron as string | undefined,
      tz: parsed.values.tz as string | undefined,
      state: parsed.values.state as string | undefined,
      type: parsed.values.type as string | undefined,
      limit: parsed.values.limit as string | undefined,
      cursor: parsed.values.cursor as string | undefined,
      since: parsed.values.since as string | undefined,
      url: parsed.values.url as string | undefined,
      events: parsed.values.events as string | undefined,
      secret: parsed.values.secret as string | undefined,
    });
  } catch (error) {
    if (
      error instanceof UsageError ||
      error instanceof JobsUsageError ||
      error instanceof WebhooksUsageError
    ) {
      err(`quarry: ${error.message} (see quarry --help)`);
      return 2;
    }
    if (error instanceof InputError || error instanceof BatchInputError) {
      err(`quarry: ${error.message}`);
      return 2;
    }
    // A Redis that answers but refuses (full, read-only, frozen past the command timeout).
    if (isQuarryError(error) && error.code === 'QUARRY_ERR_REDIS_REFUSED') {
      err(`${error.code}: ${error.message}`);
      return 3;
    }
    if (isQuarryError(error) && error.code !== 'QUARRY_ERR_REDIS_UNAVAILABLE' && error.status < 500) {
      err(`${error.code}: ${error.message}`);
      return 2;
    }
    // Anything else may be a Redis going away mid-command (ioredis' errors carry no code of
    // ours): ask both servers, and name the ones that do not answer.
    const message = error instanceof Error ? error.message : String(error);
    const down = await unreachable(client, config, `did not answer (${message})`);
    if (down !== null) {
      redisDown = true;
      err(`QUARRY_ERR_REDIS_UNAVAILABLE: ${down}`);
      return 3;
    }
    err(isQuarryError(error) ? `${error.code}: ${message}` : `QUARRY_ERR_INTERNAL: ${message}`);
    return 1;
  } finally {
    // A Redis that is gone would make a graceful close wait for it.
    if (redisDown) client.disconnectNow();
    else await client.close();
  }
}

const READY_TIMEOUT_MS = 3000;

function positiveInteger(text: string): number | undefined {
  const n = Number(text);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

async function readyWithin(client: QuarryClient, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(resolve, ms, false);
  });
  try {
    return await Promise.race([client.ready().then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Which Redis did not answer, by role and URL (password masked): `the queue Redis at
 * redis://127.0.0.1:6379 did not answer …`; null when both answer a PING.
 */
async function unreachable(client: QuarryClient, config: QuarryConfig, what: string): Promise<string | null> {
  const up = await client.ping();
  const queue = describeRoleRedis(config, 'queue');
  const cache = describeRoleRedis(config, 'cache');
  if (up.queue && up.cache) return null;
  if (!up.queue && !up.cache) {
    return queue === cache
      ? `Redis at ${queue} (queue and cache) ${what}`
      : `the queue Redis at ${queue} and the cache Redis at ${cache} ${what}`;
  }
  return up.queue ? `the cache Redis at ${cache} ${what}` : `the queue Redis at ${queue} ${what}`;
}

process.exitCode = await main(process.argv.slice(2));
