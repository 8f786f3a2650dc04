-- Shared by the benchmark scripts: one JSON line with the figures the report needs.
local M = {}

function M.done(summary, latency, requests)
  local errors = summary.errors
  local non2xx = errors.status
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "rps": %.1f, ' ..
    '"lat_mean_us": %.1f, "lat_p50_us": %d, "lat_p90_us": %d, "lat_p99_us": %d, "lat_max_us": %d, ' ..
    '"err_connect": %d, "err_read": %d, "err_write": %d, "err_status": %d, "err_timeout": %d}\n',
    summary.requests, summary.duration, summary.bytes, summary.requests / (summary.duration / 1e6),
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    errors.connect, errors.read, errors.write, non2xx, errors.timeout))
end

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

function M.random_b64url(n)
  local t = {}
  for i = 1, n do
    local k = math.random(1, 64)
    t[i] = alphabet:sub(k, k)
  end
  return table.concat(t)
end

return M
