// The console end to end in a real browser: headless Chromium (Debian's, driven by
// playwright-core) against a listening API with API keys, real Redis and a worker in its own
// process. It signs in with a key, finds a failed job marked with its code, retries it from the
// job's page, sees it complete and opens its result table, looks at the activity charts, and
// searches an index. Screenshots go to test-output/console/ (git-ignored).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';
import { startReceiver } from '../helpers/webhook-receiver.ts';
import { killWorker, spawnWorker, type WorkerProcess } from '../helpers/worker-process.ts';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = path.resolve(import.meta.dirname, '../../test-output/console');
const KEY = 'console-e2e-key-0123456789abcdef';
const TENANT = 'acme';
const OTHER_KEY = 'console-e2e-other-0123456789abcd';
/** Bounds every browser wait: a hung page fails the test instead of stalling the suite. */
const STEP_MS = 20_000;

describe('the console in headless Chromium', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let worker: WorkerProcess | undefined;
  let browser: BrowserContext;
  let page: Page;
  let origin: string;
  let dataDir: string;
  let userDataDir: string;
  let failedJobId: string;
  const bearer = { authorization: `Bearer ${KEY}` };

  const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-console-'));
    mkdirSync(path.join(dataDir, TENANT));
    writeFileSync(path.join(dataDir, TENANT, 'sales.csv'), 'region,amount\nnorth,10\nsouth,5\nnorth,7\n');
    redis = await startRedis();
    const env = {
      QUARRY_QUEUE_REDIS_URL: redis.url,
      QUARRY_DATA_DIR: dataDir,
      QUARRY_API_KEYS: JSON.stringify([
        { key: KEY, tenant: TENANT, scopes: ['read', 'enqueue', 'webhooks'] },
        { key: OTHER_KEY, tenant: 'other', scopes: ['read'] },
      ]),
      QUARRY_CONSOLE_SECRET: 'console-e2e-secret-0123456789abcdef',
      QUARRY_JOB_ATTEMPTS: '1',
      QUARRY_WEBHOOK_ALLOW: '127.0.0.1',
    };
    sys = await startSystem({ env, worker: false });
    await sys.app.listen({ host: '127.0.0.1', port: 0 });
    origin = `http://127.0.0.1:${(sys.app.server.address() as AddressInfo).port}`;

    // A job that fails: its file is away when the worker (not running yet) gets to it.
    const file = path.join(dataDir, TENANT, 'sales.csv');
    const enqueued = await sys.app.inject({
      method: 'POST',
      url: '/v1/aggregations',
      headers: bearer,
      payload: {
        dataset: { path: 'sales.csv' },
        groupBy: ['region'],
        metrics: [{ op: 'sum', column: 'amount', as: 'total' }],
      },
    });
    assert.equal(enqueued.statusCode, 202, enqueued.body);
    failedJobId = enqueued.json().jobId;
    renameSync(file, `${file}.away`);
    worker = spawnWorker({
      QUARRY_QUEUE_REDIS_URL: redis.url,
      QUARRY_PREFIX: sys.config.prefix,
      QUARRY_DATA_DIR: dataDir,
      QUARRY_API_KEYS: env.QUARRY_API_KEYS,
      QUARRY_JOB_ATTEMPTS: '1',
      QUARRY_WEBHOOK_ALLOW: '127.0.0.1',
      QUARRY_LOG_LEVEL: 'info',
      QUARRY_LOG_FORMAT: 'json',
      QUARRY_WORKER_METRICS_PORT: '0',
      QUARRY_DUCKDB_THREADS: '1',
    });
    await worker.ready;
    const tenant = sys.client.forTenant(TENANT);
    const failed = await tenant.waitForJob(failedJobId, { timeoutMs: STEP_MS });
    assert.equal(failed.state, 'failed', JSON.stringify(failed));
    renameSync(`${file}.away`, file);

    const index = await sys.app.inject({
      method: 'POST',
      url: '/v1/indexes/manuals?wait=20000',
      headers: bearer,
      payload: {
        documents: [
          { id: 'm1', title: 'Turbine maintenance', body: 'replace the bearing every spring' },
          { id: 'm2', title: 'Pump manual', body: 'prime the pump before starting' },
        ],
        idField: 'id',
        fields: ['title', 'body'],
        store: ['title'],
      },
    });
    assert.equal(index.statusCode, 200, index.body);
    // GET /v1/indexes lists the tenant's collections, and only its own.
    const listed = await sys.app.inject({ method: 'GET', url: '/v1/indexes', headers: bearer });
    assert.deepEqual(
      listed
        .json()
        .indexes.map((i: { collection: string; documents: number }) => [i.collection, i.documents]),
      [['manuals', 2]],
    );
    const other = await sys.app.inject({
      method: 'GET',
      url: '/v1/indexes',
      headers: { authorization: `Bearer ${OTHER_KEY}` },
    });
    assert.deepEqual(other.json(), { indexes: [] });

    userDataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-chromium-'));
    // A fresh profile (playwright passes it as --user-data-dir).
    browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      viewport: { width: 1280, height: 900 },
      timeout: STEP_MS,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.setDefaultTimeout(STEP_MS);
  });

  after(async () => {
    await browser?.close();
    await killWorker(worker);
    await sys?.close();
    await redis?.stop();
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('sign in, see the failed job with its code, retry it, see it complete, search an index', async () => {
    const requests: string[] = [];
    page.on('request', (request) => requests.push(request.url()));
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));

    await page.goto(`${origin}/console`);
    await page.locator('#signin').waitFor();
    await shot('01-sign-in');
    await page.fill('#signin input[name=key]', 'not-the-key-0123456789abcdef');
    await page.click('#signin button[type=submit]');
    await page.getByRole('alert').filter({ hasText: 'QUARRY_ERR_UNAUTHORIZED' }).waitFor();
    await page.fill('#signin input[name=key]', KEY);
    await page.click('#signin button[type=submit]');

    // The job list opens first, newest first, the failure marked with its code.
    const row = page.locator(`#jobs tr[data-job="${failedJobId}"]`);
    await row.waitFor();
    assert.match((await page.locator('#who').textContent()) ?? '', /tenant acme/);
    assert.equal(await row.getAttribute('class'), 'failed');
    const code = ((await row.locator('.code').textContent()) ?? '').trim();
    assert.ok(code === 'QUARRY_ERR_DATASET_NOT_FOUND' || code === 'QUARRY_ERR_DATASET_CHANGED', code);
    await shot('02-jobs');
    const cookies = await browser.cookies();
    const session = cookies.find((c) => c.name === 'quarry_console');
    assert.ok(session !== undefined, 'the session cookie is set');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.equal(
      await page.evaluate(() => (globalThis as unknown as { document: { cookie: string } }).document.cookie),
      '',
      'scripts cannot read the session',
    );

    // The filter narrows to failed jobs.
    await page.selectOption('#job-filters select[name=state]', 'failed');
    await page.click('#job-filters button[type=submit]');
    await page.waitForURL(/#\/jobs\?state=failed/);
    // The old list stays on screen until the filtered one replaces it: wait for the narrowing
    // (it fails the test after 5 s if the filter does not narrow), not just for the row.
    await page
      .waitForFunction(
        () =>
          (
            globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }
          ).document.querySelectorAll('#jobs tbody tr').length === 1,
        undefined,
        { timeout: 5000 },
      )
      .catch(() => undefined);
    await row.waitFor();
    assert.equal(await page.locator('#jobs tbody tr').count(), 1);

    // The job's page: its code and message, then Retry, followed until it completes.
    await row.locator('a').click();
    await page.locator('#job-detail[data-state="failed"]').waitFor();
    assert.equal(((await page.locator('#error-code').textContent()) ?? '').trim(), code);
    // What it computed and over what, though BullMQ dropped the job: from its status record.
    assert.equal(await page.locator('#job-summary').textContent(), 'by region · sum(amount)');
    assert.match((await page.locator('#job-dataset').textContent()) ?? '', /^sales\.csv \(csv, \d+ bytes\)$/);
    await shot('03-job-failed');
    await page.click('#retry-job');
    await page.locator('#job-detail[data-state="completed"]').waitFor();
    await shot('04-job-completed');
    const status = await sys.app.inject({ method: 'GET', url: `/v1/jobs/${failedJobId}`, headers: bearer });
    assert.equal(status.json().state, 'completed', 'the API agrees: the retried job completed');
    assert.equal(status.json().attempts >= 1, true);

    // Its result as a table.
    await page.click('#result-link');
    await page.locator('#result tbody tr').first().waitFor();
    const cells = await page
      .locator('#result tbody tr')
      .evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
    assert.deepEqual(cells.map((c) => c.join('|')).sort(), ['north|17', 'south|5']);
    await shot('05-result');
    // Its download links answer with the session cookie alone (a plain GET, no token needed).
    const csvHref = await page.locator('#downloads a', { hasText: 'csv' }).getAttribute('href');
    const csv = await page.evaluate(async (href) => {
      const res = await fetch(href ?? '');
      return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
    }, csvHref);
    assert.equal(csv.status, 200);
    assert.match(csv.type ?? '', /^text\/csv/);
    assert.match(csv.text, /north,17/);

    // Activity: the two runs drawn (a failed bar and a completed one), and the queue depth.
    await page.click('nav a[data-page=activity]');
    await page.locator('#depth').waitFor();
    assert.equal(await page.locator('#total-failed').textContent(), '1');
    assert.equal(await page.locator('#total-completed').textContent(), '2', 'the retry and the index build');
    assert.ok((await page.locator('svg.chart rect[data-state=failed]').count()) >= 1);
    assert.ok((await page.locator('svg.chart rect[data-state=completed]').count()) >= 1);
    // Fair dispatch: the signed-in tenant's jobs now and its limits (nothing left queued).
    const tenantRow = page.locator(`#tenants tr[data-tenant=${TENANT}]`);
    assert.equal(await tenantRow.locator('.queued').textContent(), '0');
    assert.equal(await tenantRow.locator('.active').textContent(), '0');
    assert.equal(await page.locator('#tenants tbody tr').count(), 1, 'a tenant key sees only its own');
    await shot('06-activity');

    // Indexes: the collection listed; a search finds the pump manual.
    await page.click('nav a[data-page=indexes]');
    const indexRow = page.locator('#indexes tr[data-collection=manuals]');
    await indexRow.waitFor();
    assert.equal(await indexRow.locator('td').nth(2).textContent(), '2');
    await page.fill('#search input[name=q]', 'pump');
    await page.click('#search button[type=submit]');
    await page.locator('#search-results tr[data-hit=m2]').waitFor();
    assert.equal(await page.locator('#search-results tbody tr').count(), 1);
    await shot('07-search');

    // Schedules: one registered now is listed with its period and next run.
    const schedule = await sys.app.inject({
      method: 'PUT',
      url: '/v1/schedules/hourly-sales',
      headers: bearer,
      payload: {
        spec: { dataset: { path: 'sales.csv' }, groupBy: ['region'], metrics: [{ op: 'count' }] },
        everyMs: 3_600_000,
      },
    });
    assert.equal(schedule.statusCode, 200, schedule.body);
    await page.click('nav a[data-page=schedules]');
    const scheduleRow = page.locator('#schedules tr[data-schedule="hourly-sales"]');
    await scheduleRow.waitFor();
    assert.equal(await scheduleRow.locator('td').nth(1).textContent(), 'every 3600 s');
    assert.match((await scheduleRow.locator('td').nth(2).textContent()) ?? '', /^\d{4}-\d{2}-\d{2} /);
    await shot('08-schedules');

    // Webhooks: a registered one is listed (its secret only by its hint) with its deliveries.
    const receiver = await startReceiver();
    try {
      const hook = await sys.app.inject({
        method: 'PUT',
        url: '/v1/webhooks/billing',
        headers: bearer,
        payload: { url: receiver.url, events: ['job.completed'], secret: 'console-hook-secret-0123' },
      });
      assert.equal(hook.statusCode, 200, hook.body);
      const done = await sys.app.inject({
        method: 'POST',
        url: '/v1/aggregations?wait=20000',
        headers: bearer,
        payload: { dataset: { records: [{ x: 1 }] }, metrics: [{ op: 'count' }] },
      });
      assert.equal(done.statusCode, 200, done.body);
      const [received] = await receiver.waitFor(1);
      const deliveryId = String(received!.headers['x-quarry-delivery']);
      // The log says delivered once the deliverer recorded the answer; the page reads the log.
      for (let i = 0; i < 200; i++) {
        const log = await sys.client.forTenant(TENANT).webhooks.deliveries('billing');
        if (log?.[0]?.status === 'delivered') break;
        await new Promise((r) => setTimeout(r, 25));
      }
      await page.click('nav a[data-page=webhooks]');
      const hookRow = page.locator('#webhooks tr[data-webhook=billing]');
      await hookRow.waitFor();
      assert.equal(await hookRow.locator('td').nth(1).textContent(), receiver.url);
      assert.equal(await hookRow.locator('td').nth(3).textContent(), '…0123');
      const deliveryRow = page.locator(`table[data-deliveries=billing] tr[data-delivery="${deliveryId}"]`);
      await deliveryRow.waitFor();
      assert.equal(await deliveryRow.locator('td').nth(3).textContent(), 'delivered');
      assert.match((await deliveryRow.locator('td').nth(5).textContent()) ?? '', /^HTTP 200/);
      await shot('09-webhooks');
    } finally {
      await receiver.close();
    }

    // Sign out: the form again, and the cookie no longer opens /v1.
    await page.click('#sign-out');
    await page.locator('#signin').waitFor();
    const afterOut = await page.evaluate(async () => (await fetch('/v1/jobs')).status);
    assert.equal(afterOut, 401);

    assert.deepEqual(problems, [], 'no script errors');
    assert.deepEqual(
      requests.filter((url) => !url.startsWith(origin)),
      [],
      'nothing is fetched from the network',
    );
  });
});
