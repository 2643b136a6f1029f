// The aggregation job's whole contract: the spec a client sends, its normalized form, output
// column names, the result key, the job payload and the result envelope.
import { z } from 'zod';
import {
  type ColumnInfo,
  checkColumnName,
  FILE_FORMATS,
  type FileFingerprint,
  type FingerprintMode,
  type InlineDataset,
  prepareInlineRecords,
} from './datasets.ts';
import { QuarryError } from './errors.ts';
import { DEFAULT_PRIORITY, type PriorityClass, PrioritySchema } from './fairness.ts';
import { ContentHash, canonicalJson } from './hashing.ts';
import { aggregationJobId } from './keys.ts';
import { describeZodError, parseWith } from './zod-messages.ts';

export const ENGINES = ['auto', 'duckdb', 'polars'] as const;
export type EngineChoice = (typeof ENGINES)[number];
export type EngineName = Exclude<EngineChoice, 'auto'>;

export const QUANTILE_METHODS = ['linear', 'nearest_rank'] as const;
export type QuantileMethod = (typeof QUANTILE_METHODS)[number];

// Strings that reach an engine must be encodable as UTF-8 (no lone surrogates).
const wellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();
const Column = z.string().min(1).max(256).refine(wellFormed, 'must be well-formed Unicode');
const FilterValue = z.union([
  z.string().max(65_536).refine(wellFormed, 'must be well-formed Unicode'),
  z.number().finite(),
  z.boolean(),
]);

const Filter = z.discriminatedUnion('op', [
  z.strictObject({ column: Column, op: z.enum(['eq', 'ne', 'gt', 'gte', 'lt', 'lte']), value: FilterValue }),
  z.strictObject({ column: Column, op: z.literal('in'), value: z.array(FilterValue).min(1).max(10_000) }),
  z.strictObject({ column: Column, op: z.literal('between'), value: z.tuple([FilterValue, FilterValue]) }),
  z.strictObject({ column: Column, op: z.enum(['is_null', 'not_null']) }),
]);

const As = Column.optional();
const Metric = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('count'), column: Column.optional(), as: As }),
  z.strictObject({ op: z.enum(['sum', 'avg', 'min', 'max', 'count_distinct']), column: Column, as: As }),
  z.strictObject({
    op: z.literal('quantile'),
    column: Column,
    q: z.number().min(0).max(1),
    method: z.enum(QUANTILE_METHODS).default('linear'),
    as: As,
  }),
]);

const Dataset = z.union([
  z.strictObject({ records: z.array(z.unknown()) }),
  z.strictObject({
    path: z.string().min(1).max(1024),
    format: z.enum(FILE_FORMATS).optional(),
    fingerprint: z.enum(['stat', 'content']).optional(),
  }),
]);

export const AggregationSpecSchema = z.strictObject({
  dataset: Dataset,
  filters: z.array(Filter).max(64).default([]),
  groupBy: z.array(Column).max(32).default([]),
  metrics: z.array(Metric).min(1).max(64),
  orderBy: z
    .array(z.strictObject({ column: Column, direction: z.enum(['asc', 'desc']).default('asc') }))
    .max(32)
    .default([]),
  limit: z.number().int().min(1).optional(),
  engine: z.enum(ENGINES).default('auto'),
  /** How soon, within the tenant (shared/fairness.ts); not part of the spec's address. */
  priority: PrioritySchema.optional(),
});

/** The spec as a client writes it. */
export type AggregationSpecInput = z.input<typeof AggregationSpecSchema>;
export type Filter = z.output<typeof Filter>;
type ParsedMetric = z.output<typeof Metric>;

export type MetricOp = ParsedMetric['op'];
export interface Metric {
  readonly op: MetricOp;
  /** Absent only for `count` (rows); `count` with a column counts its non-null values. */
  readonly column?: string;
  readonly q?: number;
  readonly method?: QuantileMethod;
  /** Output column name: the given `as`, or the documented default. */
  readonly as: string;
}

export type DatasetRef =
  | { readonly kind: 'inline'; readonly rows: number; readonly columns: readonly ColumnInfo[] }
  | ({ readonly kind: 'file' } & FileFingerprint);

/** The normalized spec: defaults filled, names resolved; what workers compute and what is hashed. */
export interface AggregationSpec {
  readonly dataset: DatasetRef;
  readonly filters: readonly Filter[];
  readonly groupBy: readonly string[];
  readonly metrics: readonly Metric[];
  readonly orderBy: readonly { readonly column: string; readonly direction: 'asc' | 'desc' }[];
  readonly limit?: number;
  readonly engine: EngineChoice;
}

/** What the BullMQ job carries. Inline records travel beside it, under keys.inlineData(jobId). */
export interface AggregationJobData {
  readonly v: 1;
  readonly resultKey: string;
  readonly spec: AggregationSpec;
  /** The tenant that owns the job (its keys live under the tenant's prefix). */
  readonly tenant?: string;
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
    ]),
    filters: z.array(Filter).max(64),
    groupBy: z.array(Column).max(32),
    metrics: z
      .array(
        z.strictObject({
          op: z.enum(['count', 'sum', 'avg', 'min', 'max', 'count_distinct', 'quantile']),
          column: Column.optional(),
          q: z.number().min(0).max(1).optional(),
          method: z.enum(QUANTILE_METHODS).optional(),
          as: Column,
        }),
      )
      .min(1)
      .max(64),
    orderBy: z.array(z.strictObject({ column: Column, direction: z.enum(['asc', 'desc']) })).max(32),
    limit: z.number().int().min(1).optional(),
    engine: z.enum(ENGINES),
  }),
});

/** Checks a job payload; throws QuarryError QUARRY_ERR_VALIDATION (unrecoverable) when malformed. */
export function checkAggregationJobData(data: unknown): AggregationJobData {
  const payload = checkJobPayload(AggregationJobDataSchema, data);
  for (const m of payload.spec.metrics) {
    if (m.op !== 'count' && m.column === undefined) {
      throw new QuarryError('QUARRY_ERR_VALIDATION', `malformed job payload: ${m.op} without a column`, {
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
      };
}

/**
 * The default output name of a metric: `count` (rows), `count_<col>`, `sum_<col>`, `avg_<col>`,
 * `min_<col>`, `max_<col>`, `count_distinct_<col>`, and `p<100q>_<col>` for quantiles with the
 * decimal point written `_` (q 0.95 → `p95_delay`, q 0.999 → `p99_9_delay`).
 */
export function defaultMetricName(metric: { op: MetricOp; column?: string; q?: number }): string {
  if (metric.op === 'count' && metric.column === undefined) return 'count';
  if (metric.op === 'quantile') {
    const pct = String(Math.round(metric.q! * 100 * 1e6) / 1e6).replace('.', '_');
    return `p${pct}_${metric.column}`;
  }
  return `${metric.op}_${metric.column}`;
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
    checkColumnName(f.column, `filters.${i}.column`);
    if (f.op === 'between' && typeof f.value[0] !== typeof f.value[1]) {
      throw invalid(`filters.${i}.value`, 'both bounds of between must have the same type');
    }
  });
  const groupSeen = new Set<string>();
  s.groupBy.forEach((g, i) => {
    checkColumnName(g, `groupBy.${i}`);
    if (groupSeen.has(g)) throw invalid(`groupBy.${i}`, `column "${g}" is grouped twice`);
    groupSeen.add(g);
  });
  const outputs = new Set<string>(s.groupBy);
  const metrics: Metric[] = s.metrics.map((m, i) => {
    if (m.column !== undefined) checkColumnName(m.column, `metrics.${i}.column`);
    const as = m.as ?? defaultMetricName(m);
    if (outputs.has(as)) {
      throw invalid(
        m.as === undefined ? `metrics.${i}` : `metrics.${i}.as`,
        `output column "${as}" already exists; give this metric a distinct "as"`,
      );
    }
    outputs.add(as);
    const out: { -readonly [K in keyof Metric]: Metric[K] } = { op: m.op, as };
    if (m.column !== undefined) out.column = m.column;
    if (m.op === 'quantile') {
      out.q = m.q;
      out.method = m.method;
    }
    return out;
  });
  s.orderBy.forEach((o, i) => {
    if (!outputs.has(o.column)) {
      throw invalid(
        `orderBy.${i}.column`,
        `"${o.column}" is not an output column (groupBy columns and metric names)`,
      );
    }
  });
  if (s.limit !== undefined && s.limit > limits.maxResultRows) {
    throw invalid('limit', `must be at most ${limits.maxResultRows} (QUARRY_MAX_RESULT_ROWS)`);
  }

  const spec = {
    filters: s.filters,
    groupBy: s.groupBy,
    metrics,
    orderBy: s.orderBy,
    ...(s.limit === undefined ? {} : { limit: s.limit }),
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
  file?: FileFingerprint,
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

function invalid(field: string, message: string): QuarryError {
  return new QuarryError('QUARRY_ERR_VALIDATION', `${field}: ${message}`, { field });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

const NUMERIC = new Set(['integer', 'float', 'null']);

/** The result type of each output column, given the dataset's column types. */
export function outputColumns(
  spec: Omit<AggregationSpec, 'dataset'>,
  columns: readonly ColumnInfo[],
): ResultColumn[] {
  const types = new Map(columns.map((c) => [c.name, c.type]));
  const out: ResultColumn[] = spec.groupBy.map((name) => ({ name, type: types.get(name) ?? 'null' }));
  for (const m of spec.metrics) {
    const t = m.column === undefined ? 'integer' : (types.get(m.column) ?? 'null');
    let type: ResultColumn['type'];
    switch (m.op) {
      case 'count':
      case 'count_distinct':
        type = 'integer';
        break;
      case 'avg':
        type = 'float';
        break;
      case 'sum':
        type = t === 'integer' ? 'integer' : 'float';
        break;
      case 'quantile':
        type = m.method === 'linear' ? 'float' : t === 'integer' ? 'integer' : 'float';
        break;
      default:
        type = t;
    }
    out.push({ name: m.as, type });
  }
  return out;
}

/**
 * Checks every column the spec names exists in the dataset and fits its use: numeric metrics on
 * numeric columns, filter values of the column's type. Throws QuarryError naming the field.
 */
export function checkSpecColumns(
  spec: Omit<AggregationSpec, 'dataset'>,
  columns: readonly ColumnInfo[],
): void {
  const types = new Map(columns.map((c) => [c.name, c.type]));
  const need = (name: string, field: string) => {
    const t = types.get(name);
    if (t === undefined) {
      throw new QuarryError(
        'QUARRY_ERR_SPEC_UNKNOWN_COLUMN',
        `${field}: the dataset has no column "${name}"`,
        {
          field,
        },
      );
    }
    return t;
  };
  spec.filters.forEach((f, i) => {
    const t = need(f.column, `filters.${i}.column`);
    if (!('value' in f) || t === 'null') return;
    const values = Array.isArray(f.value) ? f.value : [f.value];
    for (const v of values) {
      const ok =
        typeof v === 'number'
          ? NUMERIC.has(t)
          : typeof v === 'boolean'
            ? t === 'boolean'
            : t === 'string' || t === 'date' || t === 'timestamp';
      if (!ok) {
        throw new QuarryError(
          'QUARRY_ERR_SPEC_TYPE',
          `filters.${i}.value: a ${typeof v} cannot be compared with column "${f.column}" of type ${t}`,
          { field: `filters.${i}.value` },
        );
      }
    }
  });
  spec.groupBy.forEach((g, i) => {
    need(g, `groupBy.${i}`);
  });
  spec.metrics.forEach((m, i) => {
    if (m.column === undefined) return;
    const t = need(m.column, `metrics.${i}.column`);
    if ((m.op === 'sum' || m.op === 'avg' || m.op === 'quantile') && !NUMERIC.has(t)) {
      throw new QuarryError(
        'QUARRY_ERR_SPEC_TYPE',
        `metrics.${i}.column: ${m.op} needs a numeric column; "${m.column}" is ${t}`,
        { field: `metrics.${i}.column` },
      );
    }
  });
}
