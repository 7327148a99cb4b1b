#!/usr/bin/env bash
# Audit benchmark (not a test): what the trail costs and how fast it is read.
#  1. the bytes one AuditEvent adds to the database, from the events of real reads;
#  2. the trail grown to BENCH_EVENTS events (default 10,000,000) over BENCH_PATIENTS
#     patients (default 10,000), copied in SQL from real events with fresh ids,
#     patients and times spread over a year, each with its Merkle log leaf
#     (events.sql, shared with ledger.sh);
#  3. a patient's access log (`AuditEvent?patient=…&_count=20`, newest first) at 16
#     and 64 clients, with its PostgreSQL plan;
#  4. `fhirledger audit export` of one patient's log and of a month of the whole trail,
#     with its peak memory.
# Writes bench-results/audit.md.
#
#   conformance/bench/audit.sh
#   BENCH_EVENTS=1000000 BENCH_DURATION=5 conformance/bench/audit.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. conformance/bench/lib.sh

EVENTS=${BENCH_EVENTS:-10000000}
PATIENTS=${BENCH_PATIENTS:-10000}
LEVELS=${BENCH_CONCURRENCY:-"16 64"}
BATCH=1000000

bench_start_server
python3 "$BENCH_DIR/seed.py" "$BASE" 2000 "$BENCH_DIR/document.json" >"$WORK/ids.txt"
TABLE=$RESULTS/audit.md

# 1. Bytes per event, from real reads (each records one event).
bench_psql -c "VACUUM ANALYZE audit_events" >/dev/null
before_bytes=$(bench_psql -c "SELECT pg_total_relation_size('audit_events')")
before_events=$(bench_psql -c "SELECT count(*) FROM audit_events")
DURATION_SAVED=$DURATION
DURATION=10
wrk_row "read (recording)" 16 read.lua BENCH_IDS="$WORK/ids.txt" >/dev/null
DURATION=$DURATION_SAVED
bench_psql -c "VACUUM ANALYZE audit_events" >/dev/null
after_bytes=$(bench_psql -c "SELECT pg_total_relation_size('audit_events')")
after_events=$(bench_psql -c "SELECT count(*) FROM audit_events")
json_bytes=$(bench_psql -c "SELECT round(avg(octet_length(content))) FROM audit_events")
terms=$(bench_psql -c "SELECT round(avg(cardinality(terms)), 1) || ' indexed, ' || round(avg(cardinality(codes)), 1) || ' coded' FROM audit_events")
{
    echo "| events recorded by reads | table + indexes + TOAST, bytes per event | JSON bytes per event | search values per event |"
    echo "|---:|---:|---:|---:|"
    echo "| $((after_events - before_events)) | $(( (after_bytes - before_bytes) / (after_events - before_events) )) | $json_bytes | $terms |"
    echo
} >"$TABLE"
bench_psql -F ' | ' -c "SELECT '| ' || c.relname, pg_size_pretty(pg_relation_size(c.oid)) || ' |' FROM pg_class c WHERE c.relname LIKE 'audit_events%' OR c.oid = (SELECT reltoastrelid FROM pg_class WHERE relname = 'audit_events') ORDER BY 1" \
    | sed '1i | relation | size |\n|---|---:|' >>"$TABLE"

# 2. The trail grown to EVENTS events, copied from a real read event.
echo "growing the trail to $EVENTS events" >&2
bench_psql -f "$BENCH_DIR/events.sql" >/dev/null
start=$(date +%s.%N)
done_events=0
while [ "$done_events" -lt "$EVENTS" ]; do
    n=$(( EVENTS - done_events < BATCH ? EVENTS - done_events : BATCH ))
    # Over the past year, in time order, each event with its log leaf.
    bench_psql -c "SET synchronous_commit = off" \
        -c "SELECT bench_events($n, $PATIENTS, now() - interval '365 days' + make_interval(secs => 31536000.0 * $done_events / $EVENTS), make_interval(secs => 31536000.0 / $EVENTS))" >/dev/null
    done_events=$((done_events + n))
    echo "  $done_events events" >&2
done
load_s=$(python3 -c "import time; print(round(time.time() - $start))")
bench_psql -c "DROP FUNCTION bench_events" -c "DROP TABLE bench_template" -c "VACUUM ANALYZE audit_events" >/dev/null
total=$(bench_psql -c "SELECT count(*) FROM audit_events")
size=$(bench_psql -c "SELECT pg_total_relation_size('audit_events')")
{
    echo
    echo "Trail grown to $(printf "%'d" "$total") events in ${load_s} s (plain SQL, each with its log leaf, indexes maintained): $(python3 -c "print(f'{$size/2**30:.2f}')") GiB with its indexes, $((size / total)) bytes per event."
    echo
    echo "| patient's access log | concurrency | requests/s | p50 ms | p99 ms | errors | server RSS MiB (peak) |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
} >>"$TABLE"
for c in $LEVELS; do
    wrk_row "AuditEvent?patient=…&_count=20 (newest first)" "$c" audit_log.lua BENCH_PATIENTS="$PATIENTS" >>"$TABLE"
done
{
    echo
    echo "Plan of one page of one patient's log:"
    echo
    echo '```'
    bench_psql -c "EXPLAIN (ANALYZE, BUFFERS) SELECT e.seq, e.id, e.recorded, e.patient_id, e.content FROM audit_events e WHERE (e.patient_id = 'synthetic-4242') ORDER BY e.recorded DESC, e.seq DESC LIMIT 21"
    echo '```'
} >>"$TABLE"

# 4. Exports: one patient's whole log, and a month of everything, with peak memory.
export_row() {
    local label=$1
    shift
    local lines
    # The database is the admin commands' FHIRLEDGER_DATABASE_URL (an option of
    # `audit`, not of `export`).
    lines=$(FHIRLEDGER_DATABASE_URL=$DATABASE_URL /usr/bin/time -f "%e %M" -o "$WORK/time.txt" \
        "$RELEASE/fhirledger" audit export "$@" 2>/dev/null | wc -l)
    python3 - "$label" "$lines" $(cat "$WORK/time.txt") <<'PY'
import sys
label, lines, seconds, kib = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print(f"| {label} | {lines:,} | {seconds:.1f} | {lines / max(seconds, 0.001):,.0f} | {kib / 1024:.0f} |")
PY
}
month_start=$(date -u -d '-40 days' +%Y-%m-%d)
month_end=$(date -u -d '-10 days' +%Y-%m-%d)
{
    echo
    echo "| audit export | events | seconds | events/s | peak RSS MiB |"
    echo "|---|---:|---:|---:|---:|"
    export_row "one patient (--patient synthetic-4242)" --since 2000-01-01 --patient synthetic-4242
    export_row "30 days of the whole trail" --since "$month_start" --until "$month_end"
} >>"$TABLE"
echo >&2
cat "$TABLE"
