// The logger's stdout buffering (createLogger's bufferBytes, used by the API) and its timestamps:
// a buffered process still writes every line by the time it exits, a quiet one within
// LOG_FLUSH_MS, and the cached ISO time is pino's format.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { isoTime, LOG_FLUSH_MS } from '../../shared/logger.ts';
import { tsExecArgv } from '../../shared/ts-runtime.ts';

const LOGGER = new URL('../../shared/logger.ts', import.meta.url).href;

/** Runs `body` in a child node with `logger` (bufferBytes 4096) in scope; resolves its stdout lines. */
function child(body: string, onLine?: (line: string, kill: () => void) => void): Promise<string[]> {
  const script = `import { createLogger } from ${JSON.stringify(LOGGER)};
const logger = createLogger({ level: 'info', name: 't', format: 'json', bufferBytes: 4096 });
${body}`;
  const proc = spawn(process.execPath, [...tsExecArgv(), '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const lines: string[] = [];
  proc.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    for (let i = out.indexOf('\n'); i !== -1; i = out.indexOf('\n')) {
      lines.push(out.slice(0, i));
      out = out.slice(i + 1);
      onLine?.(lines.at(-1)!, () => proc.kill('SIGKILL'));
    }
  });
  return new Promise((resolve) => proc.once('close', () => resolve(lines)));
}

test('a buffered logger writes every line by the time the process exits', async () => {
  const lines = await child(
    `for (let i = 0; i < 1000; i++) logger.info({ i }, 'line'); logger.info('last'); process.exit(3);`,
  );
  assert.equal(lines.length, 1001);
  assert.deepEqual(
    lines.slice(0, 1000).map((l) => (JSON.parse(l) as { i: number }).i),
    [...Array(1000).keys()],
  );
  assert.equal((JSON.parse(lines[1000]!) as { msg: string }).msg, 'last');
});

test('a buffered logger writes a lone line within the flush interval, while the process runs', async () => {
  let seenAt = 0;
  const start = Date.now();
  // The child logs once and stays up 10 s; it is killed as soon as the line arrives.
  const lines = await child(`logger.info('lone'); setTimeout(() => {}, 10_000);`, (_line, kill) => {
    seenAt = Date.now();
    kill();
  });
  assert.equal(lines.length, 1);
  assert.equal((JSON.parse(lines[0]!) as { msg: string }).msg, 'lone');
  // Start-up is most of this; the bound only proves the line did not wait for the exit.
  assert.ok(seenAt - start < 9_000, `the line came after ${seenAt - start} ms`);
  assert.ok(LOG_FLUSH_MS <= 1000);
});

test('a buffered logger whose stdout reader is gone lets the process exit', () => {
  // SonicBoom's flushSync (which this logger used) retried the failed write (EPIPE) every 100 ms
  // forever: the process hung in its exit flush until killed. Fewer lines than a buffer's worth
  // after the reader left, so the exit flush is the first write to meet the broken pipe. The
  // reader is `true`, which exits at once; `timeout` answers 124 for a process that hung.
  const dir = mkdtempSync(path.join(tmpdir(), 'quarry-epipe-'));
  const script = path.join(dir, 'child.mjs');
  writeFileSync(
    script,
    `import { createLogger } from ${JSON.stringify(LOGGER)};
const logger = createLogger({ level: 'info', name: 't', format: 'json', bufferBytes: 4096 });
setTimeout(() => {
  for (let i = 0; i < 5; i++) logger.info({ i }, 'after the reader left');
  process.exit(0);
}, 1000);`,
  );
  try {
    const run = spawnSync(
      'bash',
      [
        '-c',
        'timeout 20 "$0" "$@" | true; exit $((PIPESTATUS[0]))',
        process.execPath,
        ...tsExecArgv(),
        script,
      ],
      { stdio: 'ignore' },
    );
    assert.equal(run.status, 0, run.status === 124 ? 'the process hung at exit' : `exit ${run.status}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('isoTime is pino isoTime, formatted once per millisecond', () => {
  const before = Date.now();
  const ours = isoTime();
  const theirs = pino.stdTimeFunctions.isoTime();
  const after = Date.now();
  assert.match(ours, /^,"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"$/);
  const at = Date.parse(ours.slice(9, -1));
  assert.ok(at >= before && at <= after);
  if (Date.now() === before) assert.equal(ours, theirs);
  // A later millisecond gets a new text.
  const t0 = Date.now();
  while (Date.now() === t0) {}
  assert.notEqual(isoTime(), ours);
});
