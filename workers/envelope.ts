// The result envelope as the bytes the API serves. Rows are serialized a slice at a time with a
// turn of the event loop in between: one JSON.stringify of 100,000 rows would block for tens of
// milliseconds, long enough to matter to lock renewal and to other jobs in the process.
import type { ResultEnvelope } from '../shared/aggregation.ts';

const SLICE_ROWS = 5000;

export async function serializeEnvelope(envelope: ResultEnvelope): Promise<string> {
  const { rows, ...meta } = envelope;
  if (rows.length <= SLICE_ROWS) return JSON.stringify(envelope);
  const parts: string[] = [];
  for (let i = 0; i < rows.length; i += SLICE_ROWS) {
    if (i > 0) await new Promise((resolve) => setImmediate(resolve));
    const slice = JSON.stringify(rows.slice(i, i + SLICE_ROWS));
    parts.push(slice.slice(1, -1));
  }
  const head = JSON.stringify({ resultKey: meta.resultKey, columns: meta.columns });
  const tail = JSON.stringify({
    rowCount: meta.rowCount,
    totalRows: meta.totalRows,
    engine: meta.engine,
    computedAt: meta.computedAt,
    durationMs: meta.durationMs,
  });
  return `${head.slice(0, -1)},"rows":[${parts.join(',')}],${tail.slice(1)}`;
}
