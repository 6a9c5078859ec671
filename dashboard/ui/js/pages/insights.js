// Insights as PostHog has them: trends, funnels, retention and paths. Each
// insight's whole definition lives in the URL, so a link shares it; saved
// insights keep that URL under a name (GET/POST/PUT /api/insights).

import { h, replace, errorBox, spinner, text } from '../dom.js';
import { url, sharedQuery, route, get, send, currentSite, navigate, query } from '../api.js';
import { toolbar, eventDatalist, propDatalist } from '../components.js';

export const kinds = [
  { key: 'trends', label: 'Trends', load: () => import('../insights/trends.js') },
  { key: 'funnel', label: 'Funnels', load: () => import('../insights/funnel.js') },
  { key: 'retention', label: 'Retention', load: () => import('../insights/retention.js') },
  { key: 'paths', label: 'Paths', load: () => import('../insights/paths.js') },
];

// The URL parameters that are not part of an insight's definition.
const notSaved = ['site', 'insight', 'drill'];

// insightQuery is what a saved insight keeps of the current URL.
export function insightQuery(q) {
  const out = new URLSearchParams(q);
  for (const k of notSaved) out.delete(k);
  return out.toString();
}

// insightURL opens a saved insight.
export function insightURL(ins, q = query()) {
  const p = new URLSearchParams(ins.query || '');
  const site = q.get('site');
  if (site) p.set('site', site);
  p.set('insight', String(ins.id));
  return url('/insights/' + encodeURIComponent(ins.kind), p);
}

export default async function insights(main, ctx) {
  const kind = kinds.find((k) => k.key === ctx.parts[0]) || kinds[0];
  ctx.setTitle(kind.label);
  const shared = sharedQuery(ctx.query);
  main.appendChild(h('nav', { class: 'subnav', 'aria-label': 'Insight type' }, kinds.map((k) =>
    h('a', { href: url('/insights/' + k.key, shared), class: k.key === kind.key && 'active', 'aria-current': k.key === kind.key ? 'page' : null, dataset: { kind: k.key } }, k.label)),
  h('a', { href: url('/dashboards', shared), id: 'saved-link', dataset: { kind: 'saved' } }, 'Saved & dashboards')));
  main.appendChild(saveBar(ctx, kind.key));
  main.appendChild(toolbar());
  for (const dl of [eventDatalist(), propDatalist()]) if (dl) main.appendChild(dl);
  const editor = h('section', { class: 'card', id: 'insight-query' });
  const result = h('section', { class: 'card', id: 'insight-result' }, spinner());
  main.append(editor, result);
  try {
    const mod = await kind.load();
    if (ctx.signal.aborted) return;
    await mod.default({ editor, result, ctx, path: route() });
  } catch (err) {
    if (!ctx.signal.aborted) replace(result, errorBox(err));
  }
}

// saveBar saves the insight in view under a name, or, for a saved insight
// opened from its URL (?insight=<id>), shows its name and saves changes
// to it.
function saveBar(ctx, kind) {
  const site = currentSite(ctx.query);
  const id = ctx.query.get('insight');
  const bar = h('div', { class: 'saved-bar', id: 'save-bar' });
  const status = h('span', { class: 'muted', role: 'status' });
  const nameIn = h('input', { name: 'name', required: true, maxlength: 200, placeholder: 'Name this insight', 'aria-label': 'Insight name', autocomplete: 'off' });
  const saveNew = async (e) => {
    e.preventDefault();
    const name = nameIn.value.trim();
    if (!name) return;
    try {
      const ins = await send('POST', 'insights?site=' + encodeURIComponent(site), { name, kind, query: insightQuery(ctx.query) });
      const q = query();
      q.set('insight', String(ins.id));
      navigate(route(), q, true);
    } catch (err) {
      status.textContent = 'Could not save: ' + err.message;
    }
  };
  const newForm = h('form', { id: 'save-insight', onsubmit: saveNew }, nameIn, h('button', { type: 'submit', class: 'btn small primary' }, 'Save insight'));
  if (!id) {
    bar.append(newForm, status);
    return bar;
  }
  const title = h('strong', { id: 'insight-name' }, '…');
  bar.append(h('span', { class: 'muted' }, 'Saved insight'), title, status);
  get('insights/' + encodeURIComponent(id), { site }, ctx.signal).then((ins) => {
    title.textContent = text(ins.name);
    ctx.setTitle(text(ins.name));
    const changed = insightQuery(ctx.query) !== (ins.query || '') || ins.kind !== kind;
    const update = h('button', { type: 'button', class: 'btn small primary', id: 'update-insight', disabled: !changed, onclick: async () => {
      try {
        await send('PUT', 'insights/' + encodeURIComponent(id) + '?site=' + encodeURIComponent(site), { name: ins.name, kind, query: insightQuery(ctx.query) });
        ins.query = insightQuery(ctx.query);
        ins.kind = kind;
        update.disabled = true;
        status.textContent = 'Saved.';
      } catch (err) {
        status.textContent = 'Could not save: ' + err.message;
      }
    } }, 'Save changes');
    const copy = h('details', { class: 'add-filter' }, h('summary', { class: 'btn small ghost' }, 'Save as new…'), h('div', { class: 'popover' }, newForm));
    bar.append(update, copy);
  }, () => {
    // Deleted since: the view stays, to be saved again.
    replace(bar, newForm, status);
  });
  return bar;
}
