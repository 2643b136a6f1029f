// A real HTTP receiver on loopback for webhook tests: records every request (headers, body) and
// answers with what the test's `answer` says for it (a status, or 'hang' to never answer), and
// lets a test wait for the n-th request. Signatures are checked here with node:crypto, apart
// from the code under test.
import { createHmac, timingSafeEqual } from 'node:crypto';
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly method: string;
  readonly url: string;
  readonly at: number;
}

export type Answer = number | 'hang' | { status: number; headers?: Record<string, string>; body?: string };

export interface Receiver {
  readonly url: string;
  readonly port: number;
  readonly received: Received[];
  /** Resolves once `count` requests arrived (rejects after timeoutMs). */
  waitFor(count: number, timeoutMs?: number): Promise<Received[]>;
  close(): Promise<void>;
}

export async function startReceiver(
  answer: (index: number, r: Received) => Answer = () => 200,
): Promise<Receiver> {
  const received: Received[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = {
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        method: req.method ?? '',
        url: req.url ?? '',
        at: Date.now(),
      };
      const index = received.length;
      received.push(r);
      for (const w of waiters.filter((w) => received.length >= w.count)) w.resolve();
      const a = answer(index, r);
      if (a === 'hang') return; // never answered: the sender's timeout must end it
      const { status, headers, body } = typeof a === 'number' ? { status: a, headers: {}, body: 'ok' } : a;
      res.writeHead(status, headers);
      res.end(body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    port,
    received,
    waitFor(count, timeoutMs = 20_000) {
      if (received.length >= count) return Promise.resolve(received.slice());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(`only ${received.length} of ${count} webhook requests arrived in ${timeoutMs} ms`),
            ),
          timeoutMs,
        );
        waiters.push({
          count,
          resolve: () => {
            clearTimeout(timer);
            resolve(received.slice());
          },
        });
      });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The receiver's side of the signature: t=<s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>. */
export function signatureValid(secret: string, header: string | string[] | undefined, body: string): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(String(header ?? ''));
  if (match === null) return false;
  const expected = createHmac('sha256', secret).update(`${match[1]}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(match[2]!, 'hex'));
}
