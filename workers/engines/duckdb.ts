// The DuckDB engine: one in-process instance per worker, locked down (no extension installs,
// file access limited to the data root and the spool directory, configuration locked), a
// connection per running job, taken from a pool of idle ones, each keeping the prepared
// statements of the aggregation shapes it ran (the same spec shape over new data binds new
// values, never new SQL). Queries run on DuckDB's own threads (async), so the event loop stays
// free while they compute.
import { mkdirSync, realpathSync } from 'node:fs';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import {
  DOUBLE,
  type DuckDBConnection,
  DuckDBInstance,
  type DuckDBMaterializedResult,
  type DuckDBPreparedStatement,
  DuckDBStructType,
  type DuckDBType,
  structValue,
  VARCHAR,
} from '@duckdb/node-api';
import { QuarryError } from '../../shared/errors.ts';
import { buildPlan } from '../../shared/plan.ts';
import { columnsOf } from './duckdb-columns.ts';
import type { SqlValue } from './duckdb-params.ts';
import { collidesIgnoringCase, compileAggregation, positionalName } from './duckdb-sql.ts';
import { firstLine, resultColumns } from './duckdb-values.ts';
import {
  type AggregationEngine,
  type EngineInput,
  type EngineOutput,
  type EngineSource,
  spooledSource,
} from './engine.ts';
import { shapeRows } from './result-rows.ts';

export interface DuckDBEngineOptions {
  /** DuckDB worker threads. Default: all cores. */
  threads?: number;
  /** DuckDB `memory_limit`, e.g. `2GB`. Default: DuckDB's (80% of RAM). */
  memoryLimit?: string;
  /** The data root: the only directory (with spoolDir and tenantDataDirs) DuckDB may read. */
  dataDir: string;
  /** Tenants' data roots outside dataDir (a `dataDir` in QUARRY_API_KEYS). */
  tenantDataDirs?: readonly string[];
  /** Where inline datasets are written for DuckDB to read; also its spill directory. */
  spoolDir: string;
}

const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;

/** Idle connections kept for the next jobs (more run at once when the concurrency is higher). */
const MAX_IDLE_CONNECTIONS = 16;
/** Prepared statements kept per connection, least recently used dropped first. */
const MAX_STATEMENTS_PER_CONNECTION = 32;

/** A pooled connection and the statements prepared on it, by SQL text (a Map keeps use order). */
interface Pooled {
  readonly connection: DuckDBConnection;
  readonly statements: Map<string, DuckDBPreparedStatement>;
}

function realOrSelf(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return dir; // not created yet: a tenant's root may appear later, under its configured name
  }
}

export interface DuckDBEngine extends AggregationEngine {
  /** Writes a Parquet file's rows to `target` as one JSON array (for index builds). */
  exportJsonArray(file: string, target: string, signal?: AbortSignal): Promise<void>;
}

export async function createDuckDBEngine(options: DuckDBEngineOptions): Promise<DuckDBEngine> {
  mkdirSync(options.spoolDir, { recursive: true });
  const instance = await DuckDBInstance.create(':memory:', {
    threads: String(options.threads ?? 4),
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
  });
  const setup = await instance.connect();
  try {
    // Settings come from configuration, not from requests; quoted all the same.
    if (options.memoryLimit) await setup.run(`SET memory_limit = ${sqlString(options.memoryLimit)}`);
    // Timestamps without a zone are UTC: casts between TIMESTAMP and TIMESTAMPTZ read them so.
    await setup.run(`SET TimeZone = 'UTC'`);
    await setup.run(`SET temp_directory = ${sqlString(`${options.spoolDir}/duckdb-tmp`)}`);
    // DuckDB resolves links (including the /proc/self/fd/<n> paths Quarry hands it) before it
    // checks this list, so the real form of each directory is listed beside the configured one.
    const allowed = [options.dataDir, ...(options.tenantDataDirs ?? []), options.spoolDir];
    const dirs = new Set(allowed.flatMap((d) => [d, realOrSelf(d)]));
    await setup.run(
      `SET allowed_directories = [${[...dirs].map((d) => sqlString(`${d.replace(/\/+$/, '')}/`)).join(', ')}]`,
    );
    await setup.run('SET enable_external_access = false');
    await setup.run('SET lock_configuration = true');
  } finally {
    setup.closeSync();
  }
  let closed = false;
  const idle: Pooled[] = [];

  /**
   * Runs one statement on a pooled connection. `prepared`: keep the statement prepared on that
   * connection for the next run of the same SQL (aggregations: their text depends on the spec's
   * shape only). A connection whose statement failed is closed, not pooled: nothing of a failed
   * or interrupted run is carried into another job's.
   */
  async function query(
    sql: string,
    params: SqlValue[],
    signal?: AbortSignal,
    prepared = false,
  ): Promise<DuckDBMaterializedResult> {
    signal?.throwIfAborted();
    const pooled = idle.pop() ?? { connection: await instance.connect(), statements: new Map() };
    const { connection } = pooled;
    // DuckDB clears a pending interrupt when a statement starts executing, so one call can land
    // too early (while the statement is prepared): repeat it until the query gives up.
    let repeat: NodeJS.Timeout | undefined;
    const interrupt = () => {
      connection.interrupt();
      repeat ??= setInterval(() => connection.interrupt(), 20);
    };
    signal?.addEventListener('abort', interrupt, { once: true });
    let reusable = false;
    try {
      // The signal may have fired while the connection was being opened, before the listener.
      signal?.throwIfAborted();
      const values = params.map((p) => (typeof p === 'object' ? structValue(p) : p));
      // An undefined entry means "infer", as bind() reads it; the declared type omits that.
      const types = params.map(bindType) as DuckDBType[];
      let result: DuckDBMaterializedResult;
      if (prepared) {
        const statement = await preparedOn(pooled, sql);
        statement.bind(values, types);
        result = await statement.run();
      } else {
        result = await connection.run(sql, values, types);
      }
      reusable = true;
      return result;
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      throw error;
    } finally {
      clearInterval(repeat);
      signal?.removeEventListener('abort', interrupt);
      // An abort that fired during the run may have interrupted it after the result came back.
      if (reusable && !signal?.aborted && !closed && idle.length < MAX_IDLE_CONNECTIONS) idle.push(pooled);
      else connection.closeSync();
    }
  }

  async function preparedOn(pooled: Pooled, sql: string): Promise<DuckDBPreparedStatement> {
    const { statements } = pooled;
    let statement = statements.get(sql);
    if (statement !== undefined) {
      // Most recently used last.
      statements.delete(sql);
      statements.set(sql, statement);
      return statement;
    }
    statement = await pooled.connection.prepare(sql);
    statements.set(sql, statement);
    if (statements.size > MAX_STATEMENTS_PER_CONNECTION) {
      const [oldest, dropped] = statements.entries().next().value!;
      statements.delete(oldest);
      dropped.destroySync();
    }
    return statement;
  }

  return {
    name: 'duckdb',
    async run(input: EngineInput): Promise<EngineOutput> {
      if (closed) throw new QuarryError('QUARRY_ERR_ENGINE', 'the DuckDB engine is closed');
      const source = spooledSource(input.source, 'DuckDB');
      const { columns, texts, unusable } = await columnsOf(source, (sql, params) => query(sql, params));
      const plan = buildPlan(input.spec, columns, input.maxRows, unusable);
      const renamed =
        source.kind === 'inline' && collidesIgnoringCase(source.columns.map((c) => c.name))
          ? await positionalCopy(source)
          : undefined;
      try {
        const { sql, params } = compileAggregation(plan, renamed?.source ?? source, renamed?.names, texts);
        let result: DuckDBMaterializedResult;
        try {
          result = await query(sql, params, input.signal, true);
        } catch (cause) {
          if (input.signal?.aborted) throw input.signal.reason;
          const line = firstLine(cause);
          // Out of Range: a value past its type (a variance of values near ±1.8e308, a bin of a
          // huge integer); deterministic, as the other engines' overflows are (result-rows.ts).
          const code = /^(Conversion|Invalid Input) Error/.test(line)
            ? 'QUARRY_ERR_DATASET_UNREADABLE'
            : /^Out of Range Error/.test(line)
              ? 'QUARRY_ERR_RESULT_OVERFLOW'
              : 'QUARRY_ERR_ENGINE';
          throw new QuarryError(code, `DuckDB failed: ${line}`, { cause });
        }
        // An oversized result is refused by shapeRows before any value is converted.
        const values = result.rowCount > plan.maxRows ? [] : await resultColumns(result);
        const n = plan.outputs.length;
        // After the outputs: the page mark (null on an empty page's stand-in row) and the total.
        const empty = result.rowCount === 1 && values[n]?.[0] === null;
        const totalRows = Number(values[n + 1]?.[0] ?? result.rowCount);
        const rows = await shapeRows(plan, values, empty ? 0 : result.rowCount);
        return { columns: plan.outputs, rows, totalRows };
      } finally {
        if (renamed !== undefined) await unlink(renamed.source.file).catch(() => undefined);
      }
    },
    async exportJsonArray(file: string, target: string, signal?: AbortSignal) {
      if (closed) throw new QuarryError('QUARRY_ERR_ENGINE', 'the DuckDB engine is closed');
      try {
        // The target is a spool path Quarry made, not request text; quoted all the same.
        await query(
          `COPY (SELECT * FROM read_parquet($1)) TO ${sqlString(target)} (FORMAT json, ARRAY true)`,
          [file],
          signal,
        );
      } catch (cause) {
        if (signal?.aborted) throw signal.reason;
        throw new QuarryError(
          'QUARRY_ERR_DATASET_UNREADABLE',
          `cannot read the Parquet file: ${firstLine(cause)}`,
          {
            field: 'source.path',
            cause,
          },
        );
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      // Closing a connection destroys the statements prepared on it.
      for (const { connection } of idle.splice(0)) connection.closeSync();
      instance.closeSync();
    },
  };
}

/**
 * The node API binds every integral JS number as BIGINT, so 1e19 or 1e308 fails to bind ("out of
 * int64 range"). A number that is not a safe integer is a double in JSON and in the reference:
 * it binds as DOUBLE, and DuckDB compares an integer column with it as doubles, as Polars does.
 */
function bindType(value: SqlValue): DuckDBType | undefined {
  // The column struct of read_json is typed here: inferring it, the node API copies the entries
  // into a plain object by assignment, where a column named "__proto__" vanishes.
  if (typeof value === 'object') {
    const names = Object.keys(value);
    return new DuckDBStructType(
      names,
      names.map(() => VARCHAR),
    );
  }
  return typeof value === 'number' && !Number.isSafeInteger(value) ? DOUBLE : undefined;
}

type InlineSource = Extract<EngineSource, { kind: 'inline' }>;

/**
 * A copy of inline records whose columns are named by position (c0, c1, ...), beside the spool
 * file, for datasets whose names DuckDB cannot tell apart (`a` and `A`). Rare, so parsing and
 * rewriting the records here (instead of on every job) is acceptable.
 */
async function positionalCopy(
  source: InlineSource,
): Promise<{ source: InlineSource; names: ReadonlyMap<string, string> }> {
  const names = new Map(source.columns.map((c, i) => [c.name, positionalName(i)]));
  const records = JSON.parse(await readFile(source.file, 'utf8')) as Record<string, unknown>[];
  const rows = records.map((record) => {
    const row: Record<string, unknown> = {};
    for (const [name, internal] of names) {
      // hasOwn: a missing "constructor" must read as absent, not as Object's constructor.
      if (Object.hasOwn(record, name)) row[internal] = record[name];
    }
    return row;
  });
  const file = `${source.file}.positional.json`;
  await writeFile(file, JSON.stringify(rows));
  return {
    source: {
      kind: 'inline',
      file,
      columns: source.columns.map((c) => ({ ...c, name: names.get(c.name)! })),
    },
    names,
  };
}
