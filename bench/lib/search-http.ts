// The HTTP query loop of `bench search`: GET searches over one keep-alive connection, timed on
// the client side, the server's own tookMs beside each. Run in the bench process and, to leave
// the bench's garbage collection out, in bench/search-http-client.ts.
import http from 'node:http';

export interface QueryLoop {
  port: number;
  collection: string;
  queries: readonly string[];
  /** Passes over the queries; the first is warm-up, left out of the timings. */
  passes: number;
}

/** Client-side and server (tookMs) times in ms, one per query of every pass but the first. */
export async function queryLoop(
  agent: http.Agent,
  { port, collection, queries, passes }: QueryLoop,
): Promise<{ client: number[]; server: number[] }> {
  const client: number[] = [];
  const server: number[] = [];
  for (let pass = 0; pass < passes; pass++) {
    for (const q of queries) {
      const t0 = performance.now();
      const body = await get(agent, port, `/v1/indexes/${collection}/search?q=${encodeURIComponent(q)}&k=10`);
      const dt = performance.now() - t0;
      if (pass > 0) {
        client.push(dt);
        server.push((JSON.parse(body) as { tookMs: number }).tookMs);
      }
    }
  }
  return { client, server };
}

/** GET `url` on 127.0.0.1:`port`; the body of a 200, else an error. */
export function get(agent: http.Agent, port: number, url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: url, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () =>
          res.statusCode === 200 ? resolve(body) : reject(new Error(`${res.statusCode}: ${body}`)),
        );
      })
      .on('error', reject);
  });
}
