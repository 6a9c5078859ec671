// Session recordings: the list (/recordings), a person's recordings (for the
// person page) and the replay (/recordings/<session id>): rrweb's player
// beside the session's events; a click on an event jumps to its moment.
//
// The replay page must be a document loaded at its own URL: the server
// sends it with a CSP that lets the recorded page's styles apply inside
// the player's iframe (scripts stay 'self'); reached by client-side
// routing, the page loads itself again.

import { h, replace, errorBox, empty, spinner, dateTime, duration, text } from '../dom.js';
import { get, url, assets, prefix, sharedQuery, currentSite, reportParams, replayURL, recordingPath } from '../api.js';
import { toolbar, eventLabel } from '../components.js';

export default async function recordings(main, ctx) {
  loadCSS(assets + '/replay.css');
  // A session id that is a dot segment travels in ?session= (see recordingPath).
  if (ctx.parts[0]) return replay(main, ctx, ctx.query.get('session') ?? ctx.parts[0]);
  ctx.setTitle('Recordings');
  const q = ctx.query;
  const person = q.get('distinct_id') || '';
  const list = h('section', { class: 'card', id: 'recordings-list' }, spinner());
  main.append(
    h('div', { class: 'page-head' }, h('div', h('h1', 'Recordings'),
      h('p', { class: 'muted' }, person ? ['Sessions recorded of ', h('code', person), '.'] : 'Sessions recorded with `record on`, newest first.'))),
    toolbar({ filters: false }),
    list);
  try {
    const p = reportParams(q, undefined, { distinct_id: person });
    p.delete('filter');
    p.delete('cohort');
    const res = await get('recordings', p, ctx.signal);
    recordingTable(list, res.results || [], person ? 'No recordings of this person in this period.' : 'No recordings in this period. Turn them on with `record on` in the analytics block.');
  } catch (err) {
    if (!ctx.signal.aborted) replace(list, errorBox(err));
  }
}

// personRecordings adds a card with a person's recordings (any time) to el.
export async function personRecordings(el, ctx, site, person) {
  loadCSS(assets + '/replay.css');
  const body = h('div', spinner());
  const card = h('section', { class: 'card', id: 'person-recordings' }, h('div', { class: 'card-head' }, h('h2', 'Recordings')), body);
  el.append(card);
  try {
    const id = (person.distinct_ids && person.distinct_ids[0]) || person.id;
    const res = await get('recordings', { site, distinct_id: id, from: '2000-01-01T00:00:00Z', to: new Date(Date.now() + 86400000).toISOString(), limit: 20 }, ctx.signal);
    // Their own recordings: no person column, so that the button stays
    // on the card however narrow it is.
    recordingTable(body, res.results || [], 'No recordings of this person.', { person: false });
  } catch (err) {
    if (!ctx.signal.aborted) replace(body, errorBox(err));
  }
}

function recordingTable(el, rows, emptyText, { person = true } = {}) {
  if (!rows.length) {
    replace(el, empty(emptyText));
    return;
  }
  const shared = sharedQuery();
  replace(el, h('div', { class: 'table-wrap' }, h('table', { class: 'data recordings', id: 'recordings-table' },
    h('thead', h('tr', h('th', 'Started'), h('th', 'Duration'), person ? h('th', { class: 'hide-sm' }, 'Person') : null, h('th', ''))),
    h('tbody', rows.map((r) => h('tr', { dataset: { session: r.session_id } },
      h('td', dateTime(r.start)),
      h('td', duration(r.duration_s)),
      person ? h('td', { class: 'hide-sm' }, h('a', { href: url('/persons/' + encodeURIComponent(r.person_id || r.distinct_id), shared), class: 'truncate rec-person', title: text(r.distinct_id) }, text(r.person || r.distinct_id))) : null,
      h('td', h('a', { class: 'btn small watch', href: replayURL(r.session_id) }, '▶ Watch recording'),
        // A session recorded in several tabs at once: each tab on its own.
        r.tabs > 1 ? Array.from({ length: r.tabs - 1 }, (_, i) => [' ', h('a', { class: 'btn small ghost watch-tab', href: replayURL(r.session_id, i + 2) }, 'tab ' + (i + 2))]) : null)))))));
}

export { replayURL };

function loadCSS(href) {
  if (document.querySelector(`link[rel="stylesheet"][href="${CSS.escape(href)}"]`)) return;
  document.head.appendChild(h('link', { rel: 'stylesheet', href }));
}

let playerScript;
function loadPlayer() {
  playerScript ||= new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = assets + '/vendor/rrweb-player.min.js';
    s.onload = () => resolve(window.rrwebPlayer);
    s.onerror = () => reject(new Error('could not load the player'));
    document.head.appendChild(s);
  });
  return playerScript;
}

// loadedHere reports whether this document was loaded at a replay URL, so
// that it has the replay page's CSP.
function loadedHere() {
  const nav = performance.getEntriesByType('navigation')[0];
  if (!nav) return false;
  const path = new URL(nav.name).pathname;
  return path.startsWith(prefix + '/recordings/') && path.length > (prefix + '/recordings/').length;
}

const clock = (ms) => {
  const s = Math.max(0, Math.round(ms / 1000));
  return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
};

async function replay(main, ctx, sid) {
  if (!loadedHere()) {
    // Once per URL: should the browser not tell how the document was
    // loaded, the replay goes on under the stricter policy.
    let again = true;
    try {
      again = sessionStorage.getItem('fp-replay-reload') !== location.pathname;
      sessionStorage.setItem('fp-replay-reload', location.pathname);
    } catch { /* storage refused */ }
    if (again) {
      location.reload();
      return;
    }
  }
  ctx.setTitle('Recording');
  loadCSS(assets + '/vendor/rrweb-player.min.css');
  const site = currentSite(ctx.query);
  const stage = h('div', { class: 'replay-stage', id: 'replay-player' }, spinner());
  const side = h('section', { class: 'card replay-events', id: 'replay-events' }, h('div', { class: 'card-head' }, h('h2', 'Events')), spinner());
  const info = h('p', { class: 'muted' });
  main.append(
    h('p', h('a', { href: url('/recordings', sharedQuery(ctx.query)) }, '← All recordings')),
    h('div', { class: 'page-head' }, h('div', h('h1', 'Recording'), info)),
    h('div', { class: 'replay-layout' }, h('section', { class: 'card replay-main' }, stage), side));

  let events;
  try {
    const tab = ctx.query.get('tab');
    const [path, params] = recordingPath(sid);
    params.set('site', site);
    if (tab) params.set('tab', tab);
    [events] = await Promise.all([get('recordings/' + path, params, ctx.signal), loadPlayer()]);
  } catch (err) {
    if (ctx.signal.aborted) return;
    replace(stage, err.status === 404 ? empty('There is no recording of this session.') : errorBox(err));
    side.remove();
    return;
  }
  events = (events || []).filter((e) => e && typeof e.timestamp === 'number').sort((a, b) => a.timestamp - b.timestamp);
  // A replay starts at the first full snapshot (type 2) and its meta (4).
  const full = events.findIndex((e) => e.type === 2);
  if (full < 0) {
    replace(stage, empty('This recording has no full snapshot of the page yet; nothing to replay.'));
    side.remove();
    return;
  }
  const metaAt = full > 0 && events[full - 1].type === 4 ? full - 1 : full;
  events = events.slice(metaAt);
  const start = events[0].timestamp, end = events[events.length - 1].timestamp;
  replace(info, dateTime(start), ' · ', duration((end - start) / 1000), ' · session ', h('code', sid),
    ctx.query.get('tab') ? ' · tab ' + ctx.query.get('tab') : '');

  replace(stage);
  const width = Math.max(320, stage.clientWidth || 800);
  const mod = window.rrwebPlayer;
  const Player = (mod && (mod.default || mod.Player)) || mod;
  const player = new Player({
    target: stage,
    props: {
      events,
      width,
      height: Math.round(width * 0.6),
      autoPlay: true,
      skipInactive: true,
      showController: true,
      speedOption: [1, 2, 4, 8],
      mouseTail: false,
      UNSAFE_replayCanvas: false,
    },
  });
  stage.dataset.start = String(start);
  stage.dataset.time = '0';
  ctx.onCleanup(() => {
    try { player.pause(); } catch { /* gone */ }
    try { player.$destroy && player.$destroy(); } catch { /* gone */ }
  });

  // The session's events beside the player.
  const list = h('ol', { class: 'replay-list', id: 'replay-event-list' });
  let rows = [];
  player.addEventListener('ui-update-current-time', (e) => {
    const t = e.payload;
    stage.dataset.time = String(Math.round(t));
    let cur = null;
    for (const r of rows) if (r.offset <= t) cur = r;
    for (const r of rows) r.el.classList.toggle('current', r === cur);
  });
  try {
    const pad = 60000;
    const res = await get('events', {
      site,
      filter: '$session_id==' + sid,
      from: new Date(start - pad).toISOString(),
      to: new Date(end + pad).toISOString(),
      limit: 1000,
    }, ctx.signal);
    const evs = (res.results || []).slice().reverse();
    // Whose session: their email or name, else the id they had.
    const who = evs.find((ev) => ev.person || ev.distinct_id);
    if (who) {
      info.append(' · ', h('a', { id: 'replay-person', href: url('/persons/' + encodeURIComponent(who.person_id || who.distinct_id), sharedQuery(ctx.query)) }, text(who.person || who.distinct_id)));
    }
    replace(side, h('div', { class: 'card-head' }, h('h2', 'Events'), h('span', { class: 'muted' }, String(evs.length))), list);
    rows = evs.map((ev) => {
      const offset = Math.max(0, new Date(ev.timestamp).getTime() - start);
      const pr = ev.properties || {};
      const where = pr.$pathname || pr.$current_url || '';
      const el = h('li', h('button', { type: 'button', class: 'replay-ev', dataset: { offset: String(offset) }, onclick: () => {
        player.goto(Math.min(offset, end - start), true);
      } }, h('span', { class: 'replay-ev-time mono' }, clock(offset)), ' ', h('span', { class: 'ev-name' }, eventLabel(ev.event)),
        where ? h('span', { class: 'muted replay-ev-where' }, text(where)) : null,
        ev.event === '$autocapture' && pr.$el_text ? h('span', { class: 'muted' }, ' · ', text(pr.$el_text).slice(0, 60)) : null));
      list.append(el);
      return { offset, el };
    });
    if (!evs.length) side.append(empty('No events in this session.'));
  } catch (err) {
    if (!ctx.signal.aborted) replace(side, errorBox(err));
  }
}
