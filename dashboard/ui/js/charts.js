// Time-series charts on uPlot (vendored, loaded as a classic script that
// sets window.uPlot).

import { h, num } from './dom.js';

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

export function palette() {
  return [1, 2, 3, 4, 5, 6, 7, 8].map((i) => css('--c' + i));
}

// parseLabel reads a trends label (hour `YYYY-MM-DDTHH:00`, day
// `YYYY-MM-DD`, week: its Monday, month `YYYY-MM`) as a local time.
export function parseLabel(label) {
  const m = /^(\d{4})-(\d{2})(?:-(\d{2}))?(?:T(\d{2}))?/.exec(label || '');
  if (!m) return null;
  return new Date(+m[1], +m[2] - 1, m[3] ? +m[3] : 1, m[4] ? +m[4] : 0);
}

const fmtHour = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: 'numeric' });
const fmtDay = new Intl.DateTimeFormat(undefined, { weekday: 'short', month: 'short', day: 'numeric' });
const fmtMonth = new Intl.DateTimeFormat(undefined, { month: 'long', year: 'numeric' });

export function labelText(label, interval) {
  const d = parseLabel(label);
  if (!d) return String(label);
  if (interval === 'hour') return fmtHour.format(d);
  if (interval === 'month') return fmtMonth.format(d);
  if (interval === 'week') return 'Week of ' + fmtDay.format(d);
  return fmtDay.format(d);
}

function withAlpha(color, a) {
  // Colors are #rrggbb in app.css.
  const m = /^#([0-9a-f]{6})$/i.exec(color);
  if (!m) return color;
  const n = parseInt(m[1], 16);
  return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${a})`;
}

// ticks picks at most max evenly spaced x values to label.
function ticks(xs, max) {
  if (xs.length <= max) return xs;
  const step = Math.ceil(xs.length / max);
  return xs.filter((_, i) => i % step === 0);
}

const fmtTickHour = new Intl.DateTimeFormat(undefined, { hour: 'numeric' });
const fmtTickDay = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const fmtTickMonth = new Intl.DateTimeFormat(undefined, { month: 'short', year: '2-digit' });

function tickText(ts, interval) {
  const d = new Date(ts * 1000);
  if (interval === 'hour') return d.getHours() === 0 ? fmtTickDay.format(d) : fmtTickHour.format(d);
  if (interval === 'month') return fmtTickMonth.format(d);
  return fmtTickDay.format(d);
}

// tooltip shows the label and every series' value at the cursor.
function tooltipPlugin(labels, interval, format) {
  let tip;
  return {
    hooks: {
      init: (u) => {
        tip = h('div', { class: 'chart-tip', hidden: true });
        u.over.appendChild(tip);
        u.over.addEventListener('mouseleave', () => { tip.hidden = true; });
      },
      setCursor: (u) => {
        const i = u.cursor.idx;
        if (i == null || u.cursor.left < 0) {
          tip.hidden = true;
          return;
        }
        const rows = [h('div', { class: 'chart-tip-title' }, labelText(labels[i], interval))];
        u.series.forEach((s, si) => {
          if (si === 0 || !s.show) return;
          const v = u.data[si][i];
          const dot = h('span', { class: 'series-dot' });
          dot.style.background = s._stroke || s.stroke;
          rows.push(h('div', { class: 'chart-tip-row' }, dot, h('span', s.label), h('strong', v == null ? '–' : format(v))));
        });
        tip.replaceChildren(...rows);
        tip.hidden = false;
        const left = u.valToPos(u.data[0][i], 'x');
        const w = tip.offsetWidth;
        let x = left + 14;
        if (x + w > u.over.clientWidth) x = left - w - 14;
        tip.style.left = Math.max(0, x) + 'px';
        tip.style.top = '4px';
      },
    },
  };
}

function innerWidth(el) {
  const cs = getComputedStyle(el);
  return el.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
}

// lineChart draws series over trends labels into el. series: [{label,
// data, color?, dash?, fill?}]. Returns a handle with destroy().
export function lineChart(el, { labels, interval, series, height = 260, format = num }) {
  const uPlot = window.uPlot;
  if (!uPlot) {
    el.appendChild(h('div', { class: 'error' }, 'Charts are unavailable (uPlot did not load).'));
    return { destroy() {} };
  }
  const xs = labels.map((l, i) => {
    const d = parseLabel(l);
    return d ? d.getTime() / 1000 : i;
  });
  const colors = palette();
  const axis = css('--muted');
  const grid = css('--grid');
  const width = () => Math.max(innerWidth(el), 200);
  const maxTicks = () => Math.max(2, Math.floor(width() / 90));
  const opts = {
    width: width(),
    height,
    padding: [14, 26, 0, 0],
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(4, Math.ceil(max * 1.12))] } },
    series: [
      {},
      ...series.map((s, i) => {
        const c = s.color || colors[i % colors.length];
        return {
          label: s.label,
          stroke: c,
          width: 2,
          dash: s.dash,
          fill: s.fill ? withAlpha(c, 0.12) : undefined,
          points: { show: labels.length <= 2, size: 6, fill: c },
        };
      }),
    ],
    axes: [
      {
        stroke: axis, grid: { show: false }, ticks: { show: false }, font: '12px system-ui, sans-serif', gap: 8, size: 30,
        splits: () => ticks(xs, maxTicks()),
        values: (u, vals) => vals.map((v) => tickText(v, interval)),
      },
      {
        stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { show: false }, size: 52, gap: 8,
        font: '12px system-ui, sans-serif',
        values: (u, vals) => vals.map((v) => (Number.isInteger(v) || v >= 10 ? format(v) : '')),
      },
    ],
    cursor: { drag: { x: false, y: false }, points: { size: 8 }, y: false },
    legend: { show: false },
    plugins: [tooltipPlugin(labels, interval, format)],
  };
  const data = [xs, ...series.map((s) => s.data.map((v) => (v == null ? null : v)))];
  const chart = new uPlot(opts, data, el);
  const ro = new ResizeObserver(() => {
    const w = width();
    if (w > 0 && Math.abs(w - chart.width) > 1) chart.setSize({ width: w, height });
  });
  ro.observe(el);
  return {
    destroy() {
      ro.disconnect();
      chart.destroy();
    },
  };
}

// legend lists series with their colors under a chart.
export function legend(series) {
  const colors = palette();
  return h('div', { class: 'chart-legend' }, series.map((s, i) => {
    const dot = h('span', { class: ['series-dot', s.dash && 'dashed'] });
    dot.style.background = s.color || colors[i % colors.length];
    return h('span', { class: 'chart-legend-item' }, dot, s.label);
  }));
}
