// Onboarding: what a site without events shows instead of zeros. Install
// steps for the snippet and each PostHog SDK, "waiting for your first
// event" that turns green when one is stored, and an install check that
// fetches a page of the site from the server and looks for the tag.

import { h, replace, text, errorBox, ago } from '../dom.js';
import { get, send, currentSite } from '../api.js';
import { eventLabel } from '../components.js';

function codeBlock(code, id) {
  const pre = h('pre', { id }, h('code', code));
  const btn = h('button', { type: 'button', class: 'btn small copy', onclick: async () => {
    try {
      await navigator.clipboard.writeText(code);
      btn.textContent = 'Copied';
    } catch {
      const r = document.createRange();
      r.selectNodeContents(pre);
      getSelection().removeAllRanges();
      getSelection().addRange(r);
      btn.textContent = 'Press Ctrl+C';
    }
    setTimeout(() => { btn.textContent = 'Copy'; }, 2000);
  } }, 'Copy');
  return h('div', { class: 'code-block' }, pre, btn);
}

// sdks are the install steps of each PostHog SDK, pointed at this server.
function sdks(host) {
  return [
    { key: 'js', label: 'posthog-js', install: 'npm install posthog-js',
      code: `import posthog from 'posthog-js'\n\nposthog.init('phc_firstparty', {\n  api_host: '${host}',\n  person_profiles: 'always',\n})` },
    { key: 'node', label: 'posthog-node', install: 'npm install posthog-node',
      code: `import { PostHog } from 'posthog-node'\n\nconst posthog = new PostHog('phc_firstparty', { host: '${host}' })\nposthog.capture({ distinctId: 'user-42', event: 'signed_up' })\nawait posthog.shutdown()` },
    { key: 'go', label: 'posthog-go', install: 'go get github.com/posthog/posthog-go',
      code: `client, _ := posthog.NewWithConfig("phc_firstparty", posthog.Config{Endpoint: "${host}"})\ndefer client.Close()\nclient.Enqueue(posthog.Capture{DistinctId: "user-42", Event: "signed_up"})` },
    { key: 'python', label: 'posthog-python', install: 'pip install posthog',
      code: `from posthog import Posthog\n\nposthog = Posthog('phc_firstparty', host='${host}')\nposthog.capture('signed_up', distinct_id='user-42')` },
  ];
}

// onboarding fills main for a site with no events; it calls done() once
// the first event is stored and the person asks for the dashboard.
export function onboarding(main, ctx, info, done) {
  const site = currentSite(ctx.query);
  const host = location.origin + (info.endpoint || '/_f');
  const waiting = h('div', { class: 'first-event waiting', id: 'first-event', role: 'status' },
    h('span', { class: 'pulse', 'aria-hidden': 'true' }), ' ', h('strong', 'Waiting for your first event…'),
    h('span', { class: 'muted' }, ' This turns green the moment one is stored.'));

  const block = (info.hosts && info.hosts[0]) || site;
  const caddy = `${block} {\n\tanalytics {\n\t\tinject\n\t}\n\treverse_proxy localhost:3000\n}`;
  const snippetStep = h('section', { class: 'card onboard-step', id: 'onboard-snippet-card' },
    h('div', { class: 'card-head' }, h('h2', h('span', { class: 'step-no' }, '1'), ' Add the snippet to your pages')),
    h('p', 'Paste this tag into the ', h('code', '<head>'), ' of every page:'),
    codeBlock(info.snippet || '', 'onboard-snippet'),
    info.inject
      ? h('p', { class: 'onboard-inject on', id: 'onboard-inject' }, '✓ ', h('code', 'inject'), ' is on: Caddy already adds this tag to every HTML page it serves for this site.')
      : [h('p', { id: 'onboard-inject' }, 'Or let Caddy add it to every HTML page it serves: put ', h('code', 'inject'), ' in the ', h('code', 'analytics'), ' block of your Caddyfile and reload.'),
        codeBlock(caddy, 'onboard-caddyfile')]);

  const list = sdks(host);
  let active = list[0].key;
  const sdkBody = h('div');
  const tabs = h('div', { class: 'tabs', role: 'tablist' });
  const showSDK = () => {
    const s = list.find((x) => x.key === active);
    for (const b of tabs.children) {
      b.classList.toggle('active', b.dataset.tab === active);
      b.setAttribute('aria-selected', String(b.dataset.tab === active));
    }
    replace(sdkBody, codeBlock(s.install, 'onboard-install-' + s.key), codeBlock(s.code, 'onboard-sdk-' + s.key));
  };
  for (const s of list) {
    tabs.appendChild(h('button', { type: 'button', role: 'tab', class: 'tab', dataset: { tab: s.key }, onclick: () => { active = s.key; showSDK(); } }, s.label));
  }
  showSDK();
  const sdkStep = h('section', { class: 'card onboard-step', id: 'onboard-sdk-card' },
    h('div', { class: 'card-head' }, h('h2', h('span', { class: 'step-no' }, '2'), ' Or send from a PostHog SDK'), tabs),
    h('p', 'Every PostHog SDK sends here unchanged: its host is ', h('code', { id: 'onboard-host' }, host), '. The project key is free-form.'),
    sdkBody);

  const input = h('input', { id: 'install-url', type: 'text', value: '/', autocomplete: 'off', 'aria-label': 'Page to check',
    placeholder: '/ or ' + (info.hosts && info.hosts[0] ? 'https://' + info.hosts[0] + '/page' : 'a page of this site') });
  const result = h('div', { id: 'install-result', role: 'status' });
  const checkBtn = h('button', { type: 'submit', class: 'btn primary', id: 'install-check' }, 'Check');
  const form = h('form', { class: 'form-row install-form', onsubmit: async (e) => {
    e.preventDefault();
    checkBtn.disabled = true;
    replace(result, h('p', { class: 'muted' }, 'Fetching the page from the server…'));
    try {
      const r = await send('POST', 'install_check', { url: input.value });
      const found = r.snippet || r.posthog;
      replace(result, h('p', { class: ['install-verdict', found ? 'found' : 'missing'], dataset: { found: String(found) } },
        found ? '✓ Found ' : '✗ Not found: ',
        r.snippet ? 'the Firstparty snippet' : r.posthog ? 'posthog-js sending here' : 'neither the snippet nor posthog-js sending here',
        ' on ', h('code', text(r.url)), ' (HTTP ' + r.status + ').'),
      h('p', { class: 'muted' }, r.events > 0 ? '✓ Events have arrived: ' + r.events + '.' : 'No event has arrived yet' + (found ? ': open the page in a browser.' : '.'),
        !found && !r.inject ? ' Paste the tag above or turn on inject.' : ''));
    } catch (err) {
      replace(result, h('p', { class: 'install-verdict refused' }, errorBox(err)));
    } finally {
      checkBtn.disabled = false;
    }
  } }, h('label', 'Page of this site', input), checkBtn);
  const checkStep = h('section', { class: 'card onboard-step', id: 'onboard-check-card' },
    h('div', { class: 'card-head' }, h('h2', h('span', { class: 'step-no' }, '3'), ' Check the installation')),
    h('p', { class: 'muted' }, 'The server fetches the page (only this site’s own hosts) and looks for the tag.'),
    form, result);

  main.append(
    h('div', { class: 'page-head' }, h('div', h('h1', 'Set up ', text(site)), h('p', { class: 'muted' }, 'No events yet. Install the snippet or an SDK, then open your site.'))),
    waiting, snippetStep, sdkStep, checkStep);

  // Wait for the first event: the server's count, every two seconds.
  let stopped = false;
  const arrived = (latest) => {
    stopped = true;
    const pr = (latest && latest.properties) || {};
    replace(waiting,
      h('span', { class: 'ok-dot', 'aria-hidden': 'true' }, '✓'), ' ',
      h('strong', 'Received your first event'),
      latest ? h('span', ' — ', eventLabel(latest.event), pr.$pathname ? [' on ', h('code', text(pr.$pathname))] : null,
        ' from ', text(latest.person || latest.distinct_id), ', ', ago(latest.timestamp), '.') : null,
      h('button', { type: 'button', class: 'btn primary small', id: 'open-dashboard', onclick: done }, 'Open the dashboard'));
    waiting.classList.remove('waiting');
    waiting.classList.add('received');
  };
  const poll = async () => {
    if (stopped || ctx.signal.aborted) return;
    try {
      const r = await get('onboarding', { site, latest: '1' }, ctx.signal);
      if (r.events > 0) {
        arrived(r.latest);
        return;
      }
    } catch { /* try again */ }
    t = setTimeout(poll, 2000);
  };
  let t = setTimeout(poll, 2000);
  ctx.onCleanup(() => { stopped = true; clearTimeout(t); });
}
