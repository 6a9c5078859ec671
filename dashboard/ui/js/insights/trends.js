// Trends: events over time, with math, interval and breakdown.

import { h, replace, num, errorBox, empty, text } from '../dom.js';
import { get, range, reportParams, setQuery } from '../api.js';
import { eventLabel, eventNames, stepInput, csvLink } from '../components.js';
import { lineChart, palette, labelText, legend } from '../charts.js';

const maths = [['total', 'Total count'], ['unique', 'Unique users'], ['dau', 'Daily active users'],
  ['sum', 'Sum of a property'], ['avg', 'Average of a property'], ['min', 'Minimum of a property'], ['max', 'Maximum of a property']];
// The measures that aggregate a numeric property (math_property).
const propMaths = ['sum', 'avg', 'min', 'max'];
const intervals = [['hour', 'Hour'], ['day', 'Day'], ['week', 'Week'], ['month', 'Month']];

export default async function trends({ editor, result, ctx }) {
  const q = ctx.query;
  const r = range(q);
  const events = q.getAll('event').filter(Boolean);
  if (!events.length) events.push('$pageview');
  const math = maths.some(([k]) => k === q.get('math')) ? q.get('math') : 'total';
  const mathProp = propMaths.includes(math) ? (q.get('math_property') || '') : '';
  const interval = intervals.some(([k]) => k === q.get('interval')) ? q.get('interval') : r.interval;
  const breakdown = q.get('breakdown') || '';
  // Actions are shown by their name: learn the names first.
  await eventNames().catch(() => null);
  if (ctx.signal.aborted) return;
  let colors = palette(Math.max(8, events.length));

  // The query editor: every change rewrites the URL.
  const list = h('div', { class: 'series-list' });
  const form = h('form', { class: 'query', id: 'trends-form' });
  function apply() {
    const evs = [...list.children].map((r) => r.readStep()).filter(Boolean);
    setQuery({
      event: evs.length ? evs : null,
      math: form.math.value === 'total' ? null : form.math.value,
      math_property: propMaths.includes(form.math.value) ? form.math_property.value.trim() || null : null,
      interval: form.interval.value === r.interval ? null : form.interval.value,
      breakdown: form.breakdown.value.trim() || null,
    }, true);
  }
  function row(ev, i) {
    const dot = h('span', { class: 'series-dot' });
    dot.style.background = colors[i % colors.length];
    const step = stepInput({ value: ev, name: 'event', label: 'Event ' + (i + 1) });
    const el = h('div', { class: 'series-row' }, dot, step.nodes,
      h('button', { type: 'button', class: 'btn small ghost', 'aria-label': 'Remove series', title: 'Remove series', onclick: (e) => {
        e.currentTarget.parentElement.remove();
        apply();
      } }, '✕'));
    el.readStep = step.read;
    return el;
  }
  events.forEach((ev, i) => list.appendChild(row(ev, i)));
  form.append(
    h('fieldset', h('legend', 'Series'), list,
      h('button', { type: 'button', class: 'btn small ghost', id: 'add-series', onclick: () => {
        const n = list.children.length;
        list.appendChild(row('', n));
        list.lastChild.querySelector('input').focus();
      } }, '+ Add series')),
    h('label', 'Measure', h('select', { name: 'math' }, maths.map(([k, l]) => h('option', { value: k, selected: k === math }, l)))),
    h('label', { class: 'math-prop', hidden: !propMaths.includes(math) }, 'Of property',
      h('input', { name: 'math_property', value: mathProp, list: 'fp-props', placeholder: 'e.g. revenue', autocomplete: 'off' })),
    h('label', 'Interval', h('select', { name: 'interval' }, intervals.map(([k, l]) => h('option', { value: k, selected: k === interval }, l)))),
    h('label', 'Breakdown by', h('input', { name: 'breakdown', value: breakdown, list: 'fp-props', placeholder: 'property (optional)', autocomplete: 'off' })),
  );
  form.addEventListener('change', (e) => {
    // A filter's property or operator waits for its value.
    if (e.target.dataset.pending) return void delete e.target.dataset.pending;
    apply();
  });
  form.addEventListener('submit', (e) => { e.preventDefault(); apply(); });
  replace(editor, h('div', { class: 'card-head' }, h('h2', 'Trends')), form);

  form.math.addEventListener('change', () => { form.querySelector('.math-prop').hidden = !propMaths.includes(form.math.value); });
  if (propMaths.includes(math) && !mathProp) {
    replace(result, h('div', { class: 'card-head' }, h('h2', 'Result')), empty('Choose the numeric property to aggregate.'));
    return;
  }
  const params = reportParams(q, r, { event: events, math, math_property: mathProp || null, interval, breakdown: breakdown || null });
  let res;
  try {
    res = await get('trends', params, ctx.signal);
  } catch (err) {
    if (!ctx.signal.aborted) replace(result, errorBox(err));
    return;
  }
  const series = (res.series || []).map((s, i) => {
    const total = s.data.reduce((a, b) => a + (b || 0), 0);
    const name = eventLabel(s.event) + (s.breakdown_value != null && s.breakdown_value !== '' ? ' · ' + text(s.breakdown_value) : breakdown ? ' · (none)' : '');
    return { ...s, total, name, i };
  });
  if (!series.length || series.every((s) => s.total === 0)) {
    replace(result, h('div', { class: 'card-head' }, h('h2', 'Result')), empty('No events match in this period.'));
    return;
  }
  // Draw the largest twenty series, each in a color of its own; the table
  // lists every one.
  const shown = [...series].sort((a, b) => b.total - a.total).slice(0, 20);
  colors = palette(shown.length);
  const chartEl = h('div', { class: 'chart', id: 'trends-chart' });
  const table = h('table', { class: 'data', id: 'trends-table' },
    h('thead', h('tr', h('th', 'Series'), h('th', { class: 'num' }, math === 'total' || math === 'sum' ? 'Total' : 'Sum over intervals'),
      h('th', { class: 'num hide-sm' }, 'Average per ' + interval))),
    h('tbody', [...series].sort((a, b) => b.total - a.total).map((s) => {
      const dot = h('span', { class: 'series-dot' });
      const idx = shown.indexOf(s);
      dot.style.background = idx >= 0 ? colors[idx % colors.length] : 'transparent';
      return h('tr', h('td', h('span', { class: 'series-row' }, dot, h('span', s.name))),
        h('td', { class: 'num' }, num(s.total)), h('td', { class: 'num hide-sm' }, num(s.total / Math.max(1, res.labels.length))));
    })));
  const rangeText = res.labels.length ? labelText(res.labels[0], interval) + ' – ' + labelText(res.labels[res.labels.length - 1], interval) : '';
  // The events behind a one-event series can be downloaded (the export
  // endpoint takes the range and filters; the event is one more filter).
  const plain = events.length === 1 && !events[0].includes('|') && !/^action:/.test(events[0]);
  const csv = plain ? csvLink(reportParams(q, r, { filter: ['event==' + events[0]] })) : null;
  replace(result, h('div', { class: 'card-head' }, h('h2', propMaths.includes(math) ? maths.find(([k]) => k === math)[1].replace('a property', mathProp) : maths.find(([k]) => k === math)[1]), h('span', { class: 'muted' }, rangeText), csv ? h('div', { class: 'card-actions' }, csv) : null),
    chartEl, ctx.tile ? legend(shown.map((s, i) => ({ label: s.name, color: colors[i] }))) : null, h('div', { class: 'table-wrap' }, table));
  const chart = lineChart(chartEl, {
    labels: res.labels, interval,
    series: shown.map((s, i) => ({ label: s.name, data: s.data, color: colors[i % colors.length], fill: shown.length === 1 })),
    height: ctx.tile ? 220 : 320,
    annotate: !ctx.tile,
  });
  ctx.onCleanup(() => chart.destroy());
}
