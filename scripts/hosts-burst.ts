// The burst `npm run hosts-test` sends through the API (scripts/hosts-test.ts), deterministic from
// its seed, and the check of each completed job's answer: inline aggregations against the TS
// reference, file aggregations for a result of the right shape (a clean engine run is what
// `npm run chaos` compares against; here the point is the hosts), index builds by a search. File
// datasets and index sources are read by path (a folder every host sees) or from the object store
// on the Redis host (`s3://hosts/<name>`, the same files uploaded: S3_OBJECTS).
import { seededRandom } from '../bench/corpus.ts';
import { addressAggregation, parseAggregation, type ResultEnvelope } from '../shared/aggregation.ts';
import type { InlineRecord } from '../shared/datasets.ts';
import { referenceAggregate } from '../test/reference/aggregate.ts';
import { assertSameResult } from '../test/reference/compare.ts';

export type Kind = 'inline' | 'file' | 'heavy' | 'index';
/** Where a job's data comes from: in the request, a file by path, or an object in the store. */
export type Data = 'inline' | 'path' | 's3';

/** The bucket on the Redis host's object store, and the files of the data folder uploaded to it. */
export const BUCKET = 'hosts';
export const S3_OBJECTS = [
  'flights.parquet',
  'flights.csv',
  'flights.ndjson',
  'flights-3m.parquet',
  'docs.ndjson',
] as const;

export interface Planned {
  readonly kind: Kind;
  readonly data: Data;
  /** POST path under the API. */
  readonly route: string;
  readonly body: Record<string, unknown>;
  /** Index builds: a query whose top hits must exist. */
  readonly query?: string;
}

export interface BurstSize {
  readonly inline: number;
  readonly files: number;
  readonly heavy: number;
}

const GROUPS = ['ant', 'bee', 'cat', 'dog', 'eel', 'fox'];
const WORDS = ['granite', 'basalt', 'quarry', 'chisel', 'marble', 'slate', 'gravel', 'flint', 'shale'];

/** Documents for the index builds (inline ones, and the file source `docs.ndjson`). */
export function documents(seed: number, n: number, tag: string) {
  const rand = seededRandom(seed);
  const words = (k: number) =>
    Array.from({ length: k }, () => WORDS[Math.floor(rand() * WORDS.length)]).join(' ');
  return Array.from({ length: n }, (_, i) => ({ id: `${tag}${i}`, title: words(3), body: words(20) }));
}

/** `{ path }` or `{ url: 's3://hosts/…' }` for a file of the data folder. */
const fileRef = (data: 'path' | 's3', name: string) =>
  data === 'path' ? { path: name } : { url: `s3://${BUCKET}/${name}` };

/**
 * Half the inline aggregations first (both hosts share them), then the file aggregations, the
 * index builds and the multi-second jobs (one of these is what the cut must catch running), then
 * the other half, which only the hosts still on the network can take. Every other file
 * aggregation and multi-second job reads the object store (the first multi-second one among
 * them), and one index build too.
 */
export function planBurst(seed: number, size: BurstSize): Planned[] {
  const rand = seededRandom(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const engines = ['duckdb', 'polars'];
  const heavy: Planned[] = [];
  for (let i = 0; i < size.heavy; i++) {
    const data = i % 2 === 0 ? 's3' : 'path';
    heavy.push({
      kind: 'heavy',
      data,
      route: '/v1/aggregations',
      body: {
        dataset: fileRef(data, 'flights-3m.parquet'),
        // Distinct filters: distinct result keys, so each is a job of its own.
        filters: [{ column: 'distance', op: 'gte', value: 100 + 50 * i + int(50) }],
        groupBy: ['date', 'origin'],
        metrics: [
          { op: 'count' },
          { op: 'count_distinct', column: 'destination' },
          { op: 'quantile', column: 'delay', q: 0.5 },
        ],
        orderBy: [{ column: 'count', direction: 'desc' }],
        limit: 10,
        engine: engines[i % 2],
      },
    });
  }
  const indexes: Planned[] = [
    {
      kind: 'index',
      data: 'inline',
      route: '/v1/indexes/hosts-inline',
      body: {
        documents: documents(seed, 300, 'd'),
        idField: 'id',
        fields: ['title', 'body'],
        store: ['title'],
      },
      query: 'quarry granite',
    },
    ...(['path', 's3'] as const).map(
      (data): Planned => ({
        kind: 'index',
        data,
        route: `/v1/indexes/hosts-${data === 'path' ? 'file' : 's3'}`,
        body: {
          source: fileRef(data, 'docs.ndjson'),
          idField: 'id',
          fields: ['title', 'body'],
          store: ['title'],
        },
        query: 'marble chisel',
      }),
    ),
  ];
  const files: Planned[] = [];
  for (let i = 0; i < size.files; i++) {
    // Alternating with the three formats: each format both by path and from the store.
    const data = i % 2 === 0 ? 'path' : 's3';
    files.push({
      kind: 'file',
      data,
      route: '/v1/aggregations',
      body: {
        dataset: fileRef(data, ['flights.parquet', 'flights.csv', 'flights.ndjson'][i % 3]!),
        filters: [{ column: 'distance', op: 'gte', value: 10 * i + int(10) }],
        groupBy: ['origin'],
        metrics: [{ op: 'count' }, { op: 'avg', column: 'delay' }, { op: 'max', column: 'distance' }],
        orderBy: [{ column: 'count', direction: 'desc' }],
        limit: 10,
        engine: engines[i % 2],
      },
    });
  }
  const inline: Planned[] = [];
  for (let i = 0; i < size.inline; i++) {
    const records: InlineRecord[] = Array.from({ length: 20 + int(200) }, () => ({
      g: GROUPS[int(GROUPS.length)]!,
      x: int(1000),
      y: Math.round(rand() * 10_000) / 100,
    }));
    inline.push({
      kind: 'inline',
      data: 'inline',
      route: '/v1/aggregations',
      body: {
        dataset: { records },
        groupBy: ['g'],
        metrics: [{ op: 'count' }, { op: 'sum', column: 'x' }, { op: 'max', column: 'y' }],
        orderBy: [{ column: 'g', direction: 'asc' }],
        engine: engines[int(2)],
      },
    });
  }
  const half = Math.ceil(inline.length / 2);
  return [...inline.slice(0, half), ...files, ...indexes, ...heavy, ...inline.slice(half)];
}

/** Throws, saying what is wrong, unless a completed job's answer is right. */
export async function checkAnswer(
  job: Planned,
  status: { resultKey: string | null },
  get: (route: string) => Promise<Response>,
): Promise<void> {
  if (job.kind === 'index') {
    const res = await get(`${job.route}/search?q=${encodeURIComponent(job.query!)}&k=5`);
    const body = (await res.json()) as { hits?: unknown[] };
    if (res.status !== 200 || (body.hits?.length ?? 0) === 0) {
      throw new Error(`search answered ${res.status} with ${body.hits?.length ?? 0} hits`);
    }
    return;
  }
  const res = await get(`/v1/results/${status.resultKey}`);
  if (res.status !== 200) throw new Error(`GET /v1/results answered ${res.status}`);
  const envelope = (await res.json()) as ResultEnvelope;
  if (job.kind !== 'inline') {
    if (envelope.rows.length === 0) throw new Error('no rows');
    return;
  }
  const parsed = parseAggregation(job.body, { maxInlineBytes: 1024 ** 3, maxResultRows: 100_000 });
  const { spec, inlineJson } = addressAggregation(parsed);
  if (spec.dataset.kind !== 'inline') throw new Error('not inline');
  const expected = referenceAggregate(spec, JSON.parse(inlineJson!) as InlineRecord[], spec.dataset.columns);
  assertSameResult(envelope, expected);
}
