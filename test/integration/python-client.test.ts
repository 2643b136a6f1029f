// The Python client (clients/python) against a real stack: a redis-server, the API listening on
// loopback with API keys, and a worker; plus a second API whose queue has no worker, where jobs
// stay queued long enough to be cancelled and retried. The client's own unittest suite runs in
// the system Python (/usr/bin/python3, standard library only) with the stack's addresses in its
// environment, and a webhook signature made here with node:crypto, for the client to verify.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const PYTHON = '/usr/bin/python3';
const CLIENT_DIR = path.join(ROOT, 'clients/python');
const API_KEY = 'python-client-test-key-0001';
const READ_ONLY_KEY = 'python-client-read-key-0001';
const KEYS = JSON.stringify([
  { key: API_KEY, tenant: 'py', scopes: ['admin'] },
  { key: READ_ONLY_KEY, tenant: 'py', scopes: ['read'] },
]);
const WEBHOOK_SECRET = 'whsec-python-client-test';
const PYTHON_TIMEOUT_MS = 120_000;

async function listen(sys: TestSystem): Promise<string> {
  await sys.app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(sys.app.server.address() as AddressInfo).port}`;
}

describe('Python client', { skip: existsSync(PYTHON) ? false : `no ${PYTHON}` }, () => {
  let redis: RedisServer;
  let working: TestSystem;
  let idle: TestSystem;
  let urls: { working: string; idle: string };

  before(async () => {
    redis = await startRedis();
    // The Python tests' webhook receiver listens on loopback.
    const env = {
      QUARRY_QUEUE_REDIS_URL: redis.url,
      QUARRY_API_KEYS: KEYS,
      QUARRY_WEBHOOK_ALLOW: '127.0.0.1',
    };
    working = await startSystem({ env });
    idle = await startSystem({ env, worker: false });
    urls = { working: await listen(working), idle: await listen(idle) };
  });

  after(async () => {
    await idle?.close();
    await working?.close();
    await redis?.stop();
  });

  test('its unittest suite passes against the stack', async (ctx) => {
    const body = '{"id":"dlv_1","type":"job.completed","jobId":"agg-1"}';
    const t = Math.floor(Date.now() / 1000);
    const signature = `t=${t},v1=${createHmac('sha256', WEBHOOK_SECRET).update(`${t}.${body}`).digest('hex')}`;
    const child = spawn(PYTHON, ['-m', 'unittest', 'discover', '-v', '-s', 'tests', '-t', '.'], {
      cwd: CLIENT_DIR,
      env: {
        PATH: process.env.PATH ?? '',
        PYTHONPATH: CLIENT_DIR,
        PYTHONDONTWRITEBYTECODE: '1',
        QUARRY_TEST_URL: urls.working,
        QUARRY_TEST_IDLE_URL: urls.idle,
        QUARRY_TEST_API_KEY: API_KEY,
        QUARRY_TEST_READ_KEY: READ_ONLY_KEY,
        QUARRY_TEST_WEBHOOK_SECRET: WEBHOOK_SECRET,
        QUARRY_TEST_WEBHOOK_BODY: body,
        QUARRY_TEST_WEBHOOK_SIGNATURE: signature,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => {
      output += c;
    });
    child.stderr.on('data', (c: Buffer) => {
      output += c;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), PYTHON_TIMEOUT_MS);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    clearTimeout(timer);
    assert.equal(code, 0, output);
    // The suite ran its tests, not none: unittest ends with "Ran N tests" and "OK".
    const ran = Number(/Ran (\d+) tests?/.exec(output)?.[1] ?? 0);
    assert.ok(ran >= 10, `only ${ran} Python tests ran:\n${output}`);
    assert.doesNotMatch(output, /skipped/, output);
    for (const line of output.trim().split('\n')) ctx.diagnostic(line);
  });
});
