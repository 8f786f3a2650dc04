-- The bare endpoint: GET /healthz ({"status": "ok"}, no I/O).
package.path = debug.getinfo(1, "S").source:match("@?(.*/)") .. "?.lua;" .. package.path
local common = require("common")
wrk.method = "GET"
wrk.path = "/healthz"
done = common.done
