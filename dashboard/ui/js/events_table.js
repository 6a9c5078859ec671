// A table of events, newest first, with cursor paging; a click on a row
// shows all its properties. Every value is put in as text.

import { h, replace, errorBox, empty, spinner, dateTime, ago, text } from './dom.js';
import { get, url, sharedQuery, query, replayURL } from './api.js';
import { eventLabel, csvLink } from './components.js';

export function eventRow(ev, { showPerson = true, fresh = false } = {}) {
  const pr = ev.properties || {};
  const where = pr.$pathname || pr.$current_url || pr.$screen_name || '';
  const personId = ev.person_id || ev.distinct_id;
  const tr = h('tr', { class: ['clickable', 'ev-row', fresh && 'new-row'], dataset: { uuid: ev.uuid || '' }, tabindex: '0' },
    h('td', h('span', { class: 'ev-name' }, eventLabel(ev.event)), extra(ev)),
    showPerson ? h('td', h('a', { href: url('/persons/' + encodeURIComponent(personId), sharedQuery(query())), class: 'ev-person', title: text(ev.distinct_id) }, text(ev.person || ev.distinct_id))) : null,
    h('td', { class: 'hide-sm', title: text(pr.$current_url || '') }, text(where)),
    h('td', { class: 'muted', title: dateTime(ev.timestamp) }, ago(ev.timestamp)));
  const cols = showPerson ? 4 : 3;
  let detail = null;
  const toggle = (e) => {
    if (e.target.closest('a')) return;
    if (detail) {
      detail.remove();
      detail = null;
      return;
    }
    const props = Object.entries(pr).sort(([a], [b]) => a.localeCompare(b));
    detail = h('tr', { class: 'ev-detail' }, h('td', { colspan: cols },
      h('div', { class: 'kv' },
        h('div', h('span', 'Time'), h('span', dateTime(ev.timestamp))),
        h('div', h('span', 'Distinct id'), h('span', text(ev.distinct_id))),
        h('div', h('span', 'UUID'), h('span', { class: 'mono' }, text(ev.uuid))),
        pr.$session_id ? h('div', h('span', 'Session'), h('a', { class: 'watch-recording', href: replayURL(text(pr.$session_id)) }, 'Watch recording')) : null),
      h('table', { class: 'data props' }, h('tbody', props.map(([k, v]) => h('tr', h('td', k), h('td', text(v))))))));
    tr.after(detail);
  };
  tr.addEventListener('click', toggle);
  tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') toggle(e); });
  return tr;
}

// extra shows what an autocapture clicked or a custom event's title.
function extra(ev) {
  const pr = ev.properties || {};
  let s = '';
  if (ev.event === '$autocapture') s = pr.$el_text || pr.$event_type || '';
  else if (ev.event === '$pageview') s = pr.title || pr.$title || '';
  if (!s) return null;
  return h('span', { class: 'muted' }, ' · ', text(s).slice(0, 80));
}

// eventTable loads events for params into el, with a "Load more" button.
// It returns {prepend(ev)} for live tails.
export function eventTable(el, ctx, params, opts = {}) {
  const tbody = h('tbody');
  const showPerson = opts.showPerson !== false;
  const table = h('table', { class: 'data events', id: opts.id || 'events-table' },
    h('thead', h('tr', h('th', { class: 'col-event' }, 'Event'), showPerson ? h('th', { class: 'col-person' }, 'Person') : null,
      h('th', { class: 'hide-sm col-page' }, 'Page'), h('th', { class: 'col-when' }, 'When'))),
    tbody);
  const more = h('button', { type: 'button', class: 'btn small ghost more', hidden: true }, 'Load more');
  const status = h('div');
  // The same events as CSV (GET /api/export?format=csv): the export takes
  // the range and filters, the event name as one more filter; a person's
  // events have their own export on the person page.
  const ex = new URLSearchParams(params);
  let csv = null;
  if (!ex.get('distinct_id') && opts.csv !== false) {
    if (ex.get('event')) ex.append('filter', 'event==' + ex.get('event'));
    ex.delete('event');
    csv = h('div', { class: 'table-actions' }, csvLink(ex));
  }
  replace(el, csv, h('div', { class: 'table-wrap' }, table), status, more);
  status.appendChild(spinner());
  let cursor = null;
  let count = 0;
  async function load() {
    more.disabled = true;
    const p = new URLSearchParams(params);
    p.set('limit', opts.limit || 50);
    if (cursor) p.set('cursor', cursor);
    try {
      const res = await get('events', p, ctx.signal);
      replace(status);
      for (const ev of res.results || []) tbody.appendChild(eventRow(ev, { showPerson }));
      count += (res.results || []).length;
      cursor = res.next;
      more.hidden = !cursor;
      more.disabled = false;
      if (!count) replace(status, empty(opts.emptyText || 'No events.'));
    } catch (err) {
      if (!ctx.signal.aborted) replace(status, errorBox(err));
    }
  }
  more.addEventListener('click', load);
  load();
  return {
    prepend(ev) {
      if (!count) replace(status);
      count++;
      tbody.prepend(eventRow(ev, { showPerson, fresh: true }));
      // Keep the page light during a long tail.
      while (tbody.children.length > 500) tbody.lastChild.remove();
    },
  };
}
