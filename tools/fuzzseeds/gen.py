#!/usr/bin/env python3
# Writes the seed corpora of the fuzz targets (testdata/fuzz/<Target>/ in
# collector and caddymodule): request bodies shaped like what the real
# PostHog SDKs send (../shared/sdk-wire.md), hostile inputs (bombs, deep
# JSON, bad UTF-8, absurd timestamps, 10,001-event batches), real
# Caddyfile blocks and pages. Run from the repo root: python3 tools/fuzzseeds/gen.py .
import gzip, base64, json, os, sys, urllib.parse
root = sys.argv[1]
def q(b):
    if isinstance(b, str): b = b.encode()
    out = '"'
    for c in b:
        if c == 0x22: out += '\\"'
        elif c == 0x5c: out += '\\\\'
        elif 0x20 <= c < 0x7f: out += chr(c)
        else: out += '\\x%02x' % c
    return out + '"'
def put(pkg, target, name, vals):
    d = os.path.join(root, pkg, 'testdata', 'fuzz', target)
    os.makedirs(d, exist_ok=True)
    lines = ['go test fuzz v1']
    for kind, v in vals:
        if kind == 'uint8': lines.append('uint8(%d)' % v)
        elif kind == 'string': lines.append('string(%s)' % q(v))
        else: lines.append('[]byte(%s)' % q(v))
    open(os.path.join(d, name), 'w').write('\n'.join(lines) + '\n')

paths = ["/e/", "/batch/", "/i/v0/e/", "/engage/", "/s/", "/i/v1/analytics/events", "/flags/?v=2", "/decide/", "/capture", "/track"]
P = {p: i for i, p in enumerate(paths)}
ts = "2026-11-24T11:59:58.123Z"
node = {"api_key": "phc_k", "sent_at": ts, "batch": [
  {"event": "signed_up", "distinct_id": "user-1", "timestamp": ts, "uuid": "0193b3c5-7e1a-7cc0-8000-00000000abcd",
   "properties": {"plan": "pro", "$lib": "posthog-node", "$lib_version": "5.70.0", "$is_server": True, "$geoip_disable": True, "$groups": {"company": "acme"}}},
  {"event": "$identify", "distinct_id": "user-1", "timestamp": ts, "uuid": "0193b3c5-7e1a-7cc0-8000-00000000abce",
   "properties": {"$set": {"email": "a@example.com"}, "$set_once": {"first": "x"}, "$lib": "posthog-node"}},
  {"event": "$create_alias", "distinct_id": "user-1", "timestamp": ts, "uuid": "0193b3c5-7e1a-7cc0-8000-00000000abcf",
   "properties": {"alias": "legacy-1", "distinct_id": "user-1"}}]}
gobatch = {"api_key": "phc_k", "batch": [
  {"type": "capture", "event": "clicked", "distinct_id": "g1", "properties": {"$lib": "posthog-go", "$lib_version": "1.5.2"}, "timestamp": "2026-11-24T11:59:58.123456789Z", "library": "posthog-go", "library_version": "1.5.2", "send_feature_flags": False, "uuid": ""},
  {"type": "identify", "event": "$identify", "distinct_id": "g1", "$set": {"name": "G"}, "properties": {"$lib": "posthog-go"}, "timestamp": "2026-11-24T11:59:58.2Z", "library": "posthog-go"},
  {"type": "alias", "event": "$create_alias", "properties": {"distinct_id": "g1", "alias": "g-old"}, "timestamp": "2026-11-24T11:59:58.3Z"},
  {"event": "$groupidentify", "distinct_id": "$company_acme", "properties": {"$group_type": "company", "$group_key": "acme", "$group_set": {"n": 1}}}]}
jsprops = {"distinct_id": "0193-anon", "token": "phc_k", "$current_url": "http://127.0.0.1:8080/pricing?utm_source=hn", "$host": "127.0.0.1:8080", "$pathname": "/pricing",
  "$referrer": "$direct", "$referring_domain": "$direct", "$session_id": "0193-s", "$window_id": "0193-w", "$lib": "web", "$lib_version": "1.449.2",
  "$browser": "Chrome", "$os": "Linux", "$device_type": "Desktop", "$viewport_width": 1280, "$viewport_height": 720, "$time": 1764000000.123}
jsbatch = {"api_key": "phc_k", "sent_at": ts, "batch": [
  {"event": "$pageview", "properties": dict(jsprops, title="Pricing"), "timestamp": ts, "uuid": "0193b3c5-7e1a-7cc0-8000-0000000000a1"},
  {"event": "$autocapture", "properties": dict(jsprops, **{"$event_type": "click", "$el_text": "Buy", "$elements_chain": 'button.btn:attr__class="btn"nth-child="1"nth-of-type="1"text="Buy";body:nth-child="2"nth-of-type="1"'}), "timestamp": ts, "uuid": "0193b3c5-7e1a-7cc0-8000-0000000000a2"},
  {"event": "$identify", "$set": {"email": "x@example.com"}, "$set_once": {"$initial_referrer": "$direct"}, "properties": dict(jsprops, **{"$anon_distinct_id": "0193-anon", "distinct_id": "user-9"}), "timestamp": ts, "uuid": "0193b3c5-7e1a-7cc0-8000-0000000000a3"},
  {"event": "$pageleave", "properties": dict(jsprops, **{"$prev_pageview_duration": 12.5, "$prev_pageview_pathname": "/pricing", "$prev_pageview_max_content_percentage": 0.8}), "timestamp": ts, "uuid": "0193b3c5-7e1a-7cc0-8000-0000000000a4"}]}
full = base64.b64encode(gzip.compress(b'{"node":{"type":0,"childNodes":[]},"initialOffset":{"left":0,"top":0}}')).decode()
snap = [{"event": "$snapshot", "sent_at": ts, "properties": {"$snapshot_data": [{"type": 4, "data": {"href": "http://127.0.0.1:8080/", "width": 1280, "height": 720}, "timestamp": 1764000000000},
   {"type": 2, "cv": "2024-10", "data": gzip.compress(b'{"node":{"type":0,"childNodes":[]}}').decode('latin-1'), "timestamp": 1764000000001},
   {"type": 3, "data": {"source": 2, "type": 2, "id": 5, "x": 10, "y": 20}, "timestamp": 1764000000500}],
   "$snapshot_bytes": 300, "$session_id": "0193-s", "$window_id": "0193-w", "$snapshot_host": "127.0.0.1:8080", "$lib": "web", "distinct_id": "0193-anon", "token": "phc_k"}}]
flags = {"token": "phc_k", "distinct_id": "0193-anon", "$device_id": "0193-anon", "groups": {}, "person_properties": {"$initial_referrer": "$direct"}, "timezone": "UTC", "sent_at": ts}
v1 = {"api_key": "phc_k", "batch": [{"event": "v1_event", "distinct_id": "v", "uuid": "0193b3c5-7e1a-7cc0-8000-0000000000b1", "properties": {}}], "historical_migration": False}
engage = [{"$set": {"plan": "pro"}, "$token": "phc_k", "$distinct_id": "user-1"}]
J = lambda o: json.dumps(o).encode()
seeds = [
  ("node-batch-gzip", "/batch/", "", "application/json", gzip.compress(J(node))),
  ("go-batch", "/batch/", "", "application/json", J(gobatch)),
  ("js-batch-gzip-textplain", "/i/v0/e/", "", "text/plain", gzip.compress(J(jsbatch))),
  ("js-first-pageview", "/e/", "", "text/plain", gzip.compress(J(jsbatch["batch"][0]))),
  ("js-beacon-base64", "/e/", "compression=base64", "application/x-www-form-urlencoded", ("data=" + urllib.parse.quote(base64.b64encode(J(jsbatch)).decode())).encode()),
  ("js-snapshots", "/s/", "", "text/plain", gzip.compress(J(snap))),
  ("js-flags", "/flags/?v=2", "", "text/plain", gzip.compress(J(flags))),
  ("js-flags-base64", "/flags/?v=2", "compression=base64", "application/x-www-form-urlencoded", ("data=" + base64.b64encode(J(flags)).decode()).encode()),
  ("node-flags", "/flags/?v=2", "", "application/json", J({"token": "phc_k", "distinct_id": "user-1", "groups": {}, "geoip_disable": True, "flag_keys_to_evaluate": ["probe-flag"], "evaluation_runtime": "server"})),
  ("v1-events", "/i/v1/analytics/events", "", "application/json", J(v1)),
  ("engage", "/engage/", "", "application/json", J(engage)),
  ("curl-form", "/capture", "", "application/x-www-form-urlencoded", b'{"event":"curl","distinct_id":"c"}'),
  ("deep-json", "/e/", "", "application/json", b'{"event":"x","distinct_id":"d","properties":{"a":' + b'['*100 + b']'*100 + b'}}'),
  ("gzip-bomb", "/e/", "", "text/plain", gzip.compress(b'{"event":"x","distinct_id":"d","properties":{"p":"' + b'A'*(4<<20) + b'"}}')),
  ("bad-utf8", "/e/", "", "application/json", b'{"event":"\xff\xfe","distinct_id":"\xc3","properties":{"k\x80":"v\xed\xa0\x80"}}'),
  ("absurd-times", "/batch/", "", "application/json", J({"batch": [{"event": "a", "distinct_id": "d", "timestamp": "1970-01-01T00:00:00Z"}, {"event": "b", "distinct_id": "d", "timestamp": "3026-01-01T00:00:00Z"}, {"event": "c", "distinct_id": "d", "timestamp": 1e300}, {"event": "ok", "distinct_id": "d"}]})),
  ("huge-batch-gzip", "/batch/", "", "text/plain", gzip.compress(J({"batch": [{"event": "e", "distinct_id": str(i)} for i in range(10001)]}))),
  ("wrong-types", "/batch/", "", "application/json", J({"batch": [{"event": 5, "distinct_id": {"a": 1}}, {"event": ["x"], "properties": "str"}, {"event": "ok", "distinct_id": 7}]})),
]
for name, path, query, ctype, body in seeds:
    put("collector", "FuzzCapture", name, [("uint8", P[path]), ("string", query), ("string", ctype), ("bytes", body)])
for i, s in enumerate(["/array/phc_k/config.js", "/array/phc_k/config", "/flags/?v=2&config=true", "/decide/?v=3&ip=1&_=1764000000000&ver=1.449.2", "/static/array.js", "/static/1.449.2/surveys.js", "/api/surveys/?token=phc_k&_=1", "/app.js?v=deadbeef", "/r.js"]):
    put("collector", "FuzzRemoteConfig", "sdk-%d" % i, [("string", s)])
for i, s in enumerate(["2026-11-24T11:59:58.123Z", "2026-11-24T11:59:58.123456789Z", "1764000000000", "1764000000.123", "2026-11-24 11:59:58", "2026-11-24T11:59:58+05:30", "0", "-62135596800000"]):
    put("collector", "FuzzParseTime", "fmt-%d" % i, [("string", json.dumps(s) if not s.lstrip('-').replace('.', '').isdigit() else s)])
cf = ["db /var/lib/caddy/analytics.db\nsite example.com\ngeoip /usr/share/GeoIP/GeoLite2-City.mmdb\nendpoint /_f\ndashboard /analytics\ndashboard_auth admin $2a$14$Zkx19XLiW6VYouLHR5NmfOFU0z2GTNmpkT/5qqR7hx4IjWJPDhjvG\ninject\nrecord on\npersistence cookie\nrespect_dnt on\nstore_ip off\nretention 400d\nsync everysecond\ntoken phc_k\nmax_body 1MiB\nrate_limit 50",
      "endpoint random\ndashboard off\npersistence memory", "db :memory:\nmax_body 0", "retention 0s", "rate_limit 1e400", "dashboard_auth admin", "inject off extra"]
for i, s in enumerate(cf):
    put("caddymodule", "FuzzCaddyfile", "block-%d" % i, [("string", s)])
for i, (m, t, ae) in enumerate([("GET", "/_f/app.js", "br, gzip"), ("HEAD", "/_f/app.js?v=x", ""), ("GET", "/_f/r.js", "gzip"), ("GET", "/_f/array/phc_k/config.js", ""), ("POST", "/_f/i/v0/e/", ""),
      ("GET", "/analytics/api/stats?from=2026-11-01&to=2026-11-24&tz=Europe/Berlin&filter=$browser==Chrome", ""), ("GET", "/analytics/api/funnel?steps=$pageview,action:1&window=3600", ""),
      ("DELETE", "/analytics/api/persons/x", ""), ("GET", "/analytics/api/live", ""), ("GET", "/pricing", "gzip, zstd")]):
    put("caddymodule", "FuzzServe", "req-%d" % i, [("string", m), ("string", t), ("string", ae)])
pages = ["<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>Pricing</title><link rel=stylesheet href=/style.css></head>\n<body><h1>Pricing</h1></body></html>",
         "<html><body onload=\"x()\"><!-- </head> --><p>no head</p></body></html>", "<HTML><HEAD></HEAD ><BODY></BODY>", "<svg><body></body></svg>"]
for i, p in enumerate(pages):
    put("caddymodule", "FuzzInject", "page-%d" % i, [("bytes", p), ("bytes", bytes([5, 17, 1, 40]))])
