-- A patient's access log: the newest page of AuditEvents about one of the
-- BENCH_PATIENTS synthetic patients, as their app asks for it.
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")
math.randomseed(tonumber(tostring({}):match("0x(%x+)") or "1", 16) % 2147483647)
local patients = tonumber(os.getenv("BENCH_PATIENTS") or "10000")
request = function()
  local p = math.random(patients) - 1
  return wrk.format("GET", "/fhir/AuditEvent?patient=Patient/synthetic-" .. p .. "&_count=20")
end
done = common.done
