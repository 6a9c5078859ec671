// The page of a share link: a read-only overview of one site (visitors,
// pageviews, sessions, bounce, duration and the top lists), fetched through
// the link's own API, which answers nothing else. Every value is text.

import { h, replace, num, pct, duration, text, flag, countryName } from './dom.js';

const main = document.getElementById('share');
const base = main.dataset.base;
const site = main.dataset.site;

const ranges = [
  { key: '7d', label: 'Last 7 days', days: 7 },
  { key: '30d', label: 'Last 30 days', days: 30 },
  { key: '12mo', label: 'Last 12 months', days: 365 },
];

const metrics = [
  { key: 'visitors', label: 'Unique visitors', fmt: num },
  { key: 'pageviews', label: 'Total pageviews', fmt: num },
  { key: 'sessions', label: 'Sessions', fmt: num },
  { key: 'bounce_rate', label: 'Bounce rate', fmt: (v) => pct(v) },
  { key: 'avg_session_seconds', label: 'Visit duration', fmt: duration },
];

const lists = [
  { title: 'Top pages', property: '$pathname' },
  { title: 'Sources', property: '$referring_domain', render: (v) => (v === '$direct' ? 'Direct / None' : v) },
  { title: 'Countries', property: '$geoip_country_code', render: (v) => flag(v) + ' ' + countryName(v) },
  { title: 'Devices', property: '$device_type' },
  { title: 'Browsers', property: '$browser' },
];

function ymd(d) {
  return d.toISOString().slice(0, 10);
}

async function get(path, params) {
  const res = await fetch(base + '/api/' + path + '?' + params.toString(), { credentials: 'same-origin' });
  if (!res.ok) throw new Error((await res.json().catch(() => ({}))).error || res.statusText);
  return res.json();
}

async function show(rangeKey) {
  const r = ranges.find((x) => x.key === rangeKey) || ranges[0];
  const to = new Date();
  const from = new Date(to.getTime() - (r.days - 1) * 86400000);
  const params = new URLSearchParams({ from: ymd(from), to: ymd(to), tz: 'UTC' });
  const picker = h('select', { id: 'share-range', 'aria-label': 'Range', onchange: (e) => show(e.target.value) },
    ranges.map((x) => h('option', { value: x.key, selected: x.key === r.key }, x.label)));
  const statsEl = h('div', { class: 'stats', id: 'stats' }, '…');
  const grid = h('div', { class: 'grid2' });
  replace(main, h('header', { class: 'share-head' }, h('h1', null, text(site)), picker), h('section', { class: 'card overview-top' }, statsEl), grid);
  try {
    const st = await get('stats', params);
    replace(statsEl, metrics.map((m) => h('div', { class: 'stat', id: 'stat-' + m.key },
      h('span', { class: 'stat-label' }, m.label), h('span', { class: 'stat-value', dataset: { metric: m.key } }, m.fmt(st[m.key])))),
    st.imported_days ? h('p', { class: 'imported-note', id: 'imported-note' }, 'Includes imported data') : null);
  } catch (err) {
    replace(statsEl, h('p', { class: 'error' }, String(err.message)));
  }
  for (const l of lists) {
    const body = h('ol', { class: 'rank' });
    grid.appendChild(h('section', { class: 'card panel' }, h('h2', null, l.title), body));
    const p = new URLSearchParams(params);
    p.set('property', l.property);
    p.set('event', '$pageview');
    p.set('limit', '10');
    get('breakdown', p).then((res) => {
      const rows = res.results || [];
      replace(body, rows.length ? rows.map((row) => h('li', null,
        h('span', { class: 'rank-label' }, (l.render || text)(text(row.value))), ' ',
        h('span', { class: 'rank-value' }, num(row.visitors)))) : h('li', { class: 'empty' }, 'No data'));
    }).catch((err) => replace(body, h('li', { class: 'error' }, String(err.message))));
  }
}

show('7d');
