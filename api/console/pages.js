// The console's other views: activity charts and queue depth, indexes with a search box,
// schedules, and the result viewer. Each renders into the element it is given, from /v1 calls.
import { call, query } from './api.js';
import { endedChart, PERCENTILE_COLOURS, runTimeChart, STATE_COLOURS } from './charts.js';
import { bytes, errorBox, h, unavailable, when } from './dom.js';

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

/** Each tenant's queued and running jobs beside its limits (0 = no limit). */
function tenantsTable(tenants) {
  if (tenants.length === 0) return [];
  const limit = (n) => (n === 0 ? '—' : n);
  const columns = ['Tenant', 'Queued', 'Active', 'Weight', 'Max active', 'Max queued'];
  return [
    h('h2', {}, 'Tenants now'),
    h(
      'table',
      { id: 'tenants' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          columns.map((c) => h('th', {}, c)),
        ),
      ),
      h(
        'tbody',
        {},
        tenants.map((t) =>
          h(
            'tr',
            { 'data-tenant': t.tenant },
            h('td', {}, t.tenant),
            h('td', { class: 'num queued' }, t.queued),
            h('td', { class: 'num active' }, t.active),
            h('td', { class: 'num' }, t.weight),
            h('td', { class: 'num' }, limit(t.maxActive)),
            h('td', { class: 'num' }, limit(t.maxQueued)),
          ),
        ),
      ),
    ),
  ];
}

export async function activityPage(main, ctx = {}) {
  main.append(h('h1', {}, 'Activity'));
  let activity;
  let tenants = [];
  try {
    activity = await call('GET', '/v1/activity');
    // Fair dispatch runs with API keys only: then each tenant's share, limits and jobs now.
    if (ctx.keys) tenants = (await call('GET', '/v1/tenants')).tenants;
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
    ...tenantsTable(tenants),
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
                { 'data-schedule': s.name },
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
