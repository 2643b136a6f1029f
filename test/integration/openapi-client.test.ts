// A client generated from the API's own OpenAPI document compiles against the calls an app makes.
// openapi-typescript 6 turns /openapi.json into types (v6: it prints TypeScript itself, with no
// TypeScript compiler API, so it runs beside the repo's TypeScript 7); the repo's tsc then
// compiles a small typed client and a few calls against them. `@ts-expect-error` lines prove the
// types are specific: if the document's schemas went anonymous or loose (`any`, `unknown`,
// `Record<string, never>`), those lines would stop erroring and the compile would fail.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import openapiTS from 'openapi-typescript';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

const root = path.resolve(import.meta.dirname, '../..');

// What an app would write against the generated `paths`/`components`: a typed call helper whose
// path, method, body and answer all come from the document, and a few uses of it.
const CALLS = `
import type { components, paths } from './quarry-api.ts';

type Schemas = components['schemas'];
type JsonOf<R> = R extends { content: { 'application/json': infer B } } ? B : never;
type Ok<Op> = Op extends { responses: { 200: infer R } } ? JsonOf<R> : never;
type BodyOf<Op> = Op extends { requestBody: { content: { 'application/json': infer B } } } ? B : never;

declare function call<P extends keyof paths, M extends keyof paths[P] & ('get' | 'post' | 'put' | 'delete')>(
  method: M,
  path: P,
  body?: BodyOf<paths[P][M]>,
): Promise<Ok<paths[P][M]>>;

export async function app(): Promise<void> {
  const spec: Schemas['AggregationSpec'] = {
    dataset: { records: [{ origin: 'LAX', delay: 5 }] },
    groupBy: ['origin'],
    metrics: [{ op: 'count' }, { op: 'avg', column: 'delay' }],
  };
  const envelope = await call('post', '/v1/aggregations', spec);
  const rows: number = envelope.rowCount;
  const engine: 'duckdb' | 'polars' | 'js' = envelope.engine;

  const status: Schemas['JobStatus'] = await call('get', '/v1/jobs/{jobId}');
  const state: 'queued' | 'active' | 'completed' | 'failed' | 'cancelled' = status.state;
  const hits = (await call('get', '/v1/indexes/{collection}/search')).hits;
  const first: number | undefined = hits[0]?.score;
  const failure: Schemas['Error'] = { error: { code: 'QUARRY_ERR_VALIDATION', message: 'x', field: 'metrics.0' } };
  const query: paths['/v1/indexes/{collection}/search']['get']['parameters']['query'] = { q: 'apples', k: 5 };
  void [rows, engine, state, first, failure, query];

  // @ts-expect-error: an engine the spec does not have
  const badEngine: Schemas['AggregationSpec'] = { ...spec, engine: 'sqlite' };
  // @ts-expect-error: error codes are the registry's, not any string
  const badCode: Schemas['Error'] = { error: { code: 'QUARRY_ERR_NOPE', message: 'x' } };
  // @ts-expect-error: a job's state is one of five
  const badState: Schemas['JobStatus']['state'] = 'running';
  // @ts-expect-error: no such route
  await call('get', '/v1/nope');
  // @ts-expect-error: the index request needs its fields
  await call('post', '/v1/indexes/{collection}', { documents: [] });
  void [badEngine, badCode, badState];
}
`;

describe('OpenAPI: a typed client generated from the document', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let dir: string;

  before(async () => {
    redis = await startRedis();
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url }, worker: false });
    dir = mkdtempSync(path.join(os.tmpdir(), 'quarry-client-'));
  });

  after(async () => {
    await sys?.close();
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('openapi-typescript generates named types, and calls against them compile (wrong ones do not)', async () => {
    const res = await sys.app.inject({ method: 'GET', url: '/openapi.json' });
    assert.equal(res.statusCode, 200);
    const types = await openapiTS(JSON.parse(res.body));
    for (const name of ['AggregationSpec', 'JobStatus', 'ResultEnvelope', 'SearchResult', 'Error']) {
      assert.match(types, new RegExp(`\\b${name}: \\{`), `a named type ${name}`);
    }
    writeFileSync(path.join(dir, 'quarry-api.ts'), types);
    writeFileSync(path.join(dir, 'calls.ts'), CALLS);
    writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          allowImportingTsExtensions: true,
          skipLibCheck: true,
          types: [],
        },
        files: ['calls.ts', 'quarry-api.ts'],
      }),
    );
    const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(tsc.status, 0, `tsc:\n${tsc.stdout}${tsc.stderr}`);
  });
});
