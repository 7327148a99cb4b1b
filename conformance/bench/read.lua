-- GET a random seeded DocumentReference.
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")
-- each wrk thread has its own Lua state: seed it from that state's address
math.randomseed(tonumber(tostring({}):match("0x(%x+)") or "1", 16) % 2147483647)
local ids = common.load_ids(os.getenv("BENCH_IDS"))
request = function()
  return wrk.format("GET", "/fhir/DocumentReference/" .. ids[math.random(#ids)])
end
done = common.done
