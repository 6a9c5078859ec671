/*
 * Firstparty's browser snippet: window.firstparty.
 *
 * Sends PostHog-format events to the site's own Firstparty endpoint:
 * $pageview (load and SPA navigation), $pageleave (time on page, scroll
 * depth), $autocapture (clicks with heatmap coordinates, submits, changes;
 * never a value, never a password field), $rageclick, and whatever the page
 * captures through the API. Settings come from the data attributes of its
 * script tag:
 *
 *   data-api          endpoint URL or path (default: the directory of src)
 *   data-token        api_key sent with every batch
 *   data-persistence  localstorage (default) | cookie | memory: ids for this
 *                     page only | none: cookieless (SPEC §8): nothing written
 *                     to or read from the browser, distinct_id is
 *                     "$posthog_cookieless" and no session or window id is
 *                     sent: the server makes the visitor and session ids; an
 *                     opt-out lasts for the page only; no recording
 *   data-respect-dnt  on (default) | off: Do Not Track / GPC browsers send nothing
 *   data-ref          the server's id of this page response: sent once, as
 *                     $pageview_ref of the page load's $pageview
 *   data-record       on: lazy-load the recording chunk {api}/r.js
 *   data-record-sample  fraction of sessions recorded (default 1), read by r.js
 *
 * Automated browsers (navigator.webdriver) send nothing and record nothing.
 *
 * Built by build.mjs (terser) into ../app.js; every entry point is wrapped
 * so that nothing here can throw into the page.
 */
(function (w, d, nav, loc) {
  'use strict';
  var noop = function () {};
  var safe = function (f) {
    return function () {
      try {
        return f.apply(this, arguments);
      } catch (e) {}
    };
  };
  var assign = function (o, p) {
    for (var k in p) o[k] = p[k];
    return o;
  };
  var now = function () {
    return Date.now();
  };
  var on = function (t, type, f) {
    t.addEventListener(type, safe(f), { capture: true, passive: true });
  };

  safe(function () {
    var prev = w.firstparty;
    if (prev && prev.capture) return; // loaded twice

    var el = d.currentScript || d.querySelector('script[src*="/app.js"]') || {};
    var cfg = el.dataset || {};
    var api = (cfg.api || (el.src || '').split('?')[0].replace(/\/[^/]*$/, '')).replace(/\/$/, '');
    var token = cfg.token || '';
    var mode = cfg.persistence || 'localstorage';
    // none: cookieless. mem: nothing kept beyond the page.
    var none = mode == 'none';
    var mem = none || mode == 'memory';
    var ref = cfg.ref;
    // dnt: send nothing. Automated browsers never send; DNT and GPC unless
    // the site turned respect_dnt off.
    var dnt =
      nav.webdriver === true ||
      (cfg.respectDnt != 'off' &&
        (nav.doNotTrack == '1' || w.doNotTrack == '1' || nav.msDoNotTrack == '1' || nav.globalPrivacyControl === true));
    var KEY = '_fp';
    var IDLE = 18e5; // 30 min
    var tz;
    try {
      tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    } catch (e) {}

    // uuid is a UUIDv7: time-ordered, made here, so a retried event keeps it
    // and the server stores it once.
    var uuid = function () {
      var b = new Uint8Array(16),
        t = now(),
        h = '',
        i;
      try {
        crypto.getRandomValues(b);
      } catch (e) {
        for (i = 0; i < 16; i++) b[i] = Math.random() * 256;
      }
      for (i = 5; i >= 0; i--) {
        b[i] = t % 256;
        t = Math.floor(t / 256);
      }
      b[6] = (b[6] & 15) | 112;
      b[8] = (b[8] & 63) | 128;
      for (i = 0; i < 16; i++) h += (i == 4 || i == 6 || i == 8 || i == 10 ? '-' : '') + (b[i] + 256).toString(16).slice(1);
      return h;
    };

    // st is what persists: d distinct id, i identified, s session id, b its
    // start, t last activity, r registered properties, o opted out. Storage
    // that throws (cookies blocked) leaves it in memory.
    var COOKIELESS = '$posthog_cookieless';
    var st = {};
    try {
      var raw =
        mode == 'cookie'
          ? decodeURIComponent((d.cookie.match(/(?:^|; )_fp=([^;]*)/) || [])[1] || '')
          : mode == 'localstorage'
            ? localStorage.getItem(KEY)
            : '';
      st = JSON.parse(raw || '{}') || {};
    } catch (e) {}
    var save = function () {
      if (dnt) return;
      try {
        var v = JSON.stringify(st);
        if (mode == 'cookie')
          d.cookie =
            KEY + '=' + encodeURIComponent(v) + '; Max-Age=31536000; Path=/; SameSite=Lax' + (loc.protocol == 'https:' ? '; Secure' : '');
        else if (mode == 'localstorage') localStorage.setItem(KEY, v);
      } catch (e) {}
    };
    var win;
    var newWindow = function () {
      win = uuid();
      try {
        if (!mem && !dnt) sessionStorage.setItem(KEY + 'w', win);
      } catch (e) {}
    };
    try {
      win = !mem && sessionStorage.getItem(KEY + 'w');
    } catch (e) {}
    if (!win) newWindow();
    if (!st.d) st.d = none ? COOKIELESS : uuid();

    // session returns the session id, starting a new session after 30
    // minutes without events or 24 hours after the start.
    var session = function () {
      var t = now();
      if (!st.s || t - st.t > IDLE || t - st.b > 864e5) {
        st.s = uuid();
        st.b = t;
        newWindow();
      }
      st.t = t;
      return st.s;
    };
    var off = function () {
      return dnt || st.o;
    };

    // The current page: u URL, p path, t start, id, s max scrollY, c max
    // scrollY+innerHeight, h max document height.
    var page = {};

    var q = [];
    var timer, busy, backoff = 0;
    var body = function (batch) {
      return JSON.stringify({ api_key: token, batch: batch, sent_at: new Date().toISOString() });
    };
    var flush = function () {
      timer = 0;
      if (busy || !q.length || off()) return;
      var batch = q.slice(0, 50);
      var b = body(batch);
      busy = 1;
      // text/plain: a simple request, no CORS preflight.
      fetch(api + '/e/', { method: 'POST', body: b, keepalive: b.length < 6e4 })
        .then(function (r) {
          if (r.status >= 500 || r.status == 429) throw 0;
          // Stored, or refused for good (4xx): either way not sent again.
          q = q.filter(function (e) {
            return batch.indexOf(e) < 0;
          });
          busy = backoff = 0;
          if (q.length) schedule(0);
        })
        .catch(function () {
          // Server down: keep the events (same uuids) and retry later.
          busy = 0;
          backoff = Math.min(backoff ? backoff * 2 : 1e3, 3e4);
          schedule(backoff * (0.8 + Math.random() * 0.4));
        });
    };
    var schedule = function (ms) {
      if (!timer) timer = setTimeout(safe(flush), ms);
    };
    // beacon sends everything queued with sendBeacon: the page is going away.
    var beacon = function (batch) {
      if (!batch.length || off()) return;
      var b = body(batch),
        h = batch.length >> 1;
      if (b.length > 6e4 && h) {
        beacon(batch.slice(0, h));
        beacon(batch.slice(h));
      } else if (!(nav.sendBeacon && nav.sendBeacon(api + '/e/', b)))
        fetch(api + '/e/', { method: 'POST', body: b, keepalive: true }).catch(noop);
    };
    var hide = function () {
      beacon(q);
      q = [];
    };

    var capture = function (name, props, top) {
      if (off()) return;
      var sc = w.screen || {};
      var p = assign(
        {
          token: token,
          distinct_id: st.d,
          // Cookieless: the server makes the session.
          $session_id: none ? void 0 : session(),
          $window_id: none ? void 0 : win,
          $cookieless_mode: none || void 0,
          $pageview_id: page.id,
          $current_url: loc.href,
          $host: loc.host,
          $pathname: loc.pathname,
          $referrer: d.referrer || '$direct',
          $screen_width: sc.width,
          $screen_height: sc.height,
          $viewport_width: w.innerWidth,
          $viewport_height: w.innerHeight,
          $browser_language: nav.language,
          $timezone: tz,
          $lib: 'firstparty',
          $lib_version: '__VERSION__'
        },
        st.r
      );
      save();
      q.push(assign({ event: name, properties: assign(p, props), timestamp: new Date().toISOString(), uuid: uuid() }, top));
      if (q.length > 1e3) q.shift();
      schedule(q.length > 20 ? 0 : 1e3);
    };

    var scroll = function () {
      var y = w.scrollY || 0,
        e = d.documentElement;
      page.s = Math.max(page.s || 0, y);
      page.c = Math.max(page.c || 0, y + w.innerHeight);
      page.h = Math.max(page.h || 0, e.scrollHeight, d.body ? d.body.scrollHeight : 0);
    };
    var pageview = function () {
      page = { u: loc.href, p: loc.pathname, t: now(), id: uuid() };
      scroll();
      // The first page view of the load confirms the server's page view.
      capture('$pageview', { title: d.title, $pageview_ref: ref });
      ref = void 0;
    };
    var frac = function (a, b) {
      return b > 0 ? Math.min(1, Math.round((a / b) * 1e4) / 1e4) : 1;
    };
    var pageleave = function () {
      if (!page.t) return;
      scroll();
      var vh = w.innerHeight;
      capture('$pageleave', {
        $current_url: page.u,
        $pathname: page.p,
        $prev_pageview_id: page.id,
        $prev_pageview_pathname: page.p,
        $prev_pageview_duration: (now() - page.t) / 1e3,
        $prev_pageview_max_scroll: page.s,
        $prev_pageview_max_scroll_percentage: frac(page.s, page.h - vh),
        $prev_pageview_max_content: page.c,
        $prev_pageview_max_content_percentage: frac(page.c, page.h)
      });
      page = {};
    };
    var route = function () {
      if (loc.href != page.u) {
        pageleave();
        pageview();
      }
    };

    // Autocapture. Text is taken from an element's own text nodes, never
    // from form fields or editable content, and dropped when it looks like a
    // card or social security number.
    var NO = '.ph-no-capture,[data-fp-no-capture]';
    var ATTR = /^(id|class|href|action|name|type|role|title|alt|for|aria-label|data-testid|data-attr)$/;
    var field = function (e) {
      return /^(INPUT|TEXTAREA|SELECT)$/.test(e.tagName) || e.isContentEditable;
    };
    var clean = function (t) {
      t = (t || '').replace(/\s+/g, ' ').trim().slice(0, 255);
      return /^(\d[ -]?){13,19}$|\b\d{3}-?\d{2}-?\d{4}\b/.test(t) ? '' : t;
    };
    var ownText = function (e) {
      var t = '';
      if (!field(e)) for (var c = e.firstChild; c; c = c.nextSibling) if (c.nodeType == 3) t += c.nodeValue;
      return clean(t);
    };
    var esc = function (v) {
      return ('' + v).replace(/"/g, '\\"');
    };
    // describe is one element of $elements_chain, PostHog's format:
    // tag.class1.class2:attr__k="v"...nth-child="n"nth-of-type="n"text="...".
    var describe = function (e) {
      var a = {},
        s = e.tagName.toLowerCase(),
        i = 1,
        j = 1,
        x = e,
        t = ownText(e);
      (e.getAttribute('class') || '')
        .split(/\s+/)
        .filter(function (c) {
          return c && !/[:;"]/.test(c);
        })
        .sort()
        .forEach(function (c) {
          s += '.' + c;
        });
      [].forEach.call(e.attributes, function (at) {
        if (ATTR.test(at.name)) a['attr__' + at.name] = at.value.slice(0, 500);
      });
      if (a.attr__id) a.attr_id = a.attr__id;
      if (a.attr__href) a.href = a.attr__href;
      while ((x = x.previousElementSibling)) {
        i++;
        if (x.tagName == e.tagName) j++;
      }
      a['nth-child'] = i;
      a['nth-of-type'] = j;
      if (t) a.text = t;
      return (
        s +
        ':' +
        Object.keys(a)
          .sort()
          .map(function (k) {
            return k + '="' + esc(a[k]) + '"';
          })
          .join('')
      );
    };
    var target = function (ev) {
      var e = ev.composedPath ? ev.composedPath()[0] : ev.target;
      if (e && e.nodeType == 3) e = e.parentNode;
      return e && e.nodeType == 1 && !e.closest(NO) && e.type != 'password' ? e : 0;
    };
    var auto = function (name, type, e, props) {
      var chain = [],
        x = e,
        t = ownText(e);
      for (; x && x.nodeType == 1 && x.tagName != 'HTML' && chain.length < 30; x = x.parentElement) chain.push(describe(x));
      if (!t && /^(A|BUTTON)$/.test(e.tagName) && !e.querySelector('[contenteditable],input,textarea,select'))
        t = clean(e.textContent);
      capture(name, assign({ $event_type: type, $ce_version: 1, $elements_chain: chain.join(';'), $el_text: t }, props));
    };
    var clicks = [];
    var click = function (ev) {
      var e = target(ev);
      if (!e) return;
      var t = now(),
        x = ev.clientX,
        y = ev.clientY,
        p = {
          $click_x: Math.round((x / w.innerWidth) * 1e4) / 1e4,
          $click_y: Math.round(y + (w.scrollY || 0))
        };
      auto('$autocapture', 'click', e, p);
      clicks = clicks.filter(function (c) {
        return t - c[0] < 1e3 && Math.abs(c[1] - x) < 30 && Math.abs(c[2] - y) < 30;
      });
      if (clicks.push([t, x, y]) == 3) auto('$rageclick', 'click', e, p);
    };
    var form = function (type) {
      return function (ev) {
        var e = target(ev);
        if (e) auto('$autocapture', type, e);
      };
    };

    var fp = {
      capture: function (name, props) {
        if (name) capture('' + name, props);
      },
      identify: function (id, set, once) {
        if (!id) return;
        id = '' + id;
        var top = { $set: set || {}, $set_once: once || {} };
        if (id != st.d) {
          // Cookieless: the anonymous id is the server's; not linked here.
          var anon = !st.i && st.d != COOKIELESS && st.d;
          st.d = id;
          st.i = 1;
          capture('$identify', anon ? { $anon_distinct_id: anon } : {}, top);
        } else if (set || once) capture('$set', top);
      },
      alias: function (alias) {
        if (alias && st.d != COOKIELESS) capture('$create_alias', { alias: '' + alias });
      },
      reset: function () {
        st = { o: st.o, d: none ? COOKIELESS : uuid() };
        newWindow();
        save();
      },
      register: function (props) {
        st.r = assign(st.r || {}, props);
        save();
      },
      opt_out_capturing: function () {
        st.o = 1;
        q = [];
        save();
      },
      opt_in_capturing: function () {
        st.o = 0;
        save();
        capture('$opt_in');
      },
      has_opted_out_capturing: function () {
        return !!off();
      },
      get_distinct_id: function () {
        return st.d;
      },
      get_session_id: function () {
        return st.s;
      },
      // _r is the recording chunk's hook (internal): the ids its
      // $snapshot events carry; with a, the recorder saw the visitor act,
      // which keeps the session alive or starts a new one.
      _r: function (a) {
        if (a && !off() && !none) {
          session();
          save();
        }
        return { s: st.s, w: win, d: st.d, o: off(), a: api, t: token, c: cfg };
      }
    };
    for (var k in fp) fp[k] = safe(fp[k]);
    w.firstparty = fp;
    // Calls queued before the snippet loaded: window.firstparty = [[name, ...args]].
    if (prev && prev.forEach)
      prev.forEach(function (c) {
        if (fp[c[0]]) fp[c[0]].apply(fp, [].slice.call(c, 1));
      });

    pageview();
    ['pushState', 'replaceState'].forEach(function (m) {
      var f = history[m];
      if (f)
        history[m] = function () {
          var r = f.apply(this, arguments);
          setTimeout(safe(route), 0);
          return r;
        };
    });
    on(w, 'popstate', route);
    on(w, 'hashchange', route);
    on(w, 'scroll', scroll);
    on(d, 'click', click);
    on(d, 'submit', form('submit'));
    on(d, 'change', form('change'));
    on(w, 'pagehide', function () {
      pageleave();
      hide();
    });
    on(d, 'visibilitychange', function () {
      if (d.visibilityState == 'hidden') hide();
    });
    on(w, 'pageshow', function (ev) {
      if (ev.persisted) pageview(); // back from the back/forward cache
    });
    on(w, 'online', function () {
      backoff = 0;
      clearTimeout(timer);
      timer = 0;
      flush();
    });
    if (cfg.record == 'on' && !off() && !none) {
      // Session recording lives in its own chunk, loaded only when on.
      var r = d.createElement('script');
      // With the snippet's own ?v=, which versions the chunk too.
      r.src = api + '/r.js' + (el.src && el.src.indexOf('?') > 0 ? el.src.slice(el.src.indexOf('?')) : '');
      r.async = true;
      (d.head || d.documentElement).appendChild(r);
    }
  })();
})(window, document, navigator, location);
