// Filter trees: a filter is a condition on one column (an op of the registry in
// shared/aggregation-ops.ts), or `{ "and": [...] }`, `{ "or": [...] }`, `{ "not": <filter> }`,
// nested at most MAX_FILTER_DEPTH deep. The same grammar serves `filters` (over source columns),
// `having` (over output columns) and a metric's own `filter`.
import { z } from 'zod';
import {
  type ComparisonOp,
  FILTER_OP_NAMES,
  FILTER_OPS,
  type FilterOp,
  type FilterValueShape,
  type TextOp,
} from './aggregation-ops.ts';

/** How deep `and`, `or` and `not` may nest inside one another (a condition at the bottom). */
export const MAX_FILTER_DEPTH = 6;
/** The most branches one `and` or `or` may have. */
export const MAX_FILTER_BRANCHES = 64;
/** The most conditions one tree may hold in all (depth and branches alone allow 64^5). */
export const MAX_FILTER_CONDITIONS = 256;

// Strings that reach an engine must be encodable as UTF-8 (no lone surrogates).
const wellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();
export const Column = z.string().min(1).max(256).refine(wellFormed, 'must be well-formed Unicode');
const Text = z.string().max(65_536).refine(wellFormed, 'must be well-formed Unicode');
const FilterValue = z.union([Text, z.number().finite(), z.boolean()]);

const FILTER_VALUES: Record<FilterValueShape, Record<string, z.ZodType>> = {
  scalar: { value: FilterValue },
  list: { value: z.array(FilterValue).min(1).max(10_000) },
  pair: { value: z.tuple([FilterValue, FilterValue]) },
  none: {},
  text: { value: Text, ignoreCase: z.boolean().default(false) },
};

/** One schema per filter op of the registry. */
function leafSchema(op: FilterOp) {
  return z.strictObject({ column: Column, op: z.literal(op), ...FILTER_VALUES[FILTER_OPS[op].value] });
}

type Value = string | number | boolean;
/** A condition on one column, as parsed. */
export type FilterLeaf =
  | { column: string; op: ComparisonOp; value: Value }
  | { column: string; op: 'in'; value: Value[] }
  | { column: string; op: 'between'; value: [Value, Value] }
  | { column: string; op: 'is_null' }
  | { column: string; op: 'not_null' }
  | { column: string; op: TextOp; value: string; ignoreCase: boolean };
export type Filter = FilterLeaf | { and: Filter[] } | { or: Filter[] } | { not: Filter };

type LeafSchema = ReturnType<typeof leafSchema>;
// Typed as what it parses, with its options kept visible (tests read the ops off the schema).
const Leaf = z.discriminatedUnion(
  'op',
  FILTER_OP_NAMES.map(leafSchema) as [LeafSchema],
) as unknown as z.ZodType<FilterLeaf, unknown> & { readonly options: readonly LeafSchema[] };

const BRANCHES = ['and', 'or', 'not'] as const;

/**
 * Parses a tree node by node, each node by the one form its keys name (`and`, `or`, `not`, else
 * a condition), so an error names the exact field at fault (filters.0.or.1.value) instead of
 * "matches none of its forms"; nesting is checked before going deeper.
 */
function parseNode(
  value: unknown,
  ctx: z.RefinementCtx,
  path: (string | number)[],
  depth: number,
  seen: { conditions: number } = { conditions: 0 },
): Filter {
  const fail = (at: (string | number)[], message: string): Filter => {
    ctx.addIssue({ code: 'custom', message, path: at, input: value });
    return z.NEVER as Filter;
  };
  // Past the bound nothing more is parsed: one issue, at the first condition over it.
  if (seen.conditions > MAX_FILTER_CONDITIONS) return z.NEVER as Filter;
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const branch = BRANCHES.find((key) => Object.hasOwn(value, key));
    if (branch !== undefined) {
      if (depth >= MAX_FILTER_DEPTH) {
        return fail(path, `nests and/or/not deeper than ${MAX_FILTER_DEPTH} levels`);
      }
      const extra = Object.keys(value).find((k) => k !== branch);
      if (extra !== undefined) return fail([...path, extra], `is not a known field beside "${branch}"`);
      const inner = (value as Record<string, unknown>)[branch];
      if (branch === 'not') return { not: parseNode(inner, ctx, [...path, 'not'], depth + 1, seen) };
      if (!Array.isArray(inner) || inner.length === 0 || inner.length > MAX_FILTER_BRANCHES) {
        return fail([...path, branch], `must be a list of 1 to ${MAX_FILTER_BRANCHES} filters`);
      }
      const items = inner.map((v, i) => parseNode(v, ctx, [...path, branch, i], depth + 1, seen));
      return branch === 'and' ? { and: items } : { or: items };
    }
  }
  if (++seen.conditions > MAX_FILTER_CONDITIONS) {
    return fail(path, `is a condition past the ${MAX_FILTER_CONDITIONS} one filter may hold`);
  }
  const parsed = Leaf.safeParse(value, { reportInput: true });
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      ctx.addIssue({
        ...(issue as Parameters<typeof ctx.addIssue>[0] & object),
        path: [...path, ...issue.path],
      });
    }
    return z.NEVER as Filter;
  }
  return parsed.data;
}

/**
 * The JSON Schema of a tree, for the OpenAPI document (a transform has none of its own): a
 * condition, or and/or/not whose branches are filters again (not expanded: JSON Schema needs no
 * recursion to say so).
 */
function treeJsonSchema(): Record<string, unknown> {
  const { $schema: _dialect, ...leaf } = z.toJSONSchema(Leaf, { io: 'input' });
  const branch = { description: `a filter (and/or/not nest at most ${MAX_FILTER_DEPTH} deep)` };
  const list = { type: 'array', items: branch, minItems: 1, maxItems: MAX_FILTER_BRANCHES };
  const only = (key: string, value: unknown) => ({
    type: 'object',
    properties: { [key]: value },
    required: [key],
    additionalProperties: false,
  });
  return { anyOf: [leaf, only('and', list), only('or', list), only('not', branch)] };
}

/** A filter tree. */
export const FilterTree = z
  .unknown()
  .transform((value, ctx) => parseNode(value, ctx, [], 0))
  .meta(treeJsonSchema()) as unknown as z.ZodType<Filter, unknown> & { readonly leaf: typeof Leaf };
Object.assign(FilterTree, { leaf: Leaf });

/** Calls `visit` on every condition of a tree with its field path (`filters.0.or.1`). */
export function forEachLeaf(
  filter: Filter,
  field: string,
  visit: (leaf: FilterLeaf, field: string) => void,
): void {
  if ('and' in filter || 'or' in filter) {
    const [kind, items] = 'and' in filter ? ['and', filter.and] : ['or', filter.or];
    items.forEach((f, i) => {
      forEachLeaf(f, `${field}.${kind}.${i}`, visit);
    });
  } else if ('not' in filter) forEachLeaf(filter.not, `${field}.not`, visit);
  else visit(filter, field);
}
