// tollgate's finance dashboard: one page, no build step, served by tollgate at /dashboard/ under a
// strict Content-Security-Policy (no inline script or style, no eval, same origin only).
//
// Sign-in trades a finance or admin API key for a session token (POST /v1/sessions); only the
// token is kept, in sessionStorage, and sent as `Authorization: Bearer` on report calls. The key
// itself is never stored. The Operations page asks for an admin API key each time it is opened
// and holds it in a variable only while the page stays open (session tokens are refused there).
//
// Every chart has a table with the same figures; each money cell shows major units and keeps the
// API's integer in minor units in `data-value`, each cell its field name in `data-col`.

const Chart = globalThis.Chart;

const SESSION_KEY = 'tollgate.dashboard.session';
const ROUTES = ['mrr', 'revenue', 'subscribers', 'licences', 'operations'];

const MESSAGES = {
  invalidKey: 'That key is not valid (wrong, revoked or expired)',
  serviceKey: 'Service keys are for sites, not for the dashboard: use a finance or admin key',
  sessionToken: 'That is a session token, not an API key: paste a finance or admin API key (tgk_…)',
  sessionEnded: 'Your session has expired or was ended. Sign in again to continue.',
  signedOut: 'You are signed out.',
  unreachable: 'tollgate could not be reached. Check the connection and try again.',
  financeAtOperations: 'Operations needs an admin API key: that one is a finance key.',
  serviceAtOperations: 'Operations needs an admin API key: that one is a service key.',
  sessionAtOperations: 'That is a session token: Operations needs an admin API key (tgk_…).',
  noSync: 'No reconcile has run yet.',
};

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** Counts a page's finished loads in `data-loaded`, so a test can wait for the next one. */
const countLoad = (section) => {
  section.dataset.loaded = String(Number(section.dataset.loaded ?? 0) + 1);
};

// --- formatting ------------------------------------------------------------------------------

// Minor units as Stripe counts them: none for these currencies, three for these, two for all others.
const ZERO_DECIMAL = new Set(['bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf']);
const THREE_DECIMAL = new Set(['bhd', 'jod', 'kwd', 'omr', 'tnd']);

function minorDigits(currency) {
  const code = String(currency).toLowerCase();
  if (ZERO_DECIMAL.has(code)) return 0;
  if (THREE_DECIMAL.has(code)) return 3;
  return 2;
}

const countFormat = new Intl.NumberFormat('en');
const compactFormat = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });

/** 123456 eur -> "1,234.56 EUR": exact, from the integer's digits, never through a float. */
function formatMoney(minor, currency) {
  if (minor === null || minor === undefined) return '—';
  const digits = minorDigits(currency);
  const negative = minor < 0;
  const text = String(Math.abs(minor)).padStart(digits + 1, '0');
  const whole = text.slice(0, text.length - digits).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const fraction = digits ? `.${text.slice(text.length - digits)}` : '';
  return `${negative ? '-' : ''}${whole}${fraction} ${String(currency).toUpperCase()}`;
}

/** An axis tick: major units, compact ("1.2K"). */
function formatAxis(minor, currency) {
  return compactFormat.format(minor / 10 ** minorDigits(currency));
}

function formatCount(value) {
  return value === null || value === undefined ? '—' : countFormat.format(value);
}

function formatRate(value) {
  return value === null || value === undefined ? '—' : `${(value * 100).toFixed(2)} %`;
}

const instantFormat = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short' });
function formatInstant(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : instantFormat.format(date);
}

const STATUS_LABELS = {
  active: 'Active', trialing: 'Trialing', past_due: 'Past due', canceled: 'Canceled', unpaid: 'Unpaid',
  incomplete: 'Incomplete', incomplete_expired: 'Incomplete, expired', paused: 'Paused',
  warning_needs_response: 'Inquiry, needs response', warning_under_review: 'Inquiry, under review',
  warning_closed: 'Inquiry, closed', needs_response: 'Needs response', under_review: 'Under review',
  won: 'Won', lost: 'Lost',
};
const statusLabel = (status) => STATUS_LABELS[status] ?? status;

// --- months and days -------------------------------------------------------------------------

const pad = (n) => String(n).padStart(2, '0');
const MONTH = /^\d{4}-(0[1-9]|1[0-2])$/;
const DAY = /^\d{4}-\d{2}-\d{2}$/;

function currentMonth() {
  const now = new Date();
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}`;
}

function today() {
  const now = new Date();
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

function addMonths(month, count) {
  const [year, m] = month.split('-').map(Number);
  const index = year * 12 + (m - 1) + count;
  return `${Math.floor(index / 12)}-${pad((index % 12) + 1)}`;
}

/** Every month from `from` to `to`, both included. */
function monthsBetween(from, to) {
  const months = [];
  for (let month = from; month <= to && months.length < 1000; month = addMonths(month, 1)) months.push(month);
  return months;
}

function lastDayOf(month) {
  const [year, m] = month.split('-').map(Number);
  return `${month}-${pad(new Date(Date.UTC(year, m, 0)).getUTCDate())}`;
}

// --- the API ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem = {}) {
    super(problem.detail || problem.title || `tollgate answered ${status}`);
    this.status = status;
    this.code = problem.code ?? null;
    this.problem = problem;
  }
}

/** Thrown when a call found the session gone; the sign-in form is showing by then. */
class SignedOut extends Error {}

/** One call to tollgate, same origin, no cookies; a non-2xx answer becomes an ApiError. */
async function call(path, { method = 'GET', bearer, accept = 'application/json' } = {}) {
  const headers = { accept };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  let response;
  try {
    response = await fetch(path, { method, headers, credentials: 'omit', cache: 'no-store' });
  } catch {
    throw new ApiError(0, { detail: MESSAGES.unreachable });
  }
  if (!response.ok) {
    let problem = {};
    try {
      problem = await response.json();
    } catch {
      // not a problem document: the status says enough
    }
    throw new ApiError(response.status, problem);
  }
  return response;
}

/** A call with the session token; a 401 ends the session and shows the sign-in form. */
async function withSession(path, options = {}) {
  if (!session) throw new SignedOut();
  try {
    return await call(path, { ...options, bearer: session.token });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      endSession(MESSAGES.sessionEnded);
      throw new SignedOut();
    }
    throw error;
  }
}

const reportJson = async (path) => (await withSession(path)).json();

function describeError(error) {
  if (!(error instanceof ApiError)) return `Something went wrong: ${error.message}`;
  if (error.status === 0) return MESSAGES.unreachable;
  const code = error.code ? ` (${error.status} ${error.code})` : ` (${error.status})`;
  return `${error.message}${code}`;
}

/**
 * Saves what tollgate answers for `path` with `format=csv`, byte for byte, under the name its
 * Content-Disposition gives.
 */
async function downloadCsv(path, fallbackName) {
  const url = `${path}${path.includes('?') ? '&' : '?'}format=csv`;
  const response = await withSession(url, { accept: 'text/csv' });
  const bytes = await response.arrayBuffer();
  const disposition = response.headers.get('content-disposition') ?? '';
  const name = disposition.match(/filename="([^"]+)"/)?.[1] ?? fallbackName;
  const href = URL.createObjectURL(new Blob([bytes], { type: 'text/csv' }));
  const link = document.createElement('a');
  link.href = href;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60_000);
}

// --- the session -----------------------------------------------------------------------------

/** `{token, role, expires_at}`; never the API key. */
let session = null;
let expiryTimer = null;

function storedSession() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(SESSION_KEY));
    return typeof stored?.token === 'string' ? stored : null;
  } catch {
    return null;
  }
}

function keepSession(value) {
  session = value;
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(value));
}

function forgetSession() {
  session = null;
  sessionStorage.removeItem(SESSION_KEY);
  clearTimeout(expiryTimer);
  expiryTimer = null;
}

/** Asks tollgate who the session is, and shows it in the header. */
async function identify() {
  const who = await (await withSession('/v1/whoami')).json();
  const expiresAt = who.session?.expires_at ?? session.expires_at;
  keepSession({ ...session, role: who.role, expires_at: expiresAt });
  $('#who-role').textContent = who.role;
  $('#who-detail').textContent = `${who.key_name ? `“${who.key_name}” · ` : ''}session until ${formatInstant(expiresAt)}`;
  clearTimeout(expiryTimer);
  const left = Date.parse(expiresAt) - Date.now();
  // setTimeout takes at most 2^31-1 ms; a session is hours long.
  if (left > 0 && left < 2 ** 31) expiryTimer = setTimeout(() => endSession(MESSAGES.sessionEnded), left);
}

function showSignIn(message = '') {
  $('#app').hidden = true;
  $('#who').hidden = true;
  $('#signin').hidden = false;
  $('#signin-message').textContent = message;
  for (const page of Object.values(pages)) page.reset?.();
  $('#signin-key').focus();
}

function endSession(message) {
  forgetSession();
  showSignIn(message);
}

function enterApp({ focus = false } = {}) {
  $('#signin').hidden = true;
  $('#signin-message').textContent = '';
  $('#who').hidden = false;
  $('#app').hidden = false;
  show(currentRoute(), { focus });
}

function signInMessage(error) {
  if (error instanceof ApiError) {
    if (error.status === 401) return MESSAGES.invalidKey;
    if (error.status === 403) return error.code === 'session_not_allowed' ? MESSAGES.sessionToken : MESSAGES.serviceKey;
  }
  return describeError(error);
}

async function signIn(event) {
  event.preventDefault();
  const input = $('#signin-key');
  const key = input.value.trim();
  input.value = '';
  if (!key) {
    $('#signin-message').textContent = 'Paste a finance or admin API key first.';
    input.focus();
    return;
  }
  const button = $('#signin-submit');
  button.disabled = true;
  $('#signin-message').textContent = '';
  try {
    const created = await (await call('/v1/sessions', { method: 'POST', bearer: key })).json();
    keepSession({ token: created.token, role: created.role, expires_at: created.expires_at });
    await identify();
    enterApp({ focus: true });
  } catch (error) {
    if (!(error instanceof SignedOut)) {
      forgetSession();
      $('#signin-message').textContent = signInMessage(error);
    }
    input.focus();
  } finally {
    button.disabled = false;
  }
}

async function signOut() {
  const token = session?.token;
  forgetSession();
  if (token) {
    // Whatever tollgate answers (an expired session is a 401), the page forgets the token.
    await call('/v1/sessions/current', { method: 'DELETE', bearer: token }).catch(() => {});
  }
  showSignIn(MESSAGES.signedOut);
}

// --- tables ----------------------------------------------------------------------------------

const text = (key, label, show = (v) => v ?? '—') => ({ key, label, kind: 'text', show });
const money = (key, label) => ({ key, label, kind: 'money' });
const count = (key, label) => ({ key, label, kind: 'count' });
const rate = (key, label) => ({ key, label, kind: 'rate' });

function cellText(column, row) {
  const value = row[column.key];
  switch (column.kind) {
    case 'money': return formatMoney(value, row.currency);
    case 'count': return formatCount(value);
    case 'rate': return formatRate(value);
    default: return column.show(value);
  }
}

/** Fills `table` (keeping its caption) with a header row and one row per item of `rows`. */
function renderTable(table, columns, rows) {
  const caption = table.querySelector('caption');
  table.replaceChildren(...(caption ? [caption] : []));
  const head = table.createTHead().insertRow();
  for (const column of columns) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = column.label;
    if (column.kind !== 'text') th.className = 'num';
    head.append(th);
  }
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    columns.forEach((column, index) => {
      const cell = document.createElement(index === 0 ? 'th' : 'td');
      if (index === 0) cell.scope = 'row';
      const value = row[column.key];
      cell.dataset.col = column.key;
      cell.dataset.value = value === null || value === undefined ? '' : String(value);
      cell.textContent = cellText(column, row);
      if (column.kind !== 'text') cell.className = typeof value === 'number' && value < 0 ? 'num neg' : 'num';
      tr.append(cell);
    });
  }
}

/** Shows the "nothing here" note instead of an empty table. */
function setEmpty(name, empty) {
  const note = $(`[data-empty="${name}"]`);
  if (!note) return;
  note.hidden = !empty;
  const wrap = note.previousElementSibling;
  if (wrap?.classList.contains('table-wrap')) wrap.hidden = empty;
}

/** Key figures above a page's reports. */
function renderKpis(list, items) {
  list.replaceChildren();
  for (const item of items) {
    const box = document.createElement('div');
    box.className = 'kpi';
    const term = document.createElement('dt');
    term.textContent = item.label;
    const value = document.createElement('dd');
    value.textContent = item.text;
    value.dataset.value = item.value === null || item.value === undefined ? '' : String(item.value);
    box.append(term, value);
    list.append(box);
  }
}

// --- charts ----------------------------------------------------------------------------------

const COLOURS = {
  ink: '#243447',
  muted: '#66768a',
  grid: '#e6eaf0',
  new: '#2f7a5f',
  expansion: '#7fb89b',
  reactivated: '#4b86b4',
  contraction: '#e0a75e',
  churned: '#c65b46',
  gross: '#4b86b4',
  refunds: '#e0a75e',
  disputes: '#c65b46',
  billed: '#4b86b4',
  recognized: '#2f7a5f',
  deferred: '#8a6fb0',
};
const SERIES = ['#4b86b4', '#2f7a5f', '#e0a75e', '#8a6fb0', '#c65b46', '#5fa8a8', '#b08a4b', '#7d8793'];

if (Chart) {
  Chart.defaults.font.family = getComputedStyle(document.documentElement).getPropertyValue('--font').trim() || 'sans-serif';
  Chart.defaults.font.size = 12;
  Chart.defaults.color = COLOURS.muted;
  Chart.defaults.borderColor = COLOURS.grid;
}

const charts = new Map();

/** Draws `config` on `canvas`, replacing its previous chart; the aria-label says what it shows. */
function drawChart(canvas, config, label) {
  charts.get(canvas.id)?.destroy();
  charts.delete(canvas.id);
  canvas.setAttribute('aria-label', `${label}. The table below has the same figures.`);
  if (!Chart) return;
  charts.set(canvas.id, new Chart(canvas, config));
}

function chartOptions(currency, { stacked = false, horizontal = false, money: isMoney = true } = {}) {
  const tick = (value) => (isMoney ? formatAxis(value, currency) : countFormat.format(value));
  const ticks = { callback: tick, maxTicksLimit: 6, ...(isMoney ? {} : { precision: 0 }) };
  const valueAxis = { stacked, beginAtZero: true, ticks, grid: { color: COLOURS.grid } };
  const categoryAxis = { stacked, grid: { display: false } };
  return {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    indexAxis: horizontal ? 'y' : 'x',
    interaction: { mode: 'index', intersect: false },
    plugins: {
      legend: { position: 'bottom', labels: { boxWidth: 12, boxHeight: 12, padding: 14 } },
      tooltip: {
        callbacks: {
          label: (item) => {
            const value = horizontal ? item.parsed.x : item.parsed.y;
            return ` ${item.dataset.label}: ${isMoney ? formatMoney(value, currency) : formatCount(value)}`;
          },
        },
      },
    },
    scales: horizontal ? { x: valueAxis, y: categoryAxis } : { x: categoryAxis, y: valueAxis },
  };
}

const bar = (label, data, colour, extra = {}) => ({
  type: 'bar', label, data, backgroundColor: colour, borderRadius: 2, maxBarThickness: 42, order: 1, ...extra,
});
const line = (label, data, colour, extra = {}) => ({
  type: 'line', label, data, borderColor: colour, backgroundColor: colour, borderWidth: 2, pointRadius: 3,
  tension: 0, order: 0, stack: 'line', ...extra,
});

/** One value per month from the rows of those months (0 where a month has none). */
function perMonth(months, rows, field, monthKey = 'month', sign = 1) {
  const sums = new Map(months.map((m) => [m, 0]));
  for (const row of rows) {
    if (sums.has(row[monthKey])) sums.set(row[monthKey], sums.get(row[monthKey]) + sign * (row[field] ?? 0));
  }
  return months.map((m) => sums.get(m));
}

/** One dataset per plan: `field` by month, stacked. */
function perPlan(months, rows, field, monthKey = 'month') {
  const plans = [...new Set(rows.map((r) => r.plan_id))].sort();
  return plans.map((plan, index) => bar(plan, perMonth(months, rows.filter((r) => r.plan_id === plan), field, monthKey),
    SERIES[index % SERIES.length], { stack: 'plans' }));
}

// --- pages -----------------------------------------------------------------------------------

/** Which currencies the rows have, and the one the select shows (kept when it still has rows). */
function fillCurrencies(select, rowsLists) {
  const currencies = [...new Set(rowsLists.flat().map((r) => r.currency))].sort();
  const previous = select.value;
  select.replaceChildren(...currencies.map((c) => new Option(c.toUpperCase(), c)));
  select.disabled = currencies.length === 0;
  if (currencies.length === 0) select.append(new Option('None', ''));
  select.value = currencies.includes(previous) ? previous : (currencies[0] ?? '');
  return select.value;
}

function setMessage(page, message) {
  const node = $(`[data-message="${page}"]`);
  if (node) node.textContent = message;
}

/** Reads a from/to pair of month inputs; a message when they make no range. */
function monthRange(prefix) {
  const from = $(`#${prefix}-from`).value;
  const to = $(`#${prefix}-to`).value;
  if (!MONTH.test(from) || !MONTH.test(to)) return { error: 'Choose a first and a last month (YYYY-MM).' };
  if (from > to) return { error: 'The first month must not be after the last one.' };
  return { from, to, months: monthsBetween(from, to) };
}

let timeZoneShown = null;
function noteTimeZone(answer) {
  if (!answer?.time_zone || answer.time_zone === timeZoneShown) return;
  timeZoneShown = answer.time_zone;
  $('#time-zone-note').textContent = `Months and days are cut in ${answer.time_zone}, tollgate's reporting time zone. `
    + 'Amounts show major units; the CSV files carry the API\'s minor units.';
}

let firstDataMarked = false;

/**
 * A report page: reads its controls, loads its reports (a newer load wins over an older one still
 * under way), and renders them, again without loading when only the currency changes.
 */
function reportPage(name, { query, load, render }) {
  const section = $(`[data-page="${name}"]`);
  let sequence = 0;
  let loaded = null; // { q, data }
  const page = {
    paths: {},
    async load() {
      const q = query();
      if (q.error) {
        setMessage(name, q.error);
        return;
      }
      const mine = ++sequence;
      section.dataset.state = 'loading';
      section.setAttribute('aria-busy', 'true');
      setMessage(name, '');
      try {
        const paths = load(q);
        const entries = await Promise.all(Object.entries(paths).map(async ([key, path]) => [key, await reportJson(path)]));
        if (mine !== sequence) return;
        page.paths = paths;
        loaded = { q, data: Object.fromEntries(entries) };
        noteTimeZone(entries[0]?.[1]);
        page.render();
        section.dataset.state = 'ready';
        countLoad(section);
        if (!firstDataMarked && name === 'mrr') {
          firstDataMarked = true;
          performance.mark('dashboard:first-data');
        }
      } catch (error) {
        if (mine !== sequence || error instanceof SignedOut) return;
        section.dataset.state = 'error';
        setMessage(name, `The report could not be loaded: ${describeError(error)}`);
        countLoad(section);
      } finally {
        if (mine === sequence) section.removeAttribute('aria-busy');
      }
    },
    render() {
      if (loaded) render(loaded.q, loaded.data);
    },
    reset() {
      sequence += 1;
      loaded = null;
      page.paths = {};
      delete section.dataset.state;
      for (const table of $$('table', section)) renderTable(table, [], []);
      for (const canvas of $$('canvas', section)) {
        charts.get(canvas.id)?.destroy();
        charts.delete(canvas.id);
      }
    },
  };
  for (const input of $$('input, select', $(`[data-controls="${name}"]`))) {
    input.addEventListener('change', () => (input.tagName === 'SELECT' ? page.render() : page.load()));
  }
  $(`[data-controls="${name}"]`).addEventListener('submit', (event) => {
    event.preventDefault();
    page.load();
  });
  return page;
}

const MRR_COLUMNS = [
  text('month', 'Month'), text('currency', 'Currency', (v) => v.toUpperCase()),
  money('mrr_start', 'MRR at start'), money('new', 'New'), money('expansion', 'Expansion'),
  money('contraction', 'Contraction'), money('churned', 'Churned'), money('reactivated', 'Reactivated'),
  money('mrr', 'MRR'), count('subscribers', 'Subscribers'), rate('churn_rate', 'Churn rate'), money('arpu', 'ARPU'),
];

const mrrPage = reportPage('mrr', {
  query: () => monthRange('mrr'),
  load: (q) => ({ mrr: `/v1/reports/mrr?from=${q.from}&to=${q.to}` }),
  render(q, { mrr }) {
    const currency = fillCurrencies($('#mrr-currency'), [mrr.rows]);
    const rows = mrr.rows.filter((r) => r.currency === currency);
    renderTable($('#table-mrr'), MRR_COLUMNS, rows);
    setEmpty('mrr', rows.length === 0);
    const last = rows.filter((r) => r.month === q.to)[0] ?? rows[rows.length - 1];
    renderKpis($('#mrr-kpis'), last ? [
      { label: `MRR at the end of ${last.month}`, text: formatMoney(last.mrr, currency), value: last.mrr },
      { label: 'Subscribers', text: formatCount(last.subscribers), value: last.subscribers },
      { label: 'ARPU', text: formatMoney(last.arpu, currency), value: last.arpu },
      { label: `Churn rate in ${last.month}`, text: formatRate(last.churn_rate), value: last.churn_rate },
    ] : []);
    const notes = $('#mrr-notes');
    notes.replaceChildren(...mrr.notes.map((note) => Object.assign(document.createElement('li'), { textContent: note })));
    const { months } = q;
    const mrrLine = months.map((m) => rows.find((r) => r.month === m)?.mrr ?? 0);
    drawChart($('#chart-mrr'), {
      type: 'bar',
      data: {
        labels: months,
        datasets: [
          bar('New', perMonth(months, rows, 'new'), COLOURS.new, { stack: 'moves' }),
          bar('Expansion', perMonth(months, rows, 'expansion'), COLOURS.expansion, { stack: 'moves' }),
          bar('Reactivated', perMonth(months, rows, 'reactivated'), COLOURS.reactivated, { stack: 'moves' }),
          bar('Contraction', perMonth(months, rows, 'contraction', 'month', -1), COLOURS.contraction, { stack: 'moves' }),
          bar('Churned', perMonth(months, rows, 'churned', 'month', -1), COLOURS.churned, { stack: 'moves' }),
          line('MRR', mrrLine, COLOURS.ink),
        ],
      },
      options: chartOptions(currency, { stacked: true }),
    }, `MRR in ${currency.toUpperCase() || 'no currency'} and its movements by month, ${q.from} to ${q.to}`);
  },
});

const REVENUE_COLUMNS = (byPlan) => [
  text('period', 'Month'), ...(byPlan ? [text('plan_id', 'Plan')] : []), text('currency', 'Currency', (v) => v.toUpperCase()),
  money('gross', 'Gross'), money('tax', 'Tax'), money('refunds', 'Refunds'), money('net', 'Net'),
  money('disputes_lost', 'Disputes lost'), money('net_after_disputes', 'Net after disputes'), count('invoices', 'Invoices'),
];
const RECOGNIZED_COLUMNS = (byPlan) => [
  text('month', 'Month'), ...(byPlan ? [text('plan_id', 'Plan')] : []), text('currency', 'Currency', (v) => v.toUpperCase()),
  money('deferred_start', 'Deferred at start'), money('billed', 'Billed'), money('refunds', 'Refunds'),
  money('recognized', 'Recognised'), money('deferred_end', 'Deferred at end'),
];
const DISPUTE_COLUMNS = [
  text('month', 'Month'), text('currency', 'Currency', (v) => v.toUpperCase()), text('status', 'Status', statusLabel),
  count('disputes', 'Disputes'), money('amount', 'Amount'),
];

const sum = (rows, field) => rows.reduce((total, row) => total + (row[field] ?? 0), 0);

const revenuePage = reportPage('revenue', {
  query() {
    const range = monthRange('revenue');
    return range.error ? range : { ...range, byPlan: $('#revenue-by-plan').checked };
  },
  load(q) {
    const group = q.byPlan ? 'plan' : 'none';
    return {
      revenue: `/v1/reports/revenue?from=${q.from}-01&to=${lastDayOf(q.to)}&interval=month&group_by=${group}`,
      recognized: `/v1/reports/recognized-revenue?from=${q.from}&to=${q.to}&group_by=${group}`,
      disputes: `/v1/reports/disputes?from=${q.from}&to=${q.to}`,
    };
  },
  render(q, { revenue, recognized, disputes }) {
    const currency = fillCurrencies($('#revenue-currency'), [revenue.rows, recognized.rows, disputes.rows]);
    const mine = (rows) => rows.filter((r) => r.currency === currency);
    const revenueRows = mine(revenue.rows);
    const recognizedRows = mine(recognized.rows);
    const disputeRows = mine(disputes.rows);
    const { months, byPlan } = q;
    const label = currency.toUpperCase() || 'no currency';

    renderTable($('#table-revenue'), REVENUE_COLUMNS(byPlan), revenueRows);
    setEmpty('revenue', revenueRows.length === 0);
    renderKpis($('#revenue-kpis'), currency ? [
      ['Gross', 'gross'], ['Refunds', 'refunds'], ['Disputes lost', 'disputes_lost'], ['Net after disputes', 'net_after_disputes'],
    ].map(([name, field]) => {
      const total = sum(revenueRows, field);
      return { label: `${name}, ${q.from} to ${q.to}`, text: formatMoney(total, currency), value: total };
    }) : []);
    drawChart($('#chart-revenue'), {
      type: 'bar',
      data: {
        labels: months,
        datasets: byPlan
          ? perPlan(months, revenueRows, 'net_after_disputes', 'period')
          : [
            bar('Gross', perMonth(months, revenueRows, 'gross', 'period'), COLOURS.gross, { stack: 'flows' }),
            bar('Refunds', perMonth(months, revenueRows, 'refunds', 'period', -1), COLOURS.refunds, { stack: 'flows' }),
            bar('Disputes lost', perMonth(months, revenueRows, 'disputes_lost', 'period', -1), COLOURS.disputes, { stack: 'flows' }),
            line('Net after disputes', perMonth(months, revenueRows, 'net_after_disputes', 'period'), COLOURS.ink),
          ],
      },
      options: chartOptions(currency, { stacked: true }),
    }, byPlan
      ? `Net revenue after disputes in ${label} by month and plan, ${q.from} to ${q.to}`
      : `Gross revenue, refunds, lost disputes and net revenue after disputes in ${label} by month, ${q.from} to ${q.to}`);

    renderTable($('#table-recognized'), RECOGNIZED_COLUMNS(byPlan), recognizedRows);
    setEmpty('recognized', recognizedRows.length === 0);
    drawChart($('#chart-recognized'), {
      type: 'bar',
      data: {
        labels: months,
        datasets: byPlan
          ? perPlan(months, recognizedRows, 'recognized')
          : [
            bar('Billed', perMonth(months, recognizedRows, 'billed'), COLOURS.billed, { stack: 'billed' }),
            bar('Recognised', perMonth(months, recognizedRows, 'recognized'), COLOURS.recognized, { stack: 'recognized' }),
            line('Deferred at month end', perMonth(months, recognizedRows, 'deferred_end'), COLOURS.deferred),
          ],
      },
      options: chartOptions(currency, { stacked: byPlan }),
    }, byPlan
      ? `Recognised revenue in ${label} by month and plan, ${q.from} to ${q.to}`
      : `Billed, recognised and deferred revenue in ${label} by month, ${q.from} to ${q.to}`);

    renderTable($('#table-disputes'), DISPUTE_COLUMNS, disputeRows);
    setEmpty('disputes', disputeRows.length === 0);
  },
});

const SUBSCRIBER_COLUMNS = [text('plan_id', 'Plan'), text('status', 'Status', statusLabel), count('subscriptions', 'Subscriptions')];

const subscribersPage = reportPage('subscribers', {
  query() {
    const at = $('#subscribers-at').value;
    return DAY.test(at) ? { at } : { error: 'Choose a day (YYYY-MM-DD).' };
  },
  load: (q) => ({ subscribers: `/v1/reports/subscribers?at=${q.at}` }),
  render(q, { subscribers }) {
    const { rows } = subscribers;
    renderTable($('#table-subscribers'), SUBSCRIBER_COLUMNS, rows);
    setEmpty('subscribers', rows.length === 0);
    const total = sum(rows, 'subscriptions');
    const statuses = [...new Set(rows.map((r) => r.status))];
    renderKpis($('#subscribers-kpis'), [
      { label: `In good standing on ${q.at}`, text: formatCount(total), value: total },
      ...statuses.map((status) => {
        const n = sum(rows.filter((r) => r.status === status), 'subscriptions');
        return { label: statusLabel(status), text: formatCount(n), value: n };
      }),
    ]);
    const plans = [...new Set(rows.map((r) => r.plan_id))];
    drawChart($('#chart-subscribers'), {
      type: 'bar',
      data: {
        labels: plans,
        datasets: statuses.map((status, index) => bar(statusLabel(status),
          plans.map((plan) => sum(rows.filter((r) => r.plan_id === plan && r.status === status), 'subscriptions')),
          SERIES[index % SERIES.length], { stack: 'status' })),
      },
      options: chartOptions('', { stacked: true, horizontal: true, money: false }),
    }, `Subscriptions in good standing on ${q.at} by plan and status`);
  },
});

const LICENCE_COLUMNS = [
  text('month', 'Month'), text('name', 'Licence'), text('licence_id', 'Id'),
  count('members', 'Members'), count('readers', 'Readers'), count('articles_opened', 'Articles opened'),
];
const GIFT_COLUMNS = [
  text('month', 'Month'), count('links_created', 'Links created'), count('redemptions', 'Redemptions'),
  count('recipients', 'Recipients'), count('subscribed_within_30_days', 'Subscribed within 30 days'),
];

const licencesPage = reportPage('licences', {
  query: () => monthRange('licences'),
  load: (q) => ({
    licences: `/v1/reports/licences?from=${q.from}&to=${q.to}`,
    gifts: `/v1/reports/gifts?from=${q.from}&to=${q.to}`,
  }),
  render(q, { licences, gifts }) {
    const { months } = q;
    renderTable($('#table-licences'), LICENCE_COLUMNS, licences.rows);
    setEmpty('licences', licences.rows.length === 0);
    const ids = [...new Set(licences.rows.map((r) => r.licence_id))];
    drawChart($('#chart-licences'), {
      type: 'bar',
      data: {
        labels: months,
        datasets: ids.map((id, index) => {
          const rows = licences.rows.filter((r) => r.licence_id === id);
          return bar(rows[0].name, perMonth(months, rows, 'articles_opened'), SERIES[index % SERIES.length]);
        }),
      },
      options: chartOptions('', { money: false }),
    }, `Articles opened under each licence by month, ${q.from} to ${q.to}`);

    renderTable($('#table-gifts'), GIFT_COLUMNS, gifts.rows);
    setEmpty('gifts', gifts.rows.length === 0);
    drawChart($('#chart-gifts'), {
      type: 'bar',
      data: {
        labels: months,
        datasets: [
          bar('Links created', perMonth(months, gifts.rows, 'links_created'), COLOURS.gross),
          bar('Redemptions', perMonth(months, gifts.rows, 'redemptions'), COLOURS.recognized),
          line('Subscribed within 30 days', perMonth(months, gifts.rows, 'subscribed_within_30_days'), COLOURS.deferred),
        ],
      },
      options: chartOptions('', { money: false }),
    }, `Gift links created, redemptions and readers who subscribed within 30 days, by month, ${q.from} to ${q.to}`);
  },
});

// --- operations ------------------------------------------------------------------------------

/** The admin API key: only while the Operations page is open, never stored. */
let adminKey = null;

async function adminCall(path, options = {}) {
  if (!adminKey) throw new ApiError(401, {});
  return call(path, { ...options, bearer: adminKey });
}

function opsRefusal(error) {
  if (error instanceof ApiError) {
    if (error.status === 401) return MESSAGES.invalidKey;
    if (error.status === 403) return error.code === 'session_not_allowed' ? MESSAGES.sessionAtOperations : MESSAGES.financeAtOperations;
  }
  return describeError(error);
}

const EVENT_COLUMNS = [
  text('id', 'Event'), text('type', 'Type'), text('received_at', 'Received', formatInstant), count('attempts', 'Attempts'),
  text('last_error', 'Why', (v) => v ?? '—'),
  text('next_attempt_at', 'Next attempt', (v) => (v ? formatInstant(v) : 'None scheduled')),
];

/** An event's row: why it waits names the customer when the error does not. */
const eventRow = (event) => ({
  ...event,
  last_error: event.waiting_for_customer && !(event.last_error ?? '').includes(event.waiting_for_customer)
    ? [event.last_error, `Waiting for customer ${event.waiting_for_customer} to be linked to a reader.`].filter(Boolean).join(' ')
    : event.last_error,
});

function renderEvents(table, events, { retry }) {
  renderTable(table, [...EVENT_COLUMNS, ...(retry ? [{ key: 'action', label: 'Action', kind: 'text', show: () => '' }] : [])],
    events.map(eventRow));
  if (!retry) return;
  $$('tbody tr', table).forEach((tr, index) => {
    const event = events[index];
    const cell = tr.lastElementChild;
    delete cell.dataset.col;
    delete cell.dataset.value;
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'button-small';
    button.textContent = 'Retry';
    button.setAttribute('aria-label', `Retry ${event.id}`);
    button.dataset.retry = event.id;
    cell.append(button);
  });
}

const OUTCOMES = { succeeded: 'Succeeded', partial: 'Partial', failed: 'Failed' };

const LISTING_COLUMNS = [
  text('listing', 'Listing', (v) => v[0].toUpperCase() + v.slice(1)),
  text('ok', 'Read', (v) => (v ? 'Read to the end' : 'Failed')),
  count('seen', 'Seen'), count('changed', 'Changed'), count('unresolved', 'Unresolved'),
  text('error', 'Why it failed'),
];

function renderSync(run) {
  const box = $('#ops-sync');
  box.replaceChildren();
  if (!run) {
    const p = document.createElement('p');
    p.className = 'empty';
    p.dataset.sync = 'none';
    p.textContent = MESSAGES.noSync;
    box.append(p);
    return;
  }
  const list = document.createElement('dl');
  list.className = 'facts';
  list.dataset.sync = run.outcome;
  const facts = [
    ['Outcome', OUTCOMES[run.outcome] ?? run.outcome],
    ['Started', formatInstant(run.started_at)],
    ['Finished', formatInstant(run.finished_at)],
    ['Started by', run.trigger === 'cli' ? 'the command line (tollgate stripe sync)' : 'the API'],
    ['Run', run.id],
  ];
  if (run.error) facts.push(['Error', run.error]);
  if (run.report) {
    const failed = run.report.listings.filter((l) => !l.ok).map((l) => l.listing);
    facts.push(['Listings that failed', failed.length ? failed.join(', ') : 'None']);
    facts.push(['Waiting events applied', formatCount(run.report.events_applied)]);
    facts.push(['Invoices, refunds and disputes read since', formatInstant(run.report.window_start)]);
  }
  for (const [term, value] of facts) {
    const dt = document.createElement('dt');
    dt.textContent = term;
    const dd = document.createElement('dd');
    dd.textContent = value;
    if (term === 'Outcome') dd.className = `badge badge-${run.outcome}`;
    list.append(dt, dd);
  }
  box.append(list);
  if (run.report) {
    const wrap = document.createElement('div');
    wrap.className = 'table-wrap';
    const table = document.createElement('table');
    table.id = 'table-sync';
    const caption = document.createElement('caption');
    caption.className = 'visually-hidden';
    caption.textContent = 'Each of Stripe’s listings the reconcile read';
    table.append(caption);
    wrap.append(table);
    box.append(wrap);
    renderTable(table, LISTING_COLUMNS, run.report.listings);
    $$('tbody tr', table).forEach((tr, index) => {
      tr.dataset.ok = String(run.report.listings[index].ok);
    });
  }
}

async function opsLoad() {
  const section = $('[data-page="operations"]');
  section.dataset.state = 'loading';
  section.setAttribute('aria-busy', 'true');
  try {
    const lastSync = adminCall('/v1/admin/stripe/sync/last').then((r) => r.json()).catch((error) => {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    });
    const [sync, failed, pending] = await Promise.all([
      lastSync,
      adminCall('/v1/admin/webhook-events?status=failed&limit=100').then((r) => r.json()),
      adminCall('/v1/admin/webhook-events?status=pending&limit=100').then((r) => r.json()),
    ]);
    if (!adminKey) return;
    renderSync(sync);
    renderEvents($('#table-failed'), failed.items, { retry: true });
    setEmpty('failed', failed.items.length === 0);
    renderEvents($('#table-pending'), pending.items, { retry: false });
    setEmpty('pending', pending.items.length === 0);
    section.dataset.state = 'ready';
  } catch (error) {
    section.dataset.state = 'error';
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      opsReset(opsRefusal(error));
    } else {
      setMessage('operations', `Could not load the operations view: ${describeError(error)}`);
    }
  } finally {
    section.removeAttribute('aria-busy');
    countLoad(section);
  }
}

function opsReset(message = '') {
  adminKey = null;
  $('#ops-key').value = '';
  $('#ops-form').hidden = false;
  $('#ops-body').hidden = true;
  $('#ops-status').textContent = '';
  $('#ops-sync').replaceChildren();
  renderTable($('#table-failed'), [], []);
  renderTable($('#table-pending'), [], []);
  delete $('[data-page="operations"]').dataset.state;
  setMessage('operations', message);
}

async function opsOpen(event) {
  event.preventDefault();
  const input = $('#ops-key');
  const key = input.value.trim();
  input.value = '';
  if (!key) {
    setMessage('operations', 'Paste an admin API key first.');
    return;
  }
  setMessage('operations', '');
  try {
    const who = await (await call('/v1/whoami', { bearer: key })).json();
    if (who.session) return setMessage('operations', MESSAGES.sessionAtOperations);
    if (who.role === 'service') return setMessage('operations', MESSAGES.serviceAtOperations);
    if (who.role !== 'admin') return setMessage('operations', MESSAGES.financeAtOperations);
    adminKey = key;
    $('#ops-form').hidden = true;
    $('#ops-body').hidden = false;
    await opsLoad();
  } catch (error) {
    setMessage('operations', opsRefusal(error));
  }
}

async function opsRetry(button) {
  const id = button.dataset.retry;
  button.disabled = true;
  const status = $('#ops-status');
  status.textContent = `Retrying ${id}…`;
  try {
    const event = await (await adminCall(`/v1/admin/webhook-events/${encodeURIComponent(id)}/retry`, { method: 'POST' })).json();
    status.textContent = event.status === 'applied'
      ? `${id} is applied now.`
      : `${id} is still ${event.status}${event.last_error ? `: ${event.last_error}` : '.'}`;
  } catch (error) {
    status.textContent = `${id} was not retried: ${describeError(error)}`;
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return opsReset(opsRefusal(error));
  }
  await opsLoad();
}

const operationsPage = {
  load() {
    opsReset();
    $('#ops-key').focus();
  },
  reset: () => opsReset(),
};

// --- routing ---------------------------------------------------------------------------------

const pages = {
  mrr: mrrPage,
  revenue: revenuePage,
  subscribers: subscribersPage,
  licences: licencesPage,
  operations: operationsPage,
};

function currentRoute() {
  const route = location.hash.slice(1);
  return ROUTES.includes(route) ? route : 'mrr';
}

let shown = null;

function show(route, { focus = false } = {}) {
  if (shown === 'operations' && route !== 'operations') opsReset();
  shown = route;
  for (const section of $$('[data-page]')) section.hidden = section.dataset.page !== route;
  for (const link of $$('[data-route]')) {
    if (link.dataset.route === route) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${$(`#${route}-title`).textContent} · Finance · tollgate`;
  if (focus) $(`#${route}-title`).focus();
  pages[route].load();
}

// --- start -----------------------------------------------------------------------------------

function setDefaults() {
  const to = currentMonth();
  const from = addMonths(to, -5);
  for (const prefix of ['mrr', 'revenue', 'licences']) {
    $(`#${prefix}-from`).value = from;
    $(`#${prefix}-to`).value = to;
  }
  $('#subscribers-at').value = today();
}

const CSV_NAMES = {
  mrr: (p) => p.mrr, revenue: (p) => p.revenue, recognized: (p) => p.recognized, disputes: (p) => p.disputes,
  subscribers: (p) => p.subscribers, licences: (p) => p.licences, gifts: (p) => p.gifts,
};
const CSV_PAGES = {
  mrr: mrrPage, revenue: revenuePage, recognized: revenuePage, disputes: revenuePage,
  subscribers: subscribersPage, licences: licencesPage, gifts: licencesPage,
};

async function onCsv(button) {
  const report = button.dataset.csv;
  const path = CSV_NAMES[report](CSV_PAGES[report].paths);
  const page = button.closest('[data-page]').dataset.page;
  if (!path) {
    setMessage(page, 'The report has not loaded yet.');
    return;
  }
  button.disabled = true;
  try {
    await downloadCsv(path, `${report}.csv`);
  } catch (error) {
    if (!(error instanceof SignedOut)) setMessage(page, `The CSV could not be downloaded: ${describeError(error)}`);
  } finally {
    button.disabled = false;
  }
}

function start() {
  setDefaults();
  $('#signin-form').addEventListener('submit', signIn);
  $('#signout').addEventListener('click', signOut);
  $('#ops-form').addEventListener('submit', opsOpen);
  $('#ops-refresh').addEventListener('click', () => opsLoad());
  $('#ops-lock').addEventListener('click', () => opsReset('The admin key is forgotten.'));
  document.addEventListener('click', (event) => {
    const csv = event.target.closest('[data-csv]');
    if (csv) onCsv(csv);
    const retry = event.target.closest('[data-retry]');
    if (retry) opsRetry(retry);
  });
  window.addEventListener('hashchange', () => {
    if (session && !$('#app').hidden) show(currentRoute(), { focus: true });
  });
  if (!Chart) setMessage('mrr', 'The charts could not be loaded; the tables have every figure.');

  session = storedSession();
  if (!session) {
    showSignIn();
    return;
  }
  identify().then(() => enterApp()).catch((error) => {
    if (error instanceof SignedOut) return;
    showSignIn(`tollgate could not confirm your session: ${describeError(error)}`);
  });
}

start();
