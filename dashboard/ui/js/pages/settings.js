// Settings: the snippet to paste, how to point PostHog's SDKs here, and
// the site's configuration as the module sees it.

import { h, replace, errorBox, spinner, text } from '../dom.js';
import { get, send, currentSite } from '../api.js';
import { accessCard } from '../access.js'; // ops: API tokens and share links

function codeBlock(code, id) {
  const pre = h('pre', { id }, h('code', code));
  const btn = h('button', { type: 'button', class: 'btn small copy', onclick: async () => {
    try {
      await navigator.clipboard.writeText(code);
      btn.textContent = 'Copied';
    } catch {
      // Clipboard refused (e.g. plain http): select the text instead.
      const r = document.createRange();
      r.selectNodeContents(pre);
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(r);
      btn.textContent = 'Press Ctrl+C';
    }
    setTimeout(() => { btn.textContent = 'Copy'; }, 2000);
  } }, 'Copy');
  return h('div', { class: 'code-block' }, pre, btn);
}

const labels = {
  site: 'Site id',
  db: 'Database file',
  geoip: 'GeoIP database',
  endpoint: 'Capture endpoint',
  dashboard: 'Dashboard path',
  dashboard_users: 'Dashboard logins',
  inject: 'Inject the snippet into pages',
  record: 'Session recording',
  record_sample: 'Sessions recorded',
  persistence: 'Visitor id kept in',
  respect_dnt: 'Respect Do Not Track / GPC',
  store_ip: 'Store IP addresses',
  retention: 'Keep events for',
  sync: 'Disk sync',
  token_set: 'Project token required',
  max_body: 'Largest request body',
  rate_limit: 'Rate limit (requests/s per IP)',
  snippet: 'Snippet tag',
};

function bytes(n) {
  for (const [unit, size] of [['GiB', 1 << 30], ['MiB', 1 << 20], ['KiB', 1 << 10]]) {
    if (n >= size) return Math.round((n / size) * 10) / 10 + ' ' + unit;
  }
  return n + ' bytes';
}

function show(k, v) {
  if (v === true) return 'on';
  if (v === false) return 'off';
  if (v == null || v === '') {
    if (k === 'geoip') return 'embedded country database';
    if (k === 'dashboard_users') return 'none (local access only)';
    return '–';
  }
  if (Array.isArray(v)) return v.length ? v.map(text).join(', ') : k === 'dashboard_users' ? 'none (local access only)' : '–';
  if (k === 'retention' && (v === '0s' || v === '0')) return 'forever';
  if (k === 'rate_limit' && Number(v) <= 0) return 'off';
  if (k === 'max_body' && Number.isFinite(Number(v))) return bytes(Number(v));
  if (k === 'record_sample' && typeof v === 'number') return Math.round(v * 1000) / 10 + '%';
  return text(v);
}

export default async function settings(main, ctx) {
  ctx.setTitle('Settings');
  const site = currentSite(ctx.query);
  const snippet = h('section', { class: 'card', id: 'snippet-card' }, h('div', { class: 'card-head' }, h('h2', 'Tracking snippet')), spinner());
  const sdk = h('section', { class: 'card', id: 'sdk-card' }, h('div', { class: 'card-head' }, h('h2', 'PostHog SDKs')), spinner());
  const config = h('section', { class: 'card', id: 'config-card' }, h('div', { class: 'card-head' }, h('h2', 'Configuration')), spinner());
  main.append(h('div', { class: 'page-head' }, h('div', h('h1', 'Settings'), h('p', { class: 'muted' }, 'Set-up for ', h('strong', site), '.'))), snippet, sdk, config, accessCard(site, ctx.signal));
  main.append(flagsKeyCard(site, ctx.signal)); // feature flags: the secret key for local evaluation

  const [snip, conf] = await Promise.allSettled([get('snippet', { site }, ctx.signal), get('settings', { site }, ctx.signal)]);
  if (ctx.signal.aborted) return;
  if (snip.status === 'fulfilled') {
    replace(snippet, h('div', { class: 'card-head' }, h('h2', 'Tracking snippet')),
      h('p', 'Paste this into the ', h('code', '<head>'), ' of every page (or set ', h('code', 'inject'), ' in the Caddyfile and skip this step).'),
      codeBlock(snip.value.html || '', 'snippet-code'),
      h('p', { class: 'muted' }, 'Custom events: ', h('code', "firstparty.capture('signed_up', {plan: 'pro'})"), '; identify a logged-in user: ', h('code', "firstparty.identify('user-42', {email: '…'})"), '.'));
  } else {
    replace(snippet, h('div', { class: 'card-head' }, h('h2', 'Tracking snippet')), errorBox(snip.reason));
  }
  const c = conf.status === 'fulfilled' && conf.value ? conf.value : {};
  const host = location.origin + (c.endpoint || '/_f');
  replace(sdk, h('div', { class: 'card-head' }, h('h2', 'PostHog SDKs')),
    h('p', 'Every PostHog SDK sends here unchanged: point its host at ', h('code', host), '. The project key is free-form', c.token_set ? ' but must be this site’s token.' : '.'),
    h('h3', 'Browser (posthog-js)'),
    codeBlock(`posthog.init('phc_firstparty', {\n  api_host: '${host}',\n  person_profiles: 'always',\n})`, 'sdk-js'),
    h('h3', 'Node.js (posthog-node)'),
    codeBlock(`import { PostHog } from 'posthog-node'\n\nconst posthog = new PostHog('phc_firstparty', { host: '${host}' })\nposthog.capture({ distinctId: 'user-42', event: 'signed_up' })\nawait posthog.shutdown()`, 'sdk-node'),
    h('h3', 'Go (posthog-go)'),
    codeBlock(`client, _ := posthog.NewWithConfig("phc_firstparty", posthog.Config{Endpoint: "${host}"})\ndefer client.Close()\nclient.Enqueue(posthog.Capture{DistinctId: "user-42", Event: "signed_up"})`, 'sdk-go'),
    h('h3', 'Python (posthog)'),
    codeBlock(`from posthog import Posthog\n\nposthog = Posthog('phc_firstparty', host='${host}')\nposthog.capture('signed_up', distinct_id='user-42')`, 'sdk-python'));
  if (conf.status === 'fulfilled') {
    const order = Object.keys(labels);
    const rank = (k) => (order.includes(k) ? order.indexOf(k) : order.length);
    const entries = Object.entries(c || {}).sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b));
    replace(config, h('div', { class: 'card-head' }, h('h2', 'Configuration'), h('span', { class: 'muted' }, 'As the analytics module runs it; change it in the Caddyfile.')),
      h('div', { class: 'table-wrap' }, h('table', { class: 'data props', id: 'config-table' }, h('tbody', entries.map(([k, v]) =>
        h('tr', h('td', labels[k] || k, ' ', h('code', { class: 'muted' }, k)), h('td', show(k, v))))))));
  } else {
    replace(config, h('div', { class: 'card-head' }, h('h2', 'Configuration')), errorBox(conf.reason));
  }
}

// flagsKeyCard shows the site's secret flags key (phs_…), which server SDKs
// use for local evaluation, and rotates it.
function flagsKeyCard(site, signal) {
  const card = h('section', { class: 'card', id: 'flags-key-card' }, h('div', { class: 'card-head' }, h('h2', 'Feature flags secret key')), spinner());
  const show = (key) => replace(card, h('div', { class: 'card-head' }, h('h2', 'Feature flags secret key')),
    h('p', 'Server SDKs evaluate flags locally with this key (posthog-node ', h('code', 'secretKey'), ', posthog-go ', h('code', 'PersonalApiKey'), '). Keep it on servers only.'),
    codeBlock(key, 'flags-key'),
    h('button', { type: 'button', class: 'btn', id: 'rotate-flags-key', onclick: async () => {
      try {
        show((await send('POST', 'flags_key/rotate?site=' + encodeURIComponent(site))).key);
      } catch (err) {
        card.append(errorBox(err));
      }
    } }, 'Rotate key'));
  get('flags_key', { site }, signal).then((r) => show(r.key), (err) => replace(card, errorBox(err)));
  return card;
}
