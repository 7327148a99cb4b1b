-- GET one portal page (BENCH_PATH) as a signed-in person: the session cookie
-- (BENCH_COOKIE) is all a browser sends, so no bearer token (portal.sh runs
-- this with BENCH_TOKEN empty).
--
-- A page the session cannot see does not fail as HTTP does: an expired or
-- refused session is a 303 to sign-in, and a service error is an HTML problem
-- page. wrk counts neither as an error (only statuses >= 400), so every
-- response is checked here: anything but a 200 whose body holds BENCH_EXPECT
-- counts as a status error in the summary line.
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local path = os.getenv("BENCH_PATH")
local expect = os.getenv("BENCH_EXPECT")
wrk.headers["Cookie"] = "fhirledger_portal=" .. os.getenv("BENCH_COOKIE")
wrk.headers["Accept"] = "text/html"

-- Each thread's Lua state has its own counter; done() runs in yet another
-- state and reads them through the thread objects kept by setup().
local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end

-- a global, so that thread:get("bad") finds it in the thread's state
bad = 0
request = function()
  return wrk.format("GET", path)
end
response = function(status, headers, body)
  -- plain find: BENCH_EXPECT is text, not a pattern
  if status ~= 200 or not body or not body:find(expect, 1, true) then
    bad = bad + 1
  end
end

done = function(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + (tonumber(t:get("bad")) or 0)
  end
  -- A >= 400 is in both counts; keep the larger rather than add them twice.
  if total > summary.errors.status then
    summary.errors.status = total
  end
  common.done(summary, latency, requests)
end
