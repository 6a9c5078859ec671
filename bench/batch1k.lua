-- posthog-js shaped events of about 1 KB of JSON each, 50 a request, as one
-- /batch/ envelope {"api_key","batch","sent_at"} (wrk -s batch1k.lua). The
-- properties are the ones posthog-js 1.449.2 sends on every event
-- (../shared/sdk-wire.md): distinct_id and token inside properties, $time as
-- float seconds, UUIDv7-looking uuids, 5000 visitors, 20000 sessions, 50
-- pages; $pageview, $autocapture and $pageleave with their own extras.
local n = 0
local function hex(d) return string.format("%0" .. d .. "x", math.random(0, 16 ^ math.min(d, 7) - 1)) end
-- UUIDv7 layout: 48-bit ms time, version 7, random rest; random parts do not
-- compress.
local function uuid7(ms)
  return string.format("%08x-%04x-7%s-%x%s-%s%s", math.floor(ms / 65536), ms % 65536, hex(3),
    8 + math.random(0, 3), hex(3), hex(6), hex(6))
end
local thread_id = 0
function setup(thread) thread:set("tid", thread_id); thread_id = thread_id + 1 end
function init(args) math.randomseed(os.time() + (tid or 0)) end

local common = '{"event":"%s","uuid":"%s","timestamp":"2026-11-24T12:%02d:%02d.%03dZ","properties":{' ..
  '"$os":"Mac OS X","$os_version":"10.15.7","$browser":"Chrome","$device_type":"Desktop",' ..
  '"$timezone":"Europe/Berlin",' ..
  '"$current_url":"https://shop.example.com/products/widget-%d?ref=%d","$host":"shop.example.com","$pathname":"/products/widget-%d",' ..
  '"$raw_user_agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",' ..
  '"$browser_version":156,"$screen_height":1117,"$screen_width":1728,"$viewport_height":959,"$viewport_width":1728,' ..
  '"$lib":"web","$lib_version":"1.449.2","$insert_id":"%s","$time":%d.%03d,' ..
  '"distinct_id":"%s","$device_id":"%s","$is_identified":false,' ..
  '"$initial_referrer":"https://www.google.com/",' ..
  '"$referrer":"https://www.google.com/","$referring_domain":"www.google.com",' ..
  '"$session_id":"%s","$window_id":"%s","$pageview_id":"%s",' ..
  '"$configured_session_timeout_ms":1800000,"$process_person_profile":false,' ..
  '"token":"phc_8e2Vn4Q3bZxExampleProjectKey00000"%s}}'
local extras = {
  ["$pageview"] = function(page) return string.format(',"title":"Widget %d - Shop"', page) end,
  ["$autocapture"] = function(page)
    return string.format(',"$event_type":"click","$el_text":"Buy now",' ..
      '"$elements_chain":"button.cta:nth-child=\\"%d\\"nth-of-type=\\"1\\"text=\\"Buy now\\";div.card:nth-child=\\"2\\""', page % 5 + 1)
  end,
  ["$pageleave"] = function(page)
    return string.format(',"$prev_pageview_pathname":"/products/widget-%d","$prev_pageview_duration":%d.%d,' ..
      '"$prev_pageview_max_scroll_percentage":0.%d', page, page % 40, page % 10, page % 10)
  end,
}
local names = {"$pageview", "$autocapture", "$autocapture", "$pageleave"}

-- Building 50 events a request costs wrk more CPU than the server spends on
-- them, and both share the machine: the bodies are built once, in init,
-- around their uuid slots, and a request only writes fresh uuids in.
local templates = {}
local slot = "\0UUID\0"

local function build(k)
  local parts = {}
  for i = 1, 50 do
    n = n + 1
    local ms = 1764000000000 + n * 37
    local visitor = (n * 7919) % 5000
    local did = string.format("0193a1b2-7777-7000-8000-%012x", visitor)
    local session = string.format("0193a1b2-5555-7000-8000-%012x", (n * 31) % 20000)
    local page = n % 50
    local name = names[n % 4 + 1]
    parts[i] = string.format(common, name, slot, math.floor(n / 60) % 60, n % 60, n % 1000,
      page, n % 7, page, hex(7) .. hex(7), math.floor(ms / 1000), ms % 1000,
      did, did, session, uuid7(ms - 600000), uuid7(ms - 5000), extras[name](page))
  end
  local body = '{"api_key":"phc_8e2Vn4Q3bZxExampleProjectKey00000","sent_at":"2026-11-24T12:00:00.000Z","batch":[' ..
    table.concat(parts, ",") .. ']}'
  -- Split at the slots: chunks[1], uuid, chunks[2], uuid, ..., chunks[51].
  local chunks, from = {}, 1
  while true do
    local a, b = string.find(body, slot, from, true)
    if not a then break end
    chunks[#chunks + 1] = string.sub(body, from, a - 1)
    from = b + 1
  end
  chunks[#chunks + 1] = string.sub(body, from)
  templates[k] = chunks
end

local headers = {["Content-Type"] = "application/json",
  ["User-Agent"] = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"}
local req, out = 0, {}

-- The request's uuids: the same UUIDv7 layout as uuid7, in one format
-- call each (five calls each cost wrk a tenth of a core).
local fmt, rnd, floor = string.format, math.random, math.floor
local ufmt = "%08x-%04x-7%03x-%x%03x-%06x%06x"

function request()
  if #templates == 0 then
    for k = 1, 32 do build(k) end
  end
  req = req + 1
  local chunks = templates[req % #templates + 1]
  local ms = 1764000000000 + req * 1850
  for i = 1, 50 do
    local t = ms + i * 37
    out[2 * i - 1] = chunks[i]
    out[2 * i] = fmt(ufmt, floor(t / 65536), t % 65536, rnd(0, 4095), 8 + rnd(0, 3), rnd(0, 4095),
      rnd(0, 16777215), rnd(0, 16777215))
  end
  out[101] = chunks[51]
  return wrk.format("POST", nil, headers, table.concat(out))
end
