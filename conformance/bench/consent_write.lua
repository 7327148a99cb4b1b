-- PUT a random Consent from BENCH_BODIES (lines "id<TAB>json", from consents.py bodies).
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")
-- each wrk thread has its own Lua state: seed it from that state's address
math.randomseed(tonumber(tostring({}):match("0x(%x+)") or "1", 16) % 2147483647)
local ids, bodies = {}, {}
for line in io.lines(os.getenv("BENCH_BODIES")) do
  local id, body = line:match("^([^\t]+)\t(.+)$")
  if id then
    ids[#ids + 1] = id
    bodies[#bodies + 1] = body
  end
end
local headers = common.with_auth({ ["Content-Type"] = "application/fhir+json", ["Prefer"] = "return=minimal" })
request = function()
  local i = math.random(#ids)
  return wrk.format("PUT", "/fhir/Consent/" .. ids[i], headers, bodies[i])
end
done = common.done
