#!/usr/bin/env bash
# Consent benchmark (not a test): over search.sh's data set (PATIENTS patients, DOCS
# DocumentReferences) every patient holds one to three Consents in force (consents.py).
# Doctors read with user tokens from the real authorization code flow; the same searches
# and reads with the backend client's system token (not subject to Consent) run in the
# same run beside them, and Consent writes beside writes of draft Consents (which keep
# no rules). Writes bench-results/consent.md.
#
#   conformance/bench/consent.sh                          # 10,000 patients, 1,000,000 documents
#   BENCH_DOCS=100000 BENCH_PATIENTS=1000 BENCH_DURATION=5 conformance/bench/consent.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. conformance/bench/lib.sh

PATIENTS=${BENCH_PATIENTS:-10000}
DOCS=${BENCH_DOCS:-1000000}
LOAD_WORKERS=${BENCH_LOAD_WORKERS:-4}

bench_start_server
TABLE=$RESULTS/consent.md
echo "loading $PATIENTS patients and $DOCS documents" >&2
LOAD=$(python3 "$BENCH_DIR/load.py" "$BASE" "$PATIENTS" "$DOCS" "$LOAD_WORKERS" 1000)
echo "loading their Consents" >&2
CONSENTS=$(python3 "$BENCH_DIR/consents.py" load "$BASE" "$PATIENTS" "$LOAD_WORKERS")
bench_psql -c "VACUUM ANALYZE" >/dev/null
RULES=$(bench_psql -c "SELECT count(*) FROM consent_rules")
RULES_SIZE=$(bench_psql -c "SELECT pg_size_pretty(pg_total_relation_size('consent_rules'))")

# Doctors sign in through the authorization code flow, as their apps would.
user_token() {
    FHIRLEDGER_BIN=$RELEASE/fhirledger $RELEASE/examples/smart_bench user-token \
        "$DATABASE_URL" "http://127.0.0.1:$PORT" doctor "$1" "$2" "openid fhirUser user/*.rs"
}
SYSTEM_TOKEN=$BENCH_TOKEN
OWN_DOCTOR=$(user_token bench-hospital-01 Practitioner/bench-practitioner-00)
OTHER_DOCTOR=$(user_token bench-hospital-02 Practitioner/bench-practitioner-50)
BENCH_TOKEN=$OWN_DOCTOR python3 "$BENCH_DIR/consents.py" visible "$BASE" 2000 >"$WORK/ids.txt"
python3 "$BENCH_DIR/consents.py" bodies "$PATIENTS" in-force >"$WORK/in-force.txt"
python3 "$BENCH_DIR/consents.py" bodies "$PATIENTS" draft >"$WORK/draft.txt"

python3 - "$LOAD" "$CONSENTS" "$RULES" "$RULES_SIZE" "$(wc -l <"$WORK/ids.txt")" >"$TABLE" <<'PY'
import json, sys
load, consents = json.loads(sys.argv[1]), json.loads(sys.argv[2])
rules, rules_size, ids = int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
print("| load (transaction Bundles) | resources | seconds | resources/s | Bundle p50 s | Bundle max s |")
print("|---|---:|---:|---:|---:|---:|")
for name, f in (("patients", load["patients"]), ("documents", load["documents"]), ("Consents (500 per Bundle)", consents)):
    print(f"| {name} | {f['count']:,} | {f['seconds']} | {f['per_second']:,} | {f['bundle_p50_s']} | {f['bundle_max_s']} |")
print()
print(f"Consent rules kept: {rules:,} rows, {rules_size} with indexes. Reads pick among {ids:,} documents the hospital's doctor may read.")
PY
{
    echo
    echo "| interaction | caller | concurrency | requests/s | p50 ms | p99 ms | errors | server RSS MiB (peak) |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
} >>"$TABLE"
# wrk_row's label column, split in two here: interaction | caller.
row() {
    local interaction=$1 caller=$2 token=$3 c=$4 script=$5
    shift 5
    wrk_row "$interaction | $caller" "$c" "$script" BENCH_TOKEN="$token" "$@" >>"$TABLE"
}
SEARCH="DocumentReference?patient&type&date=ge&_count=20"
for c in 16 64; do
    row "$SEARCH" "system (no Consent)" "$SYSTEM_TOKEN" "$c" search_type_date.lua BENCH_PATIENTS="$PATIENTS"
    row "$SEARCH" "doctor, own hospital's patients" "$OWN_DOCTOR" "$c" search_type_date.lua BENCH_PATIENTS="$PATIENTS"
    row "$SEARCH" "doctor of another hospital" "$OTHER_DOCTOR" "$c" search_type_date.lua BENCH_PATIENTS="$PATIENTS"
done
for c in 16 64; do
    row "DocumentReference/{id}" "system (no Consent)" "$SYSTEM_TOKEN" "$c" read.lua BENCH_IDS="$WORK/ids.txt"
    row "DocumentReference/{id}" "doctor, own hospital's patients" "$OWN_DOCTOR" "$c" read.lua BENCH_IDS="$WORK/ids.txt"
done
for c in 1 16 64; do
    row "PUT Consent (draft: no rules)" "system" "$SYSTEM_TOKEN" "$c" consent_write.lua BENCH_BODIES="$WORK/draft.txt"
    row "PUT Consent (in force: rules rewritten)" "system" "$SYSTEM_TOKEN" "$c" consent_write.lua BENCH_BODIES="$WORK/in-force.txt"
done
echo >&2
cat "$TABLE"
