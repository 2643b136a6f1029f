// Fetching an index version from Redis and loading it, as an API process does on a new version,
// in a process of its own: the bench process holds the corpus and its own index copies, and each
// 70 MB fetch there sets off collections of that heap inside the timings. Reads {url, prefix,
// collection, version, rounds} as JSON on stdin; prints the times (ms) as one JSON array.
import { Redis } from 'ioredis';
import { IndexStore } from '../shared/index-store.ts';
import { keyScheme } from '../shared/keys.ts';
import { loadIndex } from '../shared/search/index.ts';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const task = JSON.parse(input) as {
  url: string;
  prefix: string;
  collection: string;
  version: number;
  rounds: number;
};
const raw = new Redis(task.url);
const store = new IndexStore(raw, keyScheme(task.prefix));
const times: number[] = [];
for (let i = 0; i < task.rounds; i++) {
  const t0 = performance.now();
  const buffer = await store.fetch(task.collection, task.version);
  if (buffer === null) throw new Error(`${task.collection} v${task.version} is not in Redis`);
  loadIndex(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length));
  times.push(performance.now() - t0);
}
raw.disconnect();
process.stdout.write(`${JSON.stringify(times)}\n`);
