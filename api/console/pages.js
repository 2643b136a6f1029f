// The console's views: each renders into the <main> element it is given, from /v1 calls made
// with the session. Text from the API goes in as text nodes (h() below), never as markup.
import { ApiError, call, query } from './api.js';
import { endedChart, PERCENTILE_COLOURS, runTimeChart, STATE_COLOURS } from './charts.js';

const JOB_STATES = ['queued', 'active', 'completed', 'failed', 'cancelled'];
const LIVE_STATES = new Set(['queued', 'active']);
const RETRYABLE_STATES = new Set(['failed', 'cancelled']);
const PAGE_SIZE = 50;
const DETAIL_POLL_MS = 1000;

/** An element with attributes (`on*` become listeners) and children (strings become text). */
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

const when = (iso) => (iso === null || iso === undefined ? '—' : iso.replace('T', ' ').replace('Z', ' UTC'));
const span = (from, to) => {
  if (!from || !to) return '—';
  const ms = Date.parse(to) - Date.parse(from);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
};
const bytes = (n) => {
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

function stateBadge(job) {
  return h('span', { class: `state state-${job.state}`, 'data-state': job.state }, job.state);
}

function progressBar(progress, state) {
  // A failed or cancelled job's record says "100% done"; it did not get anywhere near done.
  if (state === 'failed' || state === 'cancelled') return h('span', { class: 'muted' }, `ended ${state}`);
  const bar = h('span');
  bar.style.width = `${Math.max(0, Math.min(100, progress.percent))}%`;
  return h('span', {}, h('span', { class: 'progress' }, bar), ` ${progress.percent}% ${progress.phase}`);
}

function errorBox(error) {
  const code = error instanceof ApiError ? `${error.code}: ` : '';
  return h('p', { class: 'error', role: 'alert' }, `${code}${error.message}`);
}

/** Shown in place of a page whose route the API does not have (an API older than the console). */
function unavailable(main, what, error) {
  if (error instanceof ApiError && error.code === 'QUARRY_ERR_NOT_FOUND') {
    main.append(
      h('p', { class: 'notice' }, `${what} is not available from this API (it has no such route).`),
    );
    return true;
  }
  return false;
}

// ── Jobs ─────────────────────────────────────────────────────────────────────────────────────

export async function jobsPage(main, params) {
  const filters = {
    state: params.get('state') ?? '',
    type: params.get('type') ?? '',
    errorCode: params.get('errorCode') ?? '',
  };
  const apply = (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const next = new URLSearchParams();
    for (const name of ['state', 'type', 'errorCode']) {
      const v = String(form.get(name) ?? '').trim();
      if (v !== '') next.set(name, v);
    }
    const qs = next.toString();
    location.hash = `#/jobs${qs === '' ? '' : `?${qs}`}`;
  };
  const option = (value, label, current) => h('option', { value, selected: value === current }, label);
  main.append(
    h('h1', {}, 'Jobs'),
    h(
      'form',
      { class: 'bar', id: 'job-filters', onsubmit: apply },
      h(
        'label',
        {},
        'State',
        h(
          'select',
          { name: 'state' },
          option('', 'any', filters.state),
          JOB_STATES.map((s) => option(s, s, filters.state)),
        ),
      ),
      h(
        'label',
        {},
        'Type',
        h(
          'select',
          { name: 'type' },
          option('', 'any', filters.type),
          option('aggregate', 'aggregate', filters.type),
          option('index', 'index', filters.type),
        ),
      ),
      h(
        'label',
        {},
        'Error code',
        h('input', { name: 'errorCode', value: filters.errorCode, placeholder: 'QUARRY_ERR_…', size: 28 }),
      ),
      h('button', { type: 'submit', class: 'primary' }, 'Filter'),
      h(
        'button',
        { type: 'button', onclick: () => window.dispatchEvent(new HashChangeEvent('hashchange')) },
        'Refresh',
      ),
    ),
  );
  const body = h('tbody');
  const table = h(
    'table',
    { id: 'jobs' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['Created', 'Job', 'Type', 'State', 'Error', 'Progress', 'Attempts'].map((c) => h('th', {}, c)),
      ),
    ),
    body,
  );
  const more = h('button', { type: 'button', hidden: true }, 'Older jobs');
  main.append(table, h('p', {}, more));

  const load = async (cursor) => {
    const page = await call('GET', `/v1/jobs${query({ ...filters, limit: PAGE_SIZE, cursor })}`);
    for (const job of page.jobs) {
      body.append(
        h(
          'tr',
          { class: job.state === 'failed' ? 'failed' : undefined, 'data-job': job.jobId },
          h('td', {}, when(job.createdAt)),
          h('td', {}, h('a', { href: `#/jobs/${encodeURIComponent(job.jobId)}`, class: 'mono' }, job.jobId)),
          h('td', {}, job.type === 'index' ? `index ${job.collection ?? ''}` : job.type),
          h('td', {}, stateBadge(job)),
          h('td', {}, job.error === null ? '' : h('span', { class: 'code mono' }, job.error.code)),
          h('td', {}, progressBar(job.progress, job.state)),
          h('td', { class: 'num' }, job.attempts),
        ),
      );
    }
    if (body.children.length === 0)
      body.append(h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No jobs.')));
    more.hidden = page.nextCursor === null;
    more.onclick = () => load(page.nextCursor).catch((e) => main.append(errorBox(e)));
  };
  try {
    await load(undefined);
  } catch (error) {
    table.remove();
    if (!unavailable(main, 'Job history', error)) main.append(errorBox(error));
  }
}

export async function jobPage(main, jobId, ctx) {
  main.append(
    h('p', {}, h('a', { href: '#/jobs' }, '← all jobs')),
    h('h1', {}, 'Job ', h('code', {}, jobId)),
  );
  const holder = h('div');
  const message = h('div');
  main.append(message, holder);
  let timer;
  const render = async () => {
    const job = await call('GET', `/v1/jobs/${encodeURIComponent(jobId)}`);
    const rows = [
      ['Type', job.type],
      job.type === 'index'
        ? ['Collection', job.collection ?? '—']
        : ['Result key', job.resultKey === null ? '—' : h('code', {}, job.resultKey)],
      ...(job.version === undefined ? [] : [['Version', job.version]]),
      ['State', stateBadge(job)],
      ['Progress', progressBar(job.progress, job.state)],
      ['Attempts', job.attempts],
      ['Created', when(job.createdAt)],
      ['Started', when(job.startedAt)],
      ['Finished', when(job.finishedAt)],
      ['Waited', span(job.createdAt, job.startedAt)],
      ['Ran', span(job.startedAt, job.finishedAt)],
      [
        'Error code',
        job.error === null ? '—' : h('span', { class: 'code mono', id: 'error-code' }, job.error.code),
      ],
      ['Error message', job.error === null ? '—' : job.error.message],
    ];
    if (job.state === 'completed' && job.type === 'aggregate' && job.resultKey !== null) {
      rows.push([
        'Result',
        h('a', { href: `#/results/${job.resultKey}`, id: 'result-link' }, 'view the result'),
      ]);
    }
    if (job.state === 'completed' && job.type === 'index' && job.collection) {
      rows.push([
        'Index',
        h('a', { href: `#/indexes?collection=${encodeURIComponent(job.collection)}` }, 'search it'),
      ]);
    }
    const act = (label, cls, method, url) =>
      h(
        'button',
        {
          type: 'button',
          class: cls,
          id: `${label.toLowerCase()}-job`,
          onclick: async (event) => {
            event.target.disabled = true;
            message.replaceChildren();
            try {
              await call(method, url);
            } catch (error) {
              message.append(errorBox(error));
            }
            await render().catch((error) => message.append(errorBox(error)));
          },
        },
        label,
      );
    const actions = h('div', { class: 'actions' });
    if (ctx.canWrite && LIVE_STATES.has(job.state)) {
      actions.append(act('Cancel', 'danger', 'DELETE', `/v1/jobs/${encodeURIComponent(jobId)}`));
    }
    if (ctx.canWrite && RETRYABLE_STATES.has(job.state)) {
      actions.append(act('Retry', 'primary', 'POST', `/v1/jobs/${encodeURIComponent(jobId)}/retry`));
    }
    holder.replaceChildren(
      h(
        'dl',
        { class: 'detail', id: 'job-detail', 'data-state': job.state },
        rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]),
      ),
      actions,
    );
    clearTimeout(timer);
    // Followed while it runs; the view is dropped (and the timer with it) when the page changes.
    if (LIVE_STATES.has(job.state)) {
      timer = setTimeout(() => {
        if (holder.isConnected) render().catch((error) => message.replaceChildren(errorBox(error)));
      }, DETAIL_POLL_MS);
    }
  };
  try {
    await render();
  } catch (error) {
    message.append(errorBox(error));
  }
}

// ── Activity ─────────────────────────────────────────────────────────────────────────────────

function legend(colours) {
  return h(
    'div',
    { class: 'legend' },
    Object.entries(colours).map(([name, colour]) => {
      const swatch = h('span', { class: 'swatch' });
      swatch.style.background = colour;
      return h('span', {}, swatch, name);
    }),
  );
}

export async function activityPage(main) {
  main.append(h('h1', {}, 'Activity'));
  let activity;
  try {
    activity = await call('GET', '/v1/activity');
  } catch (error) {
    if (!unavailable(main, 'Activity', error)) main.append(errorBox(error));
    return;
  }
  const toMs = Math.ceil(Date.now() / 60_000) * 60_000;
  const fromMs = toMs - activity.windowS * 1000;
  const totals = { completed: 0, failed: 0, cancelled: 0 };
  for (const m of activity.minutes) for (const s of Object.keys(totals)) totals[s] += m[s];
  const card = (label, value, id) =>
    h('div', { class: 'card' }, h('div', { class: 'muted' }, label), h('div', { class: 'big', id }, value));
  main.append(
    h('h2', {}, 'Queue depth now'),
    h(
      'table',
      { id: 'depth' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Queue', 'Waiting', 'Active', 'Delayed'].map((c) => h('th', {}, c)),
        ),
      ),
      h(
        'tbody',
        {},
        Object.entries(activity.depth).map(([queue, d]) =>
          h(
            'tr',
            {},
            h('td', {}, queue),
            h('td', { class: 'num' }, d.waiting),
            h('td', { class: 'num' }, d.active),
            h('td', { class: 'num' }, d.delayed),
          ),
        ),
      ),
    ),
    h(
      'h2',
      {},
      `Jobs ended over the last ${(activity.windowS / 3600).toFixed(activity.windowS % 3600 === 0 ? 0 : 1)} h`,
    ),
    h(
      'div',
      { class: 'cards' },
      card('completed', totals.completed, 'total-completed'),
      card('failed', totals.failed, 'total-failed'),
      card('cancelled', totals.cancelled, 'total-cancelled'),
    ),
    h('h2', {}, 'Jobs ended per minute'),
    legend(STATE_COLOURS),
    endedChart(activity.minutes, fromMs, toMs),
    h('h2', {}, 'Run time per minute (ms)'),
    legend(PERCENTILE_COLOURS),
    runTimeChart(activity.minutes, fromMs, toMs),
  );
}

// ── Indexes ──────────────────────────────────────────────────────────────────────────────────

export async function indexesPage(main, params) {
  main.append(h('h1', {}, 'Indexes'));
  let list;
  try {
    list = await call('GET', '/v1/indexes');
  } catch (error) {
    if (!unavailable(main, 'The index list', error)) main.append(errorBox(error));
    return;
  }
  main.append(
    h(
      'table',
      { id: 'indexes' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Collection', 'Version', 'Documents', 'Terms', 'Size', 'Built', 'Build time'].map((c) =>
            h('th', {}, c),
          ),
        ),
      ),
      h(
        'tbody',
        {},
        list.indexes.length === 0
          ? h('tr', {}, h('td', { colspan: 7, class: 'muted' }, 'No indexes.'))
          : list.indexes.map((i) =>
              h(
                'tr',
                { 'data-collection': i.collection },
                h('td', {}, i.collection),
                h('td', { class: 'num' }, i.version),
                h('td', { class: 'num' }, i.documents),
                h('td', { class: 'num' }, i.terms),
                h('td', { class: 'num' }, bytes(i.bytes)),
                h('td', {}, when(i.builtAt)),
                h('td', { class: 'num' }, `${i.buildMs} ms`),
              ),
            ),
      ),
    ),
  );
  const chosen = params.get('collection') ?? list.indexes[0]?.collection ?? '';
  const results = h('div', { id: 'search-results' });
  const search = async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const collection = String(form.get('collection') ?? '');
    const q = String(form.get('q') ?? '');
    results.replaceChildren();
    try {
      const found = await call(
        'GET',
        `/v1/indexes/${encodeURIComponent(collection)}/search${query({ q, k: 20 })}`,
      );
      results.append(
        h('p', { class: 'muted' }, `${found.total} matching, version ${found.version}, ${found.tookMs} ms`),
        h(
          'table',
          {},
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ['Id', 'Score', 'Fields'].map((c) => h('th', {}, c)),
            ),
          ),
          h(
            'tbody',
            {},
            found.hits.map((hit) =>
              h(
                'tr',
                { 'data-hit': hit.id },
                h('td', { class: 'mono' }, hit.id),
                h('td', { class: 'num' }, hit.score.toFixed(3)),
                h('td', {}, h('pre', { class: 'fields' }, JSON.stringify(hit.fields, null, 1))),
              ),
            ),
          ),
        ),
      );
    } catch (error) {
      results.append(errorBox(error));
    }
  };
  main.append(
    h('h2', {}, 'Search'),
    h(
      'form',
      { class: 'bar', id: 'search', onsubmit: search },
      h(
        'label',
        {},
        'Collection',
        h(
          'select',
          { name: 'collection' },
          list.indexes.map((i) =>
            h('option', { value: i.collection, selected: i.collection === chosen }, i.collection),
          ),
        ),
      ),
      h(
        'label',
        {},
        'Query',
        h('input', { name: 'q', required: true, size: 40, placeholder: 'words to find' }),
      ),
      h('button', { type: 'submit', class: 'primary' }, 'Search'),
    ),
    results,
  );
}

// ── Schedules ────────────────────────────────────────────────────────────────────────────────

export async function schedulesPage(main) {
  main.append(h('h1', {}, 'Schedules'));
  let list;
  try {
    list = await call('GET', '/v1/schedules');
  } catch (error) {
    main.append(errorBox(error));
    return;
  }
  const every = (s) =>
    s.cron !== null ? `cron ${s.cron}${s.tz ? ` (${s.tz})` : ''}` : `every ${s.everyMs / 1000} s`;
  main.append(
    h(
      'table',
      { id: 'schedules' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Name', 'Runs', 'Next run', 'Last refresh', 'Alias'].map((c) => h('th', {}, c)),
        ),
      ),
      h(
        'tbody',
        {},
        list.schedules.length === 0
          ? h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No schedules.'))
          : list.schedules.map((s) =>
              h(
                'tr',
                {},
                h('td', {}, s.name),
                h('td', {}, every(s)),
                h('td', {}, when(s.next)),
                h('td', {}, when(s.refreshedAt)),
                h(
                  'td',
                  {},
                  s.resultKey === null
                    ? h('span', { class: 'muted' }, 'no result yet')
                    : h('a', { href: `#/results/${s.resultKey}` }, `/v1/aliases/${s.name}`),
                ),
              ),
            ),
      ),
    ),
  );
}

// ── Results ──────────────────────────────────────────────────────────────────────────────────

export async function resultsPage(main, resultKey) {
  main.append(h('h1', {}, 'Result'));
  const open = (event) => {
    event.preventDefault();
    const key = String(new FormData(event.target).get('key') ?? '').trim();
    if (key !== '') location.hash = `#/results/${encodeURIComponent(key)}`;
  };
  main.append(
    h(
      'form',
      { class: 'bar', onsubmit: open },
      h(
        'label',
        {},
        'Result key',
        h('input', {
          name: 'key',
          value: resultKey ?? '',
          size: 40,
          pattern: '[0-9a-f]{32}',
          required: true,
        }),
      ),
      h('button', { type: 'submit', class: 'primary' }, 'Open'),
    ),
  );
  if (resultKey === undefined) return;
  let envelope;
  try {
    envelope = await call('GET', `/v1/results/${encodeURIComponent(resultKey)}`);
  } catch (error) {
    main.append(errorBox(error));
    return;
  }
  const download = (format) =>
    h(
      'a',
      {
        href: `/v1/results/${encodeURIComponent(resultKey)}?format=${format}`,
        download: `${resultKey}.${format}`,
      },
      format,
    );
  main.append(
    h(
      'p',
      { id: 'downloads' },
      'Download: ',
      ['json', 'csv', 'ndjson', 'arrow'].flatMap((f, i) => [i > 0 ? ' · ' : '', download(f)]),
    ),
    h(
      'p',
      { class: 'muted' },
      `${envelope.rowCount} rows, computed ${when(envelope.computedAt)} by ${envelope.engine} in ${envelope.durationMs} ms`,
    ),
    h(
      'table',
      { id: 'result' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          envelope.columns.map((c) => h('th', { title: c.type }, c.name)),
        ),
      ),
      h(
        'tbody',
        {},
        envelope.rows.map((row) =>
          h(
            'tr',
            {},
            envelope.columns.map((c) => {
              const v = row[c.name];
              return h(
                'td',
                { class: typeof v === 'number' ? 'num' : undefined },
                v === null || v === undefined ? '∅' : String(v),
              );
            }),
          ),
        ),
      ),
    ),
  );
}
