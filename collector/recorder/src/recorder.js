/*
 * Firstparty's session recording chunk, served as {api}/r.js and loaded by
 * the snippet when its tag says data-record="on". It runs rrweb's recorder
 * and sends what it records to {api}/s/ as PostHog `$snapshot` events:
 *
 *   {"api_key", "batch": [{"event": "$snapshot", "properties": {
 *     "$snapshot_data": [rrweb events], "$session_id", "$window_id",
 *     "distinct_id"}}]}
 *
 * Privacy (SPEC §5.1, docs/security-recording.md): the value of every
 * input type (hidden and file included), textarea and select is masked, in
 * the snapshot, in attribute changes and as one types; a select's value
 * becomes a fixed '***' (its length would tell the option). Checkbox and
 * radio states are not recorded (always unchecked). Text inside
 * [data-fp-mask], textareas and contenteditable elements is masked, in the
 * snapshot and in the mutations typing makes. .ph-no-capture /
 * [data-fp-no-capture] elements are not recorded at all (an empty box of
 * the same size replays). The server masks the same again
 * (collector/recording_mask.go), whatever recorder sent the data.
 *
 * The ids come from the snippet through its internal hook
 * window.firstparty._r(active): {s session id, w window id, d distinct id,
 * o opted out, a api, t token, c the tag's data attributes}. With
 * active, the hook counts as activity (it may start a new session after 30
 * minutes idle); only the visitor's own input is activity, not the page's
 * mutations. A new session gets a full snapshot.
 *
 * Sampling: data-record-sample (0 < rate <= 1) records that fraction of
 * sessions, decided from the session id, so every page of a session agrees.
 *
 * Batches go out every few seconds, at once when large, and with
 * sendBeacon (or keepalive fetch) when the page is hidden. Nothing here
 * throws into the page.
 */
import { record } from '@rrweb/record';

(function (w, d, nav) {
  var fp = w.firstparty,
    hook = fp && fp._r;
  if (!hook || w.__fpRecording) return;
  w.__fpRecording = 1;

  var FLUSH_MS = 5e3, // send at least this often while recording
    MAX_PENDING = 3e5, // bytes of JSON that trigger a send at once
    BEACON_MAX = 6e4; // what sendBeacon and keepalive take

  var ids = hook(true) || {};
  var api = ids.a || '';
  var rate = parseFloat((ids.c || {}).recordSample);
  if (!(rate > 0 && rate <= 1)) rate = 1;

  // sampled decides from the session id alone (FNV-1a), so that every page
  // and tab of a session decides alike.
  var sampled = function (sid) {
    if (rate >= 1) return true;
    var h = 2166136261;
    for (var i = 0; i < sid.length; i++) {
      h ^= sid.charCodeAt(i);
      h = Math.imul(h, 16777619) >>> 0;
    }
    return h / 4294967296 < rate;
  };

  var pending = [], // rrweb events of the current session not yet sent
    size = 0,
    timer = 0,
    stop = null,
    backoff = 0,
    awaitFull = 0;

  var body = function (evs, cur) {
    return JSON.stringify({
      api_key: ids.t || '',
      batch: [
        {
          event: '$snapshot',
          properties: {
            $snapshot_data: evs,
            $session_id: cur.s,
            $window_id: cur.w,
            distinct_id: cur.d,
            $lib: 'firstparty'
          },
          timestamp: new Date().toISOString()
        }
      ]
    });
  };

  var take = function () {
    var evs = pending;
    pending = [];
    size = 0;
    return evs;
  };

  // send posts a batch; gzip (the server knows it by its magic bytes) when
  // the browser can, since rrweb's JSON shrinks about tenfold.
  var send = function (b) {
    var post = function (data) {
      return fetch(api + '/s/', { method: 'POST', body: data, keepalive: data.length < BEACON_MAX || data.size < BEACON_MAX });
    };
    var p;
    if (w.CompressionStream && w.Response) {
      p = new Response(new Blob([b]).stream().pipeThrough(new CompressionStream('gzip'))).blob().then(post);
    } else p = post(b);
    return p.then(function (r) {
      if (r.status >= 500 || r.status == 429) throw 0;
    });
  };

  var flush = function () {
    clearTimeout(timer);
    timer = 0;
    if (!pending.length) return;
    var cur = ids;
    if (cur.o) {
      take();
      return;
    }
    var evs = take();
    send(body(evs, cur)).then(
      function () {
        backoff = 0;
      },
      function () {
        // Server away: put the events back (bounded) and try again later.
        if (cur.s == ids.s && pending.length + evs.length < 5e3) {
          pending = evs.concat(pending);
          size += JSON.stringify(evs).length;
        }
        backoff = Math.min(backoff ? backoff * 2 : 2e3, 6e4);
        schedule(backoff);
      }
    );
  };
  var schedule = function (ms) {
    if (!timer) timer = setTimeout(flush, ms);
  };

  // beacon sends what is pending as the page goes away: sendBeacon when it
  // fits, else keepalive fetch; halves a batch too big for either.
  var beacon = function (evs) {
    if (!evs.length || ids.o) return;
    var b = body(evs, ids),
      half = evs.length >> 1;
    if (b.length > BEACON_MAX && half) {
      beacon(evs.slice(0, half));
      beacon(evs.slice(half));
      return;
    }
    try {
      if (nav.sendBeacon && nav.sendBeacon(api + '/s/', b)) return;
    } catch (e) {}
    try {
      fetch(api + '/s/', { method: 'POST', body: b, keepalive: b.length < BEACON_MAX }).catch(function () {});
    } catch (e) {}
  };

  // Incremental sources that are the visitor's own doing: mouse move,
  // mouse interaction, scroll, viewport resize, input, touch move, media
  // interaction, drag.
  var ACTIVE = { 1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 12: 1 };

  // Every input type rrweb knows, hidden and file (a path) included; the
  // ones not here (checkbox, radio, submit, button, reset, image) have a
  // value the page wrote, and their checked state is dropped by unchecked.
  var MASK_INPUTS = {};
  'color date datetime-local email month number range search tel text time url week password hidden file textarea select'.split(' ').forEach(function (k) {
    MASK_INPUTS[k] = true;
  });

  // unchecked drops the checked state of a serialized node tree (a full
  // snapshot's or an added node's): which box a visitor ticked is input too.
  var unchecked = function (n) {
    if (!n) return;
    if (n.attributes) delete n.attributes.checked;
    var c = n.childNodes || [];
    for (var i = 0; i < c.length; i++) unchecked(c[i]);
  };
  var uncheck = function (ev) {
    var data = ev.data || {};
    if (ev.type == 2) unchecked(data.node);
    else if (ev.type == 3 && data.source == 5) data.isChecked = false;
    else if (ev.type == 3 && data.source == 0)
      (data.adds || []).forEach(function (a) {
        unchecked(a.node);
      });
  };

  var emit = function (ev) {
    // A full snapshot (type 2) or the visitor acting asks the snippet for
    // the ids, which may start a new session.
    if (ev.type == 2 || (ev.type == 3 && ev.data && ACTIVE[ev.data.source])) {
      var now = hook(true) || ids;
      if (now.s != ids.s) {
        // A new session: what is pending belongs to the old one.
        flush();
        ids = now;
        if (!sampled(ids.s || '')) {
          halt();
          w.__fpRecording = 'out';
          return;
        }
        // Until the new full snapshot, events are dropped (this one too):
        // a replay starts at a full snapshot.
        awaitFull = 1;
        setTimeout(function () {
          try {
            record.takeFullSnapshot(true);
          } catch (e) {}
        }, 0);
        return;
      }
      ids = now;
    }
    if (ev.type == 2) awaitFull = 0;
    else if (awaitFull && ev.type != 4) return;
    pending.push(ev);
    size += ev.type == 2 ? 1e5 : 200; // a rough guess beats stringifying each event
    if (size > MAX_PENDING || ev.type == 2) {
      // Soon: a full snapshot is what a replay needs first.
      clearTimeout(timer);
      timer = 0;
      schedule(ev.type == 2 ? 500 : 0);
    } else schedule(FLUSH_MS);
  };

  var halt = function () {
    try {
      if (stop) stop();
    } catch (e) {}
    stop = null;
    take();
  };

  var hidden = function () {
    beacon(take());
  };

  try {
    // window.__fpRecording: 1 loaded, 'out' not recording (sampled out or
    // opted out), 'on' recording.
    if (!ids.s || ids.o || !sampled(ids.s)) {
      w.__fpRecording = 'out';
      return;
    }
    stop = record({
      emit: function (ev) {
        try {
          uncheck(ev);
          emit(ev);
        } catch (e) {}
      },
      maskAllInputs: false,
      maskInputOptions: MASK_INPUTS,
      maskInputFn: function (text, el) {
        return el && el.tagName == 'SELECT' ? '***' : '*'.repeat(text.length);
      },
      // rrweb masks a text node when its parent has an ancestor-or-self
      // matching this (closest); no case-insensitive [attr=v i], which an
      // old browser would reject, and then nothing would be masked.
      maskTextSelector: '[data-fp-mask],textarea,[contenteditable]:not([contenteditable=false])',
      blockSelector: '.ph-no-capture,[data-fp-no-capture]',
      blockClass: 'ph-no-capture',
      inlineStylesheet: true,
      recordCanvas: false,
      collectFonts: false,
      slimDOMOptions: { script: true, comment: true, headFavicon: true, headWhitespace: true, headMetaSocial: true, headMetaRobots: true, headMetaHttpEquiv: true, headMetaVerification: true, headMetaAuthorship: true },
      sampling: { mousemove: 50, scroll: 150, media: 800, input: 'last' },
      checkoutEveryNms: 0
    });
    w.__fpRecording = stop ? 'on' : 'out';
    var opt = { capture: true, passive: true };
    w.addEventListener('pagehide', hidden, opt);
    d.addEventListener(
      'visibilitychange',
      function () {
        if (d.visibilityState == 'hidden') hidden();
      },
      opt
    );
  } catch (e) {}
})(window, document, navigator);
