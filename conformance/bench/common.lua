-- Shared by the wrk scripts: the document body, seeded ids, and a JSON summary.
local M = {}

-- Every request carries the harness's access token (wrk.format uses
-- wrk.headers when a script passes none; M.with_auth adds it otherwise).
local token = os.getenv("BENCH_TOKEN")
if token and #token > 0 then
  wrk.headers["Authorization"] = "Bearer " .. token
end

function M.with_auth(headers)
  if token and #token > 0 then
    headers["Authorization"] = "Bearer " .. token
  end
  return headers
end

function M.read_file(path)
  local f = assert(io.open(path, "r"))
  local s = f:read("*a")
  f:close()
  return s
end

function M.load_ids(path)
  local ids = {}
  for line in io.lines(path) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  return ids
end

-- Prints one JSON line the harness parses.
function M.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end

return M
