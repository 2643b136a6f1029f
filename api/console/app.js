// The console's entry: asks GET /console/session who it acts as, shows the sign-in form when
// nobody is signed in, and otherwise routes `#/page/...` hashes to the views in pages.js.
import { ApiError, call, setCsrf } from './api.js';
import { h } from './dom.js';
import { jobPage, jobsPage } from './jobs.js';
import { activityPage, indexesPage, resultsPage, schedulesPage } from './pages.js';
import { webhooksPage } from './webhooks.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const signOut = document.getElementById('sign-out');
let session = null;

const canWrite = () =>
  session !== null && (session.scopes.includes('enqueue') || session.scopes.includes('admin'));

function showSession() {
  const signedIn = session?.signedIn === true;
  nav.hidden = !signedIn;
  signOut.hidden = !(signedIn && session.mode === 'keys');
  who.textContent = !signedIn
    ? ''
    : session.mode === 'open'
      ? 'open (no API keys configured)'
      : `tenant ${session.tenant} · ${session.scopes.join(', ')}`;
  setCsrf(signedIn ? session.csrf : null);
}

function signInView(problem) {
  const message = h('div');
  if (problem !== undefined) message.append(h('p', { class: 'notice' }, problem));
  const submit = async (event) => {
    event.preventDefault();
    const key = String(new FormData(event.target).get('key') ?? '');
    message.replaceChildren();
    try {
      session = await call('POST', '/console/session', { key });
      showSession();
      if (location.hash === '' || location.hash === '#/signin') location.hash = '#/jobs';
      else await route();
    } catch (error) {
      message.append(
        h(
          'p',
          { class: 'error', role: 'alert' },
          error instanceof ApiError ? `${error.code}: ${error.message}` : String(error),
        ),
      );
    }
  };
  main.replaceChildren(
    h(
      'section',
      { class: 'signin' },
      h('h1', {}, 'Sign in'),
      h('p', { class: 'muted' }, 'The console acts with the tenant and scopes of the API key you give.'),
      message,
      h(
        'form',
        { id: 'signin', onsubmit: submit },
        h(
          'label',
          {},
          'API key',
          h('input', { name: 'key', type: 'password', autocomplete: 'current-password', required: true }),
        ),
        h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
      ),
    ),
  );
}

async function route() {
  if (session?.signedIn !== true) return signInView();
  const [path, qs] = location.hash.replace(/^#\/?/, '').split('?');
  const parts = (path ?? '').split('/').map(decodeURIComponent);
  const params = new URLSearchParams(qs ?? '');
  const page = parts[0] === '' || parts[0] === 'signin' ? 'jobs' : parts[0];
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('current', a.dataset.page === page);
  const view = h('div', { id: `page-${page}` });
  main.replaceChildren(view);
  try {
    if (page === 'jobs' && parts[1] !== undefined) await jobPage(view, parts[1], { canWrite: canWrite() });
    else if (page === 'jobs') await jobsPage(view, params);
    else if (page === 'activity') await activityPage(view, { keys: session.mode === 'keys' });
    else if (page === 'indexes') await indexesPage(view, params);
    else if (page === 'schedules') await schedulesPage(view);
    else if (page === 'results') await resultsPage(view, parts[1]);
    else if (page === 'webhooks') await webhooksPage(view);
    else view.append(h('p', { class: 'notice' }, `No page "${page}".`));
  } catch (error) {
    // The session ended (expired, or its key was removed): back to the form.
    if (error instanceof ApiError && error.status === 401) {
      session = null;
      showSession();
      return signInView('Your session has ended; sign in again.');
    }
    view.append(h('p', { class: 'error' }, String(error.message ?? error)));
  }
}

signOut.addEventListener('click', async () => {
  try {
    await call('DELETE', '/console/session');
  } finally {
    session = null;
    showSession();
    signInView('Signed out.');
  }
});

window.addEventListener('hashchange', () => {
  route();
});

session = await call('GET', '/console/session').catch(() => null);
showSession();
await route();
