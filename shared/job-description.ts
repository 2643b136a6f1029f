// What a job computes and over what data, in a line each a person can read: written into the
// job's status record at enqueue (fields `summary` and `dataset`, docs/KEYS.md), so the console's
// job detail and `GET /v1/jobs` can say what a job was after BullMQ dropped its payload. Never
// part of a content address: two requests that hash alike describe alike.
import type { AggregationSpec, Metric } from './aggregation.ts';
import { type Filter, forEachLeaf } from './filter-tree.ts';
import { groupKeyName } from './group-keys.ts';
import type { IndexJobData, IndexSourceRequest } from './indexing.ts';

/** The longest summary or dataset line stored; longer ones end with an ellipsis. */
export const MAX_DESCRIPTION_CHARS = 240;
/** Names listed before "and N more" (group keys, metrics, fields). */
const MAX_LISTED = 6;

export interface JobDescription {
  readonly summary: string;
  readonly dataset: string;
}

function clip(text: string): string {
  return text.length <= MAX_DESCRIPTION_CHARS ? text : `${text.slice(0, MAX_DESCRIPTION_CHARS - 1)}…`;
}

function list(names: readonly string[]): string {
  const shown = names.slice(0, MAX_LISTED).join(', ');
  return names.length > MAX_LISTED ? `${shown} and ${names.length - MAX_LISTED} more` : shown;
}

function conditions(filters: readonly Filter[]): number {
  let n = 0;
  for (const f of filters) forEachLeaf(f, '', () => n++);
  return n;
}

function metricText(m: Metric): string {
  const args = [m.column ?? (m.op === 'ratio' ? `${m.of} / ${m.to}` : '*')];
  if (m.q !== undefined) args.push(`q ${m.q}`);
  const call = `${m.op}(${args.join(', ')})`;
  return m.filter === undefined ? call : `${call} if ${conditions([m.filter])} cond.`;
}

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

export function describeAggregation(spec: AggregationSpec): JobDescription {
  const parts = [
    spec.groupBy.length === 0 ? 'all rows' : `by ${list(spec.groupBy.map(groupKeyName))}`,
    list(spec.metrics.map(metricText)),
  ];
  if (spec.filters.length > 0) parts.push(`where ${plural(conditions(spec.filters), 'condition')}`);
  if (spec.having !== undefined) parts.push(`having ${plural(conditions(spec.having), 'condition')}`);
  if (spec.orderBy.length > 0) {
    parts.push(`order by ${list(spec.orderBy.map((o) => `${o.column} ${o.direction}`))}`);
  }
  if (spec.top !== undefined) parts.push(`top ${spec.top.limit} per ${list(spec.top.per)}`);
  if (spec.limit !== undefined) parts.push(`limit ${spec.limit}`);
  if (spec.offset !== undefined) parts.push(`offset ${spec.offset}`);
  if (spec.engine !== 'auto') parts.push(`on ${spec.engine}`);
  const d = spec.dataset;
  const dataset =
    d.kind === 'inline'
      ? `inline: ${plural(d.rows, 'row')}, ${plural(d.columns.length, 'column')}`
      : `${d.kind === 'object' ? d.url : d.path} (${d.format}, ${plural(d.size, 'byte')})`;
  return { summary: clip(parts.join(' · ')), dataset: clip(dataset) };
}

export function describeIndex(
  job: Omit<IndexJobData, 'source'> & { readonly source: IndexSourceRequest },
): JobDescription {
  const parts = [`index ${list(job.fields)}`, `id ${job.idField}`];
  if (job.store.length > 0) parts.push(`store ${list(job.store)}`);
  const boosted = Object.entries(job.boosts ?? {});
  if (boosted.length > 0) parts.push(`boost ${list(boosted.map(([f, b]) => `${f} ×${b}`))}`);
  const s = job.source;
  const dataset =
    s.kind === 'inline'
      ? `inline: ${plural(s.documents, 'document')}`
      : s.kind === 'update'
        ? s.ids > 0
          ? `update: delete ${plural(s.ids, 'id')}`
          : `update: add or replace ${plural(s.documents, 'document')}`
        : `${s.kind === 'object' ? s.url : s.path} (${s.format})`;
  return { summary: clip(parts.join(' · ')), dataset: clip(dataset) };
}
