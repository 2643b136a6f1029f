// Webhook pieces without Redis: which addresses the SSRF guard refuses (a table written here,
// from the IANA special-purpose registries, not from the code's list), the allow list, the
// retry schedule, and the signature: made by Quarry, checked by node:crypto here, by the Python
// client's verify_webhook, and by the ten-line receivers README.md shows (run as printed).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import {
  checkWebhookTarget,
  embeddedIpv4,
  isPrivateAddress,
  WebhookAllowList,
} from '../../shared/webhook-target.ts';
import { signWebhook, verifyWebhook } from '../../shared/webhooks.ts';
import { retryDelayMs } from '../../workers/webhook-deliverer.ts';

const PRIVATE = [
  '127.0.0.1',
  '127.255.255.254',
  '0.0.0.0',
  '10.0.0.1',
  '172.16.0.1',
  '172.31.255.255',
  '192.168.0.1',
  '169.254.169.254',
  '100.64.0.1',
  '100.127.255.255',
  '192.0.0.8',
  '198.18.0.1',
  '224.0.0.251',
  '255.255.255.255',
  '::',
  '::1',
  '::ffff:127.0.0.1',
  '::ffff:7f00:1',
  '::ffff:10.0.0.1',
  '::ffff:a9fe:a9fe',
  '64:ff9b::127.0.0.1',
  '64:ff9b::a9fe:a9fe',
  'fe80::1',
  'fe80::1%eth0',
  'fc00::1',
  'fd12:3456::1',
  'ff02::1',
  '2002:7f00:1::1',
  '2001:db8::1',
  '::127.0.0.1',
];
const PUBLIC = [
  '8.8.8.8',
  '1.1.1.1',
  '172.32.0.1',
  '100.128.0.1',
  '2606:4700:4700::1111',
  '::ffff:8.8.8.8',
  '64:ff9b::808:808',
];

describe('webhook targets', () => {
  test('private, loopback, link-local and reserved addresses are refused; public ones pass', () => {
    for (const a of PRIVATE) assert.equal(isPrivateAddress(a), true, a);
    for (const a of PUBLIC) assert.equal(isPrivateAddress(a), false, a);
    assert.equal(isPrivateAddress('not-an-ip'), true);
  });

  test('IPv4-mapped and NAT64 addresses are read by the IPv4 address they carry', () => {
    assert.equal(embeddedIpv4('::ffff:7f00:1'), '127.0.0.1');
    assert.equal(embeddedIpv4('::ffff:169.254.169.254'), '169.254.169.254');
    assert.equal(embeddedIpv4('64:ff9b::a00:1'), '10.0.0.1');
    assert.equal(embeddedIpv4('2001:db8::1'), undefined);
  });

  test('the allow list takes host names and CIDR ranges, and refuses anything else', async () => {
    const allow = new WebhookAllowList(['localhost', '10.0.0.0/8', '::1', 'Hooks.Internal.']);
    assert.ok(allow.allowsHost('LOCALHOST'));
    assert.ok(allow.allowsHost('hooks.internal'));
    assert.ok(allow.allowsAddress('10.9.8.7'));
    assert.ok(allow.allowsAddress('::ffff:10.9.8.7'));
    assert.ok(allow.allowsAddress('::1'));
    assert.ok(!allow.allowsAddress('127.0.0.1'));
    assert.throws(() => new WebhookAllowList(['10.0.0.0/33']), { code: 'QUARRY_ERR_CONFIG' });
    assert.throws(() => new WebhookAllowList(['http://x/']), { code: 'QUARRY_ERR_CONFIG' });
    const checked = await checkWebhookTarget('http://10.1.1.1:8080/x', allow, 1000);
    assert.deepEqual([checked.address, checked.family, checked.url.port], ['10.1.1.1', 4, '8080']);
    await assert.rejects(checkWebhookTarget('http://127.0.0.1/', allow, 1000), {
      code: 'QUARRY_ERR_WEBHOOK_TARGET',
      field: 'url',
    });
  });

  test('retries: the first within 0.5-1 times the first delay, then doubling to an hour', () => {
    assert.equal(retryDelayMs(2000, 1, 0), 1000);
    assert.equal(retryDelayMs(2000, 1, 1), 2000);
    assert.equal(retryDelayMs(2000, 3, 1), 8000);
    assert.equal(retryDelayMs(2000, 40, 1), 3_600_000);
    const seen = new Set(Array.from({ length: 20 }, () => retryDelayMs(2000, 5)));
    assert.ok(seen.size > 1, 'jitter spreads retries');
  });
});

describe('webhook signatures', () => {
  const secret = 'whsec_unit_0123456789';
  const body = '{"id":"whd_1","type":"job.completed","note":"ünïcode"}';

  test('the header is t=<s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>', () => {
    const expected = createHmac('sha256', secret).update(`1700000000.${body}`).digest('hex');
    assert.equal(signWebhook(secret, body, 1_700_000_000), `t=1700000000,v1=${expected}`);
  });

  test('verifyWebhook: right secret within the tolerance only; any of several v1 entries', () => {
    const header = signWebhook(secret, body, 1_700_000_000);
    assert.ok(verifyWebhook(secret, header, body, 300, 1_700_000_100));
    assert.ok(!verifyWebhook(secret, header, body, 300, 1_700_000_400), 'too old');
    assert.ok(!verifyWebhook('another-secret-0123', header, body, 300, 1_700_000_100));
    assert.ok(!verifyWebhook(secret, header, `${body} `, 300, 1_700_000_100), 'another body');
    const rotated = `${header.replace(/v1=.*/, `v1=${'0'.repeat(64)}`)},${header.split(',')[1]}`;
    assert.ok(verifyWebhook(secret, rotated, body, 300, 1_700_000_100));
    assert.ok(!verifyWebhook(secret, undefined, body));
  });

  test("the Python client's verify_webhook accepts Quarry's signature", () => {
    const t = Math.floor(Date.now() / 1000);
    const header = signWebhook(secret, body, t);
    const script = [
      'import os, sys',
      'from quarry import verify_webhook',
      "ok = verify_webhook(os.environ['S'], {'X-Quarry-Signature': os.environ['H']}, os.environ['B'].encode())",
      "bad = verify_webhook(os.environ['S'] + 'x', {'X-Quarry-Signature': os.environ['H']}, os.environ['B'].encode())",
      "print('ok' if ok and not bad else 'no')",
    ].join('\n');
    const run = spawnSync('python3', ['-c', script], {
      env: {
        ...process.env,
        PYTHONPATH: path.resolve(import.meta.dirname, '../../clients/python'),
        S: secret,
        H: header,
        B: body,
      },
      encoding: 'utf8',
    });
    assert.equal(run.stdout.trim(), 'ok', run.stderr);
  });

  /** The code block README.md prints after the marker `<!-- webhook-verify-<lang> -->`. */
  const readmeSnippet = (lang: string) => {
    const readme = readFileSync(path.resolve(import.meta.dirname, '../../README.md'), 'utf8');
    const match = new RegExp(`<!-- webhook-verify-${lang} -->\\n\`\`\`\\w+\\n([\\s\\S]*?)\`\`\``).exec(
      readme,
    );
    assert.ok(match, `README has the ${lang} receiver`);
    assert.ok(match[1]!.trim().split('\n').length <= 10, `the ${lang} receiver is ten lines at most`);
    return match[1]!;
  };

  test("README's Python receiver accepts Quarry's signature and refuses a wrong one", () => {
    const t = Math.floor(Date.now() / 1000);
    const script = `${readmeSnippet('python')}
import os
h, b = os.environ['H'], os.environ['B'].encode()
print(verify(os.environ['S'], h, b), verify(os.environ['S'] + 'x', h, b), verify(os.environ['S'], h, b + b' '))`;
    const run = spawnSync('python3', ['-c', script], {
      env: { ...process.env, S: secret, H: signWebhook(secret, body, t), B: body },
      encoding: 'utf8',
    });
    assert.equal(run.stdout.trim(), 'True False False', run.stderr);
  });

  test("README's TypeScript receiver accepts Quarry's signature and refuses a wrong or old one", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'quarry-readme-'));
    try {
      const file = path.join(dir, 'verify.ts');
      writeFileSync(file, readmeSnippet('ts'));
      const { verify } = (await import(pathToFileURL(file).href)) as {
        verify: (secret: string, header: string, body: string) => boolean;
      };
      const now = Math.floor(Date.now() / 1000);
      assert.equal(verify(secret, signWebhook(secret, body, now), body), true);
      assert.equal(verify('wrong-secret-0123456', signWebhook(secret, body, now), body), false);
      assert.equal(verify(secret, signWebhook(secret, body, now - 3600), body), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
