// Live: visitors online now and events as they arrive (Server-Sent
// Events from /api/live).

import { h, replace, num, text, empty } from '../dom.js';
import { get, url, currentSite, sharedQuery, query } from '../api.js';
import { card, rankList, eventLabel } from '../components.js';

const timeFmt = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

export default async function live(main, ctx) {
  ctx.setTitle('Live');
  const site = currentSite(ctx.query);
  const online = h('span', { class: 'big-number', id: 'online-count' }, '–');
  const state = h('span', { class: 'muted', id: 'live-state' }, 'Connecting…');
  const counter = h('span', { class: 'big-number', id: 'live-received' }, '0');
  main.append(
    h('div', { class: 'page-head' }, h('div', h('h1', 'Live'), h('p', { class: 'muted' }, 'Who is on the site now, and every event the moment it is stored.'))),
    h('section', { class: 'card' }, h('div', { class: 'live-head' },
      h('div', h('div', h('span', { class: 'pulse', 'aria-hidden': 'true' }), ' ', h('span', { class: 'muted' }, 'Online now (last 5 minutes)')), online),
      h('div', h('div', { class: 'muted' }, 'Events since you opened this page'), counter),
      state)));
  const pagesBody = h('div', { class: 'card-body' }, empty('Waiting for pageviews…'));
  const stream = h('ol', { class: 'stream', id: 'live-stream' });
  const streamBody = h('div', { class: 'card-body' }, empty('Waiting for events…'));
  main.appendChild(h('div', { class: 'cols' },
    card({ title: 'Pages viewed now' }, pagesBody),
    card({ title: 'Events as they arrive' }, streamBody)));

  async function tick() {
    try {
      const res = await get('live/count', { site }, ctx.signal);
      online.textContent = num(res.online);
    } catch {
      if (!ctx.signal.aborted) online.textContent = '–';
    }
  }
  tick();
  const t = setInterval(tick, 10000);
  ctx.onCleanup(() => clearInterval(t));

  const pages = new Map();
  let received = 0;
  const es = new EventSource(url('/api/live', { site }));
  es.onopen = () => { state.textContent = 'Connected'; };
  es.onerror = () => { state.textContent = es.readyState === EventSource.CLOSED ? 'Disconnected' : 'Reconnecting…'; };
  es.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    received++;
    counter.textContent = num(received);
    if (received === 1) replace(streamBody, stream);
    const pr = ev.properties || {};
    const personId = ev.person_id || ev.distinct_id;
    stream.prepend(h('li', { class: 'new-row' },
      h('span', { class: 'muted' }, timeFmt.format(new Date(ev.timestamp || Date.now()))),
      h('strong', eventLabel(ev.event)),
      h('span', text(pr.$pathname || pr.$current_url || '')),
      h('a', { href: url('/persons/' + encodeURIComponent(personId), sharedQuery(query())) }, text(ev.distinct_id))));
    while (stream.children.length > 200) stream.lastChild.remove();
    if (ev.event === '$pageview' && pr.$pathname) {
      const k = text(pr.$pathname);
      const row = pages.get(k) || { value: k, count: 0, visitors: 0, ids: new Set() };
      row.count++;
      row.ids.add(personId);
      row.visitors = row.ids.size;
      pages.set(k, row);
      replace(pagesBody, rankList([...pages.values()].sort((a, b) => b.visitors - a.visitors || b.count - a.count).slice(0, 15), { column: 'Visitors' }));
    }
  };
  ctx.onCleanup(() => es.close());
}
