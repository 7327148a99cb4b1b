-- GET AuditEvent/{id}{BENCH_PATH_SUFFIX} for random events of BENCH_IDS:
-- `/$proof` for their inclusion proofs, empty for the plain read beside it.
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")
math.randomseed(tonumber(tostring({}):match("0x(%x+)") or "1", 16) % 2147483647)
local ids = common.load_ids(os.getenv("BENCH_IDS"))
local suffix = os.getenv("BENCH_PATH_SUFFIX") or ""
request = function()
  return wrk.format("GET", "/fhir/AuditEvent/" .. ids[math.random(#ids)] .. suffix)
end
done = common.done
