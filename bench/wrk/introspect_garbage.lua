-- POST /introspect of a different garbage token on every request (an attacker's load).
-- env: BENCH_BASIC; BENCH_GARBAGE = "random" (random base64url, JWT-shaped or not)
--      or "forged" (a real token's header and claims with a random signature: forces a
--      signature check every time); BENCH_TOKEN (the real token, for "forged")
package.path = debug.getinfo(1, "S").source:match("@?(.*/)") .. "?.lua;" .. package.path
local common = require("common")
local mode = os.getenv("BENCH_GARBAGE") or "random"
local prefix = ""
if mode == "forged" then
  local token = os.getenv("BENCH_TOKEN")
  prefix = token:match("^(.*%.)")  -- header.payload.
end
local auth = "Basic " .. os.getenv("BENCH_BASIC")

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
end

function request()
  local token
  if mode == "forged" then
    token = prefix .. common.random_b64url(86)  -- an ES256 signature is 64 bytes = 86 characters
  elseif math.random() < 0.5 then
    token = common.random_b64url(36) .. "." .. common.random_b64url(180) .. "." .. common.random_b64url(86)
  else
    token = common.random_b64url(math.random(8, 400))
  end
  return wrk.format("POST", "/introspect",
    {["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = auth},
    "token=" .. token)
end

done = common.done
