// The console's calls to the API: same-origin fetches that carry the session cookie, and on every
// write the session's CSRF token. Errors become ApiError with the API's QUARRY_ERR_* code.

export const CSRF_HEADER = 'x-quarry-csrf';

let csrf = null;

/** The token GET/POST /console/session handed out; null in the open (loopback) mode. */
export function setCsrf(token) {
  csrf = token;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; resolves with the parsed JSON body (null when empty). */
export async function call(method, url, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrf !== null) headers[CSRF_HEADER] = csrf;
  const res = await fetch(url, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  if (text !== '') {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const error = data?.error;
    throw new ApiError(
      res.status,
      error?.code ?? `HTTP_${res.status}`,
      error?.message ?? `HTTP ${res.status}`,
    );
  }
  return data;
}

/** A query string from the filled-in entries of `params`. */
export function query(params) {
  const entries = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== '');
  return entries.length === 0 ? '' : `?${new URLSearchParams(entries).toString()}`;
}
