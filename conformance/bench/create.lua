-- POST a ~1.5 KB DocumentReference.
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")
wrk.method = "POST"
wrk.path = "/fhir/DocumentReference"
wrk.body = common.read_file(os.getenv("BENCH_DIR") .. "/document.json")
wrk.headers["Content-Type"] = "application/fhir+json"
done = common.done
