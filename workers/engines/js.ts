// The JS engine: the aggregation plan (shared/plan.ts) interpreted in the worker's own thread,
// for small inline datasets (choose.ts picks it below a measured size; docs/ENGINES.md). The
// worker hands it the parsed records (no spool file, no native call), so a 20-record job costs
// microseconds of compute. Semantics: docs/AGGREGATION.md, as duckdb-sql.ts and polars-plan.ts
// translate the same plan; rows are shaped by result-rows.ts like theirs. It runs synchronously
// between phases, so it is only chosen for data small enough not to hold the event loop.
import { readFile } from 'node:fs/promises';
import { QuarryError } from '../../shared/errors.ts';
import { type AggregationPlan, buildPlan } from '../../shared/plan.ts';
import type { AggregationEngine, EngineInput, EngineOutput } from './engine.ts';
import { groupValues } from './js-buckets.ts';
import { type Aggregate, compileAggregate } from './js-metrics.ts';
import { compareValues, compilePredicate, readColumn, type Values } from './js-values.ts';
import { shapeRows } from './result-rows.ts';

type Value = string | number | boolean | null;

export function createJsEngine(): AggregationEngine {
  let closed = false;
  return {
    name: 'js',
    async run(input: EngineInput): Promise<EngineOutput> {
      if (closed) throw new QuarryError('QUARRY_ERR_ENGINE', 'the JS engine is closed');
      const { source, signal } = input;
      signal?.throwIfAborted();
      if (source.kind === 'file') {
        throw new QuarryError('QUARRY_ERR_ENGINE', 'the JS engine computes inline datasets only');
      }
      const records = source.kind === 'records' ? source.records : await readSpool(source.file);
      const plan = buildPlan(input.spec, source.columns, input.maxRows);
      return aggregate(plan, records, signal);
    },
    async close() {
      closed = true;
    },
  };
}

async function readSpool(file: string): Promise<readonly Record<string, unknown>[]> {
  const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
  if (!Array.isArray(parsed)) {
    throw new QuarryError('QUARRY_ERR_DATASET_UNREADABLE', 'dataset: the inline records are not an array', {
      field: 'dataset.records',
    });
  }
  return parsed as Record<string, unknown>[];
}

/** Records past which the phases let the event loop turn between them (lock renewals, cancels). */
const TURN_ROWS = 2_048;

/** The plan over parsed records; checks the signal between phases. */
export async function aggregate(
  plan: AggregationPlan,
  records: readonly Record<string, unknown>[],
  signal?: AbortSignal,
): Promise<EngineOutput> {
  // A microtask for small data (an abort already requested is seen), a turn of the loop for more.
  const phase = async () => {
    await (records.length > TURN_ROWS ? new Promise((resolve) => setImmediate(resolve)) : null);
    signal?.throwIfAborted();
  };
  await phase();
  const source = new Map<string, Values>(plan.columns.map((c) => [c.name, readColumn(records, c)]));
  const column = (name: string) => source.get(name)!;
  const where = compilePredicate(plan.where, column);
  const kept: number[] = [];
  for (let i = 0; i < records.length; i++) if (where(i) === true) kept.push(i);
  await phase();

  // Groups in order of first appearance (the sort below makes the order total).
  const keys = plan.groups.map((g) => groupValues(g, column(g.column.name)));
  const groups: { first: number; rows: number[] }[] = [];
  if (keys.length === 0) groups.push({ first: -1, rows: kept });
  else {
    const index = new Map<unknown, { first: number; rows: number[] }>();
    const single = keys.length === 1 ? keys[0]! : undefined;
    for (const i of kept) {
      // Values of one output share a type, so a JSON tuple (or the value itself) tells groups apart.
      const key = single !== undefined ? single[i] : JSON.stringify(keys.map((k) => k[i]));
      let group = index.get(key);
      if (group === undefined) {
        group = { first: i, rows: [] };
        index.set(key, group);
        groups.push(group);
      }
      group.rows.push(i);
    }
  }

  // Outputs column by column: group keys, metrics, then ratios over them.
  const outputs: Value[][] = plan.outputs.map(() => new Array<Value>(groups.length));
  keys.forEach((k, at) => {
    const out = outputs[at]!;
    groups.forEach((g, r) => {
      out[r] = k[g.first]!;
    });
  });
  plan.metrics.forEach((m, j) => {
    if (m.op === 'ratio') return;
    const values = m.column === undefined ? undefined : column(m.column.name);
    const compute: Aggregate = compileAggregate(m, values);
    const test = m.filter === undefined ? undefined : compilePredicate(m.filter, column);
    const out = outputs[plan.groups.length + j]!;
    groups.forEach((g, r) => {
      out[r] = compute(test === undefined ? g.rows : g.rows.filter((i) => test(i) === true));
    });
  });
  plan.metrics.forEach((m, j) => {
    if (m.op !== 'ratio') return;
    const [of, to, out] = [outputs[m.of!]!, outputs[m.to!]!, outputs[plan.groups.length + j]!];
    for (let r = 0; r < groups.length; r++) {
      const a = of[r] as number | null;
      const b = to[r] as number | null;
      out[r] = a === null || b === null || b === 0 ? null : a / b;
    }
  });
  await phase();

  // having, over the outputs by name.
  const byName = new Map(plan.outputs.map((o, k) => [o.name, outputs[k]!]));
  const having = compilePredicate(plan.having, (name) => byName.get(name)!);
  let order: number[] = [];
  for (let r = 0; r < groups.length; r++) if (having(r) === true) order.push(r);

  // orderBy, then the group keys ascending; nulls last in both directions.
  const sort = plan.sort.map((k) => ({ values: outputs[k.index]!, sign: k.descending ? -1 : 1 }));
  order.sort((a, b) => {
    for (const { values, sign } of sort) {
      const x = values[a]!;
      const y = values[b]!;
      if (x === y) continue;
      if (x === null) return 1;
      if (y === null) return -1;
      const c = compareValues(x, y);
      if (c !== 0) return c * sign;
    }
    return 0;
  });

  if (plan.top !== undefined) {
    const per = plan.top.per.map((k) => outputs[k]!);
    const limit = plan.top.limit;
    const counts = new Map<string, number>();
    order = order.filter((r) => {
      const key = JSON.stringify(per.map((values) => values[r]));
      const n = (counts.get(key) ?? 0) + 1;
      counts.set(key, n);
      return n <= limit;
    });
  }
  await phase();

  const page = order.slice(plan.offset, plan.offset + plan.fetch);
  // An oversized result is refused by shapeRows before any value is converted.
  const columns =
    page.length > plan.maxRows
      ? []
      : plan.outputs.map((o, k) => {
          const values = outputs[k]!;
          const instant = o.type === 'timestamp';
          return page.map((r) => {
            const v = values[r]!;
            return instant && v !== null ? new Date(v as number) : v;
          });
        });
  const rows = await shapeRows(plan, columns, page.length);
  return { columns: plan.outputs, rows, totalRows: order.length };
}
