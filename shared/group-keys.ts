// Group keys: a column name, a time bucket of a timestamp or date column in a time zone, or a
// numeric bin. What they mean is docs/AGGREGATION.md ("Time buckets and bins"); the plan resolves
// them (shared/plan.ts) and each engine translates them.
import { z } from 'zod';
import { Column } from './filter-tree.ts';

export const BUCKETS = ['minute', 'hour', 'day', 'week', 'month', 'quarter', 'year'] as const;
export type Bucket = (typeof BUCKETS)[number];

/** The zone a bucket is in when it names none. */
export const DEFAULT_TIME_ZONE = 'UTC';

/** A normalized group key: `tz` and `as` filled in. A plain column stays a string (its key is unchanged). */
export type GroupKey =
  | string
  | { readonly column: string; readonly bucket: Bucket; readonly tz: string; readonly as: string }
  | { readonly column: string; readonly bin: number; readonly as: string };

export type GroupKeyInput =
  | string
  | { column: string; bucket: Bucket; tz?: string; as?: string }
  | { column: string; bin: number; as?: string };

const BucketKey = z.strictObject({
  column: Column,
  bucket: z.enum(BUCKETS),
  tz: z.string().min(1).max(64).optional(),
  as: Column.optional(),
});
const BinKey = z.strictObject({
  column: Column,
  bin: z.number().positive().finite(),
  as: Column.optional(),
});

type ParsedKey = string | z.output<typeof BucketKey> | z.output<typeof BinKey>;

/** Parses one key by its shape (a string, an object with `bucket`, else a bin), so errors name the exact field. */
export const GroupKeySchema = z
  .unknown()
  .transform((value, ctx): ParsedKey => {
    const schema =
      typeof value === 'string'
        ? Column
        : value !== null && typeof value === 'object' && 'bucket' in value
          ? BucketKey
          : value !== null && typeof value === 'object' && 'bin' in value
            ? BinKey
            : undefined;
    if (schema === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: 'must be a column name, a { column, bucket } or a { column, bin }',
        input: value,
      });
      return z.NEVER;
    }
    const parsed = schema.safeParse(value, { reportInput: true });
    if (!parsed.success) {
      for (const issue of parsed.error.issues)
        ctx.addIssue(issue as Parameters<typeof ctx.addIssue>[0] & object);
      return z.NEVER;
    }
    return parsed.data;
  })
  .meta({
    anyOf: [
      z.toJSONSchema(Column, { io: 'input' }),
      z.toJSONSchema(BucketKey, { io: 'input' }),
      z.toJSONSchema(BinKey, { io: 'input' }),
    ].map(({ $schema: _dialect, ...schema }) => schema),
  }) as unknown as z.ZodType<ParsedKey, GroupKeyInput>;

/** The output name of a key: the column, or `as`, or `<column>_<bucket>` / `<column>_bin`. */
export function groupKeyName(key: ParsedKey | GroupKey): string {
  if (typeof key === 'string') return key;
  if (key.as !== undefined) return key.as;
  return 'bucket' in key ? `${key.column}_${key.bucket}` : `${key.column}_bin`;
}

export function groupKeyColumn(key: ParsedKey | GroupKey): string {
  return typeof key === 'string' ? key : key.column;
}

/** IANA names as the tz database spells them (the engines' zone lookups are case-sensitive). */
const ZONE_NAME = /^[A-Z][A-Za-z0-9_+-]*(?:\/[A-Z][A-Za-z0-9_+-]*)*$/;
const known = new Map<string, boolean>();

/**
 * Names ICU still resolves but the IANA database dropped (US/Pacific-New and the SystemV zones in
 * 2020b, Canada/East-Saskatchewan in 2017c): Polars' zone table lacks them, so they are refused
 * for every engine rather than computed by two and failing in the third.
 */
const REMOVED_ZONES = /^(?:US\/Pacific-New|Canada\/East-Saskatchewan|SystemV\/.*)$/;

/** An IANA zone name (or link, like Asia/Kolkata) the runtime's tz database knows. */
export function isTimeZone(tz: string): boolean {
  let ok = known.get(tz);
  if (ok === undefined) {
    try {
      ok =
        ZONE_NAME.test(tz) &&
        !REMOVED_ZONES.test(tz) &&
        new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone !== '';
    } catch {
      ok = false;
    }
    if (known.size < 1_000) known.set(tz, ok);
  }
  return ok;
}

/** The normalized key (defaults filled), or the string itself. */
export function normalizeGroupKey(key: ParsedKey): GroupKey {
  if (typeof key === 'string') return key;
  if ('bucket' in key) {
    return { column: key.column, bucket: key.bucket, tz: key.tz ?? DEFAULT_TIME_ZONE, as: groupKeyName(key) };
  }
  return { column: key.column, bin: key.bin, as: groupKeyName(key) };
}
