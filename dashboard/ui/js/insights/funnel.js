// Funnels: the persons who did each step in order within a window, as bars
// with conversion and drop-off per step.

import { h, replace, num, pct, errorBox, empty, spinner, text } from '../dom.js';
import { get, url, reportParams, setQuery, sharedQuery } from '../api.js';
import { eventLabel, eventNames, stepInput } from '../components.js';

const units = [['d', 'days'], ['h', 'hours'], ['m', 'minutes']];

function parseWindow(s) {
  const m = /^(\d+)([dhm])$/.exec(s || '');
  return m ? { n: +m[1], unit: m[2] } : { n: 14, unit: 'd' };
}

export default async function funnel({ editor, result, ctx }) {
  const q = ctx.query;
  const steps = q.getAll('step').filter(Boolean);
  const win = parseWindow(q.get('window'));
  // Actions are shown by their name: learn the names first.
  await eventNames().catch(() => null);
  if (ctx.signal.aborted) return;

  const list = h('ol', { class: 'steps-list' });
  const form = h('form', { class: 'query', id: 'funnel-form' });
  function apply() {
    const st = [...list.children].map((r) => r.readStep()).filter(Boolean);
    const w = Math.max(1, parseInt(form.n.value, 10) || 14) + form.unit.value;
    setQuery({ step: st.length ? st : null, window: w === '14d' ? null : w, drill: null }, true);
  }
  function row(ev, i) {
    const step = stepInput({ value: ev, name: 'step', label: 'Step ' + (i + 1) });
    const el = h('li', { class: 'series-row' }, h('span', { class: 'step-no' }, String(i + 1)), step.nodes,
      h('button', { type: 'button', class: 'btn small ghost', 'aria-label': 'Remove step', title: 'Remove step', onclick: (e) => {
        e.currentTarget.parentElement.remove();
        apply();
      } }, '✕'));
    el.readStep = step.read;
    return el;
  }
  const shown = steps.length ? steps : ['$pageview', ''];
  shown.forEach((s, i) => list.appendChild(row(s, i)));
  if (shown.length < 2) list.appendChild(row('', 1));
  form.append(
    h('fieldset', h('legend', 'Steps, in order'), list,
      h('button', { type: 'button', class: 'btn small ghost', id: 'add-step', onclick: () => {
        list.appendChild(row('', list.children.length));
        list.lastChild.querySelector('input').focus();
      } }, '+ Add step')),
    h('fieldset', h('legend', 'Conversion window'), h('div', { class: 'series-row' },
      h('input', { name: 'n', type: 'number', min: 1, value: win.n, 'aria-label': 'Window length' }),
      h('select', { name: 'unit', 'aria-label': 'Window unit' }, units.map(([k, l]) => h('option', { value: k, selected: k === win.unit }, l))))),
  );
  form.addEventListener('change', (e) => {
    // A filter's property or operator waits for its value.
    if (e.target.dataset.pending) return void delete e.target.dataset.pending;
    apply();
  });
  form.addEventListener('submit', (e) => { e.preventDefault(); apply(); });
  replace(editor, h('div', { class: 'card-head' }, h('h2', 'Funnel')), form);

  if (steps.length < 2) {
    replace(result, h('div', { class: 'card-head' }, h('h2', 'Result')), empty('Choose at least two steps.'));
    return;
  }
  let res;
  const params = reportParams(q, undefined, { step: steps, window: win.n + win.unit });
  try {
    res = await get('funnel', params, ctx.signal);
  } catch (err) {
    if (!ctx.signal.aborted) replace(result, errorBox(err));
    return;
  }
  const rows = res.steps || [];
  const first = rows[0]?.count || 0;
  const last = rows[rows.length - 1]?.count || 0;
  const summary = h('div', { class: 'summary' },
    h('div', h('span', { class: 'muted' }, 'Total conversion'), h('strong', { id: 'funnel-conversion' }, first ? pct(last / first, 1) : '–')),
    h('div', h('span', { class: 'muted' }, 'Entered'), h('strong', num(first))),
    h('div', h('span', { class: 'muted' }, 'Completed'), h('strong', num(last))));
  const bars = h('div', { class: 'funnel', id: 'funnel-bars' });
  rows.forEach((s, i) => {
    const prev = i ? rows[i - 1].count : s.count;
    const ofFirst = first ? s.count / first : 0;
    const ofPrev = prev ? s.count / prev : 0;
    const bar = h('div', { class: 'funnel-bar' });
    bar.style.height = Math.max(0.5, ofFirst * 100) + '%';
    const dropped = h('div', { class: 'funnel-drop' });
    dropped.style.height = ((1 - ofFirst) * 100) + '%';
    const col = h('div', { class: 'funnel-col' }, dropped, bar);
    bars.appendChild(h('div', { class: 'funnel-step', dataset: { step: String(i + 1), count: String(s.count) } },
      h('div', { class: 'funnel-name' }, h('span', { class: 'step-no' }, String(i + 1)), h('span', eventLabel(s.event))),
      h('div', { class: 'funnel-count' }, h('strong', num(s.count)), ' ', s.count === 1 ? 'person' : 'persons'),
      col,
      h('div', { class: 'funnel-meta' },
        h('span', { class: 'conv' }, pct(ofFirst, 1), ' of first step'),
        i ? h('span', pct(ofPrev, 1), ' from previous') : h('span', { class: 'muted' }, 'Entered the funnel'),
        i ? h('span', { class: 'drop' }, '↓ ', num(prev - s.count), ' dropped (', pct(prev ? 1 - ofPrev : 0, 1), ')') : h('span', ' ')),
      h('div', { class: 'funnel-drill' },
        h('button', { type: 'button', class: ['btn small ghost drill-reached', q.get('drill') === String(i + 1) && 'active'], 'aria-pressed': String(q.get('drill') === String(i + 1)), disabled: !s.count, onclick: () => setQuery({ drill: String(i + 1) }, true) }, 'Persons', h('span', { class: 'sr-only' }, ' who reached step ' + (i + 1))),
        i < rows.length - 1 && s.count > rows[i + 1].count
          ? h('button', { type: 'button', class: ['btn small ghost drill-dropped', q.get('drill') === (i + 1) + 'd' && 'active'], 'aria-pressed': String(q.get('drill') === (i + 1) + 'd'), onclick: () => setQuery({ drill: (i + 1) + 'd' }, true) }, 'Dropped off')
          : null)));
  });
  const note = h('p', { class: 'muted' }, 'Persons who did each step after the previous one, within ', String(win.n), ' ', units.find(([k]) => k === win.unit)[1], ' of the first step.');
  replace(result, h('div', { class: 'card-head' }, h('h2', 'Conversion')), first ? [summary, bars, note] : empty('Nobody did the first step in this period.'));
  const drill = /^(\d+)(d?)$/.exec(q.get('drill') || '');
  if (first && drill && +drill[1] >= 1 && +drill[1] <= rows.length) {
    result.after(drillDown(ctx, params, rows, +drill[1], drill[2] === 'd'));
  }
}

// personName is how a person is shown: their email or name when they
// have one, else an id they were seen with.
function personName(p) {
  const pr = p.properties || {};
  for (const k of ['email', '$email', 'name', '$name']) if (typeof pr[k] === 'string' && pr[k]) return pr[k];
  const ids = p.distinct_ids || [];
  return ids[ids.length - 1] || p.id;
}

// drillDown is the card listing the persons who reached step k (or who
// reached it and dropped off before the next), each with a link to their
// page and their recordings.
function drillDown(ctx, params, rows, k, dropped) {
  const step = rows[k - 1];
  const title = dropped
    ? ['Dropped off after step ', String(k), ': ', h('strong', eventLabel(step.event))]
    : ['Reached step ', String(k), ': ', h('strong', eventLabel(step.event))];
  const body = h('div', { class: 'funnel-persons', id: 'funnel-persons' }, spinner());
  const card = h('section', { class: 'card', id: 'funnel-drill', dataset: { step: String(k), dropped: String(dropped) } },
    h('div', { class: 'card-head' }, h('h2', title),
      h('button', { type: 'button', class: 'btn small ghost', 'aria-label': 'Close', onclick: () => setQuery({ drill: null }, true) }, '✕')),
    body);
  ctx.onCleanup(() => card.remove());
  const p = new URLSearchParams(params);
  p.set('funnel_step', String(k));
  if (dropped) p.set('dropped', 'true');
  p.set('limit', '200');
  get('funnel/persons', p, ctx.signal).then((res) => {
    const list = res.results || [];
    if (!list.length) {
      replace(body, empty('Nobody.'));
      return;
    }
    const shared = sharedQuery(ctx.query);
    replace(body,
      h('p', { class: 'muted' }, list.length < res.total ? `The ${num(list.length)} most recent of ${num(res.total)} persons.` : `${num(res.total)} ${res.total === 1 ? 'person' : 'persons'}.`),
      list.map((person) => {
        const rq = new URLSearchParams(shared);
        rq.set('distinct_id', (person.distinct_ids || [])[0] || person.id);
        return h('div', { class: 'person-row', dataset: { person: person.id } },
          h('a', { class: 'person-link', href: url('/persons/' + encodeURIComponent(person.id), shared) }, text(personName(person))),
          h('a', { class: 'recordings-link', href: url('/recordings', rq) }, 'Recordings'));
      }));
  }, (err) => { if (!ctx.signal.aborted) replace(body, errorBox(err)); });
  return card;
}
