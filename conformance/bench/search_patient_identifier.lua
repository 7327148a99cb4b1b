-- Patient?identifier=S|V
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local terms = require("terms")
terms.seed()
request = function()
  return wrk.format("GET", "/fhir/Patient?identifier=urn:bench:mrn%7Cmrn-" .. math.random(0, terms.patients - 1))
end
done = common.done
