// Pieces several pages share: the period and filter bar, cards with tabs,
// ranked lists, pickers.

import { h, replace, num, flag, countryName, text } from './dom.js';
import {
  get, url, query, setQuery, range, periods, parseFilter, opNames, ops, propLabel, commonProps, currentSite, ymd,
} from './api.js';

// --- period and filters ---------------------------------------------------

// toolbar is the bar above every report: the date range, the active
// filters (click ✕ to drop one) and a form to add one.
export function toolbar({ filters = true, extra } = {}) {
  const q = query();
  const r = range(q);
  const sel = h('select', { id: 'period', 'aria-label': 'Date range', onchange: (e) => {
    const v = e.target.value;
    if (v === 'custom') {
      custom.hidden = false;
      fromIn.focus();
      return;
    }
    setQuery({ period: v === '7d' ? null : v, from: null, to: null });
  } }, periods.map(([v, label]) => h('option', { value: v, selected: v === r.period }, label)));
  const fromIn = h('input', { type: 'date', id: 'range-from', value: r.from, max: ymd(new Date()), 'aria-label': 'From' });
  const toIn = h('input', { type: 'date', id: 'range-to', value: r.to, max: ymd(new Date()), 'aria-label': 'To' });
  const custom = h('form', { class: 'custom-range', hidden: r.period !== 'custom', onsubmit: (e) => {
    e.preventDefault();
    if (fromIn.value && toIn.value) setQuery({ period: 'custom', from: fromIn.value, to: toIn.value });
  } }, fromIn, h('span', { class: 'muted' }, '–'), toIn, h('button', { type: 'submit', class: 'btn small' }, 'Apply'));

  const bar = h('div', { class: 'toolbar' }, h('div', { class: 'period' }, sel, custom));
  if (filters) bar.appendChild(filterChips(q));
  if (extra) bar.appendChild(extra);
  return bar;
}

function filterLabel(f) {
  const p = parseFilter(f);
  if (!p) return [f];
  let value = p.value;
  if (p.prop === '$geoip_country_code') value = flag(value) + ' ' + countryName(value);
  if (p.prop === '$referring_domain' && value === '$direct') value = 'Direct / None';
  return [h('span', { class: 'chip-prop' }, propLabel(p.prop)), ' ', opNames[p.op] || p.op, ' ', h('strong', value)];
}

function filterChips(q) {
  const fs = q.getAll('filter');
  const wrap = h('div', { class: 'filters', id: 'filters' });
  fs.forEach((f, i) => {
    wrap.appendChild(h('span', { class: 'chip filter-chip', dataset: { filter: f } },
      filterLabel(f),
      h('button', { type: 'button', class: 'chip-x', 'aria-label': 'Remove filter', title: 'Remove filter', onclick: () => {
        setQuery({ filter: fs.filter((_, j) => j !== i) });
      } }, '✕')));
  });
  const cohort = q.get('cohort');
  if (cohort) {
    // The cohort's name once known (the URL carries its id).
    const name = h('strong', { class: 'cohort-name' }, '#' + cohort);
    get('cohorts', { site: currentSite(q) }).then((res) => {
      const c = (Array.isArray(res) ? res : res.results || []).find((x) => String(x.id) === cohort);
      if (c) name.textContent = text(c.name);
    }, () => { /* the id stays */ });
    wrap.appendChild(h('span', { class: 'chip' }, h('span', { class: 'chip-prop' }, 'Cohort'), ' ', name,
      h('button', { type: 'button', class: 'chip-x', 'aria-label': 'Remove cohort', onclick: () => setQuery({ cohort: null }) }, '✕')));
  }
  wrap.appendChild(addFilter(fs));
  return wrap;
}

function addFilter(fs) {
  const prop = h('input', { name: 'prop', list: 'fp-props', placeholder: 'property', required: true, 'aria-label': 'Property', autocomplete: 'off' });
  const op = h('select', { name: 'op', 'aria-label': 'Operator' }, ops.map((o) => h('option', { value: o }, opNames[o])));
  const val = h('input', { name: 'value', placeholder: 'value', 'aria-label': 'Value', autocomplete: 'off' });
  const details = h('details', { class: 'add-filter' },
    h('summary', { class: 'btn small ghost' }, '+ Filter'),
    h('form', { class: 'popover', onsubmit: (e) => {
      e.preventDefault();
      if (!prop.value.trim()) return;
      setQuery({ filter: [...fs, prop.value.trim() + op.value + val.value] });
    } }, propDatalist(), h('label', 'Property', prop), h('label', 'Operator', op), h('label', 'Value', val),
    h('button', { type: 'submit', class: 'btn small primary' }, 'Add filter')));
  return details;
}

// propDatalist offers common properties in property inputs (list=fp-props).
export function propDatalist() {
  if (document.getElementById('fp-props')) return null;
  return h('datalist', { id: 'fp-props' }, commonProps.map((p) => h('option', { value: p }, propLabel(p))));
}

// addFilterParam adds `<prop>==<value>` to the URL (a click on a row).
export function addFilterParam(prop, value) {
  const q = query();
  const f = prop + '==' + value;
  const fs = q.getAll('filter').filter((x) => parseFilter(x)?.prop !== prop);
  setQuery({ filter: [...fs, f] });
}

// --- cards ----------------------------------------------------------------

// card is a panel with a title or tabs. tabs: [{key, label}], onTab(key).
export function card({ title, tabs, active, onTab, id, cls, actions }, ...body) {
  const head = h('div', { class: 'card-head' });
  if (title) head.appendChild(h('h2', title));
  if (tabs) {
    const tl = h('div', { class: 'tabs', role: 'tablist' });
    for (const t of tabs) {
      tl.appendChild(h('button', {
        type: 'button', role: 'tab', class: ['tab', t.key === active && 'active'], 'aria-selected': String(t.key === active),
        dataset: { tab: t.key }, onclick: () => onTab(t.key),
      }, t.label));
    }
    head.appendChild(tl);
  }
  if (actions) head.appendChild(h('div', { class: 'card-actions' }, actions));
  return h('section', { class: ['card', cls], id }, head, ...body);
}

// rankList shows rows {label, value, count, visitors} with bars; a click
// on a row calls onPick(row).
export function rankList(rows, { column = 'Visitors', metric = 'visitors', render, onPick, max } = {}) {
  const top = Math.max(1, ...rows.map((r) => r[metric] || 0));
  const list = h('ol', { class: 'rank' });
  for (const r of rows.slice(0, max || rows.length)) {
    const bar = h('span', { class: 'rank-bar' });
    bar.style.width = Math.max(0.5, (100 * (r[metric] || 0)) / top) + '%';
    const label = h('span', { class: 'rank-label' }, render ? render(r) : text(r.value));
    const item = onPick
      ? h('button', { type: 'button', class: 'rank-row', title: 'Filter by this', dataset: { value: text(r.value) }, onclick: () => onPick(r) }, bar, label, h('span', { class: 'rank-num' }, num(r[metric])))
      : h('div', { class: 'rank-row' }, bar, label, h('span', { class: 'rank-num' }, num(r[metric])));
    list.appendChild(h('li', item));
  }
  return h('div', { class: 'rank-wrap' }, h('div', { class: 'rank-header' }, h('span'), h('span', column)), list);
}

// --- event names ------------------------------------------------------------

let namesPromise = null;
let namesSite = '';
let namesAt = 0;
// The current site's actions by `action:<id>`, once eventNames() answered
// (namesKnown: for that site).
const actionNames = new Map();
let namesKnown = '';

// eventNames lists recent event names and actions for pickers; it also
// learns the actions' names for eventLabel. Asked again after 15 s, so a
// new action shows by its name.
export function eventNames() {
  const site = currentSite();
  if (namesPromise && namesSite === site && Date.now() - namesAt < 15000) return namesPromise;
  namesSite = site;
  namesAt = Date.now();
  const from = new Date(Date.now() - 90 * 86400000).toISOString();
  namesPromise = Promise.all([
    get('breakdown', { site, property: 'event', limit: 200, from }).catch(() => ({ results: [] })),
    get('actions', { site }).catch(() => ({ results: [] })),
  ]).then(([evs, acts]) => {
    const names = (evs.results || []).map((r) => r.value);
    for (const n of ['$pageview', '$autocapture', '$pageleave']) if (!names.includes(n)) names.push(n);
    actionNames.clear();
    namesKnown = site;
    const actions = (Array.isArray(acts) ? acts : acts.results || []).map((a) => {
      actionNames.set('action:' + a.id, text(a.name));
      return { value: 'action:' + a.id, name: text(a.name), label: 'Action: ' + text(a.name) };
    });
    return { names, actions };
  });
  return namesPromise;
}

// eventDatalist fills <datalist id=fp-events> (`action:<id>` values, for
// the editors that keep ids) and <datalist id=fp-steps> (actions by name,
// for the insight editors, whose eventValue turns a name back into its id)
// once names are known.
export function eventDatalist() {
  if (document.getElementById('fp-events')) return null;
  const dl = h('datalist', { id: 'fp-events' });
  const steps = h('datalist', { id: 'fp-steps' });
  eventNames().then(({ names, actions }) => {
    replace(dl, names.map((n) => h('option', { value: n })), actions.map((a) => h('option', { value: a.value }, a.label)));
    replace(steps, actions.map((a) => h('option', { value: a.name }, 'Action')), names.map((n) => h('option', { value: n })));
  });
  return h('div', { hidden: true }, dl, steps);
}

// splitStep splits a step `E|<filter>` into its event and filter.
function splitStep(e) {
  const i = String(e).indexOf('|');
  return i > 0 ? [e.slice(0, i), e.slice(i + 1)] : [String(e), ''];
}

// eventText is how an event or action is written in an editor: an action
// by its name.
export function eventText(e) {
  const [ev, f] = splitStep(e || '');
  const name = actionNames.get(ev);
  return (name != null ? name : ev) + (f ? '|' + f : '');
}

// eventValue turns what an editor holds back into the API's form: an
// action's name becomes `action:<id>`.
export function eventValue(s) {
  const [ev, f] = splitStep(String(s || '').trim());
  if (!ev) return '';
  let v = ev;
  if (!/^action:\d+$/.test(ev)) {
    for (const [id, name] of actionNames) {
      if (name === ev) {
        v = id;
        break;
      }
    }
  }
  return v + (f ? '|' + f : '');
}

// stepInput is the editor of a series or step `E` or `E|<filter>`: the
// event or action (by name) and, under "where", one property filter.
// read() gives the API's form; a change of the filter's property or
// operator while its value is empty is marked (data-pending) so that the
// editor can wait for the value.
export function stepInput({ value, name, label }) {
  const [ev, f] = splitStep(value || '');
  const p = f ? parseFilter(f) : null;
  const input = h('input', { name, value: eventText(ev), list: 'fp-steps', placeholder: 'event or action', 'aria-label': label, autocomplete: 'off' });
  const prop = h('input', { class: 'where-prop', value: p ? p.prop : '', list: 'fp-props', placeholder: 'property', 'aria-label': label + ': where property', autocomplete: 'off' });
  const op = h('select', { class: 'where-op', 'aria-label': label + ': operator' }, ops.map((o) => h('option', { value: o, selected: p ? p.op === o : o === '==' }, opNames[o])));
  const val = h('input', { class: 'where-value', value: p ? p.value : '', placeholder: 'value', 'aria-label': label + ': value', autocomplete: 'off' });
  for (const el of [prop, op]) el.addEventListener('change', () => { if (!val.value) el.dataset.pending = '1'; });
  const where = h('details', { class: 'step-where', open: !!p }, h('summary', { class: 'btn small ghost', title: 'Only the events where a property passes' }, 'where'),
    h('span', { class: 'step-where-fields' }, prop, op, val));
  return {
    nodes: [input, where],
    read() {
      const e = eventValue(input.value);
      if (!e) return '';
      const pr = prop.value.trim();
      return pr ? splitStep(e)[0] + '|' + pr + op.value + val.value : e;
    },
  };
}

// eventLabel names an event, an action (by its name, never its id) or a
// filtered step `E|<filter>` for display.
export function eventLabel(e) {
  const [ev, f] = splitStep(e == null ? '' : e);
  let out = ev;
  if (ev === '$pageview') out = 'Pageview';
  else if (ev === '$pageleave') out = 'Pageleave';
  else if (ev === '$autocapture') out = 'Autocapture';
  else if (ev === '$identify') out = 'Identify';
  else if (actionNames.has(ev)) out = actionNames.get(ev);
  else if (/^action:\d+$/.test(ev) && namesKnown === currentSite()) out = 'Deleted action';
  if (f) {
    const p = parseFilter(f);
    out += p ? ' · ' + propLabel(p.prop) + ' ' + (opNames[p.op] || p.op) + ' ' + p.value : ' · ' + f;
  }
  return out;
}

// csvLink is a link that downloads the events of the current view as CSV
// (GET /api/export?format=csv with the view's range, filters and cohort).
export function csvLink(params, label = 'Export CSV') {
  const p = new URLSearchParams(params);
  p.set('format', 'csv');
  for (const k of ['limit', 'cursor', 'distinct_id']) p.delete(k);
  return h('a', { class: 'btn small ghost csv-link', href: url('/api/export', p), download: 'events.csv', title: 'Download these events as CSV' }, '⇩ ', label);
}
