-- The same POST with no analytics behind it: Caddy's `respond 204`.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.rep("x", 600)
