// Goals: the conversions a site counts — an event, an action, or a page
// (with * wildcards) — with visitors, conversion rate and revenue over the
// chosen range and filters. The overview shows the same in its goals card.

import { h, replace, errorBox, empty, spinner, text, num, pct } from '../dom.js';
import { get, send, navigate, sharedQuery, currentSite, reportParams } from '../api.js';
import { toolbar, eventDatalist } from '../components.js';

// describe says what a goal counts, in words.
export function describeGoal(g, actions) {
  if (g.event) return 'Event ' + text(g.event);
  if (g.path) return 'Visit to ' + text(g.path);
  const a = actions.find((x) => x.id === g.action);
  return 'Action ' + (a ? text(a.name) : '(deleted)');
}

export function money(v, currency) {
  if (!v) return '';
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency: currency || 'USD', maximumFractionDigits: 2 }).format(v);
  } catch {
    return num(Math.round(v * 100) / 100) + (currency ? ' ' + currency : '');
  }
}

function goalForm(actions, onSave, onCancel) {
  const kind = h('select', { name: 'kind', 'aria-label': 'Goal kind' },
    h('option', { value: 'path' }, 'Page visit'), h('option', { value: 'event' }, 'Custom event'),
    actions.length ? h('option', { value: 'action' }, 'Action') : null);
  const value = h('input', { name: 'value', placeholder: '/thank-you or /blog/*', autocomplete: 'off', required: true });
  const action = h('select', { name: 'action', hidden: true, 'aria-label': 'Action' }, actions.map((a) => h('option', { value: String(a.id) }, text(a.name))));
  kind.addEventListener('change', () => {
    value.hidden = kind.value === 'action';
    value.required = kind.value !== 'action';
    action.hidden = kind.value !== 'action';
    value.placeholder = kind.value === 'event' ? 'signup' : '/thank-you or /blog/*';
    value.setAttribute('list', kind.value === 'event' ? 'fp-events' : '');
  });
  const name = h('input', { name: 'name', required: true, placeholder: 'e.g. Signed up' });
  const err = h('div');
  const f = h('form', { class: 'form', id: 'goal-form' },
    h('label', 'Name', name),
    h('div', { class: 'form-row' }, h('label', 'Counts', kind), h('label', 'What', value, action)),
    h('p', { class: 'muted small' }, 'Revenue is the sum of the goal events’ revenue property (or $revenue), in their currency.'),
    err,
    h('div', { class: 'form-row' }, h('button', { type: 'submit', class: 'btn primary' }, 'Create goal'),
      h('button', { type: 'button', class: 'btn', onclick: onCancel }, 'Cancel')));
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { name: name.value.trim() };
    if (kind.value === 'action') body.action = Number(action.value);
    else body[kind.value] = value.value.trim();
    try {
      await onSave(body);
    } catch (x) {
      replace(err, errorBox(x));
    }
  });
  return f;
}

// goalRows draws the goals with their numbers.
export function goalTable(stats, goals, actions, tools) {
  const byID = new Map(goals.map((g) => [g.id, g]));
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data', id: 'goals-table' },
    h('thead', h('tr', h('th', 'Goal'), h('th', { class: 'num' }, 'Visitors'), h('th', { class: 'num' }, 'Conversion'), h('th', { class: 'num' }, 'Revenue'), tools ? h('th', '') : null)),
    h('tbody', stats.map((s) => {
      const g = byID.get(s.goal_id) || {};
      return h('tr', { dataset: { id: String(s.goal_id) } },
        h('td', h('strong', text(s.goal)), h('div', { class: 'muted small' }, describeGoal(g, actions))),
        h('td', { class: 'num' }, num(s.visitors)),
        h('td', { class: 'num goal-rate' }, pct(s.conversion_rate, 1)),
        h('td', { class: 'num goal-revenue' }, money(s.revenue, s.currency)),
        tools ? h('td', { class: 'num' }, tools(g)) : null);
    }))));
}

export default async function goals(main, ctx) {
  ctx.setTitle('Goals');
  const site = currentSite(ctx.query);
  const shared = sharedQuery(ctx.query);
  const q = encodeURIComponent(site);
  const list = h('section', { class: 'card', id: 'goals-list' }, spinner());
  const formBox = h('div');
  const reload = () => navigate('/goals', shared, true);
  let actions = [];
  const newBtn = h('button', { type: 'button', class: 'btn primary', id: 'new-goal', onclick: () => {
    newBtn.hidden = true;
    replace(formBox, h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', 'New goal')),
      goalForm(actions, async (body) => { await send('POST', 'goals?site=' + q, body); reload(); }, () => { replace(formBox); newBtn.hidden = false; })));
  } }, '+ New goal');
  main.append(toolbar(), h('div', { class: 'page-head' }, h('div', h('h1', 'Goals'), h('p', { class: 'muted' }, 'What counts as a conversion: a page, an event or an action.')), newBtn), formBox, list);
  const dl = eventDatalist();
  if (dl) main.appendChild(dl);
  try {
    const [gs, as, st] = await Promise.all([
      get('goals', { site }, ctx.signal),
      get('actions', { site }, ctx.signal),
      get('goals/stats', reportParams(ctx.query), ctx.signal),
    ]);
    actions = as.results || [];
    const rows = gs.results || [];
    if (!rows.length) {
      replace(list, empty('No goals yet. Add one to see conversion rates here and on the overview.'));
      return;
    }
    replace(list, goalTable(st.results || [], rows, actions, (g) => {
      const del = h('span', { class: 'confirm' });
      const reset = () => replace(del, h('button', { type: 'button', class: 'btn small ghost delete-goal', onclick: () => replace(del,
        h('button', { type: 'button', class: 'btn danger solid small confirm-delete', onclick: async () => {
          try {
            await send('DELETE', 'goals/' + encodeURIComponent(g.id) + '?site=' + q);
            reload();
          } catch (err) {
            replace(del, errorBox(err));
          }
        } }, 'Delete'),
        h('button', { type: 'button', class: 'btn small', onclick: reset }, 'Cancel')) }, 'Delete'));
      reset();
      return del;
    }));
  } catch (err) {
    if (!ctx.signal.aborted) replace(list, errorBox(err));
  }
}

// goalsCard is the overview's goals panel; hidden while the site has none.
export function goalsCard(ctx) {
  const body = h('div', { class: 'card-body' });
  const el = h('section', { class: 'card panel', id: 'panel-goals', hidden: true }, h('div', { class: 'card-head' }, h('h2', 'Goals')), body);
  (async () => {
    try {
      const site = currentSite(ctx.query);
      const [gs, st] = await Promise.all([get('goals', { site }, ctx.signal), get('goals/stats', reportParams(ctx.query), ctx.signal)]);
      const rows = gs.results || [];
      if (!rows.length) return;
      const as = rows.some((g) => g.action) ? (await get('actions', { site }, ctx.signal)).results || [] : [];
      replace(body, goalTable(st.results || [], rows, as, null));
      el.hidden = false;
    } catch (err) {
      if (!ctx.signal.aborted) { el.hidden = false; replace(body, errorBox(err)); }
    }
  })();
  return el;
}
