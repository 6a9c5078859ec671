// Experiments: a flag and a metric (an event, or a funnel whose last step
// converts); results per variant with the Beta posterior's 95% credible
// interval and the probability each variant is best, drawn as a chart.

import { h, s, replace, errorBox, empty, spinner, text, pct } from '../dom.js';
import { get, send, navigate, sharedQuery, currentSite } from '../api.js';
import { palette } from '../charts.js';

// intervalChart draws each variant's credible interval and rate as SVG.
function intervalChart(vs) {
  const W = 640, row = 34, left = 120, right = 20, H = vs.length * row + 30;
  const hi = Math.max(0.01, ...vs.map((v) => v.credible_interval[1]));
  const x = (f) => left + (W - left - right) * (f / hi);
  const colors = palette();
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'interval-chart', id: 'experiment-chart', role: 'img', 'aria-label': 'Conversion rate with 95% credible interval per variant' });
  vs.forEach((v, i) => {
    const y = 16 + i * row;
    const c = colors[i % colors.length];
    svg.append(
      s('text', { x: 0, y: y + 4, class: 'axis-label' }, v.key),
      s('line', { x1: x(v.credible_interval[0]), x2: x(v.credible_interval[1]), y1: y, y2: y, stroke: c, 'stroke-width': 6, 'stroke-linecap': 'round' }),
      s('circle', { cx: x(v.conversion_rate), cy: y, r: 5, fill: c }));
  });
  for (let k = 0; k <= 4; k++) {
    const f = (hi * k) / 4;
    svg.append(s('text', { x: x(f), y: H - 4, 'text-anchor': 'middle', class: 'axis-label' }, pct(f, 1)));
  }
  return svg;
}

async function resultsPage(main, ctx, id) {
  const site = currentSite(ctx.query);
  const x = await get('experiments/' + encodeURIComponent(id), { site }, ctx.signal);
  ctx.setTitle('Experiment ' + x.name);
  const box = h('section', { class: 'card', id: 'experiment-results' }, spinner());
  const metric = x.metric.event ? x.metric.event : (x.metric.funnel || []).join(' → ');
  main.append(h('div', { class: 'page-head' }, h('div', h('h1', text(x.name)),
    h('p', { class: 'muted' }, 'Flag ', h('code', text(x.flag_key)), ', metric ', text(metric), ', since ', text(x.start)))), box);
  try {
    const res = await get('experiments/' + encodeURIComponent(id) + '/results', { site }, ctx.signal);
    const vs = res.variants || [];
    if (!vs.length) {
      replace(box, empty('No exposures yet.'));
      return;
    }
    replace(box, h('div', { class: 'card-head' }, h('h2', 'Results')), intervalChart(vs),
      h('div', { class: 'table-wrap' }, h('table', { class: 'data', id: 'experiment-table' },
        h('thead', h('tr', h('th', 'Variant'), h('th', { class: 'num' }, 'Exposures'), h('th', { class: 'num' }, 'Conversions'),
          h('th', { class: 'num' }, 'Rate'), h('th', { class: 'num' }, '95% interval'), h('th', { class: 'num' }, 'Chance to be best'))),
        h('tbody', vs.map((v) => h('tr', { dataset: { key: v.key } }, h('td', text(v.key)), h('td', { class: 'num' }, String(v.exposures)),
          h('td', { class: 'num' }, String(v.conversions)), h('td', { class: 'num' }, pct(v.conversion_rate, 1)),
          h('td', { class: 'num' }, pct(v.credible_interval[0], 1) + ' – ' + pct(v.credible_interval[1], 1)),
          h('td', { class: 'num' }, pct(v.probability_best, 1))))))));
  } catch (err) {
    replace(box, errorBox(err));
  }
}

export default async function experiments(main, ctx) {
  if (ctx.parts[0]) return resultsPage(main, ctx, ctx.parts[0]);
  ctx.setTitle('Experiments');
  const site = currentSite(ctx.query);
  const shared = sharedQuery(ctx.query);
  const q = encodeURIComponent(site);
  const list = h('section', { class: 'card', id: 'experiments-list' }, spinner());
  const flags = (await get('flags', { site }, ctx.signal).catch(() => ({}))).results || [];
  const err = h('div');
  const form = h('form', { class: 'form card', id: 'experiment-form' },
    h('h2', 'New experiment'),
    h('div', { class: 'form-row' },
      h('label', 'Name', h('input', { name: 'name', required: true, placeholder: 'Faster checkout' })),
      h('label', 'Flag', h('select', { name: 'flag' }, flags.map((f) => h('option', { value: f.key }, f.key)))),
      h('label', 'Metric: event, or funnel steps separated by commas', h('input', { name: 'metric', required: true, placeholder: 'purchase' })),
      h('label', 'Start', h('input', { name: 'start', type: 'date' }))),
    err,
    h('button', { type: 'submit', class: 'btn primary' }, 'Create experiment'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const steps = form.querySelector('input[name=metric]').value.split(',').map((x) => x.trim()).filter(Boolean);
    const body = { name: form.querySelector('input[name=name]').value.trim(), flag_key: form.querySelector('select[name=flag]').value,
      metric: steps.length > 1 ? { funnel: steps } : { event: steps[0] || '' }, start: form.querySelector('input[name=start]').value };
    try {
      const x = await send('POST', 'experiments?site=' + q, body);
      navigate('/experiments/' + x.id, shared);
    } catch (x) {
      replace(err, errorBox(x));
    }
  });
  main.append(h('div', { class: 'page-head' }, h('div', h('h1', 'Experiments'), h('p', { class: 'muted' }, 'A flag’s variants against a metric, with Bayesian results.'))), form, list);
  try {
    const rows = (await get('experiments', { site }, ctx.signal)).results || [];
    if (!rows.length) {
      replace(list, empty('No experiments yet.'));
      return;
    }
    replace(list, h('div', { class: 'table-wrap' }, h('table', { class: 'data', id: 'experiments-table' },
      h('thead', h('tr', h('th', 'Experiment'), h('th', 'Flag'), h('th', 'Metric'))),
      h('tbody', rows.map((x) => h('tr', h('td', h('a', { href: '#', onclick: (e) => { e.preventDefault(); navigate('/experiments/' + x.id, shared); } }, text(x.name))),
        h('td', h('code', text(x.flag_key))), h('td', text(x.metric.event || (x.metric.funnel || []).join(' → ')))))))));
  } catch (x) {
    replace(list, errorBox(x));
  }
}
