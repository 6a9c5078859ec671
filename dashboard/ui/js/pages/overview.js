// The overview, as Plausible shows it: the headline numbers against the
// previous period, a chart, and ranked lists; a click on any row filters
// the whole page.

import { h, replace, num, pct, duration, flag, countryName, errorBox, empty, spinner, text } from '../dom.js';
import { get, range, reportParams, setQuery, url, sharedQuery, currentSite } from '../api.js';
import { toolbar, card, rankList, addFilterParam } from '../components.js';
import { lineChart, legend, palette } from '../charts.js';
import { serverCard } from './server_panel.js';
import { goalsCard } from './goals.js';

const metrics = [
  { key: 'visitors', label: 'Unique visitors', fmt: num, chart: { math: 'unique' } },
  { key: 'pageviews', label: 'Total pageviews', fmt: num, chart: { math: 'total' } },
  { key: 'sessions', label: 'Sessions', fmt: num },
  { key: 'views_per_session', label: 'Views per session', fmt: (v) => num(Math.round(v * 100) / 100) },
  { key: 'bounce_rate', label: 'Bounce rate', fmt: (v) => pct(v), lowerIsBetter: true, points: true },
  { key: 'avg_session_seconds', label: 'Visit duration', fmt: duration },
];

// Panels and their tabs: the property each tab breaks down.
const panels = [
  {
    id: 'pages', title: 'Pages', tabs: [
      { key: 'top', label: 'Top pages', property: '$pathname', column: 'Visitors' },
      // Session properties, computed by the server over whole visits.
      { key: 'entry', label: 'Entry pages', property: '$entry_pathname', column: 'Visitors' },
      { key: 'exit', label: 'Exit pages', property: '$exit_pathname', column: 'Visitors' },
    ],
  },
  {
    id: 'sources', title: 'Sources', tabs: [
      { key: 'referrers', label: 'Referrers', property: '$referring_domain', column: 'Visitors' },
      { key: 'channels', label: 'Channels', property: '$channel_type', column: 'Visitors' },
      { key: 'utm_source', label: 'UTM source', property: 'utm_source', column: 'Visitors' },
      { key: 'utm_medium', label: 'Medium', property: 'utm_medium', column: 'Visitors' },
      { key: 'utm_campaign', label: 'Campaign', property: 'utm_campaign', column: 'Visitors' },
    ],
  },
  {
    id: 'locations', title: 'Countries', tabs: [
      { key: 'countries', label: 'Countries', property: '$geoip_country_code', column: 'Visitors' },
      { key: 'cities', label: 'Cities', property: '$geoip_city_name', column: 'Visitors' },
    ],
  },
  {
    id: 'devices', title: 'Devices', tabs: [
      { key: 'devices', label: 'Devices', property: '$device_type', column: 'Visitors' },
      { key: 'browsers', label: 'Browsers', property: '$browser', column: 'Visitors' },
      { key: 'os', label: 'OS', property: '$os', column: 'Visitors' },
    ],
  },
];

function renderValue(property, v) {
  const s = text(v);
  if (property === '$geoip_country_code') return [h('span', { class: 'flag', 'aria-hidden': 'true' }, flag(s)), ' ', countryName(s)];
  if (property === '$referring_domain' || property === '$entry_referring_domain') return s === '$direct' ? 'Direct / None' : s;
  return s;
}

function rememberedTab(panel) {
  try {
    const k = localStorage.getItem('fp-tab-' + panel.id);
    if (panel.tabs.some((t) => t.key === k)) return k;
  } catch { /* storage disabled */ }
  return panel.tabs[0].key;
}

export default async function overview(main, ctx) {
  ctx.setTitle('Overview');
  const q = ctx.query;
  // A site without any event yet: install steps instead of zeros.
  let info = null;
  try { info = await get('onboarding', { site: currentSite(q) }, ctx.signal); } catch { /* a shared view: the overview */ }
  if (ctx.signal.aborted) return;
  if (info && info.events === 0) {
    ctx.setTitle('Set up');
    const { onboarding } = await import('./onboarding.js');
    onboarding(main, ctx, info, () => window.dispatchEvent(new Event('fp:navigate')));
    return;
  }
  const r = range(q);
  const metricKey = metrics.some((m) => m.key === q.get('metric') && m.chart) ? q.get('metric') : 'visitors';

  const live = h('a', { class: 'live-badge', href: url('/live', sharedQuery()), hidden: true, id: 'live-badge' });
  main.appendChild(toolbar({ extra: live }));

  const statsEl = h('div', { class: 'stats', id: 'stats' }, metrics.map((m) => h('div', { class: 'stat skeleton' }, h('span', { class: 'stat-label' }, m.label), h('span', { class: 'stat-value' }, '…'))));
  const chartEl = h('div', { class: 'chart', id: 'main-chart' }, spinner());
  main.appendChild(h('section', { class: 'card overview-top' }, statsEl, chartEl));

  const grid = h('div', { class: 'grid2' });
  main.appendChild(grid);
  for (const p of panels) grid.appendChild(panelCard(p, ctx));
  grid.appendChild(goalsCard(ctx));
  grid.appendChild(serverCard(ctx));

  liveCount(live, ctx);

  // Headline numbers, now and in the previous period.
  const cur = reportParams(q, r);
  const prev = reportParams(q, r);
  prev.set('from', r.prev.from);
  prev.set('to', r.prev.to);
  Promise.all([get('stats', cur, ctx.signal), get('stats', prev, ctx.signal).catch(() => null)])
    // A previous period without visitors is nothing to compare with.
    .then(([now, before]) => replace(statsEl, metrics.map((m) => stat(m, now, before?.visitors ? before : null, m.key === metricKey)),
      // ops: days of another tool's export are added in, as Plausible marks its imports.
      now.imported_days ? h('p', { class: 'imported-note', id: 'imported-note', title: now.imported_days + ' days of imported aggregates' }, 'Includes imported data') : null))
    .catch((err) => { if (!ctx.signal.aborted) replace(statsEl, errorBox(err)); });

  // The chart of the chosen metric.
  const m = metrics.find((x) => x.key === metricKey);
  const tp = (p) => {
    const x = new URLSearchParams(p);
    x.set('event', '$pageview');
    x.set('math', m.chart.math);
    x.set('interval', r.interval);
    return x;
  };
  try {
    const [now, before] = await Promise.all([get('trends', tp(cur), ctx.signal), get('trends', tp(prev), ctx.signal).catch(() => null)]);
    const data = now.series?.[0]?.data || now.labels.map(() => 0);
    const series = [{ label: m.label, data, fill: true }];
    // A previous period without data would only draw a line along zero.
    if (before?.series?.[0]?.data.some((v) => v > 0)) {
      const pd = before.series[0].data;
      series.push({ label: 'Previous period', data: now.labels.map((_, i) => (i < pd.length ? pd[i] : null)), dash: [5, 5], color: palette()[7] });
    }
    const plot = h('div');
    replace(chartEl, plot, legend(series));
    const chart = lineChart(plot, { labels: now.labels, interval: r.interval, series, height: 280 });
    ctx.onCleanup(() => chart.destroy());
  } catch (err) {
    if (!ctx.signal.aborted) replace(chartEl, errorBox(err));
  }
}

function stat(m, now, before, selected) {
  const v = now[m.key];
  const b = before ? before[m.key] : null;
  let change = null;
  if (b != null && v != null) {
    if (m.points) {
      const d = Math.round((v - b) * 100);
      if (d !== 0) change = { up: d > 0, text: Math.abs(d) + ' pp' };
      else change = { flat: true, text: '0 pp' };
    } else if (b > 0) {
      const d = Math.round(((v - b) / b) * 100);
      change = d === 0 ? { flat: true, text: '0%' } : { up: d > 0, text: Math.abs(d) + '%' };
    }
  }
  const good = change && !change.flat ? change.up !== !!m.lowerIsBetter : null;
  const body = [
    h('span', { class: 'stat-label' }, m.label),
    h('span', { class: 'stat-value', dataset: { metric: m.key } }, m.fmt(v)),
    change ? h('span', { class: ['stat-change', good === true && 'good', good === false && 'bad'], title: 'Compared with the previous period' },
      change.flat ? '→ ' : change.up ? '↑ ' : '↓ ', change.text) : h('span', { class: 'stat-change' }, ' '),
  ];
  if (!m.chart) return h('div', { class: 'stat', id: 'stat-' + m.key }, body);
  return h('button', {
    type: 'button', class: ['stat', 'selectable', selected && 'selected'], id: 'stat-' + m.key, 'aria-pressed': String(selected),
    title: 'Show ' + m.label.toLowerCase() + ' on the chart',
    onclick: () => setQuery({ metric: m.key === 'visitors' ? null : m.key }, true),
  }, body);
}

function panelCard(p, ctx) {
  let active = rememberedTab(p);
  const body = h('div', { class: 'card-body' });
  const el = card({ title: null, tabs: p.tabs, active, id: 'panel-' + p.id, cls: 'panel', onTab: (k) => {
    active = k;
    try { localStorage.setItem('fp-tab-' + p.id, k); } catch { /* ignore */ }
    for (const b of el.querySelectorAll('.tab')) {
      b.classList.toggle('active', b.dataset.tab === k);
      b.setAttribute('aria-selected', String(b.dataset.tab === k));
    }
    load();
  } }, body);
  el.prepend(h('h2', { class: 'sr-only' }, p.title));
  let more = false;
  async function load() {
    const tab = p.tabs.find((t) => t.key === active);
    replace(body, spinner());
    try {
      const note = null;
      const params = reportParams(ctx.query, undefined, { property: tab.property, event: '$pageview', limit: more ? 100 : 10 });
      let rows = (await get('breakdown', params, ctx.signal)).results || [];
      if (tab.property === '$referring_domain' || tab.property === '$entry_referring_domain') rows = rows.filter((x) => !selfReferral(x.value));
      // Ranked by visitors, as the bars are.
      rows = [...rows].sort((a, b) => b.visitors - a.visitors || b.count - a.count);
      if (!rows.length) {
        replace(body, empty());
        return;
      }
      const list = rankList(rows, {
        column: tab.column,
        render: (row) => renderValue(tab.property, row.value),
        onPick: (row) => addFilterParam(tab.property, text(row.value)),
        max: more ? 100 : 9,
      });
      const foot = rows.length > 9 && !more
        ? h('button', { type: 'button', class: 'btn small ghost more', onclick: () => { more = true; load(); } }, 'Show more')
        : null;
      replace(body, list, foot, note);
    } catch (err) {
      if (!ctx.signal.aborted) replace(body, errorBox(err));
    }
  }
  load();
  return el;
}

// selfReferral: a page of the site itself as the referrer (the next page
// of a visit) is not a source.
function selfReferral(v) {
  const host = String(v).toLowerCase();
  return host === currentSite().toLowerCase() || host === location.hostname.toLowerCase() || host.endsWith('.' + currentSite().toLowerCase());
}

function liveCount(el, ctx) {
  const site = new URLSearchParams({ site: reportParams(ctx.query).get('site') });
  async function tick() {
    try {
      const res = await get('live/count', site, ctx.signal);
      replace(el, h('span', { class: 'pulse', 'aria-hidden': 'true' }), ' ', num(res.online), res.online === 1 ? ' current visitor' : ' current visitors');
      el.hidden = false;
    } catch {
      el.hidden = true;
    }
  }
  tick();
  const t = setInterval(tick, 30000);
  ctx.onCleanup(() => clearInterval(t));
}
