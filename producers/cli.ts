// The `quarry` command line (`npm run quarry -- <command>`): a thin shell over the SDK.
// Exit codes: 0 success, 1 the job failed or timed out, 2 bad usage or input, 3 Redis unreachable.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { ResultEnvelope } from '../shared/aggregation.ts';
import { loadConfig } from '../shared/config.ts';
import { isQuarryError } from '../shared/errors.ts';
import type { JobEvent, JobStatus } from '../shared/status.ts';
import { createQuarry, type QuarryClient } from './client.ts';

const HELP = `quarry: enqueue and inspect Quarry jobs

Usage:
  quarry aggregate <spec.json | -> [--wait] [--timeout <ms>] [--json]
  quarry index <collection> <request.json | -> [--wait] [--timeout <ms>] [--json]
  quarry search <collection> <query...> [--k <n>] [--all] [--prefix] [--json]
  quarry schedule add <name> <spec.json | -> (--every <30s|5m|1h|ms> | --cron "<pattern>" [--tz <zone>])
  quarry schedule list [--json]  |  quarry schedule rm <name>
  quarry alias <name> [--json]                      (the newest result of a schedule)
  quarry status <jobId> [--json]
  quarry watch <jobId> [--json]
  quarry cancel <jobId> [--json]
  quarry result <resultKey> [--json]

Options:
  --wait          wait for the result and print it (progress goes to stderr)
  --timeout <ms>  how long --wait waits (default 60000)
  --json          print JSON instead of a table
  --k <n>         search: number of hits (default 10)
  --all           search: documents must hold every term (default: any)
  --prefix        search: the last term also matches longer words
  -h, --help      this help

Configuration comes from the QUARRY_* environment variables (see README.md).
Exit codes: 0 ok, 1 job failed or timed out, 2 bad usage or input, 3 Redis unreachable.`;

const out = (text: string) => process.stdout.write(`${text}\n`);
const err = (text: string) => process.stderr.write(`${text}\n`);

export function formatTable(
  columns: readonly { name: string }[],
  rows: readonly Record<string, unknown>[],
): string {
  const names = columns.map((c) => c.name);
  const cell = (v: unknown) =>
    v === null || v === undefined
      ? ''
      : typeof v === 'number' && !Number.isInteger(v)
        ? String(+v.toFixed(6))
        : String(v);
  const cells = rows.map((r) => names.map((n) => cell(r[n])));
  const widths = names.map((n, i) => Math.max(n.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) =>
        typeof rows[0]?.[names[i]!] === 'number' ? v.padStart(widths[i]!) : v.padEnd(widths[i]!),
      )
      .join('  ')
      .trimEnd();
  return [line(names), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

async function readSpec(source: string): Promise<unknown> {
  const text =
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
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${source} is not valid JSON: ${(error as Error).message}`);
  }
}

class UsageError extends Error {}

function printEnvelope(envelope: ResultEnvelope, json: boolean): void {
  if (json) {
    out(JSON.stringify(envelope));
    return;
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
      const text = `${event.state} · ${event.progress.phase} ${event.progress.percent}%`;
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

async function run(client: QuarryClient, command: string, args: string[], flags: Flags): Promise<number> {
  switch (command) {
    case 'aggregate': {
      if (args.length !== 1) throw new UsageError('aggregate takes one spec file (or - for stdin)');
      const handle = await client.aggregate(await readSpec(args[0]!));
      if (!flags.wait) {
        out(JSON.stringify({ jobId: handle.jobId, resultKey: handle.resultKey, cached: handle.cached }));
        return 0;
      }
      const progress = progressPrinter();
      try {
        const envelope = await handle.wait({ timeoutMs: flags.timeout, onEvent: progress.onEvent });
        progress.done();
        printEnvelope(envelope, flags.json);
      } finally {
        progress.done();
      }
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
      const progress = progressPrinter();
      try {
        const info = await handle.wait({ timeoutMs: flags.timeout, onEvent: progress.onEvent });
        progress.done();
        out(
          flags.json
            ? JSON.stringify(info)
            : formatTable([{ name: 'field' }, { name: 'value' }], statusRows(info)),
        );
      } finally {
        progress.done();
      }
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
    case 'watch': {
      if (args.length !== 1) throw new UsageError('watch takes one job id');
      let last: JobEvent | JobStatus | undefined;
      for await (const event of client.watch(args[0]!)) {
        last = event;
        out(
          flags.json
            ? JSON.stringify(event)
            : `${new Date().toISOString()}  ${event.state}  ${event.progress.phase} ${event.progress.percent}%${
                event.error ? `  ${event.error.code}: ${event.error.message}` : ''
              }`,
        );
      }
      return last?.state === 'completed' ? 0 : 1;
    }
    case 'cancel': {
      if (args.length !== 1) throw new UsageError('cancel takes one job id');
      const status = await client.cancel(args[0]!);
      out(flags.json ? JSON.stringify(status) : `${status.jobId}: ${status.state}`);
      return status.state === 'cancelled' ? 0 : 1;
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
        const removed = await client.schedules.remove(name);
        err(removed ? `removed ${name}` : `no schedule ${name}`);
        return removed ? 0 : 1;
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
      const found = await client.schedules.alias(args[0]!);
      if (found === null) {
        err(`no result for ${args[0]} yet`);
        return 1;
      }
      printEnvelope(JSON.parse(found.bytes.toString('utf8')) as ResultEnvelope, flags.json);
      return 0;
    }
    case 'status': {
      if (args.length !== 1) throw new UsageError('status takes one job id');
      const status = await client.status(args[0]!);
      if (status === null) {
        err(`no job ${args[0]}`);
        return 1;
      }
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
      if (envelope === null) {
        err(`no result ${args[0]}`);
        return 1;
      }
      printEnvelope(envelope, flags.json);
      return 0;
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

function statusRows(status: object): Record<string, unknown>[] {
  return Object.entries(status).map(([field, value]) => ({
    field,
    value: value !== null && typeof value === 'object' ? JSON.stringify(value) : value,
  }));
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
  json: boolean;
  timeout: number;
  k: number;
  all: boolean;
  prefix: boolean;
  every: string | undefined;
  cron: string | undefined;
  tz: string | undefined;
}

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        wait: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        timeout: { type: 'string', default: '60000' },
        k: { type: 'string', default: '10' },
        all: { type: 'boolean', default: false },
        prefix: { type: 'boolean', default: false },
        every: { type: 'string' },
        cron: { type: 'string' },
        tz: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    err(`${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  const [command, ...args] = parsed.positionals;
  if (parsed.values.help || command === undefined) {
    out(HELP);
    return command === undefined && !parsed.values.help ? 2 : 0;
  }
  const timeout = Number(parsed.values.timeout);
  if (!Number.isInteger(timeout) || timeout <= 0) {
    err('--timeout must be a positive whole number of milliseconds');
    return 2;
  }
  let client: QuarryClient;
  try {
    client = createQuarry({ config: loadConfig(), failFast: true });
  } catch (error) {
    err(isQuarryError(error) ? `${error.code}: ${error.message}` : String(error));
    return 2;
  }
  try {
    await withTimeout(client.ready(), 3000, 'Redis did not answer within 3 s');
    return await run(client, command, args, {
      wait: parsed.values.wait === true,
      json: parsed.values.json === true,
      timeout,
      k: Number(parsed.values.k),
      all: parsed.values.all === true,
      prefix: parsed.values.prefix === true,
      every: parsed.values.every as string | undefined,
      cron: parsed.values.cron as string | undefined,
      tz: parsed.values.tz as string | undefined,
    });
  } catch (error) {
    if (error instanceof UsageError) {
      err(`${error.message}\n\n${HELP}`);
      return 2;
    }
    if (isQuarryError(error)) {
      err(`${error.code}: ${error.message}${error.field ? ` (field ${error.field})` : ''}`);
      if (error.code === 'QUARRY_ERR_REDIS_UNAVAILABLE' || error.code === 'QUARRY_ERR_REDIS_REFUSED')
        return 3;
      return error.status === 400 || error.status === 404 || error.status === 413 ? 2 : 1;
    }
    err(`error: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    await client.close();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(message), { redisDown: true })), ms);
    }),
  ]).catch((error: unknown) => {
    if ((error as { redisDown?: boolean }).redisDown) {
      err(`QUARRY_ERR_REDIS_UNAVAILABLE: ${message}`);
      process.exit(3);
    }
    throw error;
  });
}

process.exitCode = await main(process.argv.slice(2));
