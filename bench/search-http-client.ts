// The HTTP query loop of `bench search`, in a process of its own: an app's client holds only its
// connection, not the bench's corpus and index copies, whose garbage collection would land in the
// timings (the "floor in its own process" rule of the benchmarks). Reads
// {port, collection, queries, passes} as JSON on stdin; prints {client, server} timings (ms, the
// first pass left out as warm-up) as one JSON line on stdout.
import http from 'node:http';

interface Task {
  port: number;
  collection: string;
  queries: string[];
  passes: number;
}

function get(agent: http.Agent, port: number, url: string): Promise<string> {
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

let input = '';
for await (const chunk of process.stdin) input += chunk;
const task = JSON.parse(input) as Task;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const client: number[] = [];
const server: number[] = [];
for (let pass = 0; pass < task.passes; pass++) {
  for (const q of task.queries) {
    const t0 = performance.now();
    const body = await get(
      agent,
      task.port,
      `/v1/indexes/${task.collection}/search?q=${encodeURIComponent(q)}&k=10`,
    );
    const dt = performance.now() - t0;
    if (pass > 0) {
      client.push(dt);
      server.push((JSON.parse(body) as { tookMs: number }).tookMs);
    }
  }
}
agent.destroy();
process.stdout.write(`${JSON.stringify({ client, server })}\n`);
