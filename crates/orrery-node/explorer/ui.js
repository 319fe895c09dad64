// Small DOM and formatting helpers. Everything the node sends is rendered as text (never as
// HTML), so nothing from the chain can inject markup.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// GET an API path; JSON on success, ApiError with the node's message otherwise.
export async function api(path) {
  let resp;
  try {
    resp = await fetch(`/api/v1${path}`, { headers: { accept: 'application/json' } });
  } catch (e) {
    throw new ApiError(0, 'network', `cannot reach the node (${e.message})`);
  }
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  if (!resp.ok) {
    const msg = body && body.error ? body.error : `HTTP ${resp.status}`;
    throw new ApiError(resp.status, body && body.code ? body.code : 'http', msg);
  }
  return body;
}

// h('div', {class: 'x', 'data-testid': 'y'}, child, 'text', [more])
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export const link = (route, text, attrs = {}) => h('a', { href: route, ...attrs }, text);

export function short(s, head = 8, tail = 6) {
  s = String(s ?? '');
  return s.length > head + tail + 1 ? `${s.slice(0, head)}…${s.slice(-tail)}` : s;
}

export const hashLink = (kind, hash) =>
  link(`#/${kind}/${hash}`, short(hash), { class: 'mono', title: hash });
export const accountLink = (id) =>
  id ? link(`#/accounts/${id}`, short(id, 9, 6), { class: 'mono', title: id }) : '—';
export const providerLink = (id) =>
  link(`#/providers/${id}`, short(id, 9, 6), { class: 'mono', title: id });
export const blockLink = (height) => link(`#/blocks/${height}`, `#${height}`);
export const leaseLink = (id) => link(`#/leases/${id}`, `lease ${id}`);

// Amounts are decimal strings in ORR; keep them exact, trim long fractions for display.
export function orr(amount) {
  if (amount === undefined || amount === null) return '—';
  const s = String(amount).replace(/\s*ORR$/, '');
  const [i, f] = s.split('.');
  const int = i.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const frac = f ? f.slice(0, 4).replace(/0+$/, '') : '';
  return `${int}${frac ? '.' + frac : ''} ORR`;
}

export const num = (n) => (n === undefined || n === null ? '—' : Number(n).toLocaleString('en-US'));
export const pct = (bps) => (bps === undefined || bps === null ? '—' : `${(bps / 100).toFixed(1)}%`);

export function time(ms) {
  if (!ms) return '—';
  const d = new Date(ms);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

export function ago(ms) {
  if (!ms) return '—';
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return `${s.toFixed(0)} s ago`;
  if (s < 3600) return `${(s / 60).toFixed(0)} min ago`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h ago`;
  return `${(s / 86400).toFixed(1)} days ago`;
}

export function stat(label, value, testid, sub) {
  return h('div', { class: 'stat', 'data-testid': testid },
    h('div', { class: 'stat-label' }, label),
    h('div', { class: 'stat-value', 'data-testid': testid ? `${testid}-value` : undefined }, value),
    sub ? h('div', { class: 'stat-sub' }, sub) : null);
}

export function card(title, ...children) {
  return h('section', { class: 'card' }, title ? h('h2', {}, title) : null, ...children);
}

// columns: [{label, cell: row => node|string, class?}]
export function table(columns, rows, testid, rowAttrs) {
  return h('div', { class: 'table-wrap' },
    h('table', { 'data-testid': testid },
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.class }, c.label)))),
      h('tbody', {}, rows.length === 0
        ? h('tr', {}, h('td', { colspan: columns.length, class: 'empty' }, 'Nothing here yet.'))
        : rows.map((r) => h('tr', rowAttrs ? rowAttrs(r) : {},
          columns.map((c) => h('td', { class: c.class }, c.cell(r))))))));
}

export function errorBox(err) {
  const status = err && err.status ? ` (HTTP ${err.status}${err.code ? ', ' + err.code : ''})` : '';
  return h('div', { class: 'error-box', 'data-testid': 'error-box', role: 'alert' },
    h('strong', {}, 'The node could not answer this page'), status,
    h('p', {}, err && err.message ? err.message : String(err)),
    h('p', { class: 'muted' }, 'Try again in a moment, or go back to the ', link('#/', 'overview'), '.'));
}

export function notice(title, message) {
  return h('div', { class: 'notice', 'data-testid': 'notice', role: 'status' },
    h('strong', {}, title), h('p', {}, message),
    h('p', { class: 'muted' }, 'Search takes a block height, a block or transaction hash (64 hex characters), a lease number or an account id (orr + 40 hex).'));
}

// A pager over cursor pages: keeps the cursors seen so "Previous" works.
export function pager(state, onMove) {
  const prev = h('button', { class: 'btn', 'data-testid': 'page-prev', disabled: state.stack.length === 0 },
    '← Previous');
  const next = h('button', { class: 'btn', 'data-testid': 'page-next', disabled: !state.next }, 'Next →');
  prev.addEventListener('click', () => { state.cursor = state.stack.pop() ?? null; onMove(); });
  next.addEventListener('click', () => { state.stack.push(state.cursor); state.cursor = state.next; onMove(); });
  return h('div', { class: 'pager' }, prev, h('span', { class: 'muted' }, `page ${state.stack.length + 1}`), next);
}

export function kv(pairs, testid) {
  return h('dl', { class: 'kv', 'data-testid': testid },
    pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

export function json(value, testid) {
  return h('pre', { class: 'json', 'data-testid': testid }, JSON.stringify(value, null, 2));
}

export function stateBadge(state) {
  return h('span', { class: `badge st-${state}` }, String(state).replace(/_/g, ' '));
}
