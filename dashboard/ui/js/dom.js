// DOM helpers. Everything that reaches the page goes through text nodes or
// attributes set one by one: no HTML string is ever parsed, so a value that
// came from a visitor can only ever show up as text.

const SVG_NS = 'http://www.w3.org/2000/svg';

function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (k === 'value' || k === 'checked' || k === 'selected' || k === 'disabled') {
      el[k] = v;
    } else if (k === 'style') {
      // Inline style attributes are refused by the CSP; CSSOM is not.
      Object.assign(el.style, v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// h('div', {class: 'x', onclick: fn}, 'text', child, [more]) builds an element.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs instanceof Node || typeof attrs === 'string' || Array.isArray(attrs)) {
    children.unshift(attrs);
    attrs = null;
  }
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

// s() is h() for SVG elements.
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  if (attrs instanceof Node || typeof attrs === 'string' || Array.isArray(attrs)) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

// --- formatting -----------------------------------------------------------

const nf = new Intl.NumberFormat();
const compact = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });

export function num(n) {
  if (n == null || Number.isNaN(n)) return '–';
  return Math.abs(n) >= 10000 ? compact.format(n) : nf.format(Math.round(n * 100) / 100);
}

export function pct(f, digits = 0) {
  if (f == null || !Number.isFinite(f)) return '–';
  return (f * 100).toFixed(digits) + '%';
}

export function duration(sec) {
  if (sec == null || !Number.isFinite(sec)) return '–';
  sec = Math.round(sec);
  if (sec < 60) return sec + 's';
  const m = Math.floor(sec / 60), r = sec % 60;
  if (m < 60) return m + 'm ' + String(r).padStart(2, '0') + 's';
  return Math.floor(m / 60) + 'h ' + String(m % 60).padStart(2, '0') + 'm';
}

const dtf = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const df = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

export function dateTime(s) {
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? String(s) : dtf.format(d);
}

export function date(d) {
  return df.format(d);
}

export function ago(s) {
  const sec = Math.round((Date.now() - new Date(s).getTime()) / 1000);
  if (!Number.isFinite(sec)) return '';
  if (sec < 5) return 'just now';
  if (sec < 60) return sec + 's ago';
  if (sec < 3600) return Math.floor(sec / 60) + 'm ago';
  if (sec < 86400) return Math.floor(sec / 3600) + 'h ago';
  return Math.floor(sec / 86400) + 'd ago';
}

// text turns any property value into display text.
export function text(v) {
  if (v == null) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

// flag returns the flag emoji of a two-letter country code.
export function flag(cc) {
  if (typeof cc !== 'string' || !/^[A-Za-z]{2}$/.test(cc)) return '🏳';
  const base = 0x1f1e6 - 65;
  const up = cc.toUpperCase();
  return String.fromCodePoint(base + up.charCodeAt(0), base + up.charCodeAt(1));
}

let regionNames;
export function countryName(cc) {
  try {
    regionNames ||= new Intl.DisplayNames(undefined, { type: 'region' });
    return regionNames.of(String(cc).toUpperCase()) || cc;
  } catch {
    return cc;
  }
}

// debounce delays fn until calls stop for ms.
export function debounce(fn, ms) {
  let t;
  return (...a) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...a), ms);
  };
}

// errorBox shows an error as text.
export function errorBox(err) {
  return h('div', { class: 'error', role: 'alert' }, 'Could not load: ', err && err.message ? err.message : String(err));
}

export function empty(msg) {
  return h('div', { class: 'empty' }, msg || 'No data for this period.');
}

// spinner is a placeholder shown while a request runs.
export function spinner() {
  return h('div', { class: 'spinner', 'aria-label': 'Loading' });
}
