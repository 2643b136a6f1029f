// The jobs views: the history with its filters (the console's first page), and one job's page
// with its record, followed while it runs, and its Cancel and Retry buttons.
import { call, query } from './api.js';
import { errorBox, h, progressBar, span, stateBadge, unavailable, when } from './dom.js';

const JOB_STATES = ['queued', 'active', 'completed', 'failed', 'cancelled'];
const LIVE_STATES = new Set(['queued', 'active']);
const RETRYABLE_STATES = new Set(['failed', 'cancelled']);
const PAGE_SIZE = 50;
const DETAIL_POLL_MS = 1000;

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
      ['Computes', h('span', { id: 'job-summary' }, job.summary ?? '—')],
      ['Dataset', h('span', { class: 'mono', id: 'job-dataset' }, job.dataset ?? '—')],
      ['Priority', job.priority ?? 'normal'],
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
