// The JSON API, the URL state every page shares, and date ranges.

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.getAttribute('content') || '';

export const prefix = meta('fp-prefix');
export const assets = meta('fp-assets');
export const defaultSite = meta('fp-site');
export const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

// url builds a path under the dashboard with a query.
export function url(path, params) {
  const qs = params ? new URLSearchParams(params).toString() : '';
  return prefix + path + (qs ? '?' + qs : '');
}

export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function check(res) {
  if (res.ok) return res;
  let msg = res.status + ' ' + res.statusText;
  try {
    const body = await res.json();
    if (body && body.error) msg = body.error;
  } catch { /* not JSON */ }
  throw new APIError(res.status, msg);
}

// get fetches /api/<path> with the params (a URLSearchParams or object).
export async function get(path, params, signal) {
  const res = await fetch(url('/api/' + path, params), { signal, credentials: 'same-origin', headers: { Accept: 'application/json' } });
  await check(res);
  return res.json();
}

// send makes a write call. The browser marks it same-origin
// (Sec-Fetch-Site), which the server requires of writes.
export async function send(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url('/api/' + path), init);
  await check(res);
  if (res.status === 204) return null;
  const ct = res.headers.get('Content-Type') || '';
  return ct.includes('json') ? res.json() : null;
}

// --- URL state ------------------------------------------------------------

// The page's path under the prefix, e.g. "/insights/funnel".
export function route() {
  let p = location.pathname;
  if (p.startsWith(prefix)) p = p.slice(prefix.length);
  return p.replace(/\/+$/, '') || '/';
}

export function query() {
  return new URLSearchParams(location.search);
}

// navigate goes to a path under the prefix with a query; replace keeps
// the history entry (for edits of the current view).
export function navigate(path, params, replace = false) {
  const u = url(path, params);
  if (replace) history.replaceState(null, '', u);
  else history.pushState(null, '', u);
  window.dispatchEvent(new Event('fp:navigate'));
}

// setQuery changes some parameters of the current URL (null removes one;
// an array sets a repeated parameter).
export function setQuery(changes, replace = false) {
  const q = query();
  for (const [k, v] of Object.entries(changes)) {
    q.delete(k);
    if (v == null) continue;
    for (const x of Array.isArray(v) ? v : [v]) q.append(k, x);
  }
  navigate(route() === '/' ? '/' : route(), q, replace);
}

// The parameters shared between pages when moving around: site, period
// and filters.
export const sharedKeys = ['site', 'period', 'from', 'to', 'filter', 'cohort'];

export function sharedQuery(q = query()) {
  const out = new URLSearchParams();
  for (const k of sharedKeys) for (const v of q.getAll(k)) out.append(k, v);
  return out;
}

// recordingPath is a session's path segment under recordings/, escaped,
// and the query it needs: a "." or ".." segment would be resolved away by
// the browser, so such an id is sent as ?session= under "~".
export function recordingPath(sessionId) {
  const q = new URLSearchParams();
  if (sessionId === '.' || sessionId === '..') {
    q.set('session', sessionId);
    return ['~', q];
  }
  return [encodeURIComponent(sessionId), q];
}

// replayURL is the replay page of a session (tab > 1: that tab).
export function replayURL(sessionId, tab) {
  const [path, q] = recordingPath(sessionId);
  for (const [k, v] of sharedQuery()) q.append(k, v);
  if (tab > 1) q.set('tab', String(tab));
  return url('/recordings/' + path, q);
}

export function currentSite(q = query()) {
  return q.get('site') || defaultSite;
}

// --- date ranges ----------------------------------------------------------

const pad = (n) => String(n).padStart(2, '0');
export const ymd = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;

export function parseYMD(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s || '');
  return m ? new Date(+m[1], +m[2] - 1, +m[3]) : null;
}

const addDays = (d, n) => new Date(d.getFullYear(), d.getMonth(), d.getDate() + n);

export const periods = [
  ['today', 'Today'],
  ['yesterday', 'Yesterday'],
  ['7d', 'Last 7 days'],
  ['30d', 'Last 30 days'],
  ['month', 'This month'],
  ['lastmonth', 'Last month'],
  ['12mo', 'Last 12 months'],
  ['custom', 'Custom range…'],
];

// range reads the period from the URL: from and to are whole days in the
// browser's time zone (to included), with the previous period of the same
// length and a sensible chart interval.
export function range(q = query()) {
  const today = new Date();
  today.setHours(0, 0, 0, 0);
  let period = q.get('period') || '7d';
  let from, to;
  switch (period) {
    case 'today': from = to = today; break;
    case 'yesterday': from = to = addDays(today, -1); break;
    case '30d': from = addDays(today, -29); to = today; break;
    case 'month': from = new Date(today.getFullYear(), today.getMonth(), 1); to = today; break;
    case 'lastmonth':
      from = new Date(today.getFullYear(), today.getMonth() - 1, 1);
      to = new Date(today.getFullYear(), today.getMonth(), 0);
      break;
    case '12mo': from = new Date(today.getFullYear(), today.getMonth() - 11, 1); to = today; break;
    case 'custom':
      from = parseYMD(q.get('from'));
      to = parseYMD(q.get('to'));
      if (from && to) {
        if (to < from) [from, to] = [to, from];
        break;
      }
      // fall through to the default
    default:
      period = '7d';
      from = addDays(today, -6);
      to = today;
  }
  const days = Math.round((to - from) / 86400000) + 1;
  const prevTo = addDays(from, -1);
  const prevFrom = addDays(prevTo, -(days - 1));
  const interval = days <= 2 ? 'hour' : days <= 62 ? 'day' : days <= 180 ? 'week' : 'month';
  return { period, from: ymd(from), to: ymd(to), days, interval, prev: { from: ymd(prevFrom), to: ymd(prevTo) } };
}

// reportParams are the common report parameters of SPEC §4 for the current
// URL: site, from, to, tz, filter, cohort.
export function reportParams(q = query(), r = range(q), extra) {
  const p = new URLSearchParams();
  p.set('site', currentSite(q));
  p.set('from', r.from);
  p.set('to', r.to);
  p.set('tz', tz);
  for (const f of q.getAll('filter')) p.append('filter', f);
  if (q.get('cohort')) p.set('cohort', q.get('cohort'));
  for (const [k, v] of Object.entries(extra || {})) {
    if (v == null || v === '') continue;
    if (Array.isArray(v)) for (const x of v) p.append(k, x);
    else p.set(k, v);
  }
  return p;
}

// --- filters --------------------------------------------------------------

export const ops = ['==', '!=', '~', '!~'];
export const opNames = { '==': 'is', '!=': 'is not', '~': 'contains', '!~': 'does not contain' };

// parseFilter splits `<prop><op><value>` as the server does: the first
// operator wins.
export function parseFilter(s) {
  for (let i = 0; i < s.length; i++) {
    for (const op of ['==', '!=', '!~', '~']) {
      if (s.startsWith(op, i)) return { prop: s.slice(0, i), op, value: s.slice(i + op.length) };
    }
  }
  return null;
}

// propLabel names well-known properties the way people say them.
export const propLabels = {
  $pathname: 'Page',
  $current_url: 'URL',
  $referring_domain: 'Referrer',
  $referrer: 'Referrer URL',
  utm_source: 'UTM source',
  utm_medium: 'UTM medium',
  utm_campaign: 'UTM campaign',
  utm_term: 'UTM term',
  utm_content: 'UTM content',
  $geoip_country_code: 'Country',
  $geoip_country_name: 'Country',
  $geoip_city_name: 'City',
  $device_type: 'Device',
  $browser: 'Browser',
  $os: 'OS',
  $host: 'Host',
  $entry_pathname: 'Entry page',
  $exit_pathname: 'Exit page',
  $entry_referring_domain: 'Source',
  $entry_referrer: 'Entry referrer',
  $entry_utm_source: 'UTM source',
  $entry_utm_medium: 'UTM medium',
  $entry_utm_campaign: 'UTM campaign',
  $entry_utm_term: 'UTM term',
  $entry_utm_content: 'UTM content',
  $channel_type: 'Channel',
  $session_duration: 'Visit duration (s)',
  $event: 'Event',
};

export const propLabel = (p) => propLabels[p] || p;

// Properties offered in pickers before any data says otherwise.
export const commonProps = [
  '$pathname', '$current_url', '$host', '$referring_domain', '$referrer', 'utm_source', 'utm_medium',
  'utm_campaign', 'utm_term', 'utm_content', '$geoip_country_code', '$geoip_city_name', '$device_type',
  '$browser', '$os', '$browser_version', '$os_version', '$lib', '$session_id',
  '$entry_pathname', '$exit_pathname', '$entry_referring_domain', '$entry_utm_source', '$entry_utm_medium',
  '$entry_utm_campaign', '$channel_type', '$session_duration',
];
