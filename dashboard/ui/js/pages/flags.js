// Feature flags: PostHog-shaped definitions (condition groups with rollout
// percentages, variants, payloads) that the site's own /flags/ answers,
// and each flag's calls per variant over time. Every value is set as text.

import { h, replace, errorBox, empty, spinner, text } from '../dom.js';
import { get, send, navigate, sharedQuery, currentSite, reportParams, range } from '../api.js';
import { lineChart, legend } from '../charts.js';

const operators = [
  ['exact', 'equals'], ['is_not', 'does not equal'], ['icontains', 'contains'], ['not_icontains', 'does not contain'],
  ['regex', 'matches regex'], ['not_regex', 'does not match regex'], ['is_set', 'is set'], ['is_not_set', 'is not set'],
  ['gt', '>'], ['gte', '≥'], ['lt', '<'], ['lte', '≤'],
];

function opSelect(value) {
  return h('select', { name: 'operator' }, operators.map(([v, label]) => h('option', { value: v, selected: v === value }, label)));
}

// conditionRow edits one property or cohort condition.
function conditionRow(p, cohorts, onRemove) {
  const kind = h('select', { name: 'type' }, h('option', { value: 'person', selected: p.type !== 'cohort' }, 'Person property'),
    h('option', { value: 'cohort', selected: p.type === 'cohort' }, 'Cohort'));
  const box = h('div', { class: 'form-row condition' });
  const fill = () => {
    const parts = [kind];
    if (kind.value === 'cohort') {
      parts.push(h('select', { name: 'cohort-op' }, h('option', { value: 'in', selected: p.operator !== 'not_in' }, 'is in'),
        h('option', { value: 'not_in', selected: p.operator === 'not_in' }, 'is not in')));
      parts.push(h('select', { name: 'cohort' }, cohorts.map((c) => h('option', { value: String(c.id), selected: String(c.id) === String(p.value) }, c.name))));
    } else {
      const v = Array.isArray(p.value) ? p.value.join(', ') : p.value == null ? '' : String(p.value);
      parts.push(h('input', { name: 'key', value: p.key || '', placeholder: 'email', autocomplete: 'off' }), opSelect(p.operator || 'exact'),
        h('input', { name: 'value', value: v === 'is_set' || v === 'is_not_set' ? '' : v, placeholder: 'value (a, b for any of several)', autocomplete: 'off' }));
    }
    parts.push(h('button', { type: 'button', class: 'btn small ghost', onclick: onRemove }, 'Remove'));
    replace(box, parts);
  };
  kind.addEventListener('change', fill);
  fill();
  return box;
}

function readCondition(box) {
  const type = box.querySelector('select[name=type]').value;
  if (type === 'cohort') {
    return { type: 'cohort', key: 'id', operator: box.querySelector('select[name=cohort-op]').value, value: Number(box.querySelector('select[name=cohort]')?.value) };
  }
  const operator = box.querySelector('select[name=operator]').value;
  const raw = box.querySelector('input[name=value]').value.trim();
  let value = raw;
  if (operator === 'exact' || operator === 'is_not') {
    const list = raw.split(',').map((x) => x.trim()).filter(Boolean);
    value = list.length > 1 ? list : raw;
  } else if (['gt', 'gte', 'lt', 'lte'].includes(operator) && raw !== '' && !isNaN(Number(raw))) {
    value = Number(raw);
  }
  return { type: 'person', key: box.querySelector('input[name=key]').value.trim(), operator, value };
}

// groupBox edits one condition group: its conditions and rollout.
function groupBox(g, cohorts, onRemove) {
  const conds = h('div', { class: 'conditions' });
  const addCond = (p) => {
    const row = conditionRow(p, cohorts, () => row.remove());
    conds.appendChild(row);
  };
  (g.properties || []).forEach(addCond);
  const pct = g.rollout_percentage == null ? 100 : g.rollout_percentage;
  const shown = h('output', { class: 'rollout-value' }, pct + '%');
  const slider = h('input', { type: 'range', min: '0', max: '100', step: '1', value: String(pct), name: 'rollout', 'aria-label': 'Rollout percentage' });
  slider.addEventListener('input', () => { shown.textContent = slider.value + '%'; });
  return h('div', { class: 'step-box flag-group' },
    h('p', { class: 'muted' }, 'Persons matching every condition (none: everyone) …'),
    conds,
    h('div', h('button', { type: 'button', class: 'btn small', onclick: () => addCond({ type: 'person', operator: 'exact' }) }, '+ Condition')),
    h('label', { class: 'form-row' }, '… of whom this share get the flag: ', slider, shown),
    h('div', h('button', { type: 'button', class: 'btn small ghost', onclick: onRemove }, 'Remove this group')));
}

function variantRow(v, onChange) {
  const row = h('div', { class: 'form-row variant' },
    h('input', { name: 'vkey', value: v.key || '', placeholder: 'variant key', autocomplete: 'off' }),
    h('input', { name: 'vpct', type: 'number', min: '0', max: '100', step: '1', value: String(v.rollout_percentage ?? 0), 'aria-label': 'Variant percentage' }),
    h('span', '%'),
    h('button', { type: 'button', class: 'btn small ghost', onclick: () => { row.remove(); onChange(); } }, 'Remove'));
  row.addEventListener('input', onChange);
  return row;
}

function payloadText(p) {
  if (p == null) return '';
  return JSON.stringify(p);
}

// flagForm edits a flag; onSave gets the PostHog-shaped body.
export function flagForm(f, cohorts, onSave, onCancel) {
  const groups = h('div', { class: 'form', id: 'flag-groups' });
  const addGroup = (g) => {
    const box = groupBox(g, cohorts, () => box.remove());
    groups.appendChild(box);
  };
  (f?.filters?.groups?.length ? f.filters.groups : [{ properties: [], rollout_percentage: 100 }]).forEach(addGroup);
  const sum = h('span', { class: 'muted', id: 'variant-sum' });
  const variants = h('div', { id: 'flag-variants' });
  const payloads = h('div', { id: 'flag-payloads' });
  const payloadBoxes = new Map();
  const syncPayloads = () => {
    const keys = [...variants.children].map((r) => r.querySelector('input[name=vkey]').value.trim()).filter(Boolean);
    const want = keys.length ? keys : ['true'];
    for (const k of [...payloadBoxes.keys()]) if (!want.includes(k)) payloadBoxes.delete(k);
    for (const k of want) {
      if (!payloadBoxes.has(k)) {
        payloadBoxes.set(k, h('textarea', { name: 'payload', rows: '2', placeholder: '{"color": "blue"}', dataset: { key: k } }, payloadText(f?.filters?.payloads?.[k])));
      }
    }
    replace(payloads, want.map((k) => h('label', 'Payload for ' + (k === 'true' ? 'everyone who gets the flag' : 'variant ' + k) + ' (JSON, optional)', payloadBoxes.get(k))));
    const total = [...variants.children].reduce((s, r) => s + Number(r.querySelector('input[name=vpct]').value || 0), 0);
    sum.textContent = keys.length ? 'Variants add up to ' + total + '% (must be 100%).' : 'No variants: the flag is on or off.';
    sum.className = keys.length && total !== 100 ? 'error' : 'muted';
  };
  (f?.filters?.multivariate?.variants || []).forEach((v) => variants.appendChild(variantRow(v, syncPayloads)));
  syncPayloads();
  const err = h('div', { id: 'flag-error' });
  const form = h('form', { class: 'form', id: 'flag-form' },
    h('div', { class: 'form-row' },
      h('label', 'Key', h('input', { name: 'key', value: f?.key || '', required: true, placeholder: 'new-checkout', pattern: '[A-Za-z0-9_\\-]+', autocomplete: 'off' })),
      h('label', 'Name', h('input', { name: 'name', value: f?.name || '', placeholder: 'New checkout' })),
      h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'active', checked: f ? !!f.active : true }), ' Active')),
    h('h3', 'Who gets it'), h('p', { class: 'muted' }, 'Groups are tried in order; the first that matches decides.'), groups,
    h('div', h('button', { type: 'button', class: 'btn small', onclick: () => addGroup({ properties: [], rollout_percentage: 100 }) }, '+ Group')),
    h('h3', 'Variants'), variants,
    h('div', h('button', { type: 'button', class: 'btn small', id: 'add-variant', onclick: () => { variants.appendChild(variantRow({ key: '', rollout_percentage: 0 }, syncPayloads)); syncPayloads(); } }, '+ Variant'), ' ', sum),
    h('h3', 'Payloads'), payloads,
    err,
    h('div', { class: 'form-row' }, h('button', { type: 'submit', class: 'btn primary' }, f ? 'Save flag' : 'Create flag'),
      onCancel ? h('button', { type: 'button', class: 'btn', onclick: onCancel }, 'Cancel') : null));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const vs = [...variants.children].map((r) => ({ key: r.querySelector('input[name=vkey]').value.trim(), rollout_percentage: Number(r.querySelector('input[name=vpct]').value || 0) }));
    if (vs.length && vs.reduce((s, v) => s + v.rollout_percentage, 0) !== 100) {
      replace(err, h('div', { class: 'error' }, 'The variants must add up to 100%.'));
      return;
    }
    const pl = {};
    for (const [k, box] of payloadBoxes) {
      const t = box.value.trim();
      if (!t) continue;
      try {
        pl[k] = JSON.parse(t);
      } catch (x) {
        replace(err, h('div', { class: 'error' }, 'The payload for ' + k + ' is not valid JSON: ' + x.message));
        return;
      }
    }
    const body = {
      key: form.querySelector('input[name=key]').value.trim(),
      name: form.querySelector('input[name=name]').value.trim(),
      active: form.querySelector('input[name=active]').checked,
      filters: {
        groups: [...groups.children].map((g) => ({
          properties: [...g.querySelectorAll('.condition')].map(readCondition),
          rollout_percentage: Number(g.querySelector('input[name=rollout]').value),
        })),
        multivariate: vs.length ? { variants: vs } : null,
        payloads: pl,
      },
    };
    try {
      await onSave(body);
    } catch (x) {
      replace(err, errorBox(x));
    }
  });
  return form;
}

function summary(f) {
  const gs = f.filters?.groups || [];
  const parts = gs.map((g) => {
    const n = (g.properties || []).length;
    return (g.rollout_percentage ?? 100) + '% of ' + (n ? n + ' condition' + (n > 1 ? 's' : '') : 'everyone');
  });
  const vs = f.filters?.multivariate?.variants || [];
  if (vs.length) parts.push('variants ' + vs.map((v) => v.key + ' ' + v.rollout_percentage + '%').join(', '));
  return parts.join('; ') || 'no groups: off for everyone';
}

async function flagPage(main, ctx, id) {
  const site = currentSite(ctx.query);
  const q = encodeURIComponent(site);
  const f = await get('flags/' + encodeURIComponent(id), { site }, ctx.signal);
  ctx.setTitle('Flag ' + f.key);
  const cohorts = (await get('cohorts', { site }, ctx.signal)).results || [];
  const chart = h('div', { class: 'chart', id: 'flag-calls-chart' });
  const calls = h('section', { class: 'card', id: 'flag-calls' }, h('div', { class: 'card-head' }, h('h2', 'Calls per variant')), spinner());
  const edit = h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', 'Definition')),
    flagForm(f, cohorts, async (body) => { await send('PUT', 'flags/' + encodeURIComponent(f.id) + '?site=' + q, body); navigate('/flags/' + f.id, sharedQuery(ctx.query), true); }));
  main.append(h('div', { class: 'page-head' }, h('div', h('h1', text(f.name || f.key)), h('p', { class: 'muted mono' }, text(f.key), f.active ? '' : ' (inactive)'))), calls, edit);
  try {
    const r = range(ctx.query);
    const params = reportParams(ctx.query, r, { interval: r.interval });
    const tr = await get('flags/' + encodeURIComponent(f.id) + '/calls', params, ctx.signal);
    const series = (tr.series || []).map((s) => ({ label: s.breakdown_value == null ? '(none)' : String(s.breakdown_value), data: s.data }));
    if (!series.length) {
      replace(calls, h('div', { class: 'card-head' }, h('h2', 'Calls per variant')), empty('No $feature_flag_called events for this flag in the period.'));
      return;
    }
    replace(calls, h('div', { class: 'card-head' }, h('h2', 'Calls per variant')), chart, legend(series));
    const c = lineChart(chart, { labels: tr.labels, interval: r.interval, series });
    ctx.onCleanup(() => c.destroy());
  } catch (x) {
    replace(calls, errorBox(x));
  }
}

export default async function flags(main, ctx) {
  if (ctx.parts[0]) return flagPage(main, ctx, ctx.parts[0]);
  ctx.setTitle('Feature flags');
  const site = currentSite(ctx.query);
  const shared = sharedQuery(ctx.query);
  const q = encodeURIComponent(site);
  const list = h('section', { class: 'card', id: 'flags-list' }, spinner());
  const formBox = h('div');
  const reload = () => navigate('/flags', shared, true);
  const cohorts = (await get('cohorts', { site }, ctx.signal).catch(() => ({}))).results || [];
  const newBtn = h('button', { type: 'button', class: 'btn primary', id: 'new-flag', onclick: () => {
    newBtn.hidden = true;
    replace(formBox, h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', 'New flag')),
      flagForm(null, cohorts, async (body) => { await send('POST', 'flags?site=' + q, body); reload(); }, () => { replace(formBox); newBtn.hidden = false; })));
  } }, '+ New flag');
  main.append(h('div', { class: 'page-head' }, h('div', h('h1', 'Feature flags'),
    h('p', { class: 'muted' }, 'Answered by this site at /flags/ for posthog-js, posthog-node, posthog-go and the others, bucketed as PostHog does.')), newBtn), formBox, list);
  try {
    const rows = (await get('flags', { site }, ctx.signal)).results || [];
    if (!rows.length) {
      replace(list, empty('No flags yet.'));
      return;
    }
    replace(list, h('div', { class: 'table-wrap' }, h('table', { class: 'data', id: 'flags-table' },
      h('thead', h('tr', h('th', 'Flag'), h('th', 'Rollout'), h('th', 'Status'), h('th', ''))),
      h('tbody', rows.map((f) => h('tr', { dataset: { id: String(f.id), key: f.key } },
        h('td', h('a', { href: '#', onclick: (e) => { e.preventDefault(); navigate('/flags/' + f.id, shared); } }, h('strong', text(f.name || f.key))), h('div', { class: 'muted mono' }, text(f.key))),
        h('td', summary(f)),
        h('td', f.active ? 'Active' : 'Inactive'),
        h('td', { class: 'num' }, h('button', { type: 'button', class: 'btn small ghost delete-flag', onclick: async () => {
          try {
            await send('DELETE', 'flags/' + encodeURIComponent(f.id) + '?site=' + q);
            reload();
          } catch (x) {
            replace(list, errorBox(x));
          }
        } }, 'Delete'))))))));
  } catch (x) {
    replace(list, errorBox(x));
  }
}

