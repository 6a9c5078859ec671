// Cohorts: groups of persons by behaviour (did an event within N days) or
// by a person property. Create, edit, delete, see who is in one, and use
// one as a filter of every report.

import { h, replace, errorBox, empty, spinner, text, num, ago, dateTime } from '../dom.js';
import { get, send, url, navigate, sharedQuery, currentSite, ops, opNames } from '../api.js';
import { eventDatalist, eventLabel, eventText, eventValue, propDatalist } from '../components.js';
import { displayName } from './persons.js';

function describe(c) {
  if (c.kind === 'property') return [text(c.property), ' ', opNames[c.op] || text(c.op), ' ', h('strong', text(c.value))];
  return ['Did ', h('strong', eventLabel(text(c.event))), ' in the last ', num(c.days), c.days === 1 ? ' day' : ' days'];
}

// cohortForm edits a cohort; onSave gets the body to send.
function cohortForm(c, onSave, onCancel) {
  const kind = c?.kind === 'property' ? 'property' : 'behavioral';
  const err = h('div');
  const f = h('form', { class: 'form', id: 'cohort-form' }, propDatalist(),
    h('div', { class: 'form-row' },
      h('label', 'Name', h('input', { name: 'name', value: c?.name || '', required: true, placeholder: 'e.g. Active buyers' })),
      h('label', 'Kind', h('select', { name: 'kind' },
        h('option', { value: 'behavioral', selected: kind === 'behavioral' }, 'Did an event'),
        h('option', { value: 'property', selected: kind === 'property' }, 'Has a property')))),
    h('div', { class: 'form-row', dataset: { kind: 'behavioral' } },
      h('label', 'Event', h('input', { name: 'event', value: eventText(c?.event || '$pageview'), list: 'fp-events', autocomplete: 'off' })),
      h('label', 'Within the last … days', h('input', { name: 'days', type: 'number', min: 1, value: c?.days || 30 }))),
    h('div', { class: 'form-row', dataset: { kind: 'property' } },
      h('label', 'Person property', h('input', { name: 'property', value: c?.property || '', list: 'fp-props', placeholder: 'e.g. email', autocomplete: 'off' })),
      h('label', 'Operator', h('select', { name: 'op' }, ops.map((o) => h('option', { value: o, selected: o === (c?.op || '==') }, opNames[o])))),
      h('label', 'Value', h('input', { name: 'value', value: c?.value || '', autocomplete: 'off' }))),
    err,
    h('div', { class: 'form-row' }, h('button', { type: 'submit', class: 'btn primary' }, c ? 'Save cohort' : 'Create cohort'),
      onCancel ? h('button', { type: 'button', class: 'btn', onclick: onCancel }, 'Cancel') : null));
  const sync = () => {
    for (const row of f.querySelectorAll('[data-kind]')) row.hidden = row.dataset.kind !== f.kind.value;
  };
  f.kind.addEventListener('change', sync);
  sync();
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = f.kind.value === 'property'
      ? { name: f.name.value.trim(), kind: 'property', property: f.property.value.trim(), op: f.op.value, value: f.value.value }
      : { name: f.name.value.trim(), kind: 'behavioral', event: eventValue(f.event.value), days: parseInt(f.days.value, 10) || 30 };
    try {
      await onSave(body);
    } catch (x) {
      replace(err, errorBox(x));
    }
  });
  return f;
}

export default async function cohorts(main, ctx) {
  if (ctx.parts[0]) return cohortPage(main, ctx, ctx.parts[0]);
  ctx.setTitle('Cohorts');
  const site = currentSite(ctx.query);
  const list = h('section', { class: 'card', id: 'cohorts-list' }, spinner());
  const formBox = h('div');
  const newBtn = h('button', { type: 'button', class: 'btn primary', id: 'new-cohort', onclick: () => {
    newBtn.hidden = true;
    replace(formBox, h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', 'New cohort')),
      cohortForm(null, async (body) => {
        await send('POST', 'cohorts?site=' + encodeURIComponent(site), body);
        navigate('/cohorts', sharedQuery(ctx.query), true);
      }, () => { replace(formBox); newBtn.hidden = false; })));
  } }, '+ New cohort');
  main.append(h('div', { class: 'page-head' }, h('div', h('h1', 'Cohorts'), h('p', { class: 'muted' }, 'Groups of persons to filter any report by.')), newBtn), eventDatalist() || '', formBox, list);
  try {
    const res = await get('cohorts', { site }, ctx.signal);
    const rows = Array.isArray(res) ? res : res.results || [];
    if (!rows.length) {
      replace(list, empty('No cohorts yet. Make one to compare groups of people.'));
      return;
    }
    const shared = sharedQuery(ctx.query);
    replace(list, h('div', { class: 'table-wrap' }, h('table', { class: 'data', id: 'cohorts-table' },
      h('thead', h('tr', h('th', 'Name'), h('th', 'Definition'), h('th', ''))),
      h('tbody', rows.map((c) => {
        const filterQ = new URLSearchParams(shared);
        filterQ.set('cohort', c.id);
        return h('tr', { dataset: { id: String(c.id) } },
          h('td', h('a', { href: url('/cohorts/' + encodeURIComponent(c.id), shared) }, text(c.name))),
          h('td', describe(c)),
          h('td', { class: 'num' }, h('a', { class: 'btn small ghost', href: url('/', filterQ) }, 'Filter reports')));
      })))));
  } catch (err) {
    if (!ctx.signal.aborted) replace(list, errorBox(err));
  }
}

async function cohortPage(main, ctx, id) {
  ctx.setTitle('Cohort');
  const site = currentSite(ctx.query);
  const shared = sharedQuery(ctx.query);
  const head = h('div', { class: 'page-head' }, spinner());
  const edit = h('div');
  const people = h('section', { class: 'card', id: 'cohort-persons' }, spinner());
  main.append(h('p', h('a', { href: url('/cohorts', shared) }, '← All cohorts')), head, edit, people);
  const dl = eventDatalist();
  if (dl) main.appendChild(dl);
  let c;
  try {
    c = await get('cohorts/' + encodeURIComponent(id), { site }, ctx.signal);
  } catch (err) {
    // Without GET /api/cohorts/{id}, find it in the list.
    try {
      const res = await get('cohorts', { site }, ctx.signal);
      c = (Array.isArray(res) ? res : res.results || []).find((x) => String(x.id) === id);
    } catch { /* reported below */ }
    if (!c) {
      if (!ctx.signal.aborted) replace(head, err.status === 404 ? h('h1', 'Cohort not found') : errorBox(err));
      people.remove();
      return;
    }
  }
  const del = h('span', { class: 'confirm' });
  const resetDelete = () => replace(del, h('button', { type: 'button', class: 'btn danger', id: 'delete-cohort', onclick: () => replace(del,
    h('span', 'Delete this cohort?'),
    h('button', { type: 'button', class: 'btn danger solid small', id: 'confirm-delete', onclick: async () => {
      try {
        await send('DELETE', 'cohorts/' + encodeURIComponent(id) + '?site=' + encodeURIComponent(site));
        navigate('/cohorts', shared);
      } catch (err) {
        replace(del, errorBox(err));
      }
    } }, 'Delete'),
    h('button', { type: 'button', class: 'btn small', onclick: resetDelete }, 'Cancel')) }, 'Delete'));
  resetDelete();
  const filterQ = new URLSearchParams(shared);
  filterQ.set('cohort', c.id);
  replace(head, h('div', h('h1', { id: 'cohort-name' }, text(c.name)), h('p', { class: 'muted' }, describe(c))),
    h('div', { class: 'card-actions' },
      h('a', { class: 'btn', href: url('/', filterQ) }, 'Filter reports'),
      h('button', { type: 'button', class: 'btn', id: 'edit-cohort', onclick: () => {
        replace(edit, h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', 'Edit cohort')),
          cohortForm(c, async (body) => {
            await send('PUT', 'cohorts/' + encodeURIComponent(id) + '?site=' + encodeURIComponent(site), body);
            navigate('/cohorts/' + encodeURIComponent(id), shared, true);
          }, () => replace(edit))));
      } }, 'Edit'),
      del));
  try {
    const res = await get('cohorts/' + encodeURIComponent(id) + '/persons', { site }, ctx.signal);
    const rows = Array.isArray(res) ? res : res.results || [];
    replace(people, h('div', { class: 'card-head' }, h('h2', 'Persons'), h('span', { class: 'muted', id: 'cohort-count' }, num(res.count ?? rows.length))),
      rows.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'data' },
        h('thead', h('tr', h('th', 'Person'), h('th', 'First seen'))),
        h('tbody', rows.map((p) => h('tr',
          h('td', h('a', { href: url('/persons/' + encodeURIComponent(p.id), shared) }, displayName(p))),
          h('td', { class: 'muted', title: dateTime(p.created_at) }, ago(p.created_at))))))) : empty('Nobody is in this cohort.'));
  } catch (err) {
    if (!ctx.signal.aborted) replace(people, errorBox(err));
  }
}
