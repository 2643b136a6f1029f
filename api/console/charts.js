// Charts drawn as SVG by hand: a stacked bar per minute (jobs ended, by final state) and lines of
// run-time percentiles. Elements are built with createElementNS, never from markup.

const NS = 'http://www.w3.org/2000/svg';
const W = 960;
const H = 220;
const PAD = { left: 48, right: 12, top: 12, bottom: 28 };

export const STATE_COLOURS = { completed: '#3b9a57', failed: '#c8343d', cancelled: '#d29a2a' };
export const PERCENTILE_COLOURS = { p50: '#2457c5', p95: '#8a4fc7', p99: '#c8343d' };

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function frame(label) {
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': label });
  svg.append(el('title', {}, label));
  return svg;
}

const hhmm = (ms) => new Date(ms).toISOString().slice(11, 16);

/** A rounded-up axis top with about four ticks. */
function niceMax(value) {
  if (value <= 0) return 1;
  const pow = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * pow >= value) return step * pow;
  return 10 * pow;
}

function axes(svg, fromMs, toMs, max, unit) {
  const x0 = PAD.left;
  const y0 = H - PAD.bottom;
  svg.append(el('line', { x1: x0, y1: y0, x2: W - PAD.right, y2: y0, stroke: '#c4cad1' }));
  for (let i = 0; i <= 4; i += 1) {
    const v = (max * i) / 4;
    const y = y0 - ((y0 - PAD.top) * i) / 4;
    svg.append(el('line', { x1: x0, y1: y, x2: W - PAD.right, y2: y, stroke: '#eef1f4' }));
    const label = Number.isInteger(v) ? String(v) : v.toFixed(1);
    svg.append(el('text', { x: x0 - 6, y: y + 3, 'text-anchor': 'end' }, `${label}${unit}`));
  }
  const span = Math.max(1, toMs - fromMs);
  for (let i = 0; i <= 6; i += 1) {
    const t = fromMs + (span * i) / 6;
    const x = x0 + ((W - PAD.right - x0) * i) / 6;
    svg.append(el('text', { x, y: H - 8, 'text-anchor': 'middle' }, hhmm(t)));
  }
}

/**
 * Jobs ended per minute, stacked by state. `minutes` are the API's (minutes without an ended job
 * are absent: they are drawn as empty slots), from `fromMs` to `toMs`.
 */
export function endedChart(minutes, fromMs, toMs) {
  const svg = frame('Jobs ended per minute by final state');
  const slots = Math.max(1, Math.round((toMs - fromMs) / 60_000));
  const max = niceMax(Math.max(0, ...minutes.map((m) => m.completed + m.failed + m.cancelled)));
  axes(svg, fromMs, toMs, max, '');
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slotW = plotW / slots;
  for (const m of minutes) {
    const at = Date.parse(m.minute);
    const slot = Math.floor((at - fromMs) / 60_000);
    if (slot < 0 || slot >= slots) continue;
    let y = H - PAD.bottom;
    for (const state of ['completed', 'failed', 'cancelled']) {
      const h = (m[state] / max) * plotH;
      if (h <= 0) continue;
      y -= h;
      const rect = el('rect', {
        x: PAD.left + slot * slotW + 0.5,
        y,
        width: Math.max(1, slotW - 1),
        height: h,
        fill: STATE_COLOURS[state],
        'data-state': state,
      });
      rect.append(el('title', {}, `${hhmm(at)} ${state}: ${m[state]}`));
      svg.append(rect);
    }
  }
  return svg;
}

/** Run-time percentiles per minute (ms), one line each; minutes without runs break no line. */
export function runTimeChart(minutes, fromMs, toMs) {
  const svg = frame('Run time percentiles per minute (ms)');
  const withRuns = minutes.filter((m) => m.runMs !== null && m.runMs !== undefined);
  const max = niceMax(Math.max(0, ...withRuns.map((m) => m.runMs.p99)));
  axes(svg, fromMs, toMs, max, '');
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const span = Math.max(1, toMs - fromMs);
  for (const p of ['p50', 'p95', 'p99']) {
    const points = withRuns
      .map((m) => {
        const x = PAD.left + ((Date.parse(m.minute) + 30_000 - fromMs) / span) * plotW;
        const y = H - PAD.bottom - (m.runMs[p] / max) * plotH;
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      })
      .join(' ');
    if (points === '') continue;
    svg.append(
      el('polyline', {
        points,
        fill: 'none',
        stroke: PERCENTILE_COLOURS[p],
        'stroke-width': 1.5,
        'data-p': p,
      }),
    );
    for (const pt of points.split(' ')) {
      const [cx, cy] = pt.split(',');
      svg.append(el('circle', { cx, cy, r: 2, fill: PERCENTILE_COLOURS[p] }));
    }
  }
  return svg;
}
