// Pieces several pages share: the period and filter bar, cards with tabs,
// ranked lists, pickers.

import { h, replace, num, flag, countryName, text } from './dom.js';
import {
  get, query, setQuery, range, periods, parseFilter, opNames, ops, propLabel, commonProps, currentSite, ymd,
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

// eventNames lists recent event names and actions for pickers.
export function eventNames() {
  const site = currentSite();
  if (namesPromise && namesSite === site) return namesPromise;
  namesSite = site;
  const from = new Date(Date.now() - 90 * 86400000).toISOString();
  namesPromise = Promise.all([
    get('breakdown', { site, property: 'event', limit: 200, from }).catch(() => ({ results: [] })),
    get('actions', { site }).catch(() => ({ results: [] })),
  ]).then(([evs, acts]) => {
    const names = (evs.results || []).map((r) => r.value);
    for (const n of ['$pageview', '$autocapture', '$pageleave']) if (!names.includes(n)) names.push(n);
    const actions = (Array.isArray(acts) ? acts : acts.results || []).map((a) => ({ value: 'action:' + a.id, label: 'Action: ' + a.name }));
    return { names, actions };
  });
  return namesPromise;
}

// eventDatalist fills <datalist id=fp-events> once names are known.
export function eventDatalist() {
  let dl = document.getElementById('fp-events');
  if (dl) return null;
  dl = h('datalist', { id: 'fp-events' });
  eventNames().then(({ names, actions }) => {
    replace(dl, names.map((n) => h('option', { value: n })), actions.map((a) => h('option', { value: a.value }, a.label)));
  });
  return dl;
}

// eventLabel names an event for display.
export function eventLabel(e) {
  if (e === '$pageview') return 'Pageview';
  if (e === '$pageleave') return 'Pageleave';
  if (e === '$autocapture') return 'Autocapture';
  if (e === '$identify') return 'Identify';
  return e;
}
