// Live: who is on the site now. Everything on the page speaks of the same
// sliding window, the last five minutes: the page opens with the server's
// snapshot of it (/api/live/recent), then adds events as they are stored
// (Server-Sent Events from /api/live) and lets older ones fall out.

import { h, replace, num, text, empty, errorBox } from '../dom.js';
import { get, url, currentSite, sharedQuery, query } from '../api.js';
import { card, rankList, eventLabel } from '../components.js';

const timeFmt = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

export default async function live(main, ctx) {
  ctx.setTitle('Live');
  const site = currentSite(ctx.query);
  const online = h('span', { class: 'big-number', id: 'online-count' }, '–');
  const pageviews = h('span', { class: 'big-number', id: 'live-pageviews' }, '–');
  const state = h('span', { class: 'muted', id: 'live-state' }, 'Connecting…');
  const received = h('span', { id: 'live-received' }, '0');
  let nReceived = 0;
  main.append(
    h('div', { class: 'page-head' }, h('div', h('h1', 'Live'), h('p', { class: 'muted' }, 'Who is on the site now: the last 5 minutes, updated the moment an event is stored.'))),
    h('section', { class: 'card' }, h('div', { class: 'live-head' },
      h('div', h('div', h('span', { class: 'pulse', 'aria-hidden': 'true' }), ' ', h('span', { class: 'muted' }, 'Online now (last 5 minutes)')), online),
      h('div', h('div', { class: 'muted' }, 'Pageviews (last 5 minutes)'), pageviews),
      h('div', { class: 'muted' }, state, h('br'), received, ' new since you opened this page'))));
  const pagesBody = h('div', { class: 'card-body', id: 'live-pages' }, empty('Loading…'));
  const stream = h('ol', { class: 'stream', id: 'live-stream' });
  const streamBody = h('div', { class: 'card-body' }, empty('Loading…'));
  main.appendChild(h('div', { class: 'cols' },
    card({ title: 'Pages viewed (last 5 minutes)' }, pagesBody),
    card({ title: 'Events (last 5 minutes)' }, streamBody)));

  let windowMs = 5 * 60 * 1000;
  let skew = 0; // server clock minus this browser's
  const seen = new Set(); // uuids listed
  const serverNow = () => Date.now() + skew;

  const row = (ev) => {
    const pr = ev.properties || {};
    const personId = ev.person_id || ev.distinct_id;
    const at = new Date(ev.timestamp || serverNow()).getTime();
    return h('li', { class: 'live-row', dataset: { at: String(at), uuid: ev.uuid || '' } },
      h('span', { class: 'muted' }, timeFmt.format(new Date(at))),
      h('strong', eventLabel(ev.event)),
      h('span', text(pr.$pathname || pr.$current_url || pr.$screen_name || '')),
      h('a', { class: 'live-person', href: url('/persons/' + encodeURIComponent(personId), sharedQuery(query())), title: text(ev.distinct_id) }, text(ev.person || ev.distinct_id)));
  };
  const showStream = () => {
    if (stream.children.length) {
      if (stream.parentNode !== streamBody) replace(streamBody, stream);
    } else {
      replace(streamBody, empty('No events in the last 5 minutes. Waiting for the next…'));
    }
  };
  // add lists an event, newest first, once.
  const add = (ev, fresh) => {
    if (ev.properties && ev.properties.$datacenter === true) return; // left out of the counts too
    if (ev.uuid && seen.has(ev.uuid)) return;
    if (ev.uuid) seen.add(ev.uuid);
    const li = row(ev);
    if (fresh) li.classList.add('new-row');
    // Keep time order: a late event goes below newer ones.
    const at = Number(li.dataset.at);
    let before = null;
    for (const c of stream.children) {
      if (Number(c.dataset.at) <= at) { before = c; break; }
    }
    stream.insertBefore(li, before);
    while (stream.children.length > 200) {
      seen.delete(stream.lastChild.dataset.uuid);
      stream.lastChild.remove();
    }
  };
  // prune drops the events that have left the window.
  const prune = () => {
    const edge = serverNow() - windowMs;
    while (stream.lastChild && Number(stream.lastChild.dataset.at) < edge) {
      seen.delete(stream.lastChild.dataset.uuid);
      stream.lastChild.remove();
    }
    showStream();
  };

  // The server's figures for the window: online, pageviews, pages.
  let loaded = false;
  async function refresh(withEvents) {
    try {
      const res = await get('live/recent', withEvents ? { site } : { site, events: '0' }, ctx.signal);
      skew = Date.parse(res.now) - Date.now();
      windowMs = (res.window_seconds || 300) * 1000;
      online.textContent = num(res.online);
      pageviews.textContent = num(res.pageviews);
      const pages = res.pages || [];
      replace(pagesBody, pages.length
        ? rankList(pages.map((p) => ({ ...p, value: text(p.value) })), { column: 'Visitors' })
        : empty('No pageviews in the last 5 minutes.'));
      if (withEvents) {
        // Oldest first, so that add keeps the newest on top.
        for (const ev of (res.results || []).slice().reverse()) add(ev, false);
      }
      loaded = true;
      prune();
    } catch (err) {
      if (ctx.signal.aborted) return;
      if (!loaded) replace(pagesBody, errorBox(err));
      online.textContent = '–';
    }
  }

  // Stream first, so that nothing stored between the snapshot and the
  // stream's start is missed (repeats are dropped by uuid).
  const pending = [];
  const es = new EventSource(url('/api/live', { site }));
  es.onopen = () => { state.textContent = 'Connected'; };
  es.onerror = () => { state.textContent = es.readyState === EventSource.CLOSED ? 'Disconnected' : 'Reconnecting…'; };
  let soon = null;
  es.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    if (!loaded) {
      pending.push(ev);
      return;
    }
    nReceived++;
    received.textContent = num(nReceived);
    add(ev, true);
    showStream();
    // The counts come from the server, a moment after a burst.
    clearTimeout(soon);
    soon = setTimeout(() => refresh(false), 1000);
  };
  ctx.onCleanup(() => { es.close(); clearTimeout(soon); });

  await refresh(true);
  for (const ev of pending.splice(0)) {
    nReceived++;
    add(ev, true);
  }
  received.textContent = num(nReceived);
  showStream();
  const t = setInterval(() => refresh(false), 10000);
  const p = setInterval(prune, 5000);
  ctx.onCleanup(() => { clearInterval(t); clearInterval(p); });
}
