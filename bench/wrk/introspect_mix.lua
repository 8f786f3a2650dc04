-- The memory run: /introspect with half valid tokens and half garbage (random and forged).
-- Valid tokens come from a pool of distinct real tokens larger than the gateway's caches: 80% from
-- a hot set (the first BENCH_HOT tokens, cycled), 20% picked at random from the whole pool (so the
-- caches keep filling and evicting). env: BENCH_BASIC, BENCH_TOKEN_FILE (one token per line),
-- BENCH_HOT (default 15000)
package.path = debug.getinfo(1, "S").source:match("@?(.*/)") .. "?.lua;" .. package.path
local common = require("common")
local auth = "Basic " .. os.getenv("BENCH_BASIC")
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKEN_FILE")) do tokens[#tokens + 1] = line end
local prefix = tokens[1]:match("^(.*%.)")
local i = 0
local hot = math.min(tonumber(os.getenv("BENCH_HOT") or "15000"), #tokens)

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
  i = math.random(1, hot)
end

function request()
  local token
  local r = math.random()
  if r < 0.4 then
    i = i % hot + 1
    token = tokens[i]
  elseif r < 0.5 then
    token = tokens[math.random(1, #tokens)]
  elseif r < 0.75 then
    token = common.random_b64url(36) .. "." .. common.random_b64url(180) .. "." .. common.random_b64url(86)
  else
    token = prefix .. common.random_b64url(86)
  end
  return wrk.format("POST", "/introspect",
    {["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = auth},
    "token=" .. token)
end

done = common.done
