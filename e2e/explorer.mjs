// End-to-end test of the Orrery explorer in headless Chromium (Debian's `chromium`, driven by
// playwright-core), against a node of a running devnet that has settled jobs and slashed a
// cheater.
//
//   node e2e/explorer.mjs <base-url> <screenshot-dir>
//
// It opens the overview and checks its figures and charts, follows a settled job to its
// evidence, follows the failed job to its dispute and the slashed cheater, checks that unknown
// ids and bad hashes, a node catching up and a failing API each show a clear message, renders
// the pages on a phone-sized screen, measures each page's load time (under a second) and saves
// a screenshot of every page. Exits non-zero with the reason on the first failure.

import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error('usage: node e2e/explorer.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LOAD_BUDGET_MS = 1000;
const STEP_TIMEOUT_MS = 15000;

mkdirSync(shots, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'orrery-e2e-'));
const timings = [];
let context;

function fail(msg) {
  throw new Error(msg);
}

function check(cond, msg) {
  if (!cond) fail(msg);
}

// Load a route in a fresh navigation and wait until its page says it is ready (or shows a
// message); returns the elapsed milliseconds, recorded against the budget.
async function load(page, route, name, { expect = 'ready', label = name, timed = true } = {}) {
  // From a blank page, so that every load is a whole page load (HTML, scripts, API calls),
  // not an in-page hash change.
  await page.goto('about:blank');
  const t0 = Date.now();
  await page.goto(`${base}/#${route}`, { waitUntil: 'commit' });
  const sel = `main[data-page="${name}"][data-state="${expect}"]`;
  try {
    await page.waitForSelector(sel, { timeout: STEP_TIMEOUT_MS });
  } catch {
    const state = await page.evaluate(() => [document.querySelector('main')?.dataset.page,
      document.querySelector('main')?.dataset.state, document.querySelector('main')?.innerText.slice(0, 400)]);
    fail(`${label}: page ${route} did not become ${expect} (page=${state[0]} state=${state[1]}): ${state[2]}`);
  }
  const ms = Date.now() - t0;
  if (timed) timings.push({ page: label, route, ms });
  return ms;
}

async function shot(page, file) {
  await page.screenshot({ path: join(shots, `${file}.png`), fullPage: true });
}

async function text(page, testid) {
  const el = await page.$(`[data-testid="${testid}"]`);
  check(el, `no element [data-testid=${testid}] on ${page.url()}`);
  return (await el.innerText()).trim();
}

const number = (s) => Number(String(s).replace(/[^0-9.]/g, ''));

async function main() {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1366, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] || await context.newPage();
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  // Nothing may be fetched from outside the node.
  const outside = [];
  page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith('data:')) outside.push(r.url()); });

  // 0. Warm-up (untimed): the browser's own start-up (processes, caches, compiling the
  // scripts once) is not the page's load time.
  await page.goto(`${base}/#/`);
  await page.waitForSelector('main[data-page=overview][data-state=ready]', { timeout: STEP_TIMEOUT_MS * 2 });
  await page.goto('about:blank');

  // 1. Overview: figures and charts.
  await load(page, '/', 'overview');
  const height = number(await text(page, 'stat-height-value'));
  check(height > 0, `overview shows height ${height}`);
  const settled = number(await text(page, 'stat-jobs-settled-value'));
  check(settled >= 1, `overview shows ${settled} settled jobs`);
  const slashes = number(await text(page, 'stat-slashes-value'));
  check(slashes >= 1, `overview shows ${slashes} slashes`);
  const online = await text(page, 'stat-providers-online-value');
  check(/^\d+ \/ \d+$/.test(online) && number(online.split('/')[0]) >= 1, `providers online: ${online}`);
  check(/ORR/.test(await text(page, 'stat-supply-value')), 'supply shown in ORR');
  for (const c of ['chart-supply', 'chart-minted-burned', 'chart-jobs']) {
    check(await page.$(`[data-testid=${c}] canvas`), `chart ${c} has no canvas (uPlot did not draw)`);
  }
  check(await page.$('[data-testid=prices-table] tbody tr'), 'prices table has rows');
  await shot(page, '01-overview');
  // Live: the head height moves with the node's event stream, without a reload.
  const head = await text(page, 'head-height');
  await page.waitForFunction((h) => {
    const t = document.querySelector('[data-testid=head-height]').textContent;
    return /^#\d/.test(t) && t !== h;
  }, head, { timeout: STEP_TIMEOUT_MS }).catch(() => fail(`the head height stayed at ${head}: no live updates`));

  // 2. A settled job's evidence, reached from the jobs list.
  await load(page, '/jobs', 'jobs');
  await page.selectOption('[data-testid=jobs-filter]', 'settled');
  await page.waitForSelector('[data-testid=job-row][data-state=settled]', { timeout: STEP_TIMEOUT_MS });
  await shot(page, '02-jobs');
  const settledId = await page.getAttribute('[data-testid=job-row][data-state=settled]', 'data-id');
  await page.click(`[data-testid=job-row][data-id="${settledId}"] a[href="#/leases/${settledId}"]`);
  await page.waitForSelector('main[data-page=lease][data-state=ready]', { timeout: STEP_TIMEOUT_MS });
  await load(page, `/leases/${settledId}`, 'lease', { label: 'lease (settled)' });
  const kinds = await page.$$eval('[data-testid=timeline-entry]', (els) => els.map((e) => e.dataset.kind));
  for (const k of ['open_lease', 'start_lease', 'commit_result']) {
    check(kinds.includes(k), `settled lease ${settledId}: timeline lacks ${k} (has ${kinds.join(', ')})`);
  }
  // Settled at the end of a block after the challenge window, or by the requester's accept.
  check(kinds.includes('lease_settled') || kinds.includes('settle_lease'),
    `settled lease ${settledId}: timeline lacks the settlement (has ${kinds.join(', ')})`);
  check(await page.$('[data-testid=transfers] tr[data-kind=provider_paid]'), `lease ${settledId}: no provider_paid transfer`);
  check(await page.$('[data-testid=lease-timeline] a[href^="#/txs/"]'), 'timeline links to transactions');
  check(await page.$('[data-testid=lease-timeline] a[href^="#/blocks/"]'), 'timeline links to blocks');
  await shot(page, '03-lease-settled');
  const txHref = await page.getAttribute('[data-testid=lease-timeline] a[href^="#/txs/"]', 'href');

  // 3. The failed jobs: a slash in each; the one with a dispute shows the referee's verdict.
  await load(page, '/jobs', 'jobs', { label: 'jobs (again)' });
  await page.selectOption('[data-testid=jobs-filter]', 'failed');
  await page.waitForSelector('[data-testid=job-row][data-state=failed]', { timeout: STEP_TIMEOUT_MS });
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=job-row]')]
    .every((r) => r.dataset.state === 'failed'), null, { timeout: STEP_TIMEOUT_MS });
  const failedIds = await page.$$eval('[data-testid=job-row][data-state=failed]', (rows) => rows.map((r) => r.dataset.id));
  // What happened, from the entries and the events inside them (a dispute opens inside the
  // reveal that shows the claims differ).
  const happened = () => page.$$eval('[data-testid=timeline-entry]',
    (els) => els.flatMap((e) => [e.dataset.kind, ...(e.dataset.events || '').split(' ')]).filter(Boolean));
  let failedId = null;
  let shown = null;
  for (const id of failedIds.slice(0, 6)) {
    await load(page, `/leases/${id}`, 'lease', { label: `lease ${id} (failed)` });
    shown = id;
    const fkinds = await happened();
    check(fkinds.includes('slashed'), `failed lease ${id}: no slash in the timeline (${fkinds.join(', ')})`);
    check(await page.$('[data-testid=transfers] tr[data-kind=slash_burned], [data-testid=transfers] tr[data-kind=slash_reward]'),
      `failed lease ${id}: no slash transfer`);
    if (!failedId || fkinds.includes('dispute_opened')) failedId = id;
    if (fkinds.includes('dispute_opened')) {
      if (fkinds.includes('referee_ruled')) {
        check(/Provider right/.test(await text(page, 'verdict')), `lease ${id}: verdict shows the referee's ruling`);
      }
      break;
    }
  }
  if (shown !== failedId) await load(page, `/leases/${failedId}`, 'lease', { label: 'lease (failed)', timed: false });
  await shot(page, '04-lease-disputed');
  const slashedParty = await page.$eval('[data-testid=timeline-entry][data-events~=slashed]',
    (el) => (el.innerText.match(/party: (orr[0-9a-f]{6})/) || [])[1]);
  const cheater = await page.$eval('[data-testid=lease-terms]', (el) => {
    const a = [...el.querySelectorAll('a[href^="#/providers/"]')][0];
    return a ? a.getAttribute('href').split('/').pop() : null;
  });
  check(cheater, 'lease page links its provider');
  check(!slashedParty || cheater.startsWith(slashedParty), `slashed ${slashedParty} is not the lease's provider ${cheater}`);
  await load(page, `/providers/${cheater}`, 'provider', { label: 'provider (slashed cheater)' });
  const cheaterSlashes = number(await text(page, 'provider-slashes-value'));
  check(cheaterSlashes >= 1, `cheater ${cheater} shows ${cheaterSlashes} slashes`);
  check(await page.$('[data-testid=provider-leases] [data-testid=job-row]'), 'provider page lists its leases');
  // Challenges: every devnet provider is drawn several times a run (the cheater too: its
  // hardware claim is honest), so its uptime is a percentage, not "—".
  const uptime = await text(page, 'provider-uptime-value');
  check(/%/.test(uptime), `provider page shows challenge uptime: ${uptime}`);
  await shot(page, '05-provider-slashed');

  // 4. Providers table, blocks, a block, a transaction, an account.
  await load(page, '/providers', 'providers');
  const rows = await page.$$('[data-testid=provider-row]');
  check(rows.length >= 2, `providers table has ${rows.length} rows`);
  const proven = await page.$$eval('[data-testid=provider-proven]', (els) => els.map((e) => e.textContent));
  check(proven.some((t) => /%/.test(t)), `a provider shows a proven score in place of n/a: ${proven.join(', ')}`);
  await shot(page, '06-providers');
  await load(page, '/blocks', 'blocks');
  await shot(page, '07-blocks');
  const blockHref = await page.getAttribute('[data-testid=blocks-table] a[href^="#/blocks/"]', 'href');
  await load(page, blockHref.slice(1), 'block');
  await shot(page, '08-block');
  await load(page, txHref.slice(1), 'tx');
  check((await text(page, 'tx-body')).includes('"type"'), 'tx body rendered');
  await shot(page, '09-tx');
  await load(page, `/accounts/${cheater}`, 'account');
  check(/ORR/.test(await text(page, 'account-balance-value')), 'account balance shown');
  await shot(page, '10-account');

  // Inference: the catalog beside public prices, counters, the latest batches, one batch.
  await load(page, '/inference', 'inference');
  const catalog = await text(page, 'model-catalog');
  check(catalog.includes('genesis-gpt2'), `model catalog lists genesis-gpt2: ${catalog.slice(0, 300)}`);
  check((await text(page, 'token-references')).includes('io.net'), 'reference prices shown');
  check(number(await text(page, 'stat-responses-value')) > 0, 'responses settled counted');
  check(number(await text(page, 'stat-inference-caught-value')) > 0, 'the inference cheater was caught');
  await shot(page, '10b-inference');
  const batchHref = await page.getAttribute('[data-testid=inference-batches] a[href^="#/inference/batches/"]', 'href');
  check(batchHref, 'a batch is linked');
  await load(page, batchHref.slice(1), 'inference-batch');
  check((await text(page, 'batch-settlement')).includes('Commitment root'), 'batch settlement shown');
  await shot(page, '10c-inference-batch');

  // 5. Search: a lease id, an unknown id, a bad hash, an unknown hash.
  await load(page, '/', 'overview', { label: 'overview (again)' });
  await page.fill('[data-testid=search-input]', settledId);
  await page.press('[data-testid=search-input]', 'Enter');
  await page.waitForSelector('main[data-state=ready]:is([data-page=lease],[data-page=search])', { timeout: STEP_TIMEOUT_MS });
  for (const [q, want, file] of [
    ['987654321', /Not found/, '11-search-unknown'],
    ['abc123xyz', /Not a valid id or hash/, '12-search-bad'],
    ['12ab', /64 hex characters/, null],
    ['ab'.repeat(32), /no transaction or block/, null],
  ]) {
    await page.fill('[data-testid=search-input]', q);
    await page.press('[data-testid=search-input]', 'Enter');
    // Wait for this query's answer, not the previous one still on screen.
    await page.waitForFunction((query) => {
      const main = document.querySelector('main');
      const notice = document.querySelector('main [data-testid=notice]');
      return location.hash === `#/search/${encodeURIComponent(query)}` && main.dataset.state === 'notfound'
        && notice && notice.textContent.includes(query);
    }, q, { timeout: STEP_TIMEOUT_MS }).catch(async () => fail(`search ${q}: no message (${(await page.innerText('main')).slice(0, 300)})`));
    const msg = await text(page, 'notice');
    check(want.test(msg), `search ${q}: expected ${want}, got: ${msg}`);
    if (file) await shot(page, file);
  }
  await load(page, '/txs/not-a-hash', 'tx', { expect: 'notfound', label: 'tx (bad hash)' });
  check(/not a transaction hash/.test(await text(page, 'notice')), 'bad tx hash explained');
  await load(page, '/leases/99999999', 'lease', { expect: 'notfound', label: 'lease (unknown)' });

  // 6. A node catching up, and a node failing: banner and error box, never a blank page.
  // (Answers rewritten in the browser; these loads are not timed.)
  let syncing = true;
  let failing = false;
  await page.route('**/api/v1/status', async (route) => {
    const resp = await route.fetch();
    const body = await resp.json();
    if (syncing) body.chain.syncing = true;
    await route.fulfill({ response: resp, json: body });
  });
  await page.route('**/api/v1/overview', (route) => (failing
    ? route.fulfill({
      status: 503, contentType: 'application/json',
      body: JSON.stringify({ error: 'the chain backend did not answer a state read', code: 'unavailable' }),
    })
    : route.continue()));
  await load(page, '/', 'overview', { label: 'overview (catching up)', timed: false });
  await page.waitForSelector('[data-testid=sync-banner]:not([hidden])', { timeout: STEP_TIMEOUT_MS });
  check(/catching up/.test(await text(page, 'sync-banner')), 'catching-up banner');
  await shot(page, '13-catching-up');
  syncing = false;
  failing = true;
  await load(page, '/', 'overview', { expect: 'error', label: 'overview (API error)', timed: false });
  check(/did not answer/.test(await text(page, 'error-box')), 'error box shows the node\'s message');
  await shot(page, '14-api-error');
  failing = false;
  await page.unrouteAll({ behavior: 'wait' });

  // 7. A phone.
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [route, name, file] of [['/', 'overview', '15-phone-overview'],
    [`/leases/${failedId}`, 'lease', '16-phone-lease'], ['/providers', 'providers', '17-phone-providers']]) {
    await load(page, route, name, { label: `${name} (phone)` });
    await shot(page, file);
    const overflow = await page.evaluate(() => {
      const w = window.innerWidth;
      const wide = [...document.querySelectorAll('main *')].filter((e) => e.getBoundingClientRect().right > w + 1
        && !e.closest('.table-wrap, .json, .chart'));
      return [document.documentElement.scrollWidth - w,
        wide.slice(0, 3).map((e) => `${e.tagName}.${e.className}: ${e.textContent.slice(0, 60)}`)];
    });
    check(overflow[0] <= 1, `phone: ${route} is ${overflow[0]}px wider than the screen (${overflow[1].join(' | ')})`);
  }

  // 8. Budgets and hygiene.
  check(outside.length === 0, `requests outside the node: ${outside.join(', ')}`);
  const real = consoleErrors.filter((e) => !/Failed to load resource.*(404|400|503)/.test(e));
  check(real.length === 0, `browser errors: ${real.join(' | ')}`);
  const slow = timings.filter((t) => t.ms >= LOAD_BUDGET_MS);
  check(slow.length === 0, `pages over ${LOAD_BUDGET_MS} ms: ${slow.map((t) => `${t.page} ${t.ms} ms`).join(', ')}`);
}

let code = 0;
try {
  await main();
  console.log('explorer e2e: all checks passed');
} catch (err) {
  code = 1;
  console.error(`explorer e2e FAILED: ${err.message}`);
} finally {
  for (const t of timings) console.log(`  ${String(t.ms).padStart(5)} ms  ${t.page}  (#${t.route})`);
  writeFileSync(join(shots, 'timings.json'), JSON.stringify(timings, null, 2));
  console.log(`screenshots in ${shots}`);
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
