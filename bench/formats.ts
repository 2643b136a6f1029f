// `npm run bench -- formats`: what the result formats cost on a 100,000-row result (the most
// QUARRY_MAX_RESULT_ROWS allows by default), against the JSON serialization every result already
// pays in the worker (workers/envelope.ts). Rows mix a string key, a timestamp, an integer past
// 2^53, a float, a boolean and ~5% nulls. Timed, interleaved run by run so machine drift hits all
// alike: the worker's JSON serialization and a plain JSON.stringify; JSON.parse of the stored
// bytes; CSV, NDJSON and Arrow from the parsed envelope (the fallback path); each conversion from
// the stored bytes as the API's cache does it on a miss (all three by scanning the bytes:
// shared/envelope-scan.ts, shared/arrow-stored.ts); and a cache hit.
import os from 'node:os';
import { ResultConversions } from '../api/result-conversions.ts';
import type { ResultEnvelope } from '../shared/aggregation.ts';
import { type ConvertedFormat, toArrow, toCsv, toNdjson } from '../shared/result-formats.ts';
import { serializeEnvelope } from '../workers/envelope.ts';
import { printTable, type Row, summarize, writeResults } from './lib/stats.ts';

const ROWS = 100_000;
const ORIGINS = ['LAX', 'SFO', 'JFK', 'ORD', 'SEA', 'BOS, "Logan"', 'DEN', 'ATL'];

function makeEnvelope(rows: number): ResultEnvelope {
  const out: Record<string, unknown>[] = new Array(rows);
  const start = Date.UTC(2024, 0, 1);
  for (let i = 0; i < rows; i++) {
    const nul = i % 20 === 7;
    out[i] = {
      origin: ORIGINS[i % ORIGINS.length],
      day: nul ? null : new Date(start + (i % 366) * 86_400_000).toISOString(),
      count: 1 + ((i * 7919) % 5000),
      total: nul ? null : 2 ** 53 + i * 2,
      avg_delay: nul ? null : Math.round(((i * 31) % 1000) * 1.37) / 100,
      late: i % 3 === 0,
    };
  }
  return {
    resultKey: '0'.repeat(32),
    columns: [
      { name: 'origin', type: 'string' },
      { name: 'day', type: 'timestamp' },
      { name: 'count', type: 'integer' },
      { name: 'total', type: 'integer' },
      { name: 'avg_delay', type: 'float' },
      { name: 'late', type: 'boolean' },
    ],
    rows: out,
    rowCount: rows,
    totalRows: rows,
    engine: 'duckdb',
    computedAt: new Date().toISOString(),
    durationMs: 1,
  };
}

export async function runFormats(options: { iterations: number }): Promise<void> {
  const runs = Math.max(3, Math.min(options.iterations, 25));
  const envelope = makeEnvelope(ROWS);
  const stored = Buffer.from(await serializeEnvelope(envelope), 'utf8');
  const parsed = JSON.parse(stored.toString('utf8')) as ResultEnvelope;
  const sizes: Record<string, number> = { json: stored.length };
  let salt = 0;
  const fromStored = (format: ConvertedFormat) => async () => {
    // A fresh cache key each run: every call is a miss (parse + convert).
    const conversions = new ResultConversions({ maxBytes: 1024 ** 3, ttlMs: 60_000 });
    sizes[format] = (await conversions.get(`t/${salt++}`, format, stored)).length;
  };
  const hits = new ResultConversions({ maxBytes: 1024 ** 3, ttlMs: 600_000 });
  await hits.get('t/hit', 'csv', stored);
  const cases: [string, () => Promise<unknown>][] = [
    ['JSON: worker serialization (serializeEnvelope)', () => serializeEnvelope(envelope)],
    ['JSON: JSON.stringify(envelope)', async () => JSON.stringify(envelope)],
    ['JSON.parse of the stored bytes', async () => JSON.parse(stored.toString('utf8'))],
    ['CSV from the parsed envelope (fallback path)', () => toCsv(parsed)],
    ['NDJSON from the parsed envelope (fallback path)', () => toNdjson(parsed)],
    ['Arrow from the parsed envelope', () => toArrow(parsed)],
    ['CSV from stored bytes (API miss: byte scan)', fromStored('csv')],
    ['NDJSON from stored bytes (API miss: byte scan)', fromStored('ndjson')],
    ['Arrow from stored bytes (API miss: byte scan)', fromStored('arrow')],
    ['CSV, API cache hit', () => hits.get('t/hit', 'csv', stored)],
  ];
  const samples = new Map<string, number[]>(cases.map(([name]) => [name, []]));
  for (const [, fn] of cases) await fn(); // warm
  for (let i = 0; i < runs; i++) {
    for (const [name, fn] of cases) {
      const t0 = performance.now();
      await fn();
      samples.get(name)!.push(performance.now() - t0);
    }
  }
  const jsonMs = summarize(samples.get(cases[0]![0])!).p50;
  const round = (x: number) => Math.round(x * 100) / 100;
  const rows: Row[] = cases.map(([name]) => {
    const s = summarize(samples.get(name)!);
    return {
      case: name,
      'p50 ms': round(s.p50),
      'min ms': round(s.min),
      '/ JSON serialization': round(s.p50 / jsonMs),
    };
  });
  printTable(
    `formats: a ${ROWS.toLocaleString('en')}-row result, ${runs} runs, medians (${os.cpus().length} cores)`,
    rows,
  );
  const sizeRows: Row[] = Object.entries(sizes).map(([format, bytes]) => ({
    format,
    bytes,
    '/ JSON bytes': round(bytes / sizes.json!),
  }));
  printTable('sizes', sizeRows);
  const file = writeResults('formats', {
    rows: ROWS,
    runs,
    cases: Object.fromEntries(cases.map(([name]) => [name, summarize(samples.get(name)!)])),
    sizes,
  });
  console.log(`\nwrote ${file}`);
}
