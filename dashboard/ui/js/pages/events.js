// The events explorer: every event with filters, newest first, and a live
// tail that adds events as they are stored.

import { h } from '../dom.js';
import { reportParams, setQuery, parseFilter, url, currentSite } from '../api.js';
import { toolbar, eventDatalist } from '../components.js';
import { eventTable } from '../events_table.js';

// matches applies the filters as the server does: a missing property is
// the empty value.
export function matches(ev, event, filters) {
  if (event && ev.event !== event) return false;
  for (const f of filters) {
    const p = parseFilter(f);
    if (!p) continue;
    const raw = ev.properties ? ev.properties[p.prop] : undefined;
    const v = raw == null ? '' : typeof raw === 'object' ? JSON.stringify(raw) : String(raw);
    const ok = p.op === '==' ? v === p.value : p.op === '!=' ? v !== p.value
      : p.op === '~' ? v.toLowerCase().includes(p.value.toLowerCase()) : !v.toLowerCase().includes(p.value.toLowerCase());
    if (!ok) return false;
  }
  return true;
}

export default async function events(main, ctx) {
  ctx.setTitle('Events');
  const q = ctx.query;
  const event = q.get('event') || '';
  const tail = q.get('tail') === '1';
  const evInput = h('input', { id: 'event-filter', value: event, list: 'fp-events', placeholder: 'All events', 'aria-label': 'Event name', autocomplete: 'off' });
  const form = h('form', { class: 'period', onsubmit: (e) => { e.preventDefault(); setQuery({ event: evInput.value.trim() || null }, true); } },
    evInput, h('button', { type: 'submit', class: 'btn small' }, 'Show'));
  evInput.addEventListener('change', () => setQuery({ event: evInput.value.trim() || null }, true));
  const tailBtn = h('button', { type: 'button', class: ['btn', 'small', tail && 'primary'], id: 'live-tail', 'aria-pressed': String(tail),
    onclick: () => setQuery({ tail: tail ? null : '1' }, true) }, tail ? '● Live' : '○ Live tail');
  main.append(
    h('div', { class: 'page-head' }, h('div', h('h1', 'Events'), h('p', { class: 'muted' }, 'Every event stored, newest first. Click one to see its properties.'))),
    toolbar({ extra: h('div', { class: 'period' }, form, tailBtn) }));
  const dl = eventDatalist();
  if (dl) main.appendChild(dl);
  const body = h('section', { class: 'card' });
  main.appendChild(body);
  const params = reportParams(q, undefined, { event: event || null });
  params.delete('tz');
  if (tail) {
    // The tail shows what arrives from now on, so the range ends now.
    params.set('to', new Date(Date.now() + 60000).toISOString());
  }
  const table = eventTable(body, ctx, params, { emptyText: 'No events match.' });
  if (!tail) return;
  const filters = q.getAll('filter');
  const es = new EventSource(url('/api/live', { site: currentSite(q) }));
  es.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    if (matches(ev, event, filters)) table.prepend(ev);
  };
  ctx.onCleanup(() => es.close());
}
