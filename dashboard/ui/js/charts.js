// Time-series charts on uPlot (vendored, loaded as a classic script that
// sets window.uPlot).

import { h, num, text, date, dateTime } from './dom.js';
import { get, send, currentSite, ymd } from './api.js';

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

// palette gives n series colors: the theme's eight, then hues a golden
// angle apart, so that many breakdown series never share a color.
export function palette(n = 8) {
  const out = [1, 2, 3, 4, 5, 6, 7, 8].map((i) => css('--c' + i)).slice(0, n);
  for (let i = out.length; i < n; i++) {
    const hue = Math.round((i * 137.508 + 15) % 360);
    out.push(`hsl(${hue}, ${i % 2 ? 70 : 58}%, ${i % 3 ? 48 : 58}%)`);
  }
  return out;
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
// Months read as months ("Nov 2026"), never like a date ("Nov 26").
const fmtTickMonth = new Intl.DateTimeFormat(undefined, { month: 'short', year: 'numeric' });

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
// data, color?, dash?, fill?}]. The site's annotations are drawn on it
// (annotations: false leaves them out; annotate: false offers no form to
// add one). Returns a handle with destroy().
export function lineChart(el, { labels, interval, series, height = 260, format = num, annotations = true, annotate = true }) {
  const uPlot = window.uPlot;
  if (!uPlot) {
    el.appendChild(h('div', { class: 'error' }, 'Charts are unavailable (uPlot did not load).'));
    return { destroy() {} };
  }
  const xs = labels.map((l, i) => {
    const d = parseLabel(l);
    return d ? d.getTime() / 1000 : i;
  });
  const colors = palette(series.length);
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
        values: (u, vals) => {
          const out = vals.map((v) => tickText(v, interval));
          el.dataset.ticks = out.join('|'); // what the axis shows, for tests
          return out;
        },
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
  if (annotations) opts.plugins.push(annotationPlugin(el, xs, interval, annotate));
  // An interval that has not begun yet (the hours after now of "Today")
  // has no data: it is left out, not drawn as zero. A comparison series
  // (dashed, the previous period) is drawn whole.
  const now = Date.now() / 1000;
  const timed = labels.length > 0 && labels.every((l) => parseLabel(l));
  const data = [xs, ...series.map((s) => s.data.map((v, i) => (v == null || (timed && !s.dash && xs[i] > now) ? null : v)))];
  el.dataset.points = String(data[1] ? data[1].filter((v) => v != null).length : 0);
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

// --- annotations ------------------------------------------------------------

let notesSite = null;
let notesPromise = null;
let notesAt = 0;

// loadAnnotations fetches the site's annotations, shared by the charts of
// a page and asked again after 15 s or a change made here.
function loadAnnotations() {
  const site = currentSite();
  if (notesPromise && notesSite === site && Date.now() - notesAt < 15000) return notesPromise;
  notesSite = site;
  notesAt = Date.now();
  notesPromise = get('annotations', { site }).then((r) => r.results || [], () => []);
  return notesPromise;
}

function annotationsChanged() {
  notesPromise = null;
  window.dispatchEvent(new Event('fp:annotations'));
}

// annotationTime reads an annotation's date: `YYYY-MM-DD` is that day's
// midnight in the browser's time zone (the charts' zone), RFC 3339 is
// that instant.
export function annotationTime(date) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date || '');
  const d = m ? new Date(+m[1], +m[2] - 1, +m[3]) : new Date(date);
  return Number.isNaN(d.getTime()) ? null : d.getTime() / 1000;
}

const intervalSeconds = { hour: 3600, day: 86400, week: 7 * 86400, month: 31 * 86400 };

// annotationPlugin draws a marker at each annotation's time inside the
// chart's range, its text shown on hover or focus with a button to delete
// it, and a form under the chart to add one. Texts go in as text nodes.
function annotationPlugin(el, xs, interval, annotate) {
  const layer = h('div', { class: 'annotations', 'aria-label': 'Annotations' });
  let notes = [];
  let chart = null;
  const lo = xs[0];
  const hi = xs[xs.length - 1] + (intervalSeconds[interval] || 86400);
  const place = () => {
    if (!chart) return;
    for (const m of layer.children) {
      const x = chart.valToPos(+m.dataset.ts, 'x');
      m.style.left = x + 'px';
    }
  };
  const draw = () => {
    const inRange = notes.map((n) => ({ n, t: annotationTime(n.date) })).filter(({ t }) => t != null && t >= lo && t < hi);
    setMarkers(inRange.map(({ n, t }) => marker(n, t)));
    place();
  };
  const setMarkers = (children) => {
    while (layer.firstChild) layer.removeChild(layer.firstChild);
    for (const c of children) layer.appendChild(c);
  };
  const marker = (n, t) => {
    const del = h('button', { type: 'button', class: 'btn small ghost annotation-delete', onclick: async (e) => {
      e.stopPropagation();
      try {
        await send('DELETE', 'annotations/' + encodeURIComponent(n.id) + '?site=' + encodeURIComponent(currentSite()));
        annotationsChanged();
      } catch (err) {
        alert('Could not delete the annotation: ' + err.message);
      }
    } }, 'Delete');
    return h('div', { class: 'annotation', dataset: { ts: String(t), id: String(n.id), date: text(n.date) } },
      h('button', { type: 'button', class: 'annotation-mark', 'aria-label': 'Annotation: ' + text(n.text) }, '▲'),
      h('div', { class: 'annotation-pop', role: 'tooltip' },
        h('div', { class: 'annotation-date muted' }, /^\d{4}-\d{2}-\d{2}$/.test(n.date) ? date(new Date(t * 1000)) : dateTime(n.date)),
        h('div', { class: 'annotation-text' }, text(n.text)), del));
  };
  const refresh = () => loadAnnotations().then((list) => { notes = list; draw(); });
  const dateIn = h('input', { type: 'date', name: 'date', required: true, 'aria-label': 'Annotation date',
    value: ymd(new Date(Math.min(Date.now(), xs[xs.length - 1] * 1000))) });
  const textIn = h('input', { name: 'text', required: true, maxlength: 500, placeholder: 'What happened? (e.g. launched on HN)', 'aria-label': 'Annotation text' });
  const add = h('details', { class: 'annotation-add' }, h('summary', { class: 'btn small ghost' }, '+ Annotation'),
    h('form', { class: 'annotation-form', onsubmit: async (e) => {
      e.preventDefault();
      if (!textIn.value.trim()) return;
      try {
        await send('POST', 'annotations?site=' + encodeURIComponent(currentSite()), { date: dateIn.value, text: textIn.value.trim() });
        textIn.value = '';
        add.open = false;
        annotationsChanged();
      } catch (err) {
        alert('Could not save the annotation: ' + err.message);
      }
    } }, dateIn, textIn, h('button', { type: 'submit', class: 'btn small primary' }, 'Add')));
  return {
    hooks: {
      init: (u) => {
        chart = u;
        u.over.appendChild(layer);
        if (annotate) el.appendChild(add);
        window.addEventListener('fp:annotations', refresh);
        refresh();
      },
      setSize: () => place(),
      ready: () => place(),
      destroy: () => {
        window.removeEventListener('fp:annotations', refresh);
        add.remove();
      },
    },
  };
}

// legend lists series with their colors under a chart.
export function legend(series) {
  const colors = palette(series.length);
  return h('div', { class: 'chart-legend' }, series.map((s, i) => {
    const dot = h('span', { class: ['series-dot', s.dash && 'dashed'] });
    dot.style.background = s.color || colors[i % colors.length];
    return h('span', { class: 'chart-legend-item' }, dot, s.label);
  }));
}
