-- A posthog-node style /batch/ of 50 events per request, each event with its
-- own uuid (wrk -s batch.lua).
local n = 0
-- Random (version 4 layout) uuids, like real SDKs send: they do not compress.
local function uuid()
  return string.format("%08x-%04x-4%03x-%04x-%06x%06x", math.random(0, 0x7fffffff), math.random(0, 0xffff),
    math.random(0, 0xfff), 0x8000 + math.random(0, 0x3fff), math.random(0, 0xffffff), math.random(0, 0xffffff))
end
local thread_id = 0
function setup(thread) thread:set("tid", thread_id); thread_id = thread_id + 1 end
function init(args) math.randomseed(os.time() + (tid or 0)) end

local ev = '{"event":"%s","distinct_id":"user-%d","uuid":"%s","timestamp":"2026-11-24T12:00:00.000Z",' ..
  '"properties":{"$lib":"posthog-node","$lib_version":"5.70.0","$geoip_disable":true,"plan":"%s","$current_url":"https://app.example.com/p/%d",' ..
  '"$session_id":"0193a1b2-6666-7000-8000-%012x","amount":%d}}'
local names = {"$pageview", "signed_up", "clicked_cta", "$pageview", "purchase"}
local plans = {"free", "pro", "team"}

function request()
  local parts = {}
  for i = 1, 50 do
    n = n + 1
    local id = uuid()
    parts[i] = string.format(ev, names[n % 5 + 1], n % 30000, id, plans[n % 3 + 1], n % 200, n % 50000, n % 1000)
  end
  local body = '{"api_key":"phc_bench","batch":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
