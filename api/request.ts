// Request helpers shared by the routes: the ?wait parameter and the JSON body.
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
