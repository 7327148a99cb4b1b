-- DocumentReference?patient=X&type=Y&date=geZ&_count=20
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local terms = require("terms")
terms.seed()
request = function()
  return wrk.format("GET", "/fhir/DocumentReference?patient=" .. terms.patient()
    .. "&type=http://loinc.org%7C" .. terms.pick(terms.types)
    .. "&date=ge" .. terms.day() .. "&_count=20")
end
done = common.done
