// What only the server sees (SPEC §8), on the overview: the share of visits
// where the snippet ran, pages answered 404 with where visitors came from,
// the slowest pages, feed subscribers and downloads. The card stays hidden
// while the server has seen none of it.

import { h, replace, num, pct, text, errorBox } from '../dom.js';
import { get, reportParams } from '../api.js';
import { card, rankList } from '../components.js';

const tabs = [
  { key: 'notfound', label: 'Not found' },
  { key: 'slow', label: 'Slowest pages' },
  { key: 'feeds', label: 'Feed subscribers' },
  { key: 'downloads', label: 'Downloads' },
];

export function serverCard(ctx) {
  let active = 'notfound';
  // No spinner: the card stays hidden until there is something to show.
  const body = h('div', { class: 'card-body' });
  const share = h('p', { class: 'muted small', id: 'js-share' });
  const el = card({ title: null, tabs, active, id: 'panel-server', cls: 'panel', onTab: (k) => {
    active = k;
    for (const b of el.querySelectorAll('.tab')) {
      b.classList.toggle('active', b.dataset.tab === k);
      b.setAttribute('aria-selected', String(b.dataset.tab === k));
    }
    show();
  } }, share, body);
  el.prepend(h('h2', { class: 'sr-only' }, 'Seen by the server'));
  el.hidden = true;
  let rep = null, downloads = [];

  function show() {
    if (!rep) return;
    const n = { notfound: rep.not_found.length, slow: rep.slow.length, feeds: rep.feeds.length, downloads: downloads.length }[active];
    if (!n) {
      replace(body, h('p', { class: 'muted' }, 'Nothing in this range.'));
      return;
    }
    let list;
    switch (active) {
      case 'notfound':
        list = rankList(rep.not_found.map((r) => ({ ...r, visitors: r.count })), {
          column: 'Hits', metric: 'count',
          render: (r) => [text(r.path), r.referrers?.length ? h('span', { class: 'muted small' }, ' from ', r.referrers.map((x) => text(x.value)).join(', ')) : null],
        });
        break;
      case 'slow':
        list = rankList(rep.slow.map((r) => ({ ...r, value: r.path, visitors: r.p90_ms })), {
          column: 'p90', metric: 'p90_ms',
          render: (r) => [text(r.path), h('span', { class: 'muted small' }, ' median ', Math.round(r.median_ms) + ' ms, p90 ' + Math.round(r.p90_ms) + ' ms, ' + num(r.count) + ' pages')],
        });
        break;
      case 'feeds':
        list = rankList(rep.feeds.map((r) => ({ ...r, value: r.path, visitors: r.subscribers })), {
          column: 'Subscribers', metric: 'subscribers',
          render: (r) => [text(r.path), h('span', { class: 'muted small' }, ' ' + num(r.fetches) + ' fetches')],
        });
        break;
      default:
        list = rankList(downloads, { column: 'Downloads', metric: 'count' });
    }
    replace(body, list);
  }

  (async () => {
    try {
      const p = reportParams(ctx.query);
      const [r, d] = await Promise.all([
        get('server', p, ctx.signal),
        get('breakdown', reportParams(ctx.query, undefined, { event: '$download', property: '$pathname', limit: 10 }), ctx.signal).catch(() => ({ results: [] })),
      ]);
      rep = { ...r, not_found: r.not_found || [], slow: r.slow || [], feeds: r.feeds || [] };
      downloads = d.results || [];
      if (!rep.server_pageviews && !rep.feeds.length && !downloads.length) return;
      el.hidden = false;
      if (rep.server_pageviews) {
        replace(share, 'The snippet ran on ', h('strong', pct(rep.js_share)), ' of ', num(rep.server_pageviews),
          ' pages served; the other ', pct(1 - rep.js_share), ' (blocked, no JavaScript) are counted by the server.');
      }
      show();
    } catch (err) {
      if (!ctx.signal.aborted) { el.hidden = false; replace(body, errorBox(err)); }
    }
  })();
  return el;
}
