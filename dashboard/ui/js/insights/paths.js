// Paths: where people go from a page, step by step, drawn as a Sankey-like
// flow. Node names come as "<step>_<path>" ("1_/", "2_/pricing").

import { h, s, replace, num, errorBox, empty } from '../dom.js';
import { get, reportParams, setQuery } from '../api.js';

const MAX_NODES = 8; // per step; the rest is folded into "Other"

function splitName(n) {
  const m = /^(\d+)_(.*)$/s.exec(String(n));
  return m ? { step: +m[1], label: m[2] } : { step: 1, label: String(n) };
}

export default async function paths({ editor, result, ctx }) {
  const q = ctx.query;
  const start = q.get('start') || '';
  const steps = Math.min(Math.max(parseInt(q.get('steps'), 10) || 5, 2), 10);
  const form = h('form', { class: 'query', id: 'paths-form' },
    h('label', 'Starting at page', h('input', { name: 'start', value: start, placeholder: 'any page, or e.g. /', autocomplete: 'off' })),
    h('label', 'Steps', h('input', { name: 'steps', type: 'number', min: 2, max: 10, value: steps })));
  const apply = () => setQuery({ start: form.start.value.trim() || null, steps: form.steps.value === '5' ? null : form.steps.value }, true);
  form.addEventListener('change', apply);
  form.addEventListener('submit', (e) => { e.preventDefault(); apply(); });
  replace(editor, h('div', { class: 'card-head' }, h('h2', 'Paths')), form);

  let res;
  try {
    res = await get('paths', reportParams(q, undefined, { start: start || null, steps }), ctx.signal);
  } catch (err) {
    if (!ctx.signal.aborted) replace(result, errorBox(err));
    return;
  }
  const links = (res.links || []).filter((l) => l.value > 0);
  if (!links.length) {
    replace(result, h('div', { class: 'card-head' }, h('h2', 'Result')), empty('No paths in this period.'));
    return;
  }
  const box = h('div', { class: 'sankey', id: 'paths-chart' });
  replace(result, h('div', { class: 'card-head' }, h('h2', 'Page flow'), h('span', { class: 'muted' }, 'Click a page to start the paths there')), box);
  const draw = () => replace(box, sankey(links, Math.max(box.clientWidth, 640), (label) => setQuery({ start: label }, false)));
  draw();
  const ro = new ResizeObserver(() => {
    const svg = box.firstChild;
    if (svg && Math.abs(Math.max(box.clientWidth, 640) - +svg.getAttribute('width')) > 20) draw();
  });
  ro.observe(box);
  ctx.onCleanup(() => ro.disconnect());
}

// sankey lays nodes out in columns by step, sized by the people passing
// through, and joins them by bands as wide as the links' values.
function sankey(rawLinks, width, onPick) {
  // Fold small nodes of each step into "Other".
  const total = new Map();
  for (const l of rawLinks) {
    total.set(l.source, (total.get(l.source) || 0) + l.value);
    total.set(l.target, (total.get(l.target) || 0) + l.value);
  }
  const byStep = new Map();
  for (const [name, v] of total) {
    const { step } = splitName(name);
    if (!byStep.has(step)) byStep.set(step, []);
    byStep.get(step).push({ name, v });
  }
  const keep = new Set();
  for (const list of byStep.values()) {
    list.sort((a, b) => b.v - a.v);
    list.slice(0, MAX_NODES).forEach((n) => keep.add(n.name));
  }
  const fold = (n) => (keep.has(n) ? n : splitName(n).step + '_\u0000other');
  const merged = new Map();
  for (const l of rawLinks) {
    const k = fold(l.source) + '\u0001' + fold(l.target);
    merged.set(k, (merged.get(k) || 0) + l.value);
  }
  const links = [...merged].map(([k, value]) => {
    const [source, target] = k.split('\u0001');
    return { source, target, value };
  });

  const nodes = new Map();
  const node = (name) => {
    if (!nodes.has(name)) {
      const sp = splitName(name);
      nodes.set(name, { name, step: sp.step, label: sp.label === '\u0000other' ? 'Other pages' : sp.label, other: sp.label === '\u0000other', in: 0, out: 0, inLinks: [], outLinks: [] });
    }
    return nodes.get(name);
  };
  for (const l of links) {
    const a = node(l.source), b = node(l.target);
    a.out += l.value;
    b.in += l.value;
    a.outLinks.push(l);
    b.inLinks.push(l);
  }
  const stepsList = [...new Set([...nodes.values()].map((n) => n.step))].sort((a, b) => a - b);
  const cols = stepsList.map((st) => [...nodes.values()].filter((n) => n.step === st).sort((a, b) => (a.other - b.other) || (Math.max(b.in, b.out) - Math.max(a.in, a.out))));
  const value = (n) => Math.max(n.in, n.out);

  const nodeW = 12, gap = 14, top = 10, labelRoom = 150;
  const maxCount = Math.max(...cols.map((c) => c.length));
  const height = Math.max(320, maxCount * 56);
  const scale = Math.min(...cols.map((c) => (height - top * 2 - gap * (c.length - 1)) / Math.max(1, c.reduce((a, n) => a + value(n), 0))));
  const colX = (i) => (cols.length === 1 ? 0 : i * ((width - nodeW - labelRoom) / (cols.length - 1)));

  cols.forEach((col, i) => {
    let y = top;
    for (const n of col) {
      n.x = colX(i);
      n.y = y;
      n.h = Math.max(2, value(n) * scale);
      y += n.h + gap;
      n.outY = n.y;
      n.inY = n.y;
    }
  });
  const svg = s('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'Paths between pages' });
  const gLinks = s('g');
  svg.appendChild(gLinks);
  for (const col of cols) {
    for (const n of col) {
      n.outLinks.sort((a, b) => nodes.get(a.target).y - nodes.get(b.target).y);
      for (const l of n.outLinks) {
        const t = nodes.get(l.target);
        const w = Math.max(1, l.value * scale);
        const y0 = n.outY + w / 2, y1 = t.inY + w / 2;
        n.outY += w;
        t.inY += w;
        const x0 = n.x + nodeW, x1 = t.x, mx = (x0 + x1) / 2;
        gLinks.appendChild(s('path', { class: 'link', d: `M${x0},${y0} C${mx},${y0} ${mx},${y1} ${x1},${y1}`, 'stroke-width': w },
          s('title', `${n.label} → ${t.label}: ${num(l.value)}`)));
      }
    }
  }
  for (const col of cols) {
    for (const n of col) {
      const g = s('g', { class: ['node', n.other && 'exit'].filter(Boolean).join(' '), dataset: null });
      g.appendChild(s('rect', { x: n.x, y: n.y, width: nodeW, height: n.h, rx: 3 }, s('title', `${n.label}: ${num(value(n))}`)));
      const tx = s('text', { x: n.x + nodeW + 6, y: n.y + Math.min(n.h / 2, 14) + 4 });
      tx.appendChild(document.createTextNode(n.label.length > 28 ? n.label.slice(0, 27) + '…' : n.label));
      const c = s('tspan', { class: 'count', dx: 6 });
      c.appendChild(document.createTextNode(num(value(n))));
      tx.appendChild(c);
      if (!n.other) {
        g.setAttribute('tabindex', '0');
        g.setAttribute('role', 'button');
        g.addEventListener('click', () => onPick(n.label));
        g.addEventListener('keydown', (e) => { if (e.key === 'Enter') onPick(n.label); });
        g.style.cursor = 'pointer';
      }
      g.appendChild(tx);
      svg.appendChild(g);
    }
  }
  return svg;
}
