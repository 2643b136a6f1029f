// The one step after an engine ran a plan: it caps the row count, converts values to plain JSON
// (bigints to numbers, dates and timestamps to their documented strings, undefined to null),
// refuses numbers JSON cannot write (an infinity or NaN would be written as null, a silent wrong
// answer: a sum past ±1.8e308 read as "no values") and names the columns, which engines return by position. Rows are built a slice at a time with a
// turn of the event loop between slices, so a large result never blocks lock renewal for long.
import { QuarryError } from '../../shared/errors.ts';
import type { AggregationPlan } from '../../shared/plan.ts';

/** Rows converted between two turns of the event loop. */
const SLICE_ROWS = 2_048;

/**
 * `columns[k][i]` is output k of row i, as the engine returned it. Throws
 * QUARRY_ERR_RESULT_TOO_LARGE when there are more than plan.maxRows rows, and
 * QUARRY_ERR_RESULT_OVERFLOW (notFinite) for an infinite or NaN number.
 */
export async function shapeRows(
  plan: AggregationPlan,
  columns: readonly (readonly unknown[])[],
  height: number,
): Promise<Record<string, unknown>[]> {
  if (height > plan.maxRows) {
    throw new QuarryError(
      'QUARRY_ERR_RESULT_TOO_LARGE',
      `the result has more than ${plan.maxRows} rows (QUARRY_MAX_RESULT_ROWS); add a limit or group more coarsely`,
    );
  }
  const outputs = plan.outputs;
  // Bucket starts leave as RFC 3339 with their zone's offset; other timestamps as UTC.
  const zones = plan.groups.map((g) => (g.kind === 'bucket' ? g.tz : undefined));
  const rows: Record<string, unknown>[] = new Array(height);
  for (let start = 0; start < height; start += SLICE_ROWS) {
    if (start > 0) await new Promise((resolve) => setImmediate(resolve));
    const end = Math.min(height, start + SLICE_ROWS);
    for (let i = start; i < end; i++) rows[i] = {};
    for (let k = 0; k < outputs.length; k++) {
      const { name, type } = outputs[k]!;
      const values = columns[k]!;
      const zone = zones[k];
      for (let i = start; i < end; i++) {
        const v = zone === undefined ? jsonValue(values[i], type) : zonedValue(values[i], zone);
        if (typeof v === 'number' && !Number.isFinite(v)) throw notFinite(name, v);
        // Assigning "__proto__" would set the prototype and lose the value.
        if (name === '__proto__') {
          Object.defineProperty(rows[i]!, name, {
            value: v,
            enumerable: true,
            writable: true,
            configurable: true,
          });
        } else rows[i]![name] = v;
      }
    }
  }
  return rows;
}

/** An instant (a Date, or the ISO string Polars writes) as RFC 3339 in `zone`: 2024-03-10T00:00:00-08:00. */
function zonedValue(v: unknown, zone: string): string | null {
  if (v === null || v === undefined) return null;
  const ms = v instanceof Date ? v.getTime() : Date.parse(String(v));
  return formatInZone(ms, zone);
}

const MS_PER_MINUTE = 60_000;
const formatters = new Map<string, Intl.DateTimeFormat>();

/** `YYYY-MM-DDTHH:MM:SS±HH:MM`: the wall time in the zone and the zone's offset at that instant. */
export function formatInZone(ms: number, zone: string): string {
  let format = formatters.get(zone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(zone, format);
  }
  const part: Record<string, string> = {};
  for (const p of format.formatToParts(new Date(ms))) part[p.type] = p.value;
  const wall = Date.UTC(
    Number(part.year),
    Number(part.month) - 1,
    Number(part.day),
    Number(part.hour),
    Number(part.minute),
    Number(part.second),
  );
  const offset = Math.round((wall - Math.floor(ms / 1000) * 1000) / MS_PER_MINUTE);
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  const hh = String(Math.floor(abs / 60)).padStart(2, '0');
  const mm = String(abs % 60).padStart(2, '0');
  const year = part.year!.padStart(4, '0');
  return `${year}-${part.month}-${part.day}T${part.hour}:${part.minute}:${part.second}${sign}${hh}:${mm}`;
}

function jsonValue(v: unknown, type: string): unknown {
  if (v === undefined) return null;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof Date) return type === 'date' ? v.toISOString().slice(0, 10) : v.toISOString();
  return v;
}

/** The error for a number JSON cannot write, in output `name` (every engine and the reference). */
export function notFinite(name: string, value: number): QuarryError {
  return new QuarryError(
    'QUARRY_ERR_RESULT_OVERFLOW',
    `${JSON.stringify(name)} has a value JSON cannot write (${value}): beyond a double's range (±1.8e308), or an infinity or NaN in the data`,
  );
}
