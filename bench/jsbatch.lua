-- posthog-js style batches for the memory phase: 20 browser events a request
-- ($pageview and $autocapture with ~25 properties each, random uuids, 5000
-- visitors, 20000 sessions, 50 pages), POSTed to /i/v0/e/.
local n = 0
local function uuid()
  return string.format("%08x-%04x-4%03x-%04x-%06x%06x", math.random(0, 0x7fffffff), math.random(0, 0xffff),
    math.random(0, 0xfff), 0x8000 + math.random(0, 0x3fff), math.random(0, 0xffffff), math.random(0, 0xffffff))
end
local thread_id = 0
function setup(thread) thread:set("tid", thread_id); thread_id = thread_id + 1 end
function init(args) math.randomseed(os.time() + (tid or 0)) end

local tmpl = '{"event":"%s","uuid":"%s","timestamp":"2026-11-24T12:00:00.000Z",' ..
  '"properties":{"distinct_id":"%s","token":"phc_bench","$current_url":"https://shop.example.com/products/widget-%d?ref=%d",' ..
  '"$host":"shop.example.com","$pathname":"/products/widget-%d","$referrer":"https://www.google.com/","$referring_domain":"www.google.com",' ..
  '"$session_id":"%s","$window_id":"%s","$pageview_id":"%s","$browser":"Chrome","$browser_version":156,"$os":"Mac OS X",' ..
  '"$device_type":"Desktop","$screen_width":1920,"$screen_height":1080,"$viewport_width":1440,"$viewport_height":900,"$lib":"web","$lib_version":"1.449.2",' ..
  '"$insert_id":"%s","$time":%d.%03d,"title":"Widget %d - Shop","$event_type":"click","$elements_chain":"button.cta:text=\\"Buy now\\"nth-child=\\"%d\\"nth-of-type=\\"1\\";div.card:nth-child=\\"2\\""}}'
local names = {"$pageview", "$autocapture", "$autocapture", "$pageleave"}

function request()
  local parts = {}
  for i = 1, 20 do
    n = n + 1
    local visitor = (n * 7919) % 5000
    local session = string.format("0193a1b2-5555-7000-8000-%012x", (n * 31) % 20000)
    local page = n % 50
    parts[i] = string.format(tmpl, names[n % 4 + 1], uuid(), "anon-" .. visitor, page, n % 7, page, session,
      string.format("0193a1b2-7777-7000-8000-%012x", visitor), uuid(), string.format("%08x", math.random(0, 0x7fffffff)),
      1764000000 + n, n % 1000, page, n % 5 + 1)
  end
  local body = '{"api_key":"phc_bench","sent_at":"2026-11-24T12:00:00.000Z","batch":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
