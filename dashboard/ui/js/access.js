// The Settings page's access card: API tokens (read or write, shown once)
// and share links (a read-only overview, optionally behind a password),
// each revocable. Names typed by a user are shown as text.

import { h, replace, errorBox, text } from './dom.js';
import { get, send, prefix } from './api.js';

export function accessCard(site, signal) {
  const card = h('section', { class: 'card', id: 'access-card' });
  const tokens = h('div', { id: 'token-list' });
  const shares = h('div', { id: 'share-list' });
  const fresh = h('div', { id: 'access-new', 'aria-live': 'polite' });
  const q = 'site=' + encodeURIComponent(site);

  async function load() {
    try {
      const [t, s] = await Promise.all([get('tokens', { site }, signal), get('shares', { site }, signal)]);
      replace(tokens, list(t.results, (x) => [text(x.name) || '(unnamed)', ' · ', x.access === 'write' ? 'read-write' : 'read-only', ' · ', x.created_at],
        (x) => send('DELETE', 'tokens/' + encodeURIComponent(x.id) + '?' + q), 'No API tokens.'));
      replace(shares, list(s.results, (x) => [text(x.name) || '(unnamed)', x.password ? ' · password' : '', ' · ', x.created_at],
        (x) => send('DELETE', 'shares/' + encodeURIComponent(x.id) + '?' + q), 'No share links.'));
    } catch (err) {
      replace(tokens, errorBox(err));
    }
  }

  function list(items, label, revoke, none) {
    if (!items || !items.length) return h('p', { class: 'muted' }, none);
    return h('ul', { class: 'access-list' }, items.map((x) => h('li', null, label(x), ' ',
      h('button', { type: 'button', class: 'btn small ghost', onclick: async () => { await revoke(x); fresh.textContent = ''; load(); } }, 'Revoke'))));
  }

  const tokName = h('input', { type: 'text', id: 'token-name', placeholder: 'Name, e.g. ci', maxlength: '200' });
  const tokAccess = h('select', { id: 'token-access' }, h('option', { value: 'read' }, 'read-only'), h('option', { value: 'write' }, 'read-write'));
  const shareName = h('input', { type: 'text', id: 'share-name', placeholder: 'Name', maxlength: '200' });
  const sharePass = h('input', { type: 'password', id: 'share-password', placeholder: 'Password (optional)', maxlength: '72', autocomplete: 'new-password' });

  const newToken = async (e) => {
    e.preventDefault();
    try {
      const t = await send('POST', 'tokens?' + q, { name: tokName.value, access: tokAccess.value });
      replace(fresh, h('p', null, 'Your token (shown only now): ', h('code', { id: 'new-token' }, t.token)),
        h('p', { class: 'muted' }, 'Use it as ', h('code', 'Authorization: Bearer …'), ' on ', h('code', location.origin + prefix + '/api/…'), '.'));
      tokName.value = '';
      load();
    } catch (err) { replace(fresh, errorBox(err)); }
  };
  const newShare = async (e) => {
    e.preventDefault();
    try {
      const s = await send('POST', 'shares?' + q, { name: shareName.value, password: sharePass.value });
      const link = location.origin + s.url;
      replace(fresh, h('p', null, 'Share link: ', h('a', { href: link, id: 'new-share', target: '_blank', rel: 'noopener' }, link)));
      shareName.value = '';
      sharePass.value = '';
      load();
    } catch (err) { replace(fresh, errorBox(err)); }
  };

  replace(card, h('div', { class: 'card-head' }, h('h2', 'Access')),
    h('h3', 'API tokens'),
    h('p', { class: 'muted' }, 'For scripts: a token opens this site’s JSON API with its rights, from anywhere. It is shown once and stored hashed.'),
    tokens,
    h('form', { class: 'inline-form', onsubmit: newToken }, tokName, ' ', tokAccess, ' ', h('button', { type: 'submit', class: 'btn small' }, 'Create token')),
    h('h3', 'Share links'),
    h('p', { class: 'muted' }, 'A read-only overview of this site without login: no persons, events, recordings or exports.'),
    shares,
    h('form', { class: 'inline-form', onsubmit: newShare }, shareName, ' ', sharePass, ' ', h('button', { type: 'submit', class: 'btn small' }, 'Create share link')),
    fresh);
  load();
  return card;
}
