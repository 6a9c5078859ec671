// Saved insights and dashboards: /dashboards lists both; /dashboards/<id>
// shows a dashboard's insights as tiles, each drawn by its insight's own
// module over its saved query (the dashboard's period and filters, when
// set, apply to every tile).

import { h, replace, errorBox, empty, spinner, text } from '../dom.js';
import { url, get, send, currentSite, sharedQuery, navigate, query } from '../api.js';
import { toolbar } from '../components.js';
import { kinds, insightURL } from './insights.js';

const siteParam = (ctx) => '?site=' + encodeURIComponent(currentSite(ctx.query));
const kindLabel = (k) => (kinds.find((x) => x.key === k) || { label: k }).label;

export default async function dashboards(main, ctx) {
  if (ctx.parts[0]) return dashboard(main, ctx, ctx.parts[0]);
  ctx.setTitle('Dashboards');
  const site = currentSite(ctx.query);
  const shared = sharedQuery(ctx.query);
  const dashCard = h('section', { class: 'card', id: 'dashboards' }, spinner());
  const insCard = h('section', { class: 'card', id: 'saved-insights' }, spinner());
  main.append(h('div', { class: 'page-head' }, h('div', h('h1', 'Saved insights & dashboards'),
    h('p', { class: 'muted' }, 'Save an insight from its page; put saved insights together on a dashboard.'))), dashCard, insCard);
  let dashes, insights;
  try {
    [dashes, insights] = await Promise.all([get('dashboards', { site }, ctx.signal), get('insights', { site }, ctx.signal)]);
  } catch (err) {
    if (!ctx.signal.aborted) replace(dashCard, errorBox(err));
    return;
  }
  dashes = dashes.results || [];
  insights = insights.results || [];

  const nameIn = h('input', { name: 'name', required: true, maxlength: 200, placeholder: 'New dashboard name', 'aria-label': 'Dashboard name', autocomplete: 'off' });
  const status = h('span', { class: 'muted', role: 'status' });
  const create = h('form', { class: 'saved-bar', id: 'new-dashboard', onsubmit: async (e) => {
    e.preventDefault();
    if (!nameIn.value.trim()) return;
    try {
      const d = await send('POST', 'dashboards' + siteParam(ctx), { name: nameIn.value.trim(), insights: [] });
      navigate('/dashboards/' + d.id, shared);
    } catch (err) {
      status.textContent = 'Could not create: ' + err.message;
    }
  } }, nameIn, h('button', { type: 'submit', class: 'btn small primary' }, 'Create dashboard'), status);
  replace(dashCard, h('div', { class: 'card-head' }, h('h2', 'Dashboards')), create,
    dashes.length ? h('ul', { class: 'saved-list' }, dashes.map((d) => h('li', { dataset: { id: String(d.id) } },
      h('a', { href: url('/dashboards/' + d.id, shared), class: 'dashboard-link' }, text(d.name)),
      h('span', { class: 'muted' }, String((d.insights || []).length), (d.insights || []).length === 1 ? ' insight' : ' insights'))))
      : empty('No dashboards yet.'));

  replace(insCard, h('div', { class: 'card-head' }, h('h2', 'Saved insights')),
    insights.length ? h('ul', { class: 'saved-list' }, insights.map((ins) => insightRow(ctx, ins, dashes)))
      : empty('No saved insights yet. Open an insight and save it under a name.'));
}

// insightRow is a saved insight with rename, delete and "add to dashboard".
function insightRow(ctx, ins, dashes) {
  const li = h('li', { dataset: { id: String(ins.id) } });
  const status = h('span', { class: 'muted', role: 'status' });
  const show = () => {
    const renameIn = h('input', { name: 'name', value: text(ins.name), required: true, maxlength: 200, 'aria-label': 'New name' });
    const rename = h('details', { class: 'add-filter' }, h('summary', { class: 'btn small ghost' }, 'Rename'),
      h('form', { class: 'popover rename-form', onsubmit: async (e) => {
        e.preventDefault();
        try {
          const saved = await send('PUT', 'insights/' + ins.id + siteParam(ctx), { name: renameIn.value.trim(), kind: ins.kind, query: ins.query });
          ins.name = saved.name;
          show();
        } catch (err) {
          status.textContent = err.message;
        }
      } }, renameIn, h('button', { type: 'submit', class: 'btn small primary' }, 'Rename')));
    const addTo = dashes.length ? h('select', { 'aria-label': 'Add to dashboard', class: 'add-to-dashboard', onchange: async (e) => {
      const d = dashes.find((x) => String(x.id) === e.target.value);
      e.target.value = '';
      if (!d) return;
      try {
        const ids = [...(d.insights || []).filter((x) => x !== ins.id), ins.id];
        const saved = await send('PUT', 'dashboards/' + d.id + siteParam(ctx), { name: d.name, insights: ids });
        d.insights = saved.insights;
        status.textContent = 'Added to ' + text(d.name) + '.';
      } catch (err) {
        status.textContent = err.message;
      }
    } }, h('option', { value: '' }, 'Add to dashboard…'), dashes.map((d) => h('option', { value: String(d.id) }, text(d.name)))) : null;
    replace(li,
      h('a', { href: insightURL(ins, ctx.query), class: 'insight-link' }, text(ins.name)),
      h('span', { class: 'muted' }, kindLabel(ins.kind)),
      addTo, rename,
      h('button', { type: 'button', class: 'btn small ghost danger delete-insight', onclick: async () => {
        if (!confirm('Delete the insight “' + text(ins.name) + '”?')) return;
        try {
          await send('DELETE', 'insights/' + ins.id + siteParam(ctx));
          li.remove();
        } catch (err) {
          status.textContent = err.message;
        }
      } }, 'Delete'), status);
  };
  show();
  return li;
}

// tileQuery is a saved insight's query under the dashboard's site, period
// and filters.
function tileQuery(ins, q) {
  const p = new URLSearchParams(ins.query || '');
  for (const k of ['site', 'cohort']) if (q.get(k)) p.set(k, q.get(k));
  if (q.get('period')) {
    for (const k of ['period', 'from', 'to']) p.delete(k);
    for (const k of ['period', 'from', 'to']) if (q.get(k)) p.set(k, q.get(k));
  }
  for (const f of q.getAll('filter')) p.append('filter', f);
  return p;
}

async function dashboard(main, ctx, id) {
  const site = currentSite(ctx.query);
  let d, insights;
  try {
    [d, insights] = await Promise.all([get('dashboards/' + encodeURIComponent(id), { site }, ctx.signal), get('insights', { site }, ctx.signal)]);
  } catch (err) {
    if (!ctx.signal.aborted) replace(main, errorBox(err));
    return;
  }
  ctx.setTitle(text(d.name));
  const byId = new Map((insights.results || []).map((i) => [i.id, i]));
  const shared = sharedQuery(ctx.query);
  const status = h('span', { class: 'muted', role: 'status' });
  const save = (ids, name = d.name) => send('PUT', 'dashboards/' + d.id + siteParam(ctx), { name, insights: ids });
  const title = h('h1', { id: 'dashboard-name' }, text(d.name));
  const renameIn = h('input', { name: 'name', value: text(d.name), required: true, maxlength: 200, 'aria-label': 'New name' });
  const rename = h('details', { class: 'add-filter' }, h('summary', { class: 'btn small ghost' }, 'Rename'),
    h('form', { class: 'popover rename-form', onsubmit: async (e) => {
      e.preventDefault();
      try {
        const saved = await save(d.insights, renameIn.value.trim());
        d.name = saved.name;
        title.textContent = text(d.name);
        rename.open = false;
      } catch (err) {
        status.textContent = err.message;
      }
    } }, renameIn, h('button', { type: 'submit', class: 'btn small primary' }, 'Rename')));
  const others = (insights.results || []).filter((i) => !(d.insights || []).includes(i.id));
  const addSel = others.length ? h('select', { 'aria-label': 'Add an insight', id: 'add-tile', onchange: async (e) => {
    const ins = e.target.value;
    if (!ins) return;
    try {
      await save([...d.insights, +ins]);
      navigate('/dashboards/' + d.id, query(), true);
    } catch (err) {
      status.textContent = err.message;
    }
  } }, h('option', { value: '' }, '+ Add insight…'), others.map((i) => h('option', { value: String(i.id) }, text(i.name)))) : null;
  const del = h('button', { type: 'button', class: 'btn small ghost danger', id: 'delete-dashboard', onclick: async () => {
    if (!confirm('Delete the dashboard “' + text(d.name) + '”? Its insights stay saved.')) return;
    try {
      await send('DELETE', 'dashboards/' + d.id + siteParam(ctx));
      navigate('/dashboards', shared);
    } catch (err) {
      status.textContent = err.message;
    }
  } }, 'Delete');
  main.append(
    h('div', { class: 'page-head' }, h('div', h('a', { href: url('/dashboards', shared), class: 'muted' }, '← Saved & dashboards'), title),
      h('div', { class: 'saved-bar' }, addSel, rename, del, status)),
    toolbar());
  const tiles = h('div', { class: 'tiles', id: 'tiles' });
  main.appendChild(tiles);
  const ids = (d.insights || []).filter((i) => byId.has(i));
  if (!ids.length) {
    tiles.appendChild(empty('No insights on this dashboard yet. Add a saved insight above.'));
    return;
  }
  await Promise.all(ids.map((iid) => tile(tiles, ctx, byId.get(iid), async () => {
    await save(d.insights.filter((x) => x !== iid));
    navigate('/dashboards/' + d.id, query(), true);
  })));
}

// tile draws one saved insight with its own module; the editor is built
// but never shown.
async function tile(tiles, ctx, ins, onRemove) {
  const result = h('div', { class: 'tile-body' }, spinner());
  const el = h('section', { class: 'card tile', dataset: { insight: String(ins.id), kind: ins.kind } },
    h('div', { class: 'card-head' }, h('h2', h('a', { href: insightURL(ins, ctx.query), class: 'tile-title' }, text(ins.name))),
      h('div', { class: 'card-actions' }, h('span', { class: 'muted' }, kindLabel(ins.kind)),
        h('button', { type: 'button', class: 'btn small ghost remove-tile', 'aria-label': 'Remove from dashboard', title: 'Remove from dashboard', onclick: onRemove }, '✕'))),
    result);
  tiles.appendChild(el);
  const kind = kinds.find((k) => k.key === ins.kind);
  if (!kind) {
    replace(result, empty('This kind of insight cannot be drawn here.'));
    return;
  }
  const tctx = { ...ctx, query: tileQuery(ins, ctx.query), tile: true, setTitle: () => {} };
  try {
    const mod = await kind.load();
    if (ctx.signal.aborted) return;
    await mod.default({ editor: h('div'), result, ctx: tctx });
  } catch (err) {
    if (!ctx.signal.aborted) replace(result, errorBox(err));
  }
}
