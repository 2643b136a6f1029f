// The Arrow IPC stream of a stored envelope built from its bytes, without JSON.parse: one pass
// finds every row's values (envelope-scan.ts RowScanner), then each column goes straight into
// the typed arrays Arrow holds (Float64Array, BigInt64Array, Int32Array, offsets and one UTF-8
// buffer, validity bitmaps), framed by apache-arrow's makeData and tableToIPC without its
// per-value builders. The columns are those result-formats.ts's toArrow makes from the parsed
// envelope, byte for byte (docs/FORMATS.md: Arrow); `undefined` when the bytes are not in the
// worker's compact form, and the caller parses them instead.
import { Field, makeData, RecordBatch, Schema, Struct, Table, tableToIPC } from 'apache-arrow';
import type { ResultColumn, ResultEnvelope } from './aggregation.ts';
import { ColumnBuilder, type ColumnData, KINDS } from './arrow-columns.ts';
import { eachRow, layout, nextTurn, RowScanner, SLICE_ROWS } from './envelope-scan.ts';
import { Malformed } from './json-text.ts';

export type { ColumnData };

type EnvelopeMeta = Pick<ResultEnvelope, 'resultKey' | 'engine' | 'computedAt' | 'durationMs'>;

/** The IPC stream of one record batch of these columns, with Quarry's field and schema metadata. */
export function arrowStream(
  columns: readonly ResultColumn[],
  built: readonly ColumnData[],
  meta: EnvelopeMeta,
  length: number,
): Uint8Array {
  const fields = columns.map(
    (c, i) => new Field(c.name, built[i]!.type, true, new Map([['quarry.type', c.type]])),
  );
  const schema = new Schema(
    fields,
    new Map([
      ['quarry.resultKey', meta.resultKey],
      ['quarry.engine', meta.engine],
      ['quarry.computedAt', meta.computedAt],
      ['quarry.durationMs', String(meta.durationMs)],
    ]),
  );
  const struct = makeData({
    type: new Struct(fields),
    length,
    nullCount: 0,
    children: built.map((b) => b.data),
  });
  return tableToIPC(new Table(schema, [new RecordBatch(schema, struct)]), 'stream');
}

const ROW_COUNT = Buffer.from('"rowCount":');

/** The envelope's rowCount, read from its tail, as a first capacity (the rows themselves decide). */
function capacityHint(bytes: Buffer): number {
  const at = bytes.lastIndexOf(ROW_COUNT);
  if (at < 0) return 1024;
  let n = 0;
  for (let i = at + ROW_COUNT.length; i < bytes.length && bytes[i]! >= 0x30 && bytes[i]! <= 0x39; i++) {
    n = n * 10 + bytes[i]! - 0x30;
  }
  return Math.max(16, Math.min(n, bytes.length >> 2));
}

export async function arrowFromStored(bytes: Buffer): Promise<Uint8Array | undefined> {
  try {
    if (bytes.length >= 2 ** 31) return undefined; // token offsets are Int32
    const { columns, rowsStart } = layout(bytes);
    if (!columns.every((c) => Object.hasOwn(KINDS, c.type))) return undefined;
    const width = columns.length;
    const scanner = new RowScanner(
      bytes,
      columns.map((c) => c.name),
    );
    const kinds = Uint8Array.from(columns, (c) => KINDS[c.type]!);
    const builder = new ColumnBuilder(bytes, scanner, kinds, capacityHint(bytes));
    let rows = 0;
    const rowsEnd = await eachRow(bytes, rowsStart, (start) => builder.row(start, rows++));
    // The envelope without its rows: what is left of it, parsed (and so checked) as JSON.
    const meta = JSON.parse(
      `${bytes.toString('utf8', 0, rowsStart)}${bytes.toString('utf8', rowsEnd)}`,
    ) as EnvelopeMeta;
    const built: ColumnData[] = [];
    for (let c = 0; c < width; c++) {
      if (c > 0 && rows > SLICE_ROWS) await nextTurn();
      built.push(builder.column(c, rows));
    }
    return arrowStream(columns as readonly ResultColumn[], built, meta, rows);
  } catch (error) {
    if (error instanceof Malformed) return undefined;
    throw error;
  }
}
