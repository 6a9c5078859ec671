// Heatmap overlay: the real page in a same-origin iframe without scripts
// (sandbox="allow-same-origin": the snippet does not run, so no page view
// is counted), as wide as the chosen viewport class, with click density or
// scroll depth drawn over it on a canvas.
//
// URL state: url (the page's path), viewport (a width class in px; by
// default the class with the most clicks), type (click|scroll), and the
// shared period.

import { h, replace, errorBox, empty, spinner, num, pct } from '../dom.js';
import { get, assets, setQuery, reportParams } from '../api.js';
import { toolbar } from '../components.js';

// The width classes of /api/heatmap: a click belongs to the class nearest
// its viewport's width, and the page is drawn at the class's width, so a
// centred or responsive layout puts each element where visitors saw it.
const widths = [375, 768, 1024, 1280, 1440, 1920, 2560];
const legacy = { desktop: 1280, tablet: 768, mobile: 375 };
const widthLabel = (w) => (w < 768 ? 'Phone' : w < 1024 ? 'Tablet' : 'Desktop') + ' ' + w + 'px';

export default async function heatmap(main, ctx) {
  ctx.setTitle('Heatmap');
  if (!document.querySelector('link[data-fp-replay-css]')) {
    document.head.appendChild(h('link', { rel: 'stylesheet', href: assets + '/replay.css', 'data-fp-replay-css': '' }));
  }
  const q = ctx.query;
  const page = q.get('url') || '';
  const type = q.get('type') === 'scroll' ? 'scroll' : 'click';
  const asked = legacy[q.get('viewport')] || Number(q.get('viewport'));
  // The classes visitors clicked from, most first.
  let counts = [];
  if (page) {
    try {
      counts = (await get('heatmap/viewports', reportParams(q, undefined, { url: page }), ctx.signal)).viewports || [];
    } catch { /* the classes without counts */ }
  }
  const width = widths.includes(asked) ? asked : counts.length ? counts[0].width : 1280;
  const viewport = String(width);
  const countOf = (w) => counts.find((c) => c.width === w)?.count;

  const pageSel = h('select', { id: 'heatmap-page', 'aria-label': 'Page', onchange: (e) => setQuery({ url: e.target.value || null }) },
    h('option', { value: '' }, 'Choose a page…'));
  const vpSel = h('select', { id: 'heatmap-viewport', 'aria-label': 'Viewport width', onchange: (e) => setQuery({ viewport: e.target.value }) },
    widths.map((w) => h('option', { value: String(w), selected: w === width }, widthLabel(w) + (countOf(w) ? ' · ' + num(countOf(w)) + ' clicks' : ''))));
  const typeSel = h('select', { id: 'heatmap-type', 'aria-label': 'Heatmap type', onchange: (e) => setQuery({ type: e.target.value === 'click' ? null : e.target.value }) },
    h('option', { value: 'click', selected: type === 'click' }, 'Clicks'),
    h('option', { value: 'scroll', selected: type === 'scroll' }, 'Scroll depth'));
  const legend = h('p', { class: 'muted heatmap-legend', id: 'heatmap-legend' });
  const stage = h('div', { class: 'heatmap-stage', id: 'heatmap-stage' });
  main.append(
    h('div', { class: 'page-head' }, h('div', h('h1', 'Heatmap'), h('p', { class: 'muted' }, 'Where visitors click and how far they scroll, over the page itself.'))),
    toolbar({ extra: h('div', { class: 'heatmap-controls' }, pageSel, vpSel, typeSel) }),
    h('section', { class: 'card' }, legend, stage));

  // The pages to pick from: the most viewed paths.
  get('breakdown', reportParams(q, undefined, { property: '$pathname', event: '$pageview', limit: 100 }), ctx.signal).then((res) => {
    const paths = (res.results || []).map((r) => String(r.value));
    if (page && !paths.includes(page)) paths.unshift(page);
    replace(pageSel, h('option', { value: '' }, 'Choose a page…'), paths.map((p) => h('option', { value: p, selected: p === page }, p)));
  }, (err) => { if (!ctx.signal.aborted) legend.replaceChildren(errorBox(err)); });

  if (!page) {
    replace(stage, empty('Choose a page to see its heatmap.'));
    return;
  }
  if (!page.startsWith('/') || page.startsWith('//')) {
    replace(stage, empty('Not a path of this site.'));
    return;
  }
  replace(stage, spinner());
  let points;
  try {
    const res = await get('heatmap', reportParams(q, undefined, { url: page, type, viewport }), ctx.signal);
    points = res.points || [];
  } catch (err) {
    if (!ctx.signal.aborted) replace(stage, errorBox(err));
    return;
  }

  // The page, without scripts, at the viewport's width; once loaded it is
  // made as tall as its document so that document pixels line up.
  const frame = h('iframe', { class: 'heatmap-frame', id: 'heatmap-frame', sandbox: 'allow-same-origin', src: page, title: 'The page ' + page, width: String(width), height: '800', scrolling: 'no', loading: 'eager' });
  const canvas = h('canvas', { class: 'heatmap-canvas', id: 'heatmap-canvas', 'aria-label': type === 'click' ? 'Click density' : 'Scroll depth' });
  const box = h('div', { class: 'heatmap-box' }, frame, canvas);
  box.style.width = width + 'px';
  replace(stage, box);

  const draw = () => {
    let height = 800;
    try {
      const doc = frame.contentDocument;
      height = Math.max(doc.documentElement.scrollHeight, doc.body ? doc.body.scrollHeight : 0, 400);
    } catch { /* not same-origin: keep the frame's height */ }
    height = Math.min(height, 30000);
    frame.height = String(height);
    box.style.height = height + 'px';
    canvas.width = width;
    canvas.height = height;
    canvas.style.width = width + 'px';
    canvas.style.height = height + 'px';
    const g = canvas.getContext('2d');
    g.clearRect(0, 0, width, height);
    if (type === 'click') drawClicks(g, points, width, legend);
    else drawScroll(g, points, width, height, legend);
    canvas.dataset.drawn = String(points.length);
  };
  frame.addEventListener('load', draw);
  ctx.onCleanup(() => frame.removeEventListener('load', draw));
}

// drawClicks paints each cell as a soft spot, hotter with more clicks.
function drawClicks(g, points, width, legend) {
  const total = points.reduce((s, p) => s + p.count, 0);
  legend.replaceChildren(total ? `${num(total)} clicks in ${num(points.length)} spots.` : 'No clicks on this page in this period.');
  const max = Math.max(1, ...points.map((p) => p.count));
  for (const p of points) {
    const x = p.x * width, y = p.y;
    const heat = Math.sqrt(p.count / max);
    const r = 14 + 16 * heat;
    const grad = g.createRadialGradient(x, y, 0, x, y, r);
    const hue = Math.round(60 - 60 * heat); // yellow to red
    grad.addColorStop(0, `hsla(${hue}, 100%, 50%, ${0.55 + 0.4 * heat})`);
    grad.addColorStop(1, `hsla(${hue}, 100%, 50%, 0)`);
    g.fillStyle = grad;
    g.beginPath();
    g.arc(x, y, r, 0, 2 * Math.PI);
    g.fill();
  }
}

// drawScroll shades each 100 px band by the share of page views that did
// not reach it, with marks where 75, 50 and 25% of views were left.
function drawScroll(g, points, width, height, legend) {
  const views = points.length ? Math.max(...points.map((p) => p.count)) : 0;
  legend.replaceChildren(views ? `${num(views)} page views; shading shows how many did not scroll that far.` : 'No page leaves with scroll depth for this page in this period.');
  if (!views) return;
  const byY = new Map(points.map((p) => [p.y, p.count]));
  const marks = [0.75, 0.5, 0.25];
  for (let y = 0; y < height; y += 100) {
    const reached = (byY.get(y) || 0) / views;
    g.fillStyle = `rgba(20, 20, 40, ${0.65 * (1 - reached)})`;
    g.fillRect(0, y, width, 100);
    while (marks.length && reached < marks[0]) {
      const m = marks.shift();
      g.fillStyle = 'rgba(255, 80, 40, 0.9)';
      g.fillRect(0, y, width, 2);
      g.font = '600 13px system-ui, sans-serif';
      g.fillText(`${pct(m)} of views reach here`, 8, y + 16);
    }
  }
}
