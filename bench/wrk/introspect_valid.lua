-- POST /introspect of one valid token, HTTP Basic client authentication (RFC 7662 §2.1).
-- env: BENCH_TOKEN, BENCH_BASIC (base64 of client_id:client_secret)
package.path = debug.getinfo(1, "S").source:match("@?(.*/)") .. "?.lua;" .. package.path
local common = require("common")
wrk.method = "POST"
wrk.path = "/introspect"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC")
wrk.body = "token=" .. os.getenv("BENCH_TOKEN")
done = common.done
