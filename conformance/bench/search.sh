#!/usr/bin/env bash
# Search benchmark (not a test): loads PATIENTS patients and DOCS DocumentReferences
# through transaction Bundles into a fresh release server, reports the load rate and
# database bytes per resource, runs the three benchmark searches with wrk, records their
# PostgreSQL plans (EXPLAIN ANALYZE) and measures creates with every index maintained.
# Writes bench-results/search.md.
#
#   conformance/bench/search.sh                          # 10,000 patients, 1,000,000 documents
#   BENCH_DOCS=100000 BENCH_DURATION=5 conformance/bench/search.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. conformance/bench/lib.sh

PATIENTS=${BENCH_PATIENTS:-10000}
DOCS=${BENCH_DOCS:-1000000}
LEVELS=${BENCH_CONCURRENCY:-"16 64"}
LOAD_WORKERS=${BENCH_LOAD_WORKERS:-4}

bench_start_server
TABLE=$RESULTS/search.md
echo "loading $PATIENTS patients and $DOCS documents" >&2
LOAD=$(python3 "$BENCH_DIR/load.py" "$BASE" "$PATIENTS" "$DOCS" "$LOAD_WORKERS" 1000)
bench_psql -c "VACUUM ANALYZE" >/dev/null
DB_BYTES=$(bench_psql -c "SELECT pg_database_size('fhirledger')")
RESOURCES=$(bench_psql -c "SELECT count(*) FROM resources")
python3 - "$LOAD" "$DB_BYTES" "$RESOURCES" >"$TABLE" <<'PY'
import json, sys
load, db_bytes, resources = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print("| load (transaction Bundles of 1,000) | resources | seconds | resources/s | Bundle p50 s | Bundle max s |")
print("|---|---:|---:|---:|---:|---:|")
for name in ("patients", "documents"):
    f = load[name]
    print(f"| {name} | {f['count']:,} | {f['seconds']} | {f['per_second']:,} | {f['bundle_p50_s']} | {f['bundle_max_s']} |")
print()
print(f"Database size after load: {db_bytes / 2**30:.2f} GiB for {resources:,} resources = {db_bytes / resources:,.0f} bytes per resource.")
PY
{
    echo
    bench_psql -F ' | ' -c "SELECT '| ' || relname, pg_size_pretty(pg_total_relation_size(relid)) || ' |' FROM pg_statio_user_tables ORDER BY pg_total_relation_size(relid) DESC" \
        | sed '1i | table (with its indexes) | size |\n|---|---:|'
    echo
    echo "| search | concurrency | requests/s | p50 ms | p99 ms | errors | server RSS MiB (peak) |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
} >>"$TABLE"
for c in $LEVELS; do
    wrk_row "DocumentReference?patient&type&date=ge&_count=20" "$c" search_type_date.lua BENCH_PATIENTS="$PATIENTS" >>"$TABLE"
    wrk_row "DocumentReference?patient&category&_sort=-date" "$c" search_category_sort.lua BENCH_PATIENTS="$PATIENTS" >>"$TABLE"
    wrk_row "Patient?identifier" "$c" search_patient_identifier.lua BENCH_PATIENTS="$PATIENTS" >>"$TABLE"
done

# Creates with every index maintained, into the loaded database (the REST core figure was
# measured the same way into a nearly empty one).
bench_psql -c "SELECT id FROM resources WHERE resource_type = 'DocumentReference' LIMIT 100" >"$WORK/ids.txt"
{
    echo
    echo "| create with indexes | concurrency | requests/s | p50 ms | p99 ms | errors | server RSS MiB (peak) |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
} >>"$TABLE"
for c in $LEVELS; do
    wrk_row "POST DocumentReference" "$c" create.lua BENCH_IDS="$WORK/ids.txt" >>"$TABLE"
done

explain() {
    echo
    echo "\`$1\`"
    echo
    echo '```'
    FHIRLEDGER_LOG=warn $RELEASE/fhirledger explain --database-url "$DATABASE_URL" "$1"
    echo '```'
}
{
    echo
    echo "### Plans (EXPLAIN ANALYZE, BUFFERS) on the loaded database"
    explain "DocumentReference?patient=pat-4242&type=http://loinc.org|11506-3&date=ge2021-06-01&_count=20"
    explain "DocumentReference?patient=pat-4242&category=http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category|clinical-note&_sort=-date"
    explain "Patient?identifier=urn:bench:mrn|mrn-4242"
} >>"$TABLE"
echo >&2
cat "$TABLE"
