// Actions: named definitions over events ("clicked Sign up on /pricing"),
// usable anywhere an event is, as action:<id>. Any step matching makes an
// event part of the action.

import { h, replace, errorBox, empty, spinner, text } from '../dom.js';
import { get, send, url, navigate, sharedQuery, currentSite } from '../api.js';
import { eventDatalist, eventLabel } from '../components.js';

const fields = [
  ['event', 'Event', '$autocapture'],
  ['url_contains', 'URL contains', '/pricing'],
  ['selector', 'Element matches selector', 'button.signup'],
  ['text', 'Element text is', 'Sign up'],
  ['href', 'Link target is', '/signup'],
];

function describeStep(st) {
  const parts = [];
  if (st.event) parts.push(eventLabel(st.event));
  if (st.url_contains) parts.push('URL contains “' + st.url_contains + '”');
  if (st.selector) parts.push('matches ' + st.selector);
  if (st.text) parts.push('text “' + st.text + '”');
  if (st.href) parts.push('links to ' + st.href);
  return parts.join(', ') || 'Any event';
}

function stepBox(st, onRemove) {
  return h('div', { class: 'step-box' },
    h('div', { class: 'form-row' }, fields.map(([k, label, ph]) =>
      h('label', label, h('input', { name: k, value: st?.[k] || '', placeholder: ph, list: k === 'event' ? 'fp-events' : null, autocomplete: 'off' })))),
    h('div', h('button', { type: 'button', class: 'btn small ghost', onclick: onRemove }, 'Remove this step')));
}

function actionForm(a, onSave, onCancel) {
  const steps = h('div', { class: 'form', id: 'action-steps' });
  const add = (st) => {
    const box = stepBox(st, () => { if (steps.children.length > 1) box.remove(); });
    steps.appendChild(box);
  };
  (a?.steps?.length ? a.steps : [{ event: '$pageview' }]).forEach(add);
  const err = h('div');
  const f = h('form', { class: 'form', id: 'action-form' },
    h('label', 'Name', h('input', { name: 'name', value: a?.name || '', required: true, placeholder: 'e.g. Signed up' })),
    h('p', { class: 'muted' }, 'An event is part of this action when it matches any of these steps (every filled field of the step).'),
    steps,
    h('div', h('button', { type: 'button', class: 'btn small', onclick: () => add({}) }, '+ Add another way to match')),
    err,
    h('div', { class: 'form-row' }, h('button', { type: 'submit', class: 'btn primary' }, a ? 'Save action' : 'Create action'),
      onCancel ? h('button', { type: 'button', class: 'btn', onclick: onCancel }, 'Cancel') : null));
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = {
      name: f.querySelector('input[name=name]').value.trim(),
      steps: [...steps.children].map((box) => {
        const st = {};
        for (const [k] of fields) {
          const v = box.querySelector(`input[name=${k}]`).value.trim();
          if (v) st[k] = v;
        }
        return st;
      }),
    };
    try {
      await onSave(body);
    } catch (x) {
      replace(err, errorBox(x));
    }
  });
  return f;
}

export default async function actions(main, ctx) {
  ctx.setTitle('Actions');
  const site = currentSite(ctx.query);
  const shared = sharedQuery(ctx.query);
  const q = encodeURIComponent(site);
  const list = h('section', { class: 'card', id: 'actions-list' }, spinner());
  const formBox = h('div');
  const reload = () => navigate('/actions', shared, true);
  const newBtn = h('button', { type: 'button', class: 'btn primary', id: 'new-action', onclick: () => {
    newBtn.hidden = true;
    replace(formBox, h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', 'New action')),
      actionForm(null, async (body) => { await send('POST', 'actions?site=' + q, body); reload(); }, () => { replace(formBox); newBtn.hidden = false; })));
  } }, '+ New action');
  main.append(h('div', { class: 'page-head' }, h('div', h('h1', 'Actions'), h('p', { class: 'muted' }, 'Name the events that matter; use them in trends and funnels as action:<id>.')), newBtn), formBox, list);
  const dl = eventDatalist();
  if (dl) main.appendChild(dl);
  try {
    const res = await get('actions', { site }, ctx.signal);
    const rows = Array.isArray(res) ? res : res.results || [];
    if (!rows.length) {
      replace(list, empty('No actions yet.'));
      return;
    }
    replace(list, h('div', { class: 'table-wrap' }, h('table', { class: 'data', id: 'actions-table' },
      h('thead', h('tr', h('th', 'Name'), h('th', 'Matches'), h('th', ''))),
      h('tbody', rows.map((a) => {
        const tq = new URLSearchParams(shared);
        tq.set('event', 'action:' + a.id);
        const tools = h('td', { class: 'num' });
        const del = h('span', { class: 'confirm' });
        const resetDelete = () => replace(del, h('button', { type: 'button', class: 'btn small ghost delete-action', onclick: () => replace(del,
          h('button', { type: 'button', class: 'btn danger solid small confirm-delete', onclick: async () => {
            try {
              await send('DELETE', 'actions/' + encodeURIComponent(a.id) + '?site=' + q);
              reload();
            } catch (err) {
              replace(del, errorBox(err));
            }
          } }, 'Delete'),
          h('button', { type: 'button', class: 'btn small', onclick: resetDelete }, 'Cancel')) }, 'Delete'));
        resetDelete();
        const tr = h('tr', { dataset: { id: String(a.id) } },
          h('td', h('strong', text(a.name)), h('div', { class: 'muted mono' }, 'action:' + text(a.id))),
          h('td', (a.steps || []).map((st, i) => h('div', i ? h('span', { class: 'muted' }, 'or ') : null, describeStep(st)))),
          tools);
        tools.append(
          h('a', { class: 'btn small ghost', href: url('/insights/trends', tq) }, 'Trend'),
          h('button', { type: 'button', class: 'btn small ghost edit-action', onclick: () => {
            newBtn.hidden = true;
            replace(formBox, h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', 'Edit action')),
              actionForm(a, async (body) => { await send('PUT', 'actions/' + encodeURIComponent(a.id) + '?site=' + q, body); reload(); },
                () => { replace(formBox); newBtn.hidden = false; })));
            formBox.scrollIntoView({ behavior: 'smooth' });
          } }, 'Edit'),
          del);
        return tr;
      })))));
  } catch (err) {
    if (!ctx.signal.aborted) replace(list, errorBox(err));
  }
}
