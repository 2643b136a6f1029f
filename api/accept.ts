// Which format a result route answers in: `?format=` when given (json, csv, ndjson, arrow; any
// other value is a 400 naming `format`), else the Accept header by RFC 9110 §12.5.1: each format
// takes the q of the most specific media range that matches it, the highest q wins, then the
// more specific range, then the range listed first, then json before the others. No Accept (or
// an empty one) is json. A header that admits none of the formats is a 406 naming `accept`.
// The parser splits on `,` and `;` and reads each piece against fixed patterns, in time linear
// in the header; more than MAX_ACCEPT_RANGES ranges is a 400 naming `accept`.
import { QuarryError } from '../shared/errors.ts';
import {
  FORMAT_CONTENT_TYPES,
  isResultFormat,
  RESULT_FORMATS,
  type ResultFormat,
} from '../shared/result-formats.ts';

/** Browsers send fewer than ten; a header of thousands of ranges is not a client's preference. */
export const MAX_ACCEPT_RANGES = 64;

/** The media types each format answers to (lowercase), besides the wildcards. */
const MEDIA_TYPES: Readonly<Record<ResultFormat, readonly string[]>> = {
  json: ['application/json'],
  csv: ['text/csv'],
  ndjson: ['application/x-ndjson', 'application/ndjson', 'application/jsonl'],
  arrow: ['application/vnd.apache.arrow.stream'],
};

const TOKEN = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

interface MediaRange {
  readonly type: string;
  readonly subtype: string;
  readonly q: number;
  readonly position: number;
}

// How closely a range names a media type: 3 exactly, 2 by its type's wildcard, 1 by the full
// wildcard, 0 not at all.
function specificity(range: MediaRange, mediaType: string): number {
  if (range.type === '*' && range.subtype === '*') return 1;
  const [type, subtype] = mediaType.split('/') as [string, string];
  if (range.type !== type) return 0;
  if (range.subtype === '*') return 2;
  return range.subtype === subtype ? 3 : 0;
}

function parseRanges(header: string): MediaRange[] {
  const pieces = header.split(',');
  if (pieces.length > MAX_ACCEPT_RANGES) {
    throw new QuarryError(
      'QUARRY_ERR_VALIDATION',
      `accept: at most ${MAX_ACCEPT_RANGES} media ranges (got ${pieces.length})`,
      { field: 'accept' },
    );
  }
  const ranges: MediaRange[] = [];
  pieces.forEach((piece, position) => {
    const [media = '', ...params] = piece.split(';');
    const slash = media.indexOf('/');
    const type = media.slice(0, slash).trim().toLowerCase();
    const subtype = media
      .slice(slash + 1)
      .trim()
      .toLowerCase();
    // A malformed range (no slash, odd characters, `*/json`) admits nothing; the rest still count.
    if (slash < 0 || !TOKEN.test(type) || !TOKEN.test(subtype) || (type === '*' && subtype !== '*')) return;
    let q = 1;
    for (const param of params) {
      const eq = param.indexOf('=');
      if (param.slice(0, eq).trim().toLowerCase() !== 'q') continue;
      const value = param.slice(eq + 1).trim();
      if (!QVALUE.test(value)) return; // a q that is not a qvalue: the range is malformed
      q = Number(value);
      break;
    }
    ranges.push({ type, subtype, q, position });
  });
  return ranges;
}

interface Candidate {
  readonly format: ResultFormat;
  readonly q: number;
  readonly specificity: number;
  readonly position: number;
}

function fromAccept(header: string): ResultFormat {
  const ranges = parseRanges(header);
  const candidates: Candidate[] = [];
  for (const format of RESULT_FORMATS) {
    let best: Candidate | undefined;
    for (const mediaType of MEDIA_TYPES[format]) {
      for (const range of ranges) {
        const s = specificity(range, mediaType);
        if (s === 0) continue;
        // The most specific matching range decides the format's q (a later one of equal
        // specificity does not override the first).
        if (best === undefined || s > best.specificity) {
          best = { format, q: range.q, specificity: s, position: range.position };
        }
      }
    }
    if (best !== undefined && best.q > 0) candidates.push(best);
  }
  candidates.sort(
    (a, b) =>
      b.q - a.q ||
      b.specificity - a.specificity ||
      a.position - b.position ||
      RESULT_FORMATS.indexOf(a.format) - RESULT_FORMATS.indexOf(b.format),
  );
  const chosen = candidates[0];
  if (chosen === undefined) {
    throw new QuarryError(
      'QUARRY_ERR_NOT_ACCEPTABLE',
      `accept: none of the formats served is acceptable (${Object.values(FORMAT_CONTENT_TYPES)
        .map((t) => t.split(';')[0])
        .join(', ')}; or ?format=${RESULT_FORMATS.join('|')})`,
      { field: 'accept' },
    );
  }
  return chosen.format;
}

/** The format to answer in, from the route's querystring and the request's Accept header. */
export function negotiateFormat(query: unknown, accept: string | undefined): ResultFormat {
  const format = (query as Record<string, unknown> | undefined)?.format;
  if (format !== undefined) {
    if (typeof format === 'string' && isResultFormat(format)) return format;
    throw new QuarryError(
      'QUARRY_ERR_VALIDATION',
      `format: must be one of ${RESULT_FORMATS.join(', ')} (got ${JSON.stringify(String(format)).slice(0, 80)})`,
      { field: 'format' },
    );
  }
  if (accept === undefined || accept.trim() === '') return 'json';
  return fromAccept(accept);
}
