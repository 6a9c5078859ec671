-- posthog-js's /flags/?v=2 body (person_properties with the $initial_*
-- fields it sends), for FLAGS_IDS (default 1000) distinct ids in turn,
-- with the Accept-Encoding Chromium sends (FLAGS_GZIP=0: none, as a client
-- that takes no compression).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if os.getenv("FLAGS_GZIP") ~= "0" then
	wrk.headers["Accept-Encoding"] = "gzip, deflate, br, zstd"
end
local n = 0
local ids = tonumber(os.getenv("FLAGS_IDS") or "1000")
request = function()
	n = (n + 1) % ids
	local body = '{"token":"phc_bench","distinct_id":"0193a1b2-c3d4-7e5f-8a9b-' .. string.format("%012d", n) ..
		'","groups":{},"person_properties":{"$initial_referrer":"$direct","$initial_referring_domain":"$direct",' ..
		'"$initial_current_url":"https://bench.example/pricing?utm_source=news","$initial_host":"bench.example",' ..
		'"$initial_pathname":"/pricing","$initial_utm_source":"news","plan":"' .. (n % 3 == 0 and "pro" or "free") .. '",' ..
		'"$lib":"web","$lib_version":"1.449.2"},"timezone":"Europe/Berlin"}'
	return wrk.format(nil, nil, nil, body)
end
