-- The values load.py spreads over the benchmark documents, for the search scripts.
local M = {}
M.patients = tonumber(os.getenv("BENCH_PATIENTS") or "10000")
M.types = { "18842-5", "11506-3", "34117-2", "28570-0", "11488-4", "18748-4", "57133-1", "34111-5", "11526-1", "60591-5" }
M.categories = { "clinical-note", "imaging", "laboratory" }
M.category_system = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"

function M.seed()
  math.randomseed(tonumber(tostring({}):match("0x(%x+)") or "1", 16) % 2147483647)
end

function M.patient()
  return "pat-" .. math.random(0, M.patients - 1)
end

function M.pick(list)
  return list[math.random(#list)]
end

-- A day within the documents' six years (2019-2024).
function M.day()
  return string.format("%04d-%02d-%02d", math.random(2019, 2024), math.random(1, 12), math.random(1, 28))
end

return M
