// The `quarry webhooks` command: register (put), list, read (get), remove (rm) webhooks and read
// a webhook's delivery log, through the SDK (client.webhooks). Exit codes follow cli.ts: a
// refused request (a 400 naming the field, an unknown webhook) is exit 2, by cli.ts.
import { QuarryError } from '../shared/errors.ts';
import { formatTable } from './cli-output.ts';
import type { QuarryClient } from './client.ts';

export interface WebhooksFlags {
  readonly json: boolean;
  readonly url: string | undefined;
  readonly events: string | undefined;
  readonly secret: string | undefined;
  readonly limit: string | undefined;
}

/** Bad usage of `quarry webhooks`: one line, exit 2 (cli.ts). */
export class WebhooksUsageError extends Error {}

const out = (text: string) => process.stdout.write(`${text}\n`);
const err = (text: string) => process.stderr.write(`${text}\n`);

const USAGE =
  'webhooks put <name> --url <url> --events <type,…> --secret <s | ->, webhooks list, ' +
  'webhooks get <name>, webhooks rm <name>, or webhooks deliveries <name> [--limit <n>]';

/** `--secret -`: the first line of stdin, so the secret stays out of the shell history. */
async function readSecret(flag: string): Promise<string> {
  if (flag !== '-') return flag;
  let data = '';
  process.stdin.setEncoding('utf8');
  for await (const chunk of process.stdin) data += chunk;
  return data.split(/\r?\n/)[0] ?? '';
}

const notFound = (name: string) => new QuarryError('QUARRY_ERR_WEBHOOK_NOT_FOUND', `no webhook ${name}`);

export async function webhooksCommand(
  client: QuarryClient,
  args: string[],
  flags: WebhooksFlags,
): Promise<number> {
  const [action, name, ...rest] = args;
  if (rest.length > 0) throw new WebhooksUsageError(USAGE);
  const hooks = client.webhooks;
  if (action === 'list' && name === undefined) {
    const list = await hooks.list();
    if (flags.json) out(JSON.stringify(list));
    else
      out(
        formatTable(
          ['name', 'url', 'events', 'secretHint', 'updatedAt'].map((n) => ({ name: n })),
          list.map((w) => ({ ...w, events: w.events.join(',') })),
        ),
      );
    return 0;
  }
  if (name === undefined) throw new WebhooksUsageError(USAGE);
  switch (action) {
    case 'put': {
      if (flags.url === undefined || flags.events === undefined || flags.secret === undefined) {
        throw new WebhooksUsageError('webhooks put takes --url, --events and --secret');
      }
      const info = await hooks.put(name, {
        url: flags.url,
        events: flags.events.split(',').map((e) => e.trim()),
        secret: await readSecret(flags.secret),
      });
      out(
        flags.json ? JSON.stringify(info) : `webhook ${info.name} → ${info.url} (${info.events.join(', ')})`,
      );
      return 0;
    }
    case 'get': {
      const info = await hooks.get(name);
      if (info === null) throw notFound(name);
      out(
        flags.json ? JSON.stringify(info) : formatTable([{ name: 'field' }, { name: 'value' }], rowsOf(info)),
      );
      return 0;
    }
    case 'rm': {
      if (!(await hooks.delete(name))) throw notFound(name);
      err(`removed ${name}`);
      return 0;
    }
    case 'deliveries': {
      const limit = flags.limit === undefined ? 50 : Number(flags.limit);
      if (!Number.isInteger(limit) || limit < 1)
        throw new WebhooksUsageError('--limit must be a positive whole number');
      const list = await hooks.deliveries(name, { limit });
      if (list === null) throw notFound(name);
      if (flags.json) out(JSON.stringify(list));
      else
        out(
          formatTable(
            ['id', 'type', 'jobId', 'status', 'attempts', 'lastStatus', 'lastError', 'nextAttemptAt'].map(
              (n) => ({
                name: n,
              }),
            ),
            list as unknown as Record<string, unknown>[],
          ),
        );
      return 0;
    }
    default:
      throw new WebhooksUsageError(USAGE);
  }
}

function rowsOf(info: object): Record<string, unknown>[] {
  return Object.entries(info).map(([field, value]) => ({
    field,
    value: Array.isArray(value) ? value.join(', ') : value,
  }));
}
