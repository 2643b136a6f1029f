// The Webhooks page: the tenant's webhooks (URL, events, the secret's hint) and each one's
// newest deliveries with their status, attempts, last answer and next attempt. Reading it takes
// the `webhooks` scope (or `admin`); a key without it sees why instead.
import { ApiError, call } from './api.js';
import { errorBox, h, unavailable, when } from './dom.js';

const DELIVERIES_SHOWN = 20;

function answerCell(d) {
  if (d.lastStatus === null && d.lastError === null) return h('span', { class: 'muted' }, '—');
  const head = d.lastStatus === null ? d.lastError : `HTTP ${d.lastStatus}`;
  const excerpt = d.lastBody === null ? '' : ` · ${d.lastBody.slice(0, 80)}`;
  return h(
    'span',
    { class: d.status === 'delivered' ? '' : 'code', title: d.lastError ?? '' },
    `${head}${excerpt}`,
  );
}

function deliveriesTable(name, deliveries) {
  return h(
    'table',
    { class: 'deliveries', 'data-deliveries': name },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['Delivery', 'Event', 'Job', 'Status', 'Attempts', 'Last answer', 'Next attempt', 'Created'].map(
          (c) => h('th', {}, c),
        ),
      ),
    ),
    h(
      'tbody',
      {},
      deliveries.length === 0
        ? h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No deliveries yet.'))
        : deliveries.map((d) =>
            h(
              'tr',
              { 'data-delivery': d.id, class: d.status === 'failed' ? 'failed' : '' },
              h('td', {}, h('code', {}, d.id)),
              h('td', {}, d.type),
              h(
                'td',
                {},
                d.jobId === null ? '—' : h('a', { href: `#/jobs/${encodeURIComponent(d.jobId)}` }, d.jobId),
              ),
              h('td', { 'data-status': d.status }, d.status),
              h('td', {}, String(d.attempts)),
              h('td', {}, answerCell(d)),
              h('td', {}, when(d.nextAttemptAt)),
              h('td', {}, when(d.createdAt)),
            ),
          ),
    ),
  );
}

export async function webhooksPage(main) {
  main.append(h('h1', {}, 'Webhooks'));
  let list;
  try {
    list = await call('GET', '/v1/webhooks');
  } catch (error) {
    if (unavailable(main, 'Webhooks', error)) return;
    if (error instanceof ApiError && error.code === 'QUARRY_ERR_FORBIDDEN') {
      main.append(h('p', { class: 'notice' }, 'Webhooks need a key with the "webhooks" (or "admin") scope.'));
      return;
    }
    main.append(errorBox(error));
    return;
  }
  main.append(
    h(
      'table',
      { id: 'webhooks' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['Name', 'URL', 'Events', 'Secret', 'Updated'].map((c) => h('th', {}, c)),
        ),
      ),
      h(
        'tbody',
        {},
        list.webhooks.length === 0
          ? h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No webhooks.'))
          : list.webhooks.map((w) =>
              h(
                'tr',
                { 'data-webhook': w.name },
                h('td', {}, w.name),
                h('td', {}, w.url),
                h('td', {}, w.events.join(', ')),
                h('td', { class: 'muted' }, w.secretHint),
                h('td', {}, when(w.updatedAt)),
              ),
            ),
      ),
    ),
  );
  for (const w of list.webhooks) {
    main.append(h('h2', {}, `Deliveries of ${w.name}`));
    try {
      const { deliveries } = await call(
        'GET',
        `/v1/webhooks/${encodeURIComponent(w.name)}/deliveries?limit=${DELIVERIES_SHOWN}`,
      );
      main.append(deliveriesTable(w.name, deliveries));
    } catch (error) {
      main.append(errorBox(error));
    }
  }
}
