// The dashboard's single-page app: routing by path under the prefix, with
// every view's state in the query string, so any view can be shared by URL.

import { h, replace, errorBox } from './dom.js';
import { get, prefix, route, query, navigate, sharedQuery, currentSite, defaultSite } from './api.js';

const pages = {
  overview: () => import('./pages/overview.js'),
  insights: () => import('./pages/insights.js'),
  persons: () => import('./pages/persons.js'),
  events: () => import('./pages/events.js'),
  live: () => import('./pages/live.js'),
  cohorts: () => import('./pages/cohorts.js'),
  actions: () => import('./pages/actions.js'),
  goals: () => import('./pages/goals.js'),
  settings: () => import('./pages/settings.js'),
  flags: () => import('./pages/flags.js'),
  experiments: () => import('./pages/experiments.js'),
  recordings: () => import('./pages/replay.js'),
  heatmap: () => import('./pages/heatmap.js'),
  dashboards: () => import('./pages/dashboards.js'), // saved insights and dashboards
};

function pageOf(path) {
  const first = path.split('/')[1] || '';
  if (first === '') return 'overview';
  return pages[first] ? first : null;
}

let current = null; // {controller, cleanups}

async function render() {
  if (current) {
    current.controller.abort();
    for (const fn of current.cleanups) {
      try { fn(); } catch (e) { console.warn(e); }
    }
  }
  const controller = new AbortController();
  const cleanups = [];
  current = { controller, cleanups };
  const path = route();
  const name = pageOf(path);
  highlightNav(name);
  showActiveSection();
  syncSiteSelect();
  const main = document.getElementById('main');
  main.dataset.page = name || 'none';
  if (!name) {
    replace(main, h('section', { class: 'card empty-page' }, h('h1', 'Not found'), h('p', 'There is no page at this address. '),
      h('a', { href: prefix + '/', 'data-nav': '' }, 'Go to the overview')));
    return;
  }
  const ctx = {
    path,
    parts: path.split('/').slice(2).map(decodeURIComponent),
    query: query(),
    signal: controller.signal,
    onCleanup: (fn) => cleanups.push(fn),
    setTitle: (t) => { document.title = t + ' · ' + currentSite() + ' · Firstparty'; },
  };
  try {
    const mod = await pages[name]();
    if (controller.signal.aborted) return;
    replace(main);
    await mod.default(main, ctx);
  } catch (err) {
    if (err.name === 'AbortError' || controller.signal.aborted) return;
    console.warn(err);
    replace(main, errorBox(err));
  }
}

// --- top bar on narrow screens ---------------------------------------------

// navHint shows, when the sections do not all fit, a fade and a "›" button
// on the side where more of them are hidden.
function navHint() {
  const nav = document.getElementById('nav');
  const wrap = document.getElementById('navwrap');
  const btn = document.getElementById('nav-more');
  if (!nav || !wrap || !btn) return;
  const more = nav.scrollLeft + nav.clientWidth < nav.scrollWidth - 2;
  wrap.classList.toggle('more-right', more);
  wrap.classList.toggle('more-left', nav.scrollLeft > 2);
  btn.hidden = !more;
}

function startNavHint() {
  const nav = document.getElementById('nav');
  const btn = document.getElementById('nav-more');
  if (!nav || !btn) return;
  nav.addEventListener('scroll', navHint, { passive: true });
  window.addEventListener('resize', navHint);
  btn.addEventListener('click', () => nav.scrollBy({ left: Math.max(80, nav.clientWidth * 0.7), behavior: 'smooth' }));
  navHint();
}

// showActiveSection scrolls the sections so that the current one is seen.
function showActiveSection() {
  const nav = document.getElementById('nav');
  const a = nav && nav.querySelector('a.active');
  if (!a || nav.scrollWidth <= nav.clientWidth) return navHint();
  if (a.offsetLeft < nav.scrollLeft || a.offsetLeft + a.offsetWidth > nav.scrollLeft + nav.clientWidth) {
    nav.scrollLeft = Math.max(0, a.offsetLeft - 24);
  }
  navHint();
}

function highlightNav(name) {
  const shared = sharedQuery().toString();
  for (const a of document.querySelectorAll('#nav a')) {
    const on = a.dataset.page === name;
    a.classList.toggle('active', on);
    if (on) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
    // Keep the site, period and filters when moving between sections.
    const base = a.getAttribute('href').split('?')[0];
    a.setAttribute('href', shared ? base + '?' + shared : base);
  }
}

// --- site switcher -------------------------------------------------------

let sites = [];

async function loadSites() {
  try {
    const res = await get('sites');
    sites = res.sites || [];
  } catch (err) {
    console.warn('sites:', err.message);
  }
  syncSiteSelect();
}

function syncSiteSelect() {
  const sel = document.getElementById('site');
  const cur = currentSite();
  const list = sites.includes(cur) ? sites : [cur, ...sites];
  if (sel.options.length !== list.length || [...sel.options].some((o, i) => o.value !== list[i])) {
    replace(sel, list.map((s) => h('option', { value: s }, s)));
  }
  sel.value = cur;
}

function onSiteChange(e) {
  const q = query();
  if (e.target.value === defaultSite) q.delete('site');
  else q.set('site', e.target.value);
  // Another site has other persons, cohorts and ids: go to its overview
  // unless the page is about the site as a whole.
  const page = pageOf(route());
  const keep = ['overview', 'insights', 'events', 'live', 'settings'].includes(page);
  navigate(keep ? route() : '/' + page, keep ? q : sharedQuery(q));
}

// --- theme ---------------------------------------------------------------

function effectiveTheme() {
  const t = document.documentElement.dataset.theme;
  if (t) return t;
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

function syncThemeButton() {
  const btn = document.getElementById('theme-toggle');
  const dark = effectiveTheme() === 'dark';
  btn.textContent = dark ? '☀' : '☾';
  btn.setAttribute('aria-label', dark ? 'Switch to the light theme' : 'Switch to the dark theme');
  btn.title = btn.getAttribute('aria-label');
}

function toggleTheme() {
  const next = effectiveTheme() === 'dark' ? 'light' : 'dark';
  document.documentElement.dataset.theme = next;
  try { localStorage.setItem('fp-theme', next); } catch { /* private mode */ }
  syncThemeButton();
  window.dispatchEvent(new Event('fp:theme'));
}

// --- links ---------------------------------------------------------------

function onClick(e) {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a');
  if (!a || a.hasAttribute('download') || a.target) return;
  const u = new URL(a.href, location.href);
  if (u.origin !== location.origin) return;
  if (!(u.pathname === prefix || u.pathname.startsWith(prefix + '/')) || u.pathname.startsWith(prefix + '/api/')) return;
  e.preventDefault();
  if (u.pathname + u.search !== location.pathname + location.search) {
    history.pushState(null, '', u.pathname + u.search);
    render();
    window.scrollTo(0, 0);
  }
}

function start() {
  document.addEventListener('click', onClick);
  window.addEventListener('popstate', render);
  window.addEventListener('fp:navigate', render);
  window.addEventListener('fp:theme', render);
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
    syncThemeButton();
    if (!document.documentElement.dataset.theme) render();
  });
  document.getElementById('site').addEventListener('change', onSiteChange);
  document.getElementById('theme-toggle').addEventListener('click', toggleTheme);
  syncThemeButton();
  startNavHint();
  loadSites();
  render();
}

start();
