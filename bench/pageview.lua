-- One ~600-byte posthog-js style $pageview per request, each with its own
-- uuid, as POST /e/ (wrk -s pageview.lua).
local n = 0
-- Random (version 4 layout) uuids, like real SDKs send: they do not compress.
local function uuid()
  return string.format("%08x-%04x-4%03x-%04x-%06x%06x", math.random(0, 0x7fffffff), math.random(0, 0xffff),
    math.random(0, 0xfff), 0x8000 + math.random(0, 0x3fff), math.random(0, 0xffffff), math.random(0, 0xffffff))
end
local thread_id = 0
function setup(thread) thread:set("tid", thread_id); thread_id = thread_id + 1 end
function init(args) math.randomseed(os.time() + (tid or 0)) end


local tmpl = '{"event":"$pageview","uuid":"%s","timestamp":"2026-11-24T12:00:00.000Z",' ..
  '"properties":{"distinct_id":"%s","token":"phc_bench","$current_url":"https://shop.example.com/products/widget-%d?utm_source=newsletter&utm_medium=email",' ..
  '"$host":"shop.example.com","$pathname":"/products/widget-%d","$referrer":"https://www.google.com/","$referring_domain":"www.google.com",' ..
  '"$session_id":"%s","$window_id":"0193a1b2-0000-7000-8000-00000000beef","$browser":"Chrome","$browser_version":156,"$os":"Mac OS X",' ..
  '"$device_type":"Desktop","$screen_width":1920,"$screen_height":1080,"$viewport_width":1440,"$viewport_height":900,"$lib":"web","$lib_version":"1.449.2",' ..
  '"title":"Widget %d - Shop"}}'

function request()
  n = n + 1
  local id = uuid()
  local person = string.format("anon-%d-%d", tid or 0, n % 5000)
  local session = string.format("0193a1b2-5555-7000-8000-%012x", n % 20000)
  local body = string.format(tmpl, id, person, n % 50, n % 50, session, n % 50)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
