// An in-repo check of the Prometheus exposition rules that bit Quarry (and that `promtool check
// metrics` enforces): every family has HELP and TYPE; only counters end in `_total`, and every
// counter does; names are snake_case with base units (`_seconds`, `_bytes`, never `_ms`, `_kb`);
// every sample belongs to a declared family. Independent of prom-client and of promtool, so it
// runs where promtool is not installed.
import { spawnSync } from 'node:child_process';

const NAME = /^[a-z_:][a-z0-9_:]*$/;
// Non-base units promtool's linter names (and a few more): time in seconds, sizes in bytes.
const NON_BASE_UNITS =
  /_(ms|msec|millis|milliseconds|us|usec|microseconds|ns|nanoseconds|minutes?|hours?|days?|kb|kib|mb|mib|gb|gib|kilobytes|megabytes|gigabytes)(_|$)/;
const SUFFIXES: Record<string, readonly string[]> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
};

/** The problems found, one sentence each; empty means clean. */
export function lintExposition(text: string): string[] {
  const problems: string[] = [];
  const help = new Set<string>();
  const types = new Map<string, string>();
  const sampled = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
    if (meta) {
      const [, kind, name, rest = ''] = meta;
      if (kind === 'HELP') {
        if (rest.trim() === '') problems.push(`${name}: empty HELP`);
        help.add(name!);
      } else types.set(name!, rest.trim());
      continue;
    }
    if (line.startsWith('#')) continue;
    const sample = /^([a-zA-Z_:][\w:]*)/.exec(line);
    if (!sample) {
      problems.push(`not a sample line: ${line}`);
      continue;
    }
    const name = sample[1]!;
    const family = [...types.keys()].find(
      (f) => f === name || (SUFFIXES[types.get(f)!] ?? []).some((s) => `${f}${s}` === name),
    );
    if (family === undefined) problems.push(`${name}: sample without a # TYPE line`);
    else sampled.add(family);
  }
  if (types.size === 0) problems.push('no metric families at all');
  for (const [name, type] of types) {
    if (!help.has(name)) problems.push(`${name}: no # HELP`);
    if (!NAME.test(name)) problems.push(`${name}: not snake_case`);
    if (type === 'counter' && !name.endsWith('_total'))
      problems.push(`${name}: a counter must end in _total`);
    if (type !== 'counter' && name.endsWith('_total')) {
      problems.push(`${name}: a ${type} must not end in _total (reserved for counters)`);
    }
    if (NON_BASE_UNITS.test(name)) problems.push(`${name}: use base units (_seconds, _bytes)`);
    if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type)) {
      problems.push(`${name}: unknown TYPE ${type}`);
    }
  }
  return problems;
}

/** `promtool check metrics` on `text`: null when promtool is not installed. */
export function promtoolCheck(text: string): { status: number; output: string } | null {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  if (run.error && (run.error as NodeJS.ErrnoException).code === 'ENOENT') return null;
  return { status: run.status ?? -1, output: `${run.stdout}${run.stderr}` };
}
