// The HTTP query loop of `bench search` (bench/lib/search-http.ts) in a process of its own: an
// app's client holds only its connection, not the bench's corpus and index copies, whose garbage
// collection would land in the timings (the "floor in its own process" rule of the benchmarks).
// Reads a QueryLoop as JSON on stdin; prints {client, server} timings (ms) as one JSON line.
import http from 'node:http';
import { type QueryLoop, queryLoop } from './lib/search-http.ts';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const timings = await queryLoop(agent, JSON.parse(input) as QueryLoop);
agent.destroy();
process.stdout.write(`${JSON.stringify(timings)}\n`);
