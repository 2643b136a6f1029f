// A CSV whose first fraction comes late (a second pair of eyes, 2026-12-07): DuckDB inferred the
// column's type from its default sample (~20k rows) and rounded the later 1.5 to 2, a silently
// wrong sum; Polars read it right. Both engines now take types from the first 50 million rows.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type RedisServer, startRedis } from '../helpers/redis.ts';
import { startSystem, type TestSystem } from '../helpers/system.ts';

describe('attacks: CSV column types', () => {
  let redis: RedisServer;
  let sys: TestSystem;
  let dataDir: string;

  before(async () => {
    redis = await startRedis();
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'quarry-csv-types-'));
    writeFileSync(path.join(dataDir, 'late.csv'), `x,g\n${'1,a\n'.repeat(30_000)}1.5,b\n2.7,b\n`);
    writeFileSync(path.join(dataDir, 'times.csv'), 'at,n\n12:30:00,1\n12:30:00,2\n08:05:09,3\n');
    writeFileSync(
      path.join(dataDir, 'times.ndjson'),
      '{"at":"12:30:00","n":1}\n{"at":"12:30:00","n":2}\n{"at":"08:05:09","n":3}\n',
    );
    sys = await startSystem({ env: { QUARRY_QUEUE_REDIS_URL: redis.url, QUARRY_DATA_DIR: dataDir } });
  });
  after(async () => {
    await sys?.close();
    await redis?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  for (const engine of ['duckdb', 'polars'] as const) {
    test(`${engine}: a fraction after 30,000 integers makes the column float, and the sum exact`, async () => {
      const res = await sys.app.inject({
        method: 'POST',
        url: '/v1/aggregations?wait=30000',
        payload: JSON.stringify({
          dataset: { path: 'late.csv' },
          groupBy: ['g'],
          metrics: [
            { op: 'sum', column: 'x' },
            { op: 'max', column: 'x' },
          ],
          orderBy: [{ column: 'g', direction: 'asc' }],
          engine,
        }),
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.statusCode, 200, res.body);
      const envelope = JSON.parse(res.body) as { rows: { g: string; sum_x: number; max_x: number }[] };
      assert.deepEqual(envelope.rows, [
        { g: 'a', sum_x: 30_000, max_x: 1 },
        { g: 'b', sum_x: 4.2, max_x: 2.7 },
      ]);
    });
  }

  for (const file of ['times.csv', 'times.ndjson']) {
    test(`${file}: time-of-day values are their text in both engines (DuckDB gave microseconds)`, async () => {
      const rowsOf = async (engine: string) => {
        const res = await sys.app.inject({
          method: 'POST',
          url: '/v1/aggregations?wait=30000',
          payload: JSON.stringify({
            dataset: { path: file },
            groupBy: ['at'],
            metrics: [
              { op: 'sum', column: 'n' },
              { op: 'max', column: 'at', as: 'latest' },
            ],
            orderBy: [{ column: 'at', direction: 'asc' }],
            engine,
          }),
          headers: { 'content-type': 'application/json' },
        });
        assert.equal(res.statusCode, 200, `${engine}: ${res.body}`);
        return (JSON.parse(res.body) as { rows: unknown[] }).rows;
      };
      const expected = [
        { at: '08:05:09', sum_n: 3, latest: '08:05:09' },
        { at: '12:30:00', sum_n: 3, latest: '12:30:00' },
      ];
      assert.deepEqual(await rowsOf('duckdb'), expected);
      assert.deepEqual(await rowsOf('polars'), expected);
    });
  }
});
