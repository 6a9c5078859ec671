// Persons: search, and a person's page with properties, ids and their
// event stream; export and delete (GDPR's access and erasure).

import { h, replace, errorBox, empty, spinner, dateTime, ago, text, debounce, flag, countryName } from '../dom.js';
import { get, send, url, query, navigate, setQuery, sharedQuery, currentSite } from '../api.js';
import { eventTable } from '../events_table.js';

export default async function persons(main, ctx) {
  if (ctx.parts[0]) return person(main, ctx, ctx.parts[0]);
  ctx.setTitle('Persons');
  const q = ctx.query;
  const search = q.get('search') || '';
  const input = h('input', { type: 'search', id: 'person-search', value: search, placeholder: 'Search by id, email or any property', 'aria-label': 'Search persons', autocomplete: 'off' });
  const update = debounce(() => setQuery({ search: input.value || null }, true), 300);
  input.addEventListener('input', update);
  const list = h('section', { class: 'card', id: 'persons-list' }, spinner());
  main.append(
    h('div', { class: 'page-head' }, h('div', h('h1', 'Persons'), h('p', { class: 'muted' }, 'Everyone who sent an event, with every id they used.'))),
    h('form', { class: 'search', role: 'search', onsubmit: (e) => { e.preventDefault(); setQuery({ search: input.value || null }, true); } }, input),
    list);
  if (search) {
    input.focus();
    input.setSelectionRange(search.length, search.length);
  }
  try {
    const shared = sharedQuery(q);
    let res = await get('persons', { site: currentSite(q), search, limit: 100 }, ctx.signal);
    let rows = res.results || [];
    if (!rows.length) {
      replace(list, empty(search ? 'Nobody matches this search.' : 'No persons yet.'));
      return;
    }
    const hasLoc = rows.some((p) => location(p.properties || {}));
    const row = (p) => {
      const href = url('/persons/' + encodeURIComponent(p.id), shared);
      return h('tr', { class: 'clickable', onclick: (e) => { if (!e.target.closest('a')) navigate('/persons/' + encodeURIComponent(p.id), shared); } },
        h('td', h('a', { href, class: 'truncate person-link' }, displayName(p))),
        h('td', { class: 'hide-sm muted truncate' }, (p.distinct_ids || []).slice(0, 3).join(', ')),
        hasLoc ? h('td', location(p.properties || {})) : null,
        h('td', { class: 'hide-sm muted', title: dateTime(p.created_at) }, ago(p.created_at)));
    };
    const body = h('tbody', rows.map(row));
    const count = h('p', { class: 'muted small', id: 'persons-count' });
    const more = h('button', { type: 'button', class: 'btn small ghost more', id: 'persons-more' }, 'Load more');
    const showCount = () => {
      count.textContent = (res.total != null ? rows.length + ' of ' + res.total : rows.length) + (search ? ' matching persons' : ' persons');
      more.hidden = !res.next;
    };
    more.addEventListener('click', async () => {
      more.disabled = true;
      try {
        res = await get('persons', { site: currentSite(q), search, limit: 100, cursor: res.next }, ctx.signal);
        const next = res.results || [];
        rows = rows.concat(next);
        for (const p of next) body.appendChild(row(p));
        showCount();
      } catch (err) {
        if (!ctx.signal.aborted) list.appendChild(errorBox(err));
      } finally {
        more.disabled = false;
      }
    });
    showCount();
    replace(list, count, h('div', { class: 'table-wrap' }, h('table', { class: 'data', id: 'persons-table' },
      h('thead', h('tr', h('th', 'Person'), h('th', { class: 'hide-sm' }, 'Ids'), hasLoc ? h('th', 'Location') : null, h('th', { class: 'hide-sm' }, 'First seen'))),
      body)), more);
  } catch (err) {
    if (!ctx.signal.aborted) replace(list, errorBox(err));
  }
}

// displayName picks what people call someone: email, name, else an id.
export function displayName(p) {
  const pr = p.properties || {};
  for (const k of ['email', '$email', 'name', '$name', 'username']) {
    if (typeof pr[k] === 'string' && pr[k]) return pr[k];
  }
  return (p.distinct_ids && p.distinct_ids[0]) || p.id;
}

function location(pr) {
  const cc = pr.$geoip_country_code || pr.$initial_geoip_country_code;
  if (!cc) return '';
  const city = pr.$geoip_city_name || pr.$initial_geoip_city_name;
  return [h('span', { class: 'flag' }, flag(cc)), ' ', city ? text(city) + ', ' : '', countryName(text(cc))];
}

async function person(main, ctx, id) {
  ctx.setTitle('Person');
  const site = currentSite(ctx.query);
  const head = h('div', { class: 'page-head' }, spinner());
  const left = h('div');
  const right = h('section', { class: 'card', id: 'person-events' }, spinner());
  main.append(h('p', h('a', { href: url('/persons', sharedQuery(ctx.query)) }, '← All persons')), head, h('div', { class: 'cols' }, left, right));
  let p;
  try {
    p = await get('persons/' + encodeURIComponent(id), { site }, ctx.signal);
  } catch (err) {
    if (ctx.signal.aborted) return;
    replace(head, err.status === 404 ? h('div', h('h1', 'Person not found'), h('p', { class: 'muted' }, 'They may have been deleted.')) : errorBox(err));
    left.remove();
    right.remove();
    return;
  }
  const name = displayName(p);
  const exportURL = url('/api/persons/' + encodeURIComponent(p.id) + '/export', { site });
  const del = h('span', { class: 'confirm' });
  const askDelete = () => replace(del,
    h('span', 'Delete this person and all their events?'),
    h('button', { type: 'button', class: 'btn danger solid small', id: 'confirm-delete', onclick: async (e) => {
      e.currentTarget.disabled = true;
      try {
        await send('DELETE', 'persons/' + encodeURIComponent(p.id) + '?site=' + encodeURIComponent(site));
        navigate('/persons', sharedQuery(query()));
      } catch (err) {
        replace(del, errorBox(err));
      }
    } }, 'Delete'),
    h('button', { type: 'button', class: 'btn small', onclick: resetDelete }, 'Cancel'));
  const resetDelete = () => replace(del, h('button', { type: 'button', class: 'btn danger', id: 'delete-person', onclick: askDelete }, 'Delete'));
  resetDelete();
  const initial = (String(name).trim()[0] || '?').toUpperCase();
  replace(head,
    h('div', { class: 'person-head' }, h('span', { class: 'avatar', 'aria-hidden': 'true' }, initial),
      h('div', h('h1', { id: 'person-name' }, name), h('p', { class: 'muted' }, 'First seen ', dateTime(p.created_at)))),
    h('div', { class: 'card-actions' }, h('a', { class: 'btn', href: exportURL, download: 'person.ndjson', id: 'export-person' }, 'Export'), del));

  const props = Object.entries(p.properties || {}).sort(([a], [b]) => a.localeCompare(b));
  left.append(
    h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', 'Distinct ids')),
      h('div', { class: 'ids', id: 'person-ids' }, (p.distinct_ids || []).map((d) => h('code', d)))),
    h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', 'Properties'), h('span', { class: 'muted' }, String(props.length))),
      props.length
        ? h('div', { class: 'table-wrap' }, h('table', { class: 'data props', id: 'person-props' }, h('tbody', props.map(([k, v]) => h('tr', h('td', k), h('td', text(v)))))))
        : empty('No properties set.')));

  replace(right, h('div', { class: 'card-head' }, h('h2', 'Events')));
  // Everything of theirs, whatever the dashboard's period.
  const body = h('div');
  right.appendChild(body);
  eventTable(body, ctx, { site, distinct_id: (p.distinct_ids && p.distinct_ids[0]) || p.id, from: '2000-01-01T00:00:00Z', to: new Date(Date.now() + 86400000).toISOString() }, { showPerson: false });
  // Their session recordings, each with a "Watch recording" link.
  import('./replay.js').then((m) => m.personRecordings(left, ctx, site, p)).catch((err) => console.warn(err));
}
