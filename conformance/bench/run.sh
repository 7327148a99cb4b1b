#!/usr/bin/env bash
# Benchmark harness (not a test): a release build of fhirledger with its own
# private PostgreSQL cluster, loaded by wrk on loopback, plus the plain-SQL
# ceiling with pgbench. Prints a Markdown table and keeps the raw figures in
# bench-results/.
#
#   conformance/bench/run.sh                 # create, read, update at 1, 16, 64
#   BENCH_DURATION=5 conformance/bench/run.sh  # shorter runs
set -euo pipefail
cd "$(dirname "$0")/../.."
. conformance/bench/lib.sh

LEVELS=${BENCH_CONCURRENCY:-"1 16 64"}
OPS=${BENCH_OPS:-"create read update"}
SEED=${BENCH_SEED_COUNT:-5000}

bench_start_server
python3 "$BENCH_DIR/seed.py" "$BASE" "$SEED" "$BENCH_DIR/document.json" >"$WORK/ids.txt"
echo "seeded $(wc -l <"$WORK/ids.txt") documents" >&2

TABLE=$RESULTS/rest-core.md
{
    echo "| operation | concurrency | requests/s | p50 ms | p99 ms | errors | server RSS MiB (peak) |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
} >"$TABLE"
for op in $OPS; do
    for c in $LEVELS; do
        wrk_row "$op" "$c" "$op.lua" BENCH_IDS="$WORK/ids.txt" >>"$TABLE"
    done
done

# The ceiling: the same create statements as plain SQL, straight into PostgreSQL.
PGBENCH=$PG_BIN/pgbench
TEMPLATE=$(bench_psql -c "SELECT min(res_id) FROM resources WHERE resource_type = 'DocumentReference'")
{
    echo
    echo "| plain SQL (pgbench) | clients | transactions/s | mean latency ms |"
    echo "|---|---:|---:|---:|"
} >>"$TABLE"
for c in $LEVELS; do
    threads=$(( c < 2 ? 1 : 2 ))
    out=$("$PGBENCH" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -M prepared -D template="$TEMPLATE" -c "$c" -j "$threads" -T "$DURATION" \
        -f "$BENCH_DIR/create.pgbench.sql" fhirledger 2>&1)
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    echo "| create statements | $c | ${tps%.*} | $lat |" >>"$TABLE"
done
echo >&2
cat "$TABLE"
