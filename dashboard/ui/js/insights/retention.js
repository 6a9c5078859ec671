// Retention: cohorts by the period of their first start event, and how
// many came back in each later period, as a shaded table.

import { h, replace, num, pct, errorBox, empty, date } from '../dom.js';
import { get, range, reportParams, setQuery, parseYMD } from '../api.js';
import { eventNames, eventText, eventValue } from '../components.js';

export default async function retention({ editor, result, ctx }) {
  const q = ctx.query;
  const r = range(q);
  const start = q.get('start_event') || '$pageview';
  const ret = q.get('return_event') || '$pageview';
  // Daily or weekly cohorts: a parameter of its own, never the date
  // range's `period` (editing one must not change the other).
  const kind = q.get('retention_period');
  const period = kind === 'week' || (!kind && r.days > 31) ? 'week' : 'day';
  const defPeriods = period === 'day' ? Math.min(Math.max(r.days, 2), 14) : Math.min(Math.max(Math.ceil(r.days / 7), 2), 12);
  const periods = Math.min(Math.max(parseInt(q.get('periods'), 10) || defPeriods, 1), 60);
  // Actions are shown by their name: learn the names first.
  await eventNames().catch(() => null);
  if (ctx.signal.aborted) return;

  const form = h('form', { class: 'query', id: 'retention-form' },
    h('label', 'Cohort: persons who first did', h('input', { name: 'start_event', value: eventText(start), list: 'fp-steps', autocomplete: 'off' })),
    h('label', 'Came back and did', h('input', { name: 'return_event', value: eventText(ret), list: 'fp-steps', autocomplete: 'off' })),
    h('label', 'Period', h('select', { name: 'period_kind' }, [['day', 'Daily'], ['week', 'Weekly']].map(([k, l]) => h('option', { value: k, selected: k === period }, l)))),
    h('label', 'Periods', h('input', { name: 'periods', type: 'number', min: 1, max: 60, value: periods })));
  function apply() {
    setQuery({
      start_event: eventValue(form.start_event.value) || null,
      return_event: eventValue(form.return_event.value) || null,
      retention_period: form.period_kind.value,
      periods: form.periods.value || null,
    }, true);
  }
  form.addEventListener('change', apply);
  form.addEventListener('submit', (e) => { e.preventDefault(); apply(); });
  replace(editor, h('div', { class: 'card-head' }, h('h2', 'Retention')), form);

  let res;
  try {
    res = await get('retention', reportParams(q, r, { start_event: start, return_event: ret, period, periods }), ctx.signal);
  } catch (err) {
    if (!ctx.signal.aborted) replace(result, errorBox(err));
    return;
  }
  const cohorts = (res.cohorts || []).filter((c) => c.size > 0);
  if (!cohorts.length) {
    replace(result, h('div', { class: 'card-head' }, h('h2', 'Result')), empty('Nobody did the start event in this period.'));
    return;
  }
  // A period that has not ended by the range's end is not shown: it would
  // read as people not coming back.
  const end = parseYMD(r.to);
  end.setDate(end.getDate() + 1);
  const step = period === 'week' ? 7 : 1;
  const known = (c, k) => {
    const d = parseYMD(c.date);
    if (!d) return true;
    d.setDate(d.getDate() + k * step);
    return d < end;
  };
  const name = period === 'week' ? 'Week' : 'Day';
  const head = h('tr', h('th', 'Cohort'), h('th', 'Persons'), Array.from({ length: periods }, (_, k) => h('th', name + ' ' + k)));
  // Mean over the cohorts that have reached each period, weighted by size.
  const mean = Array.from({ length: periods }, (_, k) => {
    let n = 0, d = 0;
    for (const c of cohorts) if (known(c, k)) { n += c.values[k] || 0; d += c.size; }
    return d ? n / d : null;
  });
  const totalSize = cohorts.reduce((a, c) => a + c.size, 0);
  const cell = (f, count, title) => {
    if (f == null) return h('td', { class: 'future' });
    const td = h('td', { class: ['cell', f >= 0.55 && 'strong'], title }, pct(f, 1));
    td.style.background = `rgba(var(--ret), ${0.08 + 0.85 * f})`;
    if (count != null) td.dataset.count = String(count);
    return td;
  };
  const body = [
    h('tr', { class: 'mean' }, h('td', 'All cohorts'), h('td', { class: 'size' }, num(totalSize)), mean.map((f) => cell(f, null, 'Weighted mean'))),
    ...cohorts.map((c) => {
      const d = parseYMD(c.date);
      return h('tr', { dataset: { cohort: c.date } },
        h('td', d ? date(d) : c.date), h('td', { class: 'size' }, num(c.size)),
        Array.from({ length: periods }, (_, k) => known(c, k)
          ? cell(c.size ? (c.values[k] || 0) / c.size : 0, c.values[k] || 0, num(c.values[k] || 0) + ' of ' + num(c.size) + ' persons')
          : cell(null)));
    }),
  ];
  replace(result,
    h('div', { class: 'card-head' }, h('h2', 'Retention by ' + period), h('span', { class: 'muted' }, 'Share of each cohort that came back')),
    h('div', { class: 'table-wrap' }, h('table', { class: 'retention', id: 'retention-table' }, h('thead', head), h('tbody', body))));
}
