// One webhook attempt: a POST to the address the SSRF check approved (shared/webhook-target.ts),
// never to whatever the name resolves to by now: the connection's lookup answers with that
// address, while the Host header and TLS name stay the URL's host. Redirects are not followed
// (a 3xx is a failed attempt), the whole attempt has one deadline, and at most
// RESPONSE_EXCERPT_BYTES of the answer are read before the connection is dropped.
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { RESPONSE_EXCERPT_BYTES } from '../shared/webhook-deliveries.ts';
import type { CheckedTarget } from '../shared/webhook-target.ts';

export interface PostAnswer {
  /** True for a 2xx answer. */
  readonly ok: boolean;
  readonly status: number | null;
  readonly body: string | null;
  /** Why it failed: `timeout`, `redirect not followed (…)`, `HTTP 500`, a socket error. */
  readonly error: string | null;
}

export interface PostRequest {
  readonly target: CheckedTarget;
  readonly body: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

export function postWebhook(request: PostRequest): Promise<PostAnswer> {
  const { target, body, timeoutMs } = request;
  const { url, address, family } = target;
  const lookup: LookupFunction = (_host, options, callback) => {
    if (options.all)
      (callback as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address, family }]);
    else callback(null, address, family);
  };
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise<PostAnswer>((resolve) => {
    let settled = false;
    const finish = (answer: PostAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.signal?.removeEventListener('abort', onAbort);
      req.destroy();
      resolve(answer);
    };
    const req = transport.request(
      {
        protocol: url.protocol,
        hostname: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port || undefined,
        path: `${url.pathname}${url.search}`,
        method: 'POST',
        lookup,
        agent: false,
        headers: {
          ...request.headers,
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
          'user-agent': 'Quarry-Webhooks/1',
        },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let size = 0;
        const done = () => {
          const excerpt = Buffer.concat(chunks).subarray(0, RESPONSE_EXCERPT_BYTES).toString('utf8');
          const ok = status >= 200 && status < 300;
          const error = ok
            ? null
            : status >= 300 && status < 400
              ? `redirect not followed (HTTP ${status}${res.headers.location ? ` to ${String(res.headers.location).slice(0, 200)}` : ''})`
              : `HTTP ${status}`;
          finish({ ok, status, body: excerpt === '' ? null : excerpt, error });
        };
        res.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          size += chunk.length;
          if (size >= RESPONSE_EXCERPT_BYTES) done();
        });
        res.on('end', done);
        res.on('error', done);
      },
    );
    const timer = setTimeout(
      () => finish({ ok: false, status: null, body: null, error: `timeout after ${timeoutMs} ms` }),
      timeoutMs,
    );
    const onAbort = () => finish({ ok: false, status: null, body: null, error: 'aborted (shutting down)' });
    request.signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err: NodeJS.ErrnoException) =>
      finish({ ok: false, status: null, body: null, error: err.code ?? err.message }),
    );
    req.end(body);
  });
}
