// The `pretty` log format: one pino JSON record turned into one line a person reads at a
// terminal — time, level, process name, message, then the other fields as key=value — and, for
// a record with an error, the error's stack on the lines below. Pure: the logger feeds it lines.

const LEVEL_COLORS: Record<string, string> = {
  trace: '\x1b[90m',
  debug: '\x1b[36m',
  info: '\x1b[32m',
  warn: '\x1b[33m',
  error: '\x1b[31m',
  fatal: '\x1b[35m',
};
const RESET = '\x1b[0m';
const DIM = '\x1b[2m';
/** Fields the line's head shows, or that only repeat what every line of the process says. */
const HEAD_FIELDS = new Set(['level', 'time', 'name', 'pid', 'hostname', 'msg', 'err']);
// A value printed bare when it cannot be misread as two fields: no spaces, quotes or `=`.
const BARE = /^[^\s"=]{1,200}$/;

function formatValue(value: unknown): string {
  if (typeof value === 'string') return BARE.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}

interface SerializedError {
  type?: string;
  message?: string;
  stack?: string;
  code?: unknown;
}

function formatError(err: SerializedError): string {
  // pino's serializer puts the message (and causes) into `stack`; a plain object may lack one.
  const text = err.stack ?? `${err.type ?? 'Error'}: ${err.message ?? ''}`;
  return `\n${text.replace(/^/gm, '    ')}`;
}

/** One pino JSON line (newline included or not) as one pretty line ending in a newline. */
export function prettyLine(line: string, colors: boolean): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const level = String(record.level ?? 'info');
  const label = level.toUpperCase().padEnd(5);
  const head = colors ? `${LEVEL_COLORS[level] ?? ''}${label}${RESET}` : label;
  const time = colors ? `${DIM}${String(record.time ?? '')}${RESET}` : String(record.time ?? '');
  let out = `${time} ${head} ${String(record.name ?? '')}: ${String(record.msg ?? '')}`;
  for (const [key, value] of Object.entries(record)) {
    if (HEAD_FIELDS.has(key) || value === undefined) continue;
    out += ` ${colors ? `${DIM}${key}=${RESET}` : `${key}=`}${formatValue(value)}`;
  }
  const err = record.err;
  if (typeof err === 'object' && err !== null) out += formatError(err as SerializedError);
  return `${out}\n`;
}
