-- POST /token with a live session cookie. env: BENCH_COOKIE; BENCH_TOKEN_FILE (optional: every
-- issued access token is appended to it, one per line, as a pool for the memory run).
package.path = debug.getinfo(1, "S").source:match("@?(.*/)") .. "?.lua;" .. package.path
local common = require("common")
wrk.method = "POST"
wrk.path = "/token"
wrk.headers["Cookie"] = "leerid_session=" .. os.getenv("BENCH_COOKIE")
local file_name = os.getenv("BENCH_TOKEN_FILE")
if file_name then
  local out = nil
  function response(status, headers, body)
    if status == 200 then
      if out == nil then out = io.open(file_name, "a") end
      local token = body:match('"access_token":"([^"]+)"')
      if token then out:write(token, "\n") end
    end
  end
end
done = common.done
