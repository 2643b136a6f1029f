// Request helpers shared by the routes: the querystring check, the ?wait parameter and the JSON body.
import { QuarryError } from '../shared/errors.ts';
import { RawJson } from './raw-json.ts';

export const MAX_WAIT_MS = 30_000;

export function parseWait(query: unknown): number {
  const value = (query as Record<string, unknown> | undefined)?.wait;
  if (value === undefined || value === '') return 0;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > MAX_WAIT_MS) {
    throw new QuarryError(
      'QUARRY_ERR_VALIDATION',
      `wait: must be a whole number of milliseconds from 0 to ${MAX_WAIT_MS}`,
      {
        field: 'wait',
      },
    );
  }
  return n;
}

export function requireJson(body: unknown): RawJson {
  if (!(body instanceof RawJson)) {
    throw new QuarryError('QUARRY_ERR_VALIDATION', 'the body must be JSON', { field: 'body' });
  }
  return body;
}

/**
 * Checks a parsed querystring against the parameters a route takes: each known one at most
 * once (a repeated one parses to an array), nothing else. A 400 names the parameter at fault.
 */
export function checkQuery(query: unknown, allowed: readonly string[]): void {
  if (query === null || typeof query !== 'object') return;
  for (const [name, value] of Object.entries(query)) {
    if (!allowed.includes(name)) {
      const takes = allowed.length === 0 ? 'this route takes none' : `this route takes ${allowed.join(', ')}`;
      throw new QuarryError('QUARRY_ERR_VALIDATION', `${name}: unknown query parameter (${takes})`, {
        field: name,
      });
    }
    if (typeof value !== 'string') {
      throw new QuarryError('QUARRY_ERR_VALIDATION', `${name}: give this query parameter once`, {
        field: name,
      });
    }
  }
}
