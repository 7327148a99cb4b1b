#!/usr/bin/env bash
# Benchmark harness (not a test) for SMART authorization: reads of a
# DocumentReference with token validation and scope checks (a plain system/
# scope, and a granular one whose filter is checked per read), the same reads
# on a build without them (BENCH_BASELINE_BIN, e.g. the REST core commit
# built in a worktree), and the token endpoint under backend clients.
#
#   conformance/bench/auth.sh
#   BENCH_BASELINE_BIN=/path/to/old/fhirledger conformance/bench/auth.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. conformance/bench/lib.sh

# The token load is one backend client at full speed: the endpoint's
# capacity is measured, not the per-client limit (600 a minute by default).
export FHIRLEDGER_TOKEN_REQUESTS_PER_CLIENT_PER_MINUTE=0

LEVELS=${BENCH_CONCURRENCY:-"16 64"}
SEED=${BENCH_SEED_COUNT:-5000}
TABLE=$RESULTS/auth.md
{
    echo "| operation | concurrency | requests/s | p50 ms | p99 ms | errors | server RSS MiB (peak) |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
} >"$TABLE"

reads() {
    local label=$1
    python3 "$BENCH_DIR/seed.py" "$BASE" "$SEED" "$BENCH_DIR/document.json" >"$WORK/ids.txt"
    for c in $LEVELS; do
        wrk_row "$label" "$c" read.lua BENCH_IDS="$WORK/ids.txt" >>"$TABLE"
    done
}

if [ -n "${BENCH_BASELINE_BIN:-}" ]; then
    BENCH_SERVER_BIN=$BENCH_BASELINE_BIN BENCH_NO_AUTH=1 bench_start_server
    reads "read, no authorization (baseline build)"
    bench_stop_server
    trap - EXIT
fi

bench_start_server
reads "read, bearer token + scope check"
# A granular scope: every read also checks the document against the scope's
# filter (one indexed probe), as patient/ and user/ tokens do for their context.
GRANULAR=$(FHIRLEDGER_BIN=$RELEASE/fhirledger $RELEASE/examples/smart_bench \
    token "$DATABASE_URL" "http://127.0.0.1:$PORT" "system/DocumentReference.r?status=current")
for c in $LEVELS; do
    wrk_row "read, granular scope (filter checked per read)" "$c" read.lua \
        BENCH_IDS="$WORK/ids.txt" BENCH_TOKEN="$GRANULAR" >>"$TABLE"
done
for c in $LEVELS; do
    out=$(FHIRLEDGER_BIN=$RELEASE/fhirledger $RELEASE/examples/smart_bench \
        token-load "$DATABASE_URL" "http://127.0.0.1:$PORT" "$DURATION" "$c")
    python3 - "token (client_credentials, ES384)" "$c" "$out" "$(mem_kib VmRSS)" "$(mem_kib VmHWM)" <<'PY' >>"$TABLE"
import json, sys
label, c, raw, rss, hwm = sys.argv[1:6]
r = json.loads(raw)
rps = r["requests"] / (r["duration_us"] / 1e6)
print(f"| {label} | {c} | {rps:,.0f} | {r['p50_us']/1000:.2f} | {r['p99_us']/1000:.2f} | {r['status_errors']} | {int(rss)/1024:.0f} ({int(hwm)/1024:.0f}) |")
PY
done
echo >&2
cat "$TABLE"
