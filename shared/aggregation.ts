// The aggregation job's whole contract: the spec a client sends, its normalized form, output
// column names, the result key, the job payload and the result envelope.
import { z } from 'zod';
import {
  METRIC_OP_NAMES,
  METRIC_OPS,
  type MetricOp,
  type MetricOpDef,
  QUANTILE_METHODS,
  type QuantileMethod,
} from './aggregation-ops.ts';
import {
  type ColumnInfo,
  checkColumnName,
  datasetFormat,
  FILE_FORMATS,
  type FileFingerprint,
  type FingerprintMode,
  type InlineDataset,
  prepareInlineRecords,
} from './datasets.ts';
import { QuarryError } from './errors.ts';
import { DEFAULT_PRIORITY, type PriorityClass, PrioritySchema } from './fairness.ts';
import { Column, type Filter, type FilterLeaf, FilterTree, forEachLeaf } from './filter-tree.ts';
import {
  type GroupKey,
  GroupKeySchema,
  groupKeyColumn,
  groupKeyName,
  isTimeZone,
  normalizeGroupKey,
} from './group-keys.ts';
import { ContentHash, canonicalJson } from './hashing.ts';
import { aggregationJobId } from './keys.ts';
import { type ObjectFingerprint, parseObjectUrl } from './object-store.ts';
import { type JobTrace, JobTraceSchema } from './tracing.ts';
import { describeZodError, parseWith } from './zod-messages.ts';

export const ENGINES = ['auto', 'duckdb', 'polars'] as const;
/** Every engine a result can come from: `js` is chosen by `auto` only (workers/engines/choose.ts). */
export const ENGINE_NAMES = ['duckdb', 'polars', 'js'] as const;

/** The most rows `top` may keep per partition. */
export const MAX_TOP_LIMIT = 10_000;
export type EngineChoice = (typeof ENGINES)[number];
export type EngineName = (typeof ENGINE_NAMES)[number];

export { QUANTILE_METHODS, type QuantileMethod } from './aggregation-ops.ts';

const As = Column.optional();
const METRIC_COLUMNS = {
  optional: { column: Column.optional() },
  any: { column: Column },
  numeric: { column: Column },
  none: {},
} as const;
const METRIC_PARAMS = {
  quantile: { q: z.number().min(0).max(1), method: z.enum(QUANTILE_METHODS).default('linear') },
  population: { population: z.boolean().default(false) },
  ratio: { of: Column, to: Column },
} as const;

/** One schema per metric op of the registry (shared/aggregation-ops.ts). */
function metricSchema<K extends MetricOp>(op: K) {
  const def: MetricOpDef = METRIC_OPS[op];
  // Typed as nothing extra: the parsed metric's type is written out below (ParsedMetric).
  const params: object = Object.assign({}, ...def.params.map((p) => METRIC_PARAMS[p]));
  const filter = def.rowFilter ? { filter: FilterTree.optional() } : {};
  return z.strictObject({ op: z.literal(op), ...METRIC_COLUMNS[def.column], ...params, ...filter, as: As });
}

type RowMetric = { filter?: Filter; as?: string };
type SimpleOp = Exclude<MetricOp, 'count' | 'quantile' | 'stddev' | 'variance' | 'ratio'>;
type ParsedMetric =
  | ({ op: 'count'; column?: string } & RowMetric)
  | ({ op: SimpleOp; column: string } & RowMetric)
  | ({ op: 'quantile'; column: string; q: number; method: QuantileMethod } & RowMetric)
  | ({ op: 'stddev' | 'variance'; column: string; population: boolean } & RowMetric)
  | { op: 'ratio'; of: string; to: string; as?: string };
type MetricInput =
  | ({ op: 'count'; column?: string } & RowMetric)
  | ({ op: SimpleOp; column: string } & RowMetric)
  | ({ op: 'quantile'; column: string; q: number; method?: QuantileMethod } & RowMetric)
  | ({ op: 'stddev' | 'variance'; column: string; population?: boolean } & RowMetric)
  | { op: 'ratio'; of: string; to: string; as?: string };
type MetricSchema = ReturnType<typeof metricSchema>;
// Typed as what it parses, with its options kept visible (tests read the ops off the schema).
const Metric = z.discriminatedUnion(
  'op',
  METRIC_OP_NAMES.map(metricSchema) as [MetricSchema],
) as unknown as z.ZodType<ParsedMetric, MetricInput> & { readonly options: readonly MetricSchema[] };

const Dataset = z.union([
  z.strictObject({ records: z.array(z.unknown()) }),
  z.strictObject({
    path: z.string().min(1).max(1024),
    format: z.enum(FILE_FORMATS).optional(),
    fingerprint: z.enum(['stat', 'content']).optional(),
  }),
  // An object in S3-compatible storage (shared/object-store.ts), fingerprinted by a HEAD.
  z.strictObject({
    url: z.string().min(1).max(2048),
    format: z.enum(FILE_FORMATS).optional(),
  }),
]);

export const AggregationSpecSchema = z.strictObject({
  dataset: Dataset,
  filters: z.array(FilterTree).max(64).default([]),
  having: z.array(FilterTree).max(64).default([]),
  groupBy: z.array(GroupKeySchema).max(32).default([]),
  metrics: z.array(Metric).min(1).max(64),
  orderBy: z
    .array(z.strictObject({ column: Column, direction: z.enum(['asc', 'desc']).default('asc') }))
    .max(32)
    .default([]),
  limit: z.number().int().min(1).optional(),
  top: z
    .strictObject({ per: z.array(Column).min(1).max(32), limit: z.number().int().min(1).max(MAX_TOP_LIMIT) })
    .optional(),
  offset: z.number().int().min(0).optional(),
  engine: z.enum(ENGINES).default('auto'),
  /** How soon, within the tenant (shared/fairness.ts); not part of the spec's address. */
  priority: PrioritySchema.optional(),
});

/** The spec as a client writes it. */
export type AggregationSpecInput = z.input<typeof AggregationSpecSchema>;
export type { MetricOp } from './aggregation-ops.ts';
export type { Filter, FilterLeaf } from './filter-tree.ts';
export interface Metric {
  readonly op: MetricOp;
  /** Absent only for `count` (rows); `count` with a column counts its non-null values. */
  readonly column?: string;
  readonly q?: number;
  readonly method?: QuantileMethod;
  /** stddev and variance: over the population (n) instead of the sample (n − 1). Present only when true. */
  readonly population?: true;
  /** A filter over source rows: the metric sees only the rows for which it is true. */
  readonly filter?: Filter;
  /** ratio: the output names of its dividend and divisor (other metrics of the spec). */
  readonly of?: string;
  readonly to?: string;
  /** Output column name: the given `as`, or the documented default. */
  readonly as: string;
}

export type DatasetRef =
  | { readonly kind: 'inline'; readonly rows: number; readonly columns: readonly ColumnInfo[] }
  | ({ readonly kind: 'file' } & FileFingerprint)
  | ({ readonly kind: 'object' } & ObjectFingerprint);

/** The normalized spec: defaults filled, names resolved; what workers compute and what is hashed. */
export interface AggregationSpec {
  readonly dataset: DatasetRef;
  readonly filters: readonly Filter[];
  /** Conditions on output columns, all of which must hold; absent when none (result keys of specs without it stay as they were). */
  readonly having?: readonly Filter[];
  /** Column names, time buckets and bins (shared/group-keys.ts). */
  readonly groupBy: readonly GroupKey[];
  readonly metrics: readonly Metric[];
  readonly orderBy: readonly { readonly column: string; readonly direction: 'asc' | 'desc' }[];
  readonly limit?: number;
  /** The first `limit` rows of each partition by the `per` outputs (group keys), in sort order. */
  readonly top?: { readonly per: readonly string[]; readonly limit: number };
  /** Rows skipped before `limit` (a page); absent when 0. */
  readonly offset?: number;
  readonly engine: EngineChoice;
}

/** What the BullMQ job carries. Inline records travel beside it, under keys.inlineData(jobId). */
export interface AggregationJobData {
  readonly v: 1;
  readonly resultKey: string;
  readonly spec: AggregationSpec;
  /** The tenant that owns the job (its keys live under the tenant's prefix). */
  readonly tenant?: string;
  /** The enqueue's trace context, set only when tracing is on (shared/tracing.ts). */
  readonly trace?: JobTrace;
}

export interface ResultColumn {
  readonly name: string;
  readonly type: 'integer' | 'float' | 'string' | 'boolean' | 'date' | 'timestamp' | 'null';
}

export interface ResultEnvelope {
  readonly resultKey: string;
  readonly columns: readonly ResultColumn[];
  readonly rows: readonly Record<string, unknown>[];
  readonly rowCount: number;
  /** Rows before `offset` and `limit` (after `having` and `top`). */
  readonly totalRows: number;
  readonly engine: EngineName;
  readonly computedAt: string;
  readonly durationMs: number;
}

const ColumnTypeSchema = z.enum(['integer', 'float', 'string', 'boolean', 'date', 'timestamp', 'null']);

/**
 * The job payload, checked again by the worker: a job written into the queue by anything but
 * Quarry's producer (or corrupted) fails with QUARRY_ERR_VALIDATION instead of reaching an engine.
 */
export const AggregationJobDataSchema = z.strictObject({
  v: z.literal(1),
  resultKey: z.string().regex(/^[0-9a-f]{32}$/),
  trace: JobTraceSchema.optional(),
  tenant: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/)
    .optional(),
  spec: z.strictObject({
    dataset: z.union([
      z.strictObject({
        kind: z.literal('inline'),
        rows: z.number().int().min(0),
        columns: z.array(z.strictObject({ name: Column, type: ColumnTypeSchema })).max(1024),
      }),
      z.strictObject({
        kind: z.literal('file'),
        path: z.string().min(1).max(1024),
        format: z.enum(FILE_FORMATS),
        size: z.number().int().min(0),
        mtimeMs: z.number().int(),
        contentHash: z
          .string()
          .regex(/^[0-9a-f]{32}$/)
          .optional(),
      }),
      z.strictObject({
        kind: z.literal('object'),
        url: z
          .string()
          .regex(/^s3:\/\/[^/]+\/./s)
          .max(2048),
        format: z.enum(FILE_FORMATS),
        size: z.number().int().min(0),
        etag: z.string().max(1024),
        versionId: z.string().min(1).max(1024).optional(),
      }),
    ]),
    filters: z.array(FilterTree).max(64),
    having: z.array(FilterTree).max(64).optional(),
    groupBy: z.array(GroupKeySchema).max(32),
    metrics: z
      .array(
        z.strictObject({
          op: z.enum(METRIC_OP_NAMES),
          column: Column.optional(),
          q: z.number().min(0).max(1).optional(),
          method: z.enum(QUANTILE_METHODS).optional(),
          population: z.literal(true).optional(),
          filter: FilterTree.optional(),
          of: Column.optional(),
          to: Column.optional(),
          as: Column,
        }),
      )
      .min(1)
      .max(64),
    orderBy: z.array(z.strictObject({ column: Column, direction: z.enum(['asc', 'desc']) })).max(32),
    limit: z.number().int().min(1).optional(),
    top: z
      .strictObject({
        per: z.array(Column).min(1).max(32),
        limit: z.number().int().min(1).max(MAX_TOP_LIMIT),
      })
      .optional(),
    offset: z.number().int().min(0).optional(),
    engine: z.enum(ENGINES),
  }),
});

/** Checks a job payload; throws QuarryError QUARRY_ERR_VALIDATION (unrecoverable) when malformed. */
export function checkAggregationJobData(data: unknown): AggregationJobData {
  const payload = checkJobPayload(AggregationJobDataSchema, data);
  for (const m of payload.spec.metrics) {
    const use = METRIC_OPS[m.op].column;
    if ((use === 'any' || use === 'numeric') && m.column === undefined) {
      throw new QuarryError('QUARRY_ERR_VALIDATION', `malformed job payload: ${m.op} without a column`, {
        field: 'job.spec.metrics',
      });
    }
    if (m.op === 'ratio' && (m.of === undefined || m.to === undefined)) {
      throw new QuarryError('QUARRY_ERR_VALIDATION', 'malformed job payload: ratio without of or to', {
        field: 'job.spec.metrics',
      });
    }
    if (m.op === 'quantile' && (m.q === undefined || m.method === undefined)) {
      throw new QuarryError('QUARRY_ERR_VALIDATION', 'malformed job payload: quantile without q or method', {
        field: 'job.spec.metrics',
      });
    }
  }
  return payload as AggregationJobData;
}

/** Parses a job payload with its schema; QUARRY_ERR_VALIDATION (unrecoverable) when malformed. */
export function checkJobPayload<S extends z.ZodType>(schema: S, data: unknown): z.output<S> {
  const parsed = parseWith(schema, data);
  if (!parsed.success) {
    const e = validationError(parsed.error);
    throw new QuarryError('QUARRY_ERR_VALIDATION', `malformed job payload: ${e.message}`, {
      field: `job.${e.field ?? ''}`,
    });
  }
  return parsed.data;
}

export interface AggregationLimits {
  readonly maxInlineBytes: number;
  readonly maxResultRows: number;
}

/** A validated request: the normalized spec minus the file fingerprint, plus inline data. */
export interface ParsedAggregation {
  readonly spec: Omit<AggregationSpec, 'dataset'>;
  /** The request's priority class (default normal): scheduling only, never hashed. */
  readonly priority: PriorityClass;
  readonly dataset:
    | { readonly kind: 'inline'; readonly data: InlineDataset }
    | {
        readonly kind: 'file';
        readonly path: string;
        readonly format?: (typeof FILE_FORMATS)[number];
        readonly fingerprint?: FingerprintMode;
      }
    | { readonly kind: 'object'; readonly url: string; readonly format: (typeof FILE_FORMATS)[number] };
}

/** The default output name of a metric, as its registry entry defines it (docs/AGGREGATION.md). */
export function defaultMetricName(metric: {
  op: MetricOp;
  column?: string;
  q?: number;
  population?: boolean;
  of?: string;
  to?: string;
}): string {
  return METRIC_OPS[metric.op].defaultName(metric);
}

/** Validates and normalizes a client's spec; throws QuarryError naming the field at fault. */
export function parseAggregation(input: unknown, limits: AggregationLimits): ParsedAggregation {
  // Inline records are checked by prepareInlineRecords in one tight pass; zod sees an empty
  // array in their place, so validating a 5,000-record request costs what a tiny one does.
  let records: unknown;
  if (isObject(input) && isObject(input.dataset) && Array.isArray(input.dataset.records)) {
    records = input.dataset.records;
    input = { ...input, dataset: { ...input.dataset, records: [] } };
  }
  const parsed = parseWith(AggregationSpecSchema, input);
  if (!parsed.success) throw validationError(parsed.error);
  const s = parsed.data;

  s.filters.forEach((f, i) => {
    checkLeaves(f, `filters.${i}`);
  });
  const groupBy = s.groupBy.map(normalizeGroupKey);
  const outputs = new Set<string>();
  groupBy.forEach((g, i) => {
    const field = typeof g === 'string' ? `groupBy.${i}` : `groupBy.${i}.column`;
    checkColumnName(groupKeyColumn(g), field);
    if (typeof g !== 'string') {
      if (g.as !== undefined) checkColumnName(g.as, `groupBy.${i}.as`);
      if ('tz' in g && !isTimeZone(g.tz)) {
        throw invalid(
          `groupBy.${i}.tz`,
          `"${g.tz}" is not a known IANA time zone (e.g. "America/New_York", "UTC")`,
        );
      }
    }
    const name = groupKeyName(g);
    if (outputs.has(name)) {
      throw invalid(
        typeof g === 'string' ? `groupBy.${i}` : `groupBy.${i}.as`,
        typeof g === 'string'
          ? `column "${g}" is grouped twice`
          : `output column "${name}" already exists; give this key a distinct "as"`,
      );
    }
    outputs.add(name);
  });
  const metrics: Metric[] = s.metrics.map((m, i) => {
    if ('column' in m && m.column !== undefined) checkColumnName(m.column, `metrics.${i}.column`);
    // The same rule as every other name (a control character in an output name was let through).
    if (m.as !== undefined) checkColumnName(m.as, `metrics.${i}.as`);
    const as = m.as ?? defaultMetricName(m);
    if (outputs.has(as)) {
      throw invalid(
        m.as === undefined ? `metrics.${i}` : `metrics.${i}.as`,
        `output column "${as}" already exists; give this metric a distinct "as"`,
      );
    }
    outputs.add(as);
    const out: { -readonly [K in keyof Metric]: Metric[K] } = { op: m.op, as };
    if ('column' in m && m.column !== undefined) out.column = m.column;
    if (m.op === 'quantile') {
      out.q = m.q;
      out.method = m.method;
    }
    if ((m.op === 'stddev' || m.op === 'variance') && m.population) out.population = true;
    if (m.op === 'ratio') {
      out.of = m.of;
      out.to = m.to;
    }
    if ('filter' in m && m.filter !== undefined) {
      checkLeaves(m.filter, `metrics.${i}.filter`);
      out.filter = m.filter;
    }
    return out;
  });
  // A ratio divides two other metrics that are not ratios themselves.
  const byName = new Map(metrics.map((m) => [m.as, m]));
  metrics.forEach((m, i) => {
    if (m.op !== 'ratio') return;
    for (const side of ['of', 'to'] as const) {
      const target = byName.get(m[side]!);
      if (target === undefined || target === m || target.op === 'ratio') {
        throw invalid(
          `metrics.${i}.${side}`,
          `"${m[side]}" is not the output name of another metric (ratios divide metrics that are not ratios)`,
        );
      }
    }
  });
  s.orderBy.forEach((o, i) => {
    if (!outputs.has(o.column)) {
      throw invalid(
        `orderBy.${i}.column`,
        `"${o.column}" is not an output column (groupBy columns and metric names)`,
      );
    }
  });
  s.having.forEach((f, i) => {
    checkLeaves(f, `having.${i}`, (leaf, field) => {
      if (!outputs.has(leaf.column)) {
        throw invalid(
          `${field}.column`,
          `"${leaf.column}" is not an output column (groupBy columns and metric names)`,
        );
      }
    });
  });
  if (s.top !== undefined) {
    const keys = new Set(groupBy.map(groupKeyName));
    const seen = new Set<string>();
    s.top.per.forEach((name, i) => {
      if (!keys.has(name)) {
        throw invalid(
          `top.per.${i}`,
          `"${name}" is not a group key's output name (top partitions by group keys)`,
        );
      }
      if (seen.has(name)) throw invalid(`top.per.${i}`, `"${name}" is named twice`);
      seen.add(name);
    });
  }
  if (s.limit !== undefined && s.limit > limits.maxResultRows) {
    throw invalid('limit', `must be at most ${limits.maxResultRows} (QUARRY_MAX_RESULT_ROWS)`);
  }

  const spec = {
    filters: s.filters,
    ...(s.having.length === 0 ? {} : { having: s.having }),
    groupBy,
    metrics,
    orderBy: s.orderBy,
    ...(s.limit === undefined ? {} : { limit: s.limit }),
    ...(s.top === undefined ? {} : { top: s.top }),
    ...(s.offset === undefined || s.offset === 0 ? {} : { offset: s.offset }),
    engine: s.engine,
  };
  const priority = s.priority ?? DEFAULT_PRIORITY;
  if ('records' in s.dataset) {
    return {
      spec,
      priority,
      dataset: { kind: 'inline', data: prepareInlineRecords(records, limits.maxInlineBytes) },
    };
  }
  if ('url' in s.dataset) {
    const { key } = parseObjectUrl(s.dataset.url, 'dataset.url');
    const format = datasetFormat(key, s.dataset.format);
    return { spec, priority, dataset: { kind: 'object', url: s.dataset.url, format } };
  }
  return {
    spec,
    priority,
    dataset: {
      kind: 'file',
      path: s.dataset.path,
      ...(s.dataset.format ? { format: s.dataset.format } : {}),
      ...(s.dataset.fingerprint ? { fingerprint: s.dataset.fingerprint } : {}),
    },
  };
}

/** The fully addressed request: its normalized spec, result key and job id. */
export interface AddressedAggregation {
  readonly spec: AggregationSpec;
  readonly resultKey: string;
  readonly jobId: string;
  /** Canonical records JSON for inline datasets. */
  readonly inlineJson?: string;
  /** The request's priority class: identical requests share one job whatever theirs. */
  readonly priority: PriorityClass;
}

/**
 * resultKey = SHA-256 (first 128 bits) of a version tag, the tenant (if any), the canonical
 * normalized spec and the dataset fingerprint (inline: the canonical records; file: path, format, size and mtime).
 */
export function addressAggregation(
  parsed: ParsedAggregation,
  file?: FileFingerprint | ObjectFingerprint,
  tenant?: string,
): AddressedAggregation {
  let dataset: DatasetRef;
  const hash = new ContentHash().update('quarry/aggregate/v1\n');
  // Job ids derive from result keys and BullMQ's queue is shared: tenants must never share one.
  if (tenant !== undefined) hash.update(`tenant ${tenant}\n`);
  if (parsed.dataset.kind === 'inline') {
    const { rows, columns, json } = parsed.dataset.data;
    dataset = { kind: 'inline', rows, columns };
    const spec: AggregationSpec = { ...parsed.spec, dataset };
    hash
      .update(canonicalJson({ ...spec, dataset: { kind: 'inline' } }))
      .update('\n')
      .update(json);
    const resultKey = hash.digest();
    return {
      spec,
      resultKey,
      jobId: aggregationJobId(resultKey),
      inlineJson: json,
      priority: parsed.priority,
    };
  }
  if (file === undefined) throw new Error('addressAggregation: a file dataset needs its fingerprint');
  if ('url' in file) {
    // An object: its URL, format, ETag, size and version id are in the hashed spec.
    const spec: AggregationSpec = { ...parsed.spec, dataset: { kind: 'object', ...file } };
    const resultKey = hash.update(canonicalJson(spec)).digest();
    return { spec, resultKey, jobId: aggregationJobId(resultKey), priority: parsed.priority };
  }
  dataset = { kind: 'file', ...file };
  const spec: AggregationSpec = { ...parsed.spec, dataset };
  // With a content hash, touching the file (a new mtime, same bytes) keeps the key.
  const { mtimeMs: _ignored, ...byContent } = dataset;
  hash.update(canonicalJson(file.contentHash === undefined ? spec : { ...spec, dataset: byContent }));
  const resultKey = hash.digest();
  return { spec, resultKey, jobId: aggregationJobId(resultKey), priority: parsed.priority };
}

/** A zod error as QUARRY_ERR_VALIDATION: one sentence naming the field (shared/zod-messages.ts). */
export function validationError(error: z.ZodError): QuarryError {
  const { message, field } = describeZodError(error);
  return new QuarryError('QUARRY_ERR_VALIDATION', message, { field });
}

/** Checks every condition of a tree: a usable column name, bounds of one type. */
function checkLeaves(filter: Filter, field: string, more?: (leaf: FilterLeaf, field: string) => void): void {
  forEachLeaf(filter, field, (leaf, at) => {
    checkColumnName(leaf.column, `${at}.column`);
    if (leaf.op === 'between' && typeof leaf.value[0] !== typeof leaf.value[1]) {
      throw invalid(`${at}.value`, 'both bounds of between must have the same type');
    }
    more?.(leaf, at);
  });
}

function invalid(field: string, message: string): QuarryError {
  return new QuarryError('QUARRY_ERR_VALIDATION', `${field}: ${message}`, { field });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
