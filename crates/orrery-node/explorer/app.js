// The explorer's shell: hash routing, the search box, the live block stream (SSE) and the
// "catching up" banner. Pages live in pages.js; every failure ends in a visible message.

import * as pages from './pages.js';
import { api, errorBox, notice } from './ui.js';

const main = document.getElementById('main');
const banner = document.getElementById('banner');
const headHeight = document.querySelector('[data-testid=head-height]');
const live = document.querySelector('[data-testid=live-indicator]');

// route pattern → [page name, render function]
const ROUTES = [
  [/^\/?$/, 'overview', pages.overview],
  [/^\/providers\/?$/, 'providers', pages.providers],
  [/^\/providers\/([^/]+)$/, 'provider', pages.provider],
  [/^\/jobs\/?$/, 'jobs', pages.jobs],
  [/^\/leases\/([^/]+)$/, 'lease', pages.lease],
  [/^\/cluster-leases\/([^/]+)$/, 'cluster-lease', pages.clusterLease],
  [/^\/blocks\/?$/, 'blocks', pages.blocks],
  [/^\/blocks\/([^/]+)$/, 'block', pages.block],
  [/^\/txs\/([^/]+)$/, 'tx', pages.tx],
  [/^\/accounts\/([^/]+)$/, 'account', pages.account],
  [/^\/search\/(.+)$/, 'search', pages.search],
  [/^\/inference\/?$/, 'inference', pages.inference],
  [/^\/inference\/batches\/([^/]+)$/, 'inference-batch', pages.inferenceBatch],
  [/^\/receipts\/([^/]+)$/, 'receipt', pages.receipt],
];

// Pages that show the head of the chain re-render when a block arrives (at most every few s).
const LIVE_PAGES = new Set(['overview', 'blocks', 'jobs', 'inference']);
const LIVE_MIN_INTERVAL_MS = 3000;

let generation = 0;
let current = { name: null, path: null, state: {} };
let lastLiveRender = 0;

function parse() {
  const path = decodeURIComponent((location.hash || '#/').slice(1));
  for (const [re, name, fn] of ROUTES) {
    const m = re.exec(path);
    if (m) return { name, fn, args: m.slice(1), path };
  }
  return { name: 'unknown', fn: null, args: [], path };
}

async function render({ quiet = false } = {}) {
  const route = parse();
  const gen = ++generation;
  if (current.path !== route.path) current = { name: route.name, path: route.path, state: {} };
  document.querySelectorAll('[data-nav]').forEach((a) => {
    const n = a.getAttribute('data-nav');
    a.classList.toggle('active', n === route.name || (n === 'jobs' && route.name === 'lease')
      || (n === 'providers' && route.name === 'provider')
      || (n === 'inference' && ['inference-batch', 'receipt'].includes(route.name)) || (n === 'blocks' && ['block', 'tx'].includes(route.name)));
  });
  main.dataset.page = route.name;
  if (!quiet) main.dataset.state = 'loading';
  const started = performance.now();
  // Render into a detached element, then swap, so a slow page never shows half a page.
  const target = document.createElement('div');
  target.className = 'page';
  try {
    if (!route.fn) {
      target.appendChild(notice('No such page', `The explorer has no page at “${route.path}”.`));
      finish(gen, target, 'notfound', started);
      return;
    }
    const rerender = () => render();
    const outcome = await route.fn(target, route.args, rerender, current.state);
    if (outcome === 'redirect') return;
    finish(gen, target, 'ready', started);
  } catch (err) {
    if (gen !== generation) return;
    if (err && (err.status === 404 || err.status === 400)) {
      const what = err.status === 404 ? 'Not found' : 'Not a valid id or hash';
      target.replaceChildren(notice(what, err.message));
      finish(gen, target, 'notfound', started);
    } else {
      target.replaceChildren(errorBox(err));
      finish(gen, target, 'error', started);
    }
  }
}

function finish(gen, target, state, started) {
  if (gen !== generation) return;
  const scroll = window.scrollY;
  main.replaceChildren(target);
  main.dataset.state = state;
  main.dataset.renderMs = String(Math.round(performance.now() - started));
  if (LIVE_PAGES.has(main.dataset.page)) window.scrollTo(0, scroll);
  lastLiveRender = Date.now();
}

// ---- search ----

document.querySelector('[data-testid=search-form]').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = e.target.elements.q;
  const q = input.value.trim();
  if (!q) return;
  location.hash = `#/search/${encodeURIComponent(q)}`;
  input.blur();
});

// ---- status banner and live updates ----

async function checkStatus() {
  try {
    const s = await api('/status');
    const behind = s.chain.height - s.indexed_height;
    headHeight.textContent = `#${s.chain.height.toLocaleString('en-US')}`;
    if (s.chain.syncing || behind > 5) {
      banner.hidden = false;
      banner.className = 'banner warn';
      banner.textContent = s.chain.syncing
        ? `This node is catching up with the network (at height ${s.chain.height}); figures show its last finalized state and may lag.`
        : `This node's index is catching up: ${s.indexed_height} of ${s.chain.height} blocks indexed; recent history may be missing.`;
    } else {
      banner.hidden = true;
    }
  } catch (err) {
    banner.hidden = false;
    banner.className = 'banner error';
    banner.textContent = `Cannot read the node's status: ${err.message}`;
  }
}

function connectEvents() {
  if (!window.EventSource) return;
  const es = new EventSource('/api/v1/events');
  es.addEventListener('open', () => live.classList.add('on'));
  es.addEventListener('block', (msg) => {
    live.classList.add('on');
    try {
      const b = JSON.parse(msg.data);
      headHeight.textContent = `#${b.height.toLocaleString('en-US')}`;
    } catch { /* a malformed message only skips the height */ }
    const quietPage = LIVE_PAGES.has(main.dataset.page) && !current.state.cursor
      && main.dataset.state === 'ready' && !(current.name === 'blocks' && pagesMoved());
    if (quietPage && Date.now() - lastLiveRender > LIVE_MIN_INTERVAL_MS && !userBusy()) {
      lastLiveRender = Date.now();
      render({ quiet: true });
    }
  });
  es.addEventListener('error', () => {
    live.classList.remove('on');
    live.title = 'Live updates paused; reconnecting…';
  });
}

function pagesMoved() {
  return document.querySelector('[data-testid=page-prev]:not([disabled])') !== null;
}

// Do not re-render under a user typing into a filter or holding a select open.
function userBusy() {
  const a = document.activeElement;
  return a && (a.tagName === 'INPUT' || a.tagName === 'SELECT');
}

window.addEventListener('hashchange', () => render());
render();
checkStatus();
setInterval(checkStatus, 10000);
connectEvents();
