-- PUT a new version of a random seeded DocumentReference.
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")
-- each wrk thread has its own Lua state: seed it from that state's address
math.randomseed(tonumber(tostring({}):match("0x(%x+)") or "1", 16) % 2147483647)
local ids = common.load_ids(os.getenv("BENCH_IDS"))
local template = common.read_file(os.getenv("BENCH_DIR") .. "/document.json")
  :gsub('"resourceType": "DocumentReference",', '"resourceType": "DocumentReference", "id": "__ID__",', 1)
local headers = common.with_auth({ ["Content-Type"] = "application/fhir+json" })
request = function()
  local id = ids[math.random(#ids)]
  return wrk.format("PUT", "/fhir/DocumentReference/" .. id, headers, (template:gsub("__ID__", id)))
end
done = common.done
