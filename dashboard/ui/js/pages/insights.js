// Insights as PostHog has them: trends, funnels, retention and paths. Each
// insight's whole definition lives in the URL, so a link shares it.

import { h, replace, errorBox, spinner } from '../dom.js';
import { url, sharedQuery, route } from '../api.js';
import { toolbar, eventDatalist, propDatalist } from '../components.js';

const kinds = [
  { key: 'trends', label: 'Trends', load: () => import('../insights/trends.js') },
  { key: 'funnel', label: 'Funnels', load: () => import('../insights/funnel.js') },
  { key: 'retention', label: 'Retention', load: () => import('../insights/retention.js') },
  { key: 'paths', label: 'Paths', load: () => import('../insights/paths.js') },
];

export default async function insights(main, ctx) {
  const kind = kinds.find((k) => k.key === ctx.parts[0]) || kinds[0];
  ctx.setTitle(kind.label);
  const shared = sharedQuery(ctx.query);
  main.appendChild(h('nav', { class: 'subnav', 'aria-label': 'Insight type' }, kinds.map((k) =>
    h('a', { href: url('/insights/' + k.key, shared), class: k.key === kind.key && 'active', 'aria-current': k.key === kind.key ? 'page' : null, dataset: { kind: k.key } }, k.label))));
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
