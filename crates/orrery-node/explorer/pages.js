// One function per page: each gets the <main> element and the route's parameters, fetches
// what it needs from the node's API and renders it. They throw ApiError on failure; app.js
// turns that into a visible message.

import {
  api, h, link, short, hashLink, accountLink, providerLink, blockLink, leaseLink, orr, num, pct,
  time, ago, stat, card, table, notice, pager, kv, json, stateBadge, ApiError,
} from './ui.js';

const LEASE_STATES = ['active', 'awaiting_start', 'running', 'sealed', 'checking', 'disputed',
  'committed', 'settled', 'failed', 'timed_out'];

function pageTitle(text, sub) {
  return h('div', { class: 'page-head' }, h('h1', {}, text), sub ? h('div', { class: 'muted' }, sub) : null);
}

// ---------- overview ----------

let charts = [];

function destroyCharts() {
  for (const [c, observer] of charts) {
    observer.disconnect();
    c.destroy();
  }
  charts = [];
}

// Pages render detached and are swapped in whole, so a chart learns its width when it is
// laid out (and again whenever its box changes: rotation, resizing).
function chart(container, title, series, data, testid, opts = {}) {
  const width = 560;
  const el = h('div', { class: 'chart', 'data-testid': testid });
  container.appendChild(el);
  if (typeof uPlot === 'undefined') {
    el.appendChild(h('p', { class: 'muted' }, 'Charts unavailable: uPlot did not load.'));
    return;
  }
  const css = getComputedStyle(document.documentElement);
  const axisColor = css.getPropertyValue('--muted').trim() || '#999';
  const gridColor = css.getPropertyValue('--line').trim() || '#333';
  const axis = { stroke: axisColor, grid: { stroke: gridColor, width: 1 }, ticks: { stroke: gridColor } };
  const u = new uPlot({
    title,
    width,
    height: 240,
    series: [{ label: 'time' }, ...series],
    axes: opts.axes || [axis, { ...axis, size: opts.axisSize || 70 }],
    scales: opts.scales || { x: { time: true } },
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
  }, data, el);
  const observer = new ResizeObserver(() => {
    const w = Math.floor(el.clientWidth);
    if (w > 0 && Math.abs(w - u.width) > 2) u.setSize({ width: w, height: 240 });
  });
  observer.observe(el);
  charts.push([u, observer]);
}

export async function overview(main) {
  const [o, s, latest] = await Promise.all([
    api('/overview'), api('/series?points=300'), api('/blocks?limit=8'),
  ]);
  destroyCharts();
  const finality = o.block_interval_ms ? `${(o.block_interval_ms / 1000).toFixed(2)} s blocks` : '—';
  const stats = h('div', { class: 'stats' },
    stat('Finalized height', num(o.height), 'stat-height', `${ago(o.last_block_time_ms)} · ${finality}`),
    stat('Validators', num(o.validators), 'stat-validators', o.syncing ? 'catching up' : 'finalizing'),
    stat('Providers online', `${num(o.providers.online)} / ${num(o.providers.registered)}`, 'stat-providers-online',
      `signed a tx within ${num(o.providers.online_window_blocks)} blocks`),
    stat('CPU cores online', num(o.cpu_cores_online), 'stat-cpus',
      `${num(o.gpus_online.reduce((a, g) => a + g.gpus, 0))} GPUs online`),
    stat('Jobs running', num(o.jobs.running), 'stat-jobs-running', `${num(o.jobs.opened)} opened`),
    stat('Jobs settled', num(o.jobs.settled), 'stat-jobs-settled',
      `${num(o.jobs.failed)} failed · ${num(o.jobs.timed_out)} timed out`),
    stat('Checks', num(o.verification.checks), 'stat-checks', `${num(o.verification.checks_passed)} agreed`),
    stat('Disputes', num(o.verification.disputes), 'stat-disputes',
      `${num(o.verification.referee_rulings)} referee rulings · ${num(o.verification.tiebreaks)} tie-breaks`),
    stat('Slashes', num(o.verification.slashes), 'stat-slashes', `${orr(o.verification.slashed)} slashed`),
    stat('Supply', orr(supplyTotal(o.supply)), 'stat-supply',
      `minted ${orr(o.supply.minted)} · burned ${orr(o.supply.burned)}`),
  );
  const gpuTable = table([
    { label: 'GPU model', cell: (g) => g.model },
    { label: 'GPUs', cell: (g) => num(g.gpus), class: 'num' },
    { label: 'Machines', cell: (g) => num(g.providers), class: 'num' },
  ], o.gpus_online, 'gpu-table');
  const priceTable = table([
    { label: 'Resource', cell: (p) => p.resource },
    { label: 'Median price', cell: (p) => h('span', {}, `${orr(p.median)} / ${p.unit} `, h('span', { class: 'muted' }, `($${p.median_usd.toFixed(3)})`)), class: 'num' },
    { label: 'Reference cloud', cell: (p) => (p.reference ? `${p.reference}: $${p.reference_usd.toFixed(3)}` : '—') },
    { label: 'Saving', cell: (p) => savingCell(p.saving_pct), class: 'num' },
    { label: 'Offers', cell: (p) => num(p.offers), class: 'num' },
  ], o.prices, 'prices-table');
  const chartsCard = card('Over time');
  const grid = h('div', { class: 'chart-grid' });
  chartsCard.appendChild(grid);
  const blocks = table([
    { label: 'Height', cell: (b) => blockLink(b.height) },
    { label: 'Hash', cell: (b) => hashLink('blocks', b.hash) },
    { label: 'Txs', cell: (b) => num(b.tx_count), class: 'num' },
    { label: 'Time', cell: (b) => ago(b.time_ms) },
  ], latest.items, 'latest-blocks');
  main.replaceChildren(
    pageTitle('Network overview', `${o.chain_id} · indexed to ${num(o.indexed_height)}${
      o.blocks_without_outcome ? ` · ${num(o.blocks_without_outcome)} blocks indexed without their outcome: counters undercount` : ''}`),
    stats,
    chartsCard,
    h('div', { class: 'two-col' },
      card('Prices: median listed price of online providers', priceTable,
        h('p', { class: 'muted small' },
          `Reference: public on-demand cloud list prices (2026), see docs/explorer.md. ORR has no market price on chain; the comparison assumes 1 ORR = $${o.usd_per_orr}.`)),
      card('GPUs online by model', o.gpus_online.length ? gpuTable
        : h('p', { class: 'muted', 'data-testid': 'gpu-table' }, `No GPU machines online; ${num(o.cpu_cores_online)} CPU cores are.`))),
    card('Latest blocks', blocks),
  );
  const t = s.times_ms.map((ms) => ms / 1000);
  chart(grid, 'Total supply (ORR)', [
    { label: 'supply', stroke: '#f5b942', width: 2 },
  ], [t, s.supply], 'chart-supply', { axisSize: 100 });
  chart(grid, 'Minted and burned (ORR, cumulative)', [
    { label: 'minted', stroke: '#6ea8fe', width: 2 },
    { label: 'burned', stroke: '#f87171', width: 2 },
  ], [t, s.minted, s.burned], 'chart-minted-burned');
  chart(grid, 'Jobs, checks, disputes and slashes (cumulative)', [
    { label: 'settled', stroke: '#4ade80', width: 2 },
    { label: 'failed', stroke: '#f87171', width: 2 },
    { label: 'checks', stroke: '#6ea8fe', width: 2 },
    { label: 'disputes', stroke: '#f5b942', width: 2 },
    { label: 'slashes', stroke: '#c084fc', width: 2 },
  ], [t, s.settled, s.failed, s.checks, s.disputes, s.slashes], 'chart-jobs');
}

function supplyTotal(s) {
  // genesis + minted − burned, exactly: amounts are "12.5 ORR" with at most 9 decimals.
  const D = 9;
  const unit = 10n ** BigInt(D);
  const toUnits = (a) => {
    const [i, f = ''] = String(a).replace(/\s*ORR$/, '').split('.');
    return BigInt(i) * unit + BigInt((f + '0'.repeat(D)).slice(0, D));
  };
  const u = toUnits(s.genesis) + toUnits(s.minted) - toUnits(s.burned);
  const i = u / unit;
  const f = (u % unit).toString().padStart(D, '0').replace(/0+$/, '');
  return f ? `${i}.${f}` : `${i}`;
}

function savingCell(p) {
  if (p === null || p === undefined) return '—';
  return h('span', { class: p >= 0 ? 'good' : 'bad' }, p >= 0 ? `${p.toFixed(1)}% cheaper` : `${(-p).toFixed(1)}% dearer`);
}

// ---------- providers ----------

const providerState = { q: '', sort: 'stake', order: 'desc', cursor: null, stack: [], next: null };

function gpuText(hw) {
  return hw.gpu ? `${hw.gpu.count} × ${hw.gpu.model} (${Math.round(hw.gpu.vram_mib / 1024)} GiB)` : 'CPU only';
}

// Online: bonded and seen lately (the node's index) and not taken offline by a missed
// challenge (the chain).
function onlineBadge(p) {
  const a = p.activity;
  if (!a) return '—';
  const missed = p.challenges && !p.challenges.online;
  const online = a.online && !missed;
  return h('span', { class: `badge ${online ? 'st-settled' : 'st-timed_out'}`,
    title: missed ? 'missed or failed its last challenge: its offers leave routing until it answers one' : '' },
  online ? 'online' : (missed ? 'offline (challenge)' : 'offline'));
}

const flops = (f) => (f === undefined || f === null ? '—' : `${(f / 1e9).toFixed(1)} GFLOP/s`);
const challengesOf = (p) => p.challenges || {};

export async function providers(main, params, rerender) {
  const st = providerState;
  const qs = new URLSearchParams({ sort: st.sort, order: st.order, limit: '25' });
  if (st.q) qs.set('q', st.q);
  if (st.cursor) qs.set('cursor', st.cursor);
  const page = await api(`/providers?${qs}`);
  st.next = page.next_cursor || null;
  const search = h('input', { type: 'search', value: st.q, placeholder: 'Filter: id prefix, region, GPU model, "cpu"',
    'data-testid': 'providers-filter', 'aria-label': 'Filter providers' });
  const sort = h('select', { 'data-testid': 'providers-sort', 'aria-label': 'Sort by' },
    [['stake', 'stake'], ['price', 'price'], ['reputation', 'reputation'], ['uptime', 'uptime'], ['score', 'proven score'], ['id', 'id']]
      .map(([v, l]) => h('option', { value: v, selected: v === st.sort }, `sort by ${l}`)));
  const order = h('select', { 'data-testid': 'providers-order', 'aria-label': 'Order' },
    h('option', { value: 'desc', selected: st.order === 'desc' }, 'high → low'),
    h('option', { value: 'asc', selected: st.order === 'asc' }, 'low → high'));
  const apply = () => {
    st.q = search.value.trim(); st.sort = sort.value; st.order = order.value;
    st.cursor = null; st.stack = []; rerender();
  };
  search.addEventListener('change', apply);
  sort.addEventListener('change', apply);
  order.addEventListener('change', apply);
  const rows = table([
    { label: 'Provider', cell: (p) => providerLink(p.id) },
    { label: 'Status', cell: (p) => onlineBadge(p) },
    { label: 'Hardware', cell: (p) => `${gpuText(p.offer.hardware)} · ${p.offer.hardware.cpu_cores} cores · ${p.offer.hardware.ram_gib} GiB` },
    { label: 'Proven', cell: (p) => h('span', { 'data-testid': 'provider-proven', title: 'throughput proven by challenges ÷ claimed' }, pct(challengesOf(p).proven_score_bps)), class: 'num' },
    { label: 'Region', cell: (p) => p.offer.region },
    { label: 'Price', cell: (p) => priceText(p.offer.prices), class: 'num' },
    { label: 'Stake', cell: (p) => orr(p.stake), class: 'num' },
    { label: 'Reputation', cell: (p) => pct(p.activity && p.activity.reputation_bps), class: 'num' },
    { label: 'Uptime', cell: (p) => h('span', { 'data-testid': 'provider-uptime-cell', title: 'challenges answered ÷ decided (answered + missed)' }, pct(challengesOf(p).uptime_bps)), class: 'num' },
    { label: 'Slashes', cell: (p) => num(p.activity ? p.activity.slashes : p.reputation.slashed), class: 'num' },
  ], page.items, 'providers-table', (p) => ({ 'data-testid': 'provider-row', 'data-id': p.id }));
  main.replaceChildren(
    pageTitle('Providers', 'Everyone offering hardware, from the last finalized state'),
    h('div', { class: 'toolbar' }, search, sort, order),
    card(null, rows, pager(st, rerender)),
  );
}

function priceText(p) {
  const parts = [];
  const zero = (a) => /^0( ORR)?$/.test(String(a));
  if (!zero(p.gpu_hour)) parts.push(`${orr(p.gpu_hour)}/GPU-h`);
  if (!zero(p.cpu_core_hour)) parts.push(`${orr(p.cpu_core_hour)}/core-h`);
  if (!zero(p.mega_unit)) parts.push(`${orr(p.mega_unit)}/M units`);
  return parts.join(' · ') || 'free';
}

export async function provider(main, [id], rerender, pageState) {
  const st = pageState.leases || (pageState.leases = { cursor: null, stack: [], next: null });
  const [p, leases, account] = await Promise.all([
    api(`/providers/${encodeURIComponent(id)}`),
    api(`/providers/${encodeURIComponent(id)}/leases?limit=20${st.cursor ? `&cursor=${st.cursor}` : ''}`),
    api(`/accounts/${encodeURIComponent(id)}`),
  ]);
  st.next = leases.next_cursor || null;
  const a = p.activity || {};
  const c = challengesOf(p);
  const r = p.reputation;
  main.replaceChildren(
    pageTitle('Provider', h('span', { class: 'mono break' }, p.id)),
    h('div', { class: 'stats' },
      stat('Status', onlineBadge(p), 'provider-status', a.last_seen ? `last tx at #${a.last_seen}` : 'no tx seen'),
      stat('Earned', orr(p.earned), 'provider-earned', 'paid for verified work, after fees'),
      stat('Stake', orr(p.stake), 'provider-stake', `balance ${orr(account.balance)}`),
      stat('Slashes', num(a.slashes ?? r.slashed), 'provider-slashes', `${orr(a.slashed)} taken`),
      stat('Reputation', pct(a.reputation_bps), 'provider-reputation',
        `${num(r.settled)} settled · ${num(r.checked)} checked · ${num(r.failed)} failed · ${num(r.timed_out)} timed out`),
      stat('Uptime', pct(c.uptime_bps), 'provider-uptime',
        `${num(c.answered ?? 0)} of ${num(c.drawn ?? 0)} challenges answered · ${num(c.missed ?? 0)} missed`),
      stat('Proven', pct(c.proven_score_bps), 'provider-proven',
        c.proven_flops && c.proven_flops >= c.claimed_flops
          ? `at or above its claimed ${flops(c.claimed_flops)}`
          : `${flops(c.proven_flops)} of ${flops(c.claimed_flops)} claimed`),
    ),
    card('Offer', kv([
      ['Hardware', `${gpuText(p.offer.hardware)} · ${p.offer.hardware.cpu_cores} cores · ${p.offer.hardware.ram_gib} GiB RAM`],
      ['Region', p.offer.region],
      ['Endpoint', h('span', { class: 'mono break' }, p.offer.endpoint)],
      ['Prices', priceText(p.offer.prices)],
      ['Registered at', blockLink(p.registered_at)],
      ['Active leases', num(p.active_leases)],
      ['Account', accountLink(p.id)],
    ], 'provider-offer')),
    card('Leases (newest first)', leaseTable(leases.items, 'provider-leases'), pager(st, rerender)),
  );
}

function leaseTable(items, testid) {
  return table([
    { label: 'Lease', cell: (l) => leaseLink(l.id) },
    { label: 'State', cell: (l) => stateBadge(l.state) },
    { label: 'Verification', cell: (l) => verificationText(l.verification) },
    { label: 'Provider', cell: (l) => providerLink(l.provider) },
    { label: 'Requester', cell: (l) => accountLink(l.requester) },
    { label: 'Escrow held', cell: (l) => orr(l.escrow), class: 'num' },
    { label: 'Opened', cell: (l) => blockLink(l.opened_at) },
  ], items, testid, (l) => ({ 'data-testid': 'job-row', 'data-id': l.id, 'data-state': l.state }));
}

function verificationText(v) {
  if (typeof v === 'string') return v;
  if (v && v.redundant) return `redundant ×${v.redundant.k}`;
  return JSON.stringify(v);
}

// ---------- jobs ----------

const jobsState = { state: '', cursor: null, stack: [], next: null };

export async function jobs(main, params, rerender) {
  const st = jobsState;
  const qs = new URLSearchParams({ order: 'desc', limit: '25' });
  if (st.state) qs.set('state', st.state);
  if (st.cursor) qs.set('cursor', st.cursor);
  const page = await api(`/leases?${qs}`);
  st.next = page.next_cursor || null;
  const filter = h('select', { 'data-testid': 'jobs-filter', 'aria-label': 'Filter by state' },
    h('option', { value: '' }, 'all states'),
    LEASE_STATES.map((s) => h('option', { value: s, selected: s === st.state }, s.replace(/_/g, ' '))));
  filter.addEventListener('change', () => { st.state = filter.value; st.cursor = null; st.stack = []; rerender(); });
  main.replaceChildren(
    pageTitle('Jobs', 'Every lease, newest first'),
    h('div', { class: 'toolbar' }, filter),
    card(null, leaseTable(page.items, 'jobs-table'), pager(st, rerender)),
  );
}

// ---------- lease evidence ----------

const KIND_TEXT = {
  open_lease: 'Opened: escrow locked', start_lease: 'Started by the provider',
  commit_result: 'Result sealed by the provider', check_drawn: 'Check drawn from the block seed',
  commit_check: 'Verifier sealed its claim', reveal_result: 'Claim revealed',
  result_checked: 'Verifiers agreed', dispute_opened: 'Dispute opened', dispute_move: 'Bisection move',
  adjudicate: 'Referee input submitted', referee_ruled: 'Referee ruled',
  tiebreak_drawn: 'Tie-breakers drawn', slashed: 'Slashed', lease_failed: 'Failed: requester refunded',
  lease_settled: 'Settled: provider paid', lease_timed_out: 'Timed out', settle_lease: 'Accepted by the requester',
  check_absent: 'Missed a deadline',
};

function eventLine(e) {
  const skip = new Set(['event', 'lease']);
  const parts = Object.entries(e).filter(([k]) => !skip.has(k)).map(([k, v]) => {
    let text = typeof v === 'object' ? JSON.stringify(v) : String(v);
    if (typeof v === 'string' && /^[0-9a-f]{64}$/.test(v)) text = short(v, 10, 6);
    if (typeof v === 'string' && /^orr[0-9a-f]{40}$/.test(v)) text = short(v, 9, 6);
    return `${k.replace(/_/g, ' ')}: ${text}`;
  });
  return h('li', {}, h('span', { class: 'ev' }, e.event.replace(/_/g, ' ')), parts.length ? ` — ${parts.join(', ')}` : '');
}

export async function lease(main, [id]) {
  if (!/^\d+$/.test(id)) throw new ApiError(400, 'bad_number', `"${id}" is not a lease number`);
  let ev;
  try {
    ev = await api(`/leases/${id}/evidence`);
  } catch (e) {
    // Cluster leases share the lease numbers: an id that is no single-provider lease may be one.
    if (e.status === 404) return clusterLease(main, [id]);
    throw e;
  }
  const l = ev.lease;
  const entry = (t) => h('li', { class: `tl ${t.ok ? '' : 'refused'}`, 'data-testid': 'timeline-entry', 'data-kind': t.kind,
    'data-events': t.events.map((e) => e.event).join(' ') },
  h('div', { class: 'tl-head' },
    h('strong', {}, KIND_TEXT[t.kind] || t.kind.replace(/_/g, ' ')),
    t.ok ? null : h('span', { class: 'badge st-failed' }, 'refused'),
    h('span', { class: 'muted' }, ' · ', blockLink(t.height), t.time_ms ? ` · ${time(t.time_ms)}` : ''),
    t.tx ? h('span', { class: 'muted' }, ' · tx ', hashLink('txs', t.tx)) : h('span', { class: 'muted' }, ' · end of block'),
    t.sender ? h('span', { class: 'muted' }, ' · by ', accountLink(t.sender)) : null),
  t.message ? h('div', { class: 'bad small' }, t.message) : null,
  t.events.length ? h('ul', { class: 'events' }, t.events.map(eventLine)) : null);
  // Refused transactions changed nothing; runs of them (an agent resending with a stale
  // nonce) fold into one line that opens on demand.
  const items = [];
  for (let i = 0; i < ev.timeline.length;) {
    if (ev.timeline[i].ok) { items.push(entry(ev.timeline[i])); i += 1; continue; }
    let j = i;
    while (j < ev.timeline.length && !ev.timeline[j].ok) j += 1;
    const run = ev.timeline.slice(i, j);
    items.push(run.length === 1 ? entry(run[0]) : h('li', { class: 'tl refused', 'data-testid': 'timeline-refused' },
      h('details', {}, h('summary', {}, `${run.length} refused transactions (they changed nothing): `,
        h('span', { class: 'muted' }, run[0].message || '')), h('ol', { class: 'timeline nested' }, run.map(entry)))));
    i = j;
  }
  const timeline = h('ol', { class: 'timeline', 'data-testid': 'lease-timeline' }, items);
  const disputeKind = ev.timeline.flatMap((t) => t.events).find((e) => e.event === 'dispute_opened');
  const rounds = ev.rounds.length ? table([
    { label: 'Round', cell: (r) => num(r.round) },
    { label: 'Provider’s children (left / right)', cell: (r) => moveCell(r, 'provider') },
    { label: 'Challenger’s children (left / right)', cell: (r) => moveCell(r, 'challenger') },
    { label: 'Narrowed to', cell: (r) => (r.narrowed_to ? `leaves ${r.narrowed_to[0]}…${r.narrowed_to[0] + r.narrowed_to[1] - 1}` : '—') },
  ], ev.rounds, 'bisection-rounds') : h('p', { class: 'muted', 'data-testid': 'bisection-rounds' }, disputeKind
    ? `No bisection was needed: the dispute was over the ${String(disputeKind.kind).replace(/_/g, ' ')} (the claims' checkpoints ${disputeKind.kind === 'checkpoints' ? 'differ' : 'agree'}), which the referee decides in one execution.`
    : 'Not disputed: no bisection rounds.');
  const verdict = ev.verdict ? verdictView(ev.verdict) : h('p', { class: 'muted', 'data-testid': 'verdict' }, 'No referee verdict (not disputed, or still open).');
  const transfers = table([
    { label: 'What', cell: (t) => t.kind.replace(/_/g, ' ') },
    { label: 'From', cell: (t) => party(t.from) },
    { label: 'To', cell: (t) => party(t.to) },
    { label: 'Amount', cell: (t) => orr(t.amount), class: 'num' },
    { label: 'Block', cell: (t) => blockLink(t.height) },
    { label: 'Tx', cell: (t) => (t.tx ? hashLink('txs', t.tx) : 'end of block') },
  ], ev.transfers, 'transfers', (t) => ({ 'data-kind': t.kind }));
  const detail = l.state_detail || {};
  main.replaceChildren(
    pageTitle(`Lease ${l.id}`, h('span', {}, stateBadge(l.state), ev.complete ? '' : ' · some of its blocks were indexed without their outcome: the evidence may be incomplete')),
    card('Terms', kv([
      ['Requester', accountLink(l.requester)],
      ['Provider', providerLink(l.provider)],
      ['Job bundle', h('span', { class: 'mono break' }, l.job)],
      ['Verification', verificationText(l.verification)],
      ['Verifiers drawn', ev.verifiers.length ? h('span', {}, ev.verifiers.map((v, i) => [i ? ', ' : '', providerLink(v)])) : 'none'],
      ['Escrow', (() => {
        const locked = ev.transfers.find((t) => t.kind === 'escrow_locked');
        return `${locked ? `${orr(locked.amount)} locked at opening · ` : ''}${orr(l.escrow)} held now`;
      })()],
      ['Resources', `${l.terms.resources.gpus} GPU · ${l.terms.resources.cpu_cores} cores · ${l.terms.resources.ram_gib} GiB`],
      ['Agreed prices', priceText(l.terms.prices)],
      ['Opened / start by / deadline', h('span', {}, blockLink(l.opened_at), ' / ', blockLink(l.start_by), ' / ', blockLink(l.deadline))],
      detail.failure ? ['Job failed', h('span', { 'data-testid': 'job-failure' }, failureText(detail.failure))] : null,
      detail.output && !detail.failure ? ['Output', h('span', { class: 'mono break' }, detail.output)] : null,
      detail.checkpoint_root ? ['Checkpoint root', h('span', { class: 'mono break' }, detail.checkpoint_root)] : null,
    ], 'lease-terms')),
    card('Timeline', timeline),
    h('div', { class: 'two-col' },
      card('Dispute: bisection rounds', rounds),
      card('Referee’s verdict', verdict)),
    card('Transfers', transfers),
  );
}

// ---------- cluster lease ----------

// A cluster training lease: its members and their pay, and every round with each worker's
// loss, who missed it, and which workers' rounds were checked and how.
export async function clusterLease(main, [id]) {
  if (!/^\d+$/.test(id)) throw new ApiError(400, 'bad_number', `"${id}" is not a lease number`);
  const c = await api(`/cluster-leases/${id}`);
  const l = c.lease;
  const members = table([
    { label: 'Worker', cell: (m) => num(l.members.indexOf(m)) },
    { label: 'Provider', cell: (m) => providerLink(m.provider) },
    { label: 'Status', cell: (m) => stateBadge(m.status) },
    { label: 'Rounds paid', cell: (m) => num(m.rounds_paid), class: 'num' },
    { label: 'Paid', cell: (m) => orr(m.paid), class: 'num' },
    { label: 'Docked', cell: (m) => orr(m.docked), class: 'num' },
  ], l.members, 'cluster-members');
  const checkText = (r) => (r.checks.length ? r.checks.map((k) => {
    const commit = r.commits.find((x) => x.worker === k.worker);
    const outcome = commit && commit.status === 'excluded' ? 'excluded' : commit && commit.status === 'paid' ? 'upheld' : 'open';
    return `${short(k.worker)}: ${outcome}${k.tiebreak ? ' (tie-break)' : ''}`;
  }).join('; ') : '—');
  const rounds = table([
    { label: 'Round', cell: (r) => num(r.round), class: 'num' },
    { label: 'Closed at', cell: (r) => (r.closed_at == null ? 'open' : blockLink(r.closed_at)) },
    { label: 'Mean loss', cell: (r) => (r.mean_loss == null ? '—' : r.mean_loss.toFixed(4)), class: 'num' },
    { label: 'Losses', cell: (r) => r.commits.map((x) => `${short(x.worker)} ${x.loss.toFixed(4)}`).join(' · ') },
    { label: 'Missed', cell: (r) => (r.missed.length ? r.missed.map(short).join(', ') : '—') },
    { label: 'Checked', cell: checkText },
    { label: 'Recompute', cell: (r) => (r.recompute ? 'yes' : '') },
  ], c.rounds, 'cluster-rounds', (r) => ({ 'data-checked': r.checked.length }));
  main.replaceChildren(
    pageTitle(`Cluster lease ${l.id}`, h('span', {}, stateBadge(l.phase), ` · ${l.members.length} workers · round ${Math.min(l.round, l.rounds)} of ${l.rounds}`)),
    card('Terms', kv([
      ['Requester', accountLink(l.requester)],
      ['Job bundle', h('span', { class: 'mono break' }, l.job)],
      ['Rounds × inner steps (H)', `${num(l.rounds)} × ${num(l.inner_steps)}`],
      ['Round deadline', `${num(l.round_blocks)} blocks`],
      ['Checked', pct(l.check_bps)],
      ['Resources per worker', `${l.terms.resources.gpus} GPU · ${l.terms.resources.cpu_cores} cores · ${l.terms.resources.ram_gib} GiB`],
      ['Agreed prices (per worker-round)', priceText(l.terms.prices)],
      ['Escrow held', orr(l.escrow)],
      ['Refunded at the end', orr(l.refunded)],
      ['Opened', blockLink(l.opened_at)],
    ], 'cluster-terms')),
    card('Members', members),
    card('Rounds', c.rounds.length ? rounds : h('p', { class: 'muted', 'data-testid': 'cluster-rounds' }, 'No round committed yet.')),
  );
}

// A job's own deterministic failure (a failure claim): where and why. The requester paid for
// the work done up to it; the provider was not at fault.
function failureText(f) {
  const at = typeof f.at === 'string' ? f.at : `step ${f.at.step}`;
  return `${String(f.reason).replace(/_/g, ' ')} at ${at} — the job's own failure, paid for the work done`;
}

function moveCell(r, role) {
  const m = r.moves.find((x) => x.role === role);
  if (!m) return '—';
  return h('span', { class: 'mono small' }, short(m.left, 8, 4), ' / ', short(m.right, 8, 4), ' ', h('span', { class: 'muted' }, '(', hashLink('txs', m.tx), ')'));
}

function verdictView(v) {
  if (v.event === 'referee_ruled') {
    return h('div', { 'data-testid': 'verdict' },
      kv([
        ['Disputed', String(v.kind).replace(/_/g, ' ')],
        ['Step executed', v.step === null || v.step === undefined ? '—' : num(v.step)],
        ['Provider right', h('span', { class: v.provider_right ? 'good' : 'bad' }, v.provider_right ? 'yes' : 'no')],
        ['Challenger right', h('span', { class: v.challenger_right ? 'good' : 'bad' }, v.challenger_right ? 'yes' : 'no')],
        ['Referee fuel', num(v.fuel)],
        v.failure ? ['The job failed', failureText(v.failure)] : null,
      ]));
  }
  return h('div', { 'data-testid': 'verdict' }, h('p', {}, `The referee could not execute the step (${v.reason}); tie-breakers decide by majority:`),
    h('p', {}, (v.verifiers || []).map((x, i) => [i ? ', ' : '', providerLink(x)])));
}

function party(p) {
  if (/^orr[0-9a-f]{40}$/.test(p)) return accountLink(p);
  const m = /^stake of (orr[0-9a-f]{40})$/.exec(p);
  if (m) return h('span', {}, 'stake of ', providerLink(m[1]));
  return h('span', { class: 'muted' }, p);
}

// ---------- blocks and transactions ----------

const blocksState = { cursor: null, stack: [], next: null };

export async function blocks(main, params, rerender) {
  const st = blocksState;
  const page = await api(`/blocks?limit=25${st.cursor ? `&cursor=${st.cursor}` : ''}`);
  st.next = page.next_cursor || null;
  main.replaceChildren(
    pageTitle('Blocks', 'Finalized blocks, newest first'),
    card(null, table([
      { label: 'Height', cell: (b) => blockLink(b.height) },
      { label: 'Hash', cell: (b) => hashLink('blocks', b.hash) },
      { label: 'Transactions', cell: (b) => num(b.tx_count), class: 'num' },
      { label: 'Time', cell: (b) => time(b.time_ms) },
    ], page.items, 'blocks-table'), pager(st, rerender)),
  );
}

export async function block(main, [id]) {
  let height = id;
  if (/^(0x)?[0-9a-fA-F]{64}$/.test(id)) {
    const r = await api(`/search?q=${encodeURIComponent(id)}`);
    const m = r.matches.find((x) => x.kind === 'block');
    if (!m) throw new ApiError(404, 'block_not_found', `no block has hash ${id}`);
    height = m.id;
  } else if (!/^\d+$/.test(id)) {
    throw new ApiError(400, 'bad_number', `"${id}" is neither a block height nor a block hash`);
  }
  const [b, receipts] = await Promise.all([
    api(`/blocks/${height}`),
    api(`/blocks/${height}/receipts`).catch(() => null),
  ]);
  const byTx = new Map((receipts ? receipts.receipts : []).map((r) => [r.tx, r]));
  main.replaceChildren(
    pageTitle(`Block #${num(b.height)}`, time(b.time_ms)),
    card('Header', kv([
      ['Hash', h('span', { class: 'mono break' }, b.hash)],
      ['Parent', b.height > 1 ? link(`#/blocks/${b.height - 1}`, b.parent, { class: 'mono break' }) : h('span', { class: 'mono break' }, b.parent)],
      ['Seed', h('span', { class: 'mono break' }, b.seed)],
      ['Transactions', num(b.tx_count)],
      ['Outcome', receipts && receipts.outcome_known ? 'known (receipts below)' : 'not known to this node'],
    ], 'block-header'), h('div', { class: 'pager' },
      b.height > 1 ? link(`#/blocks/${b.height - 1}`, '← previous', { class: 'btn' }) : h('span'),
      link(`#/blocks/${b.height + 1}`, 'next →', { class: 'btn' }))),
    card('Transactions', table([
      { label: 'Hash', cell: (t) => hashLink('txs', t.hash) },
      { label: 'Kind', cell: (t) => (t.body && t.body.type ? t.body.type.replace(/_/g, ' ') : '?') },
      { label: 'Sender', cell: (t) => accountLink(t.sender) },
      { label: 'Result', cell: (t) => { const r = byTx.get(t.hash); return r ? (r.ok ? h('span', { class: 'good' }, 'applied') : h('span', { class: 'bad', title: r.message }, 'refused')) : '—'; } },
      { label: 'Lease', cell: (t) => (t.body && typeof t.body.lease === 'number' ? leaseLink(t.body.lease) : '') },
    ], b.txs, 'block-txs')),
    receipts && receipts.events.length ? card('End-of-block events', h('ul', { class: 'events', 'data-testid': 'block-events' }, receipts.events.map(eventLine))) : null,
  );
}

export async function tx(main, [hash]) {
  if (!/^(0x)?[0-9a-fA-F]{64}$/.test(hash)) {
    throw new ApiError(400, 'bad_hash', `"${hash}" is not a transaction hash (64 hex characters)`);
  }
  const t = await api(`/txs/${hash.replace(/^0x/, '').toLowerCase()}`);
  const r = t.receipt;
  const body = t.tx.body || {};
  main.replaceChildren(
    pageTitle(`Transaction: ${(body.type || 'unknown').replace(/_/g, ' ')}`, h('span', { class: 'mono break' }, t.tx.hash)),
    card('Summary', kv([
      ['Block', h('span', {}, blockLink(t.height), ` · position ${t.index}`)],
      ['Sender', accountLink(t.tx.sender)],
      ['Nonce', num(t.tx.nonce)],
      ['Chain', t.tx.chain_id],
      typeof body.lease === 'number' ? ['Lease', leaseLink(body.lease)] : null,
      ['Result', r ? (r.ok ? h('span', { class: 'good', 'data-testid': 'tx-ok' }, 'applied') : h('span', { class: 'bad', 'data-testid': 'tx-ok' }, `refused: ${r.message}`)) : 'not known to this node'],
    ], 'tx-summary')),
    card('Body', json(shortenBody(body), 'tx-body')),
    card('Receipt', r ? h('div', { 'data-testid': 'tx-receipt' },
      r.events.length ? h('ul', { class: 'events' }, r.events.map(eventLine)) : h('p', { class: 'muted' }, 'No events.'),
      r.error ? json(r.error) : null) : h('p', { class: 'muted', 'data-testid': 'tx-receipt' }, 'This node indexed the block without its outcome.')),
  );
}

function shortenBody(v) {
  if (Array.isArray(v)) return v.length > 64 && v.every((x) => typeof x === 'number') ? `<${v.length} bytes>` : v.map(shortenBody);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, shortenBody(x)]));
  return v;
}

// ---------- accounts ----------

export async function account(main, [id], rerender, pageState) {
  if (!/^orr[0-9a-f]{40}$/.test(id)) {
    throw new ApiError(400, 'bad_account', `"${id}" is not an account id (orr followed by 40 hex characters)`);
  }
  const st = pageState.txs || (pageState.txs = { cursor: null, stack: [], next: null });
  const [a, txs, prov] = await Promise.all([
    api(`/accounts/${id}`),
    api(`/accounts/${id}/txs?brief=true&limit=20${st.cursor ? `&cursor=${st.cursor}` : ''}`),
    api(`/providers/${id}`).catch(() => null),
  ]);
  st.next = txs.next_cursor || null;
  main.replaceChildren(
    pageTitle('Account', h('span', { class: 'mono break' }, a.id)),
    h('div', { class: 'stats' },
      stat('Balance', orr(a.balance), 'account-balance'),
      stat('Next nonce', num(a.nonce), 'account-nonce'),
      prov ? stat('Provider', providerLink(a.id), 'account-provider', `stake ${orr(prov.stake)}`) : null),
    card('Transactions (newest first)', table([
      { label: 'Hash', cell: (t) => hashLink('txs', t.tx.hash) },
      { label: 'Kind', cell: (t) => (t.tx.body && t.tx.body.type ? t.tx.body.type.replace(/_/g, ' ') : '?') },
      { label: 'Block', cell: (t) => blockLink(t.height) },
      { label: 'From', cell: (t) => accountLink(t.tx.sender) },
      { label: 'Result', cell: (t) => (t.receipt ? (t.receipt.ok ? 'applied' : 'refused') : '—') },
    ], txs.items, 'account-txs'), pager(st, rerender)),
  );
}

// ---------- search results ----------

export async function search(main, [q]) {
  const r = await api(`/search?q=${encodeURIComponent(q)}`);
  if (r.matches.length === 1) {
    location.replace(r.matches[0].route);
    return 'redirect';
  }
  main.replaceChildren(
    pageTitle(`“${r.query}” names ${r.matches.length} things`),
    card(null, h('ul', { class: 'matches', 'data-testid': 'search-matches' },
      r.matches.map((m) => h('li', {}, link(m.route, `${m.kind} ${m.id}`))))),
  );
  return undefined;
}

// ---------- inference ----------

function tokenPrice(amount, usdPerOrr) {
  const v = Number(String(amount).replace(/ ORR$/, ''));
  if (!Number.isFinite(v)) return '—';
  return h('span', { title: `${orr(amount)} per million tokens` }, `$${(v * usdPerOrr).toFixed(3)} / 1M`);
}

// Inference amounts are fractions of a cent: shown in micro-ORR.
function microOrr(amount) {
  const v = Number(String(amount).replace(/ ORR$/, ''));
  if (!Number.isFinite(v)) return '—';
  return `${(v * 1e6).toLocaleString('en-US', { maximumFractionDigits: 1 })} µORR`;
}

function outcomeBadge(o) {
  const cls = { agreed: 'st-settled', provider_caught: 'st-failed', checker_wrong: 'st-disputed',
    no_majority: 'st-timed_out', unchecked: 'st-awaiting_start' }[o] || 'st-checking';
  return h('span', { class: `badge ${cls}` }, (o || 'open').replace(/_/g, ' '));
}

export async function inference(main) {
  const d = await api('/inference/overview');
  destroyCharts();
  const t = d.totals;
  const stats = h('div', { class: 'stats' },
    stat('Models served', num(d.catalog.length), 'stat-models', `${num(d.catalog.reduce((a, m) => a + m.providers, 0))} offers`),
    stat('Responses settled', num(t.responses), 'stat-responses', `${num(t.batches)} batches on chain`),
    stat('Paid to providers', microOrr(t.paid), 'stat-inference-paid', `${microOrr(t.refunded)} refunded to keys`),
    stat('Responses checked', num(t.checks), 'stat-inference-checks', `${num(t.agreed)} held up`),
    stat('Caught', num(t.caught), 'stat-inference-caught', 'answers found wrong: provider slashed, response refunded'),
  );
  const catalog = table([
    { label: 'Model', cell: (m) => h('span', { class: 'mono', title: `weights ${m.weights}` }, m.name) },
    { label: 'Kind', cell: (m) => m.kind },
    { label: 'Context', cell: (m) => num(m.context), class: 'num' },
    { label: 'Offers', cell: (m) => num(m.providers), class: 'num' },
    { label: 'Input', cell: (m) => tokenPrice(m.min_price_in, d.usd_per_orr), class: 'num' },
    { label: 'Output', cell: (m) => tokenPrice(m.min_price_out, d.usd_per_orr), class: 'num' },
  ], d.catalog, 'model-catalog');
  const refs = table([
    { label: 'Public API', cell: (r) => `${r.provider}: ${r.model}` },
    { label: 'Input', cell: (r) => `$${r.price_in_usd.toFixed(3)} / 1M`, class: 'num' },
    { label: 'Output', cell: (r) => (r.price_out_usd === null ? '—' : `$${r.price_out_usd.toFixed(3)} / 1M`), class: 'num' },
  ], d.references, 'token-references');
  const recent = table([
    { label: 'Batch', cell: (b) => link(`#/inference/batches/${b.id}`, `#${b.id}`) },
    { label: 'Provider', cell: (b) => providerLink(b.provider) },
    { label: 'Model', cell: (b) => b.model_name },
    { label: 'Responses', cell: (b) => num(b.responses), class: 'num' },
    { label: 'Settled at', cell: (b) => blockLink(b.settled_at) },
    { label: 'Checks', cell: (b) => h('span', {}, ...b.outcomes.map(outcomeBadge)) },
    { label: 'Paid', cell: (b) => microOrr(b.paid), class: 'num' },
    { label: 'Phase', cell: (b) => stateBadge(b.phase) },
  ], d.recent, 'inference-batches');
  const chartsCard = card('Over time');
  const grid = h('div', { class: 'chart-grid' });
  chartsCard.appendChild(grid);
  main.replaceChildren(
    pageTitle('Inference', 'OpenAI-compatible requests paid per token, a seed-drawn share re-executed bit for bit by another provider'),
    stats,
    chartsCard,
    h('div', { class: 'two-col' },
      card('Model catalog: lowest listed price per million tokens', catalog,
        h('p', { class: 'muted small' }, `In USD at 1 ORR = $${d.usd_per_orr}; hover for ORR.`)),
      card('Reference per-token prices of public APIs', refs,
        h('p', { class: 'muted small' }, `Public list prices (2026). The comparison assumes 1 ORR = $${d.usd_per_orr}.`))),
    card('Latest batches', recent),
  );
  const times = d.series.times_ms.map((ms) => ms / 1000);
  chart(grid, 'Responses settled (cumulative)', [
    { label: 'responses', stroke: '#6ea8fe', width: 2 },
    { label: 'checked', stroke: '#4ade80', width: 2 },
    { label: 'caught', stroke: '#f87171', width: 2 },
  ], [times, d.series.responses, d.series.checks, d.series.caught], 'chart-inference');
  chart(grid, 'Paid for inference (µORR, cumulative)', [
    { label: 'paid', stroke: '#f5b942', width: 2 },
  ], [times, d.series.paid.map((v) => v * 1e6)], 'chart-inference-paid');
}

export async function inferenceBatch(main, [id]) {
  const b = await api(`/inference/batches/${encodeURIComponent(id)}`);
  const checks = table([
    { label: 'Response', cell: (c) => num(c.index), class: 'num' },
    { label: 'Round', cell: (c) => num(c.round), class: 'num' },
    { label: 'Checkers', cell: (c) => h('span', {}, ...c.checkers.map((k) => h('span', { class: 'mono' },
      `${short(k.checker)}${k.missed ? ' (missed)' : k.revealed ? ' ✓' : k.sealed ? ' (sealed)' : ''} `))) },
    { label: 'Provider opened', cell: (c) => (c.opened ? 'yes' : 'no') },
    { label: 'Deadlines', cell: (c) => `seal #${c.seal_deadline} · reveal #${c.reveal_deadline}` },
    { label: 'Outcome', cell: (c) => outcomeBadge(c.outcome) },
  ], b.checks, 'batch-checks');
  main.replaceChildren(
    pageTitle(`Inference batch #${b.id}`, `${num(b.responses)} responses settled in one transaction`),
    card('Settlement', kv([
      ['Provider', providerLink(b.provider)],
      ['Paying key', h('span', { class: 'mono break' }, b.key)],
      ['Channel', String(b.channel)],
      ['Model (weights)', h('span', { class: 'mono break' }, b.model)],
      ['Commitment root', h('span', { class: 'mono break' }, b.root)],
      ['Batch file (requests)', h('span', { class: 'mono break' }, b.file)],
      ['Settled at', blockLink(b.settled_at)],
      ['Sampling rate', pct(b.sample_bps)],
      ['Held until checks end', microOrr(b.held)],
      ['Paid to provider', microOrr(b.paid)],
      ['Refunded to key', microOrr(b.refunded)],
      ['Phase', stateBadge(b.phase)],
    ], 'batch-settlement')),
    card('Checks drawn by the chain', b.checks.length ? checks
      : h('p', { class: 'muted', 'data-testid': 'batch-checks' }, 'No response of this batch was drawn.')),
  );
}

export async function receipt(main, [leaf]) {
  const r = await api(`/inference/receipts/${encodeURIComponent(leaf)}`);
  const c = r.commitment;
  main.replaceChildren(
    pageTitle('Inference receipt', h('span', { class: 'mono break' }, r.leaf)),
    card('What the provider signed', kv([
      ['Provider', providerLink(r.provider)],
      ['Model', `${r.model_name} (${short(c.model)})`],
      ['Tokens', `${num(c.tokens_in)} in · ${num(c.tokens_out)} out`],
      ['Charged', microOrr(c.charged)],
      ['Seed', String(c.seed)],
      ['Request hash', h('span', { class: 'mono break' }, c.request)],
      ['Output digest', h('span', { class: 'mono break' }, c.output)],
      ['Signature', h('span', { class: 'mono break' }, r.signature)],
      ['Served at', time(r.time_ms)],
      ['Settled in', r.batch === null || r.batch === undefined ? 'not yet settled'
        : link(`#/inference/batches/${r.batch}`, `batch #${r.batch}`)],
    ], 'receipt')),
  );
}

export { notice };
