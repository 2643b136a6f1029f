// What every view builds with: h() makes elements (API text goes in as text nodes, never as
// markup), and the small renderers of times, sizes, states, progress and errors.
import { ApiError } from './api.js';

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const when = (iso) =>
  iso === null || iso === undefined ? '—' : iso.replace('T', ' ').replace('Z', ' UTC');
export const span = (from, to) => {
  if (!from || !to) return '—';
  const ms = Date.parse(to) - Date.parse(from);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
};
export const bytes = (n) => {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(1)} ${units[i]}`;
};

export function stateBadge(job) {
  return h('span', { class: `state state-${job.state}`, 'data-state': job.state }, job.state);
}

export function progressBar(progress, state) {
  // A failed or cancelled job's record says "100% done"; it did not get anywhere near done.
  if (state === 'failed' || state === 'cancelled') return h('span', { class: 'muted' }, `ended ${state}`);
  const bar = h('span');
  bar.style.width = `${Math.max(0, Math.min(100, progress.percent))}%`;
  return h('span', {}, h('span', { class: 'progress' }, bar), ` ${progress.percent}% ${progress.phase}`);
}

export function errorBox(error) {
  const code = error instanceof ApiError ? `${error.code}: ` : '';
  return h('p', { class: 'error', role: 'alert' }, `${code}${error.message}`);
}

/** Shown in place of a page whose route the API does not have (an API older than the console). */
export function unavailable(main, what, error) {
  if (error instanceof ApiError && error.code === 'QUARRY_ERR_NOT_FOUND') {
    main.append(
      h('p', { class: 'notice' }, `${what} is not available from this API (it has no such route).`),
    );
    return true;
  }
  return false;
}
