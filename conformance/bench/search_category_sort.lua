-- DocumentReference?patient=X&category=C&_sort=-date
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local terms = require("terms")
terms.seed()
request = function()
  return wrk.format("GET", "/fhir/DocumentReference?patient=" .. terms.patient()
    .. "&category=" .. terms.category_system .. "%7C" .. terms.pick(terms.categories)
    .. "&_sort=-date")
end
done = common.done
