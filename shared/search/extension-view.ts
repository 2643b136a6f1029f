// Reads an index's extension (extension.ts) as typed-array views onto the loaded bytes, once per
// loaded index; null for a version 1 index or one built without the extension.
import { QuarryError } from '../errors.ts';
import { type ColumnKind, dataStart, type SearchIndex } from './format.ts';

export interface Column {
  readonly field: string;
  readonly kind: ColumnKind;
  readonly filterable: boolean;
  readonly sortable: boolean;
  /** Distinct values, sorted (code order = value order). */
  readonly values: readonly (string | number | boolean)[];
  readonly offsets: Uint32Array;
  readonly codes: Uint32Array;
}

export interface Extension {
  readonly docLengths: Uint32Array;
  readonly positionOffsets: Uint32Array;
  readonly positions: Uint32Array;
  readonly columns: ReadonlyMap<string, Column>;
  readonly typoTerms: Uint32Array | null;
  readonly typoKeys: Uint32Array | null;
}

const views = new WeakMap<SearchIndex, Extension | null>();

function damaged(message: string): QuarryError {
  return new QuarryError('QUARRY_ERR_VALIDATION', `Not a loadable Quarry search index: ${message}`, {
    field: 'index.ext',
  });
}

export function extensionOf(index: SearchIndex): Extension | null {
  const known = views.get(index);
  if (known !== undefined) return known;
  const ext = index.header.ext;
  const view = ext === undefined ? null : read(index);
  views.set(index, view);
  return view;
}

function read(index: SearchIndex): Extension {
  const ext = index.header.ext!;
  const { bytes } = index;
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 16).getUint32(8, true);
  const base = bytes.byteOffset + dataStart(headerLength);
  const end = bytes.byteOffset + bytes.byteLength;
  const section = (name: string): [number, number] => {
    const entry = ext.sections[name];
    if (entry === undefined) throw damaged(`missing section ${name}`);
    const [offset, length] = entry;
    if (offset % 8 !== 0 || base + offset + length > end) throw damaged(`section ${name} out of bounds`);
    return [base + offset, length];
  };
  const u32 = (name: string) => {
    const [o, n] = section(name);
    if (n % 4 !== 0) throw damaged(`section ${name} is not whole u32s`);
    return new Uint32Array(bytes.buffer, o, n / 4);
  };
  const { docCount: N, postingCount: P } = index.header;
  const docLengths = u32('docLengths');
  const positionOffsets = u32('positionOffsets');
  const positions = u32('positions');
  if (
    docLengths.length !== N ||
    positionOffsets.length !== P + 1 ||
    positionOffsets[P] !== positions.length ||
    positions.length !== ext.positionCount
  ) {
    throw damaged('extension sizes disagree with the header');
  }
  const columns = new Map<string, Column>();
  ext.columns.forEach((c, i) => {
    const [o, n] = section(`col.${i}.values`);
    const values = JSON.parse(
      new TextDecoder().decode(new Uint8Array(bytes.buffer, o, n)),
    ) as Column['values'];
    const offsets = u32(`col.${i}.offsets`);
    const codes = u32(`col.${i}.codes`);
    if (values.length !== c.values || offsets.length !== N + 1 || offsets[N] !== codes.length)
      throw damaged(`column ${c.field} disagrees with the header`);
    columns.set(c.field, {
      field: c.field,
      kind: c.kind,
      filterable: ext.filterable.includes(c.field),
      sortable: ext.sortable.includes(c.field),
      values,
      offsets,
      codes,
    });
  });
  const typoTerms = ext.typos ? u32('typoTerms') : null;
  const typoKeys = ext.typos ? u32('typoKeys') : null;
  if (
    typoTerms !== null &&
    (typoTerms.length !== index.header.termCount || typoKeys!.length !== typoTerms.length)
  )
    throw damaged('typo keys disagree with the header');
  return { docLengths, positionOffsets, positions, columns, typoTerms, typoKeys };
}
