#!/usr/bin/env bash
# Ledger benchmark (not a test), on a release build with `fhirledger dev`'s
# chain (anvil, 1 s blocks, the AuditAnchor contract deployed on start):
#  1. anchoring pace, on a server of its own: pending leaves (valid format-1
#     AuditEvent leaves with random ids, recorded at their insert) written at
#     BENCH_PACE_RATES leaves/s (default "5000 10000") for BENCH_PACE_SECONDS
#     (default 60) by pgbench, 50 a transaction, then audited reads at c64
#     through the API (whose events are real); for every leaf, the time from
#     its `recorded` to the recording of the first checkpoint covering it
#     (max, p99, mean), and the largest lagSeconds $ledger-status reported
#     meanwhile. The sequencer and the anchoring worker see leaves as from
#     any writer; what writing AuditEvents costs is the audit benchmark's;
#  2. gas per checkpoint, from the receipts of every checkpoint sent;
#  3. on a second server, the log grown to BENCH_LEAVES leaves (default
#     10,000,000; real AuditEvents copied in SQL from a read's event, each
#     with its leaf in the same statement as the trail's append writes them,
#     sequenced and anchored by the server), then `AuditEvent/{id}/$proof`
#     and, beside it, the plain read of the same events, at 16 and 64 clients;
#  4. `fhirledger audit verify` of that whole log: leaves/s and peak memory.
# Writes bench-results/ledger.md.
#
#   conformance/bench/ledger.sh
#   BENCH_LEAVES=1000000 BENCH_PACE_SECONDS=20 conformance/bench/ledger.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. conformance/bench/lib.sh
ensure_chain_deps

LEAVES=${BENCH_LEAVES:-10000000}
PACE_RATES=${BENCH_PACE_RATES:-"5000 10000"}
PACE_SECONDS=${BENCH_PACE_SECONDS:-60}
LEVELS=${BENCH_CONCURRENCY:-"16 64"}
BATCH=1000000
TABLE=$RESULTS/ledger.md

# Starts a dev server with its chain; sets RPC_URL and CONTRACT.
start_with_chain() {
    bench_start_server
    RPC_URL=$(sed -n 's/.*--rpc-url \([^ ]*\) --contract.*/\1/p' "$WORK/server.out")
    CONTRACT=$(sed -n 's/.*--contract \(0x[0-9a-fA-F]*\).*/\1/p' "$WORK/server.out")
    [ -n "$RPC_URL" ] && [ -n "$CONTRACT" ] || { echo "the dev server started no chain:" >&2; cat "$WORK/server.out" >&2; exit 1; }
    python3 "$BENCH_DIR/seed.py" "$BASE" 2000 "$BENCH_DIR/document.json" >"$WORK/ids.txt"
}

status_field() { python3 -c "
import json, sys
p = json.load(sys.stdin)
print(next(x.get('valueDecimal', x.get('valueString', x.get('valueCode'))) for x in p['parameter'] if x['name'] == '$1'))"; }
ledger_status() { curl -sf -H "Authorization: Bearer $BENCH_TOKEN" "$BASE/\$ledger-status"; }
tree_size() { bench_psql -c "SELECT tree_size FROM merkle_head"; }

# Waits until every leaf written so far is sequenced and anchored (asked of
# the database: a $ledger-status call is itself an audited, logged request).
wait_anchored() {
    local deadline=$(( $(date +%s) + ${1:-600} )) target
    while [ "$(bench_psql -c "SELECT count(*) FROM merkle_pending")" != 0 ]; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "leaves still pending" >&2; return 1; }
        sleep 0.2
    done
    target=$(tree_size)
    while [ "$(bench_psql -c "SELECT coalesce(max(tree_size), 0) >= $target FROM merkle_checkpoints")" != t ]; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "size $target not anchored in time" >&2; return 1; }
        sleep 0.2
    done
}

# Samples $ledger-status every half second into $WORK/status.txt until stopped.
sample_status() {
    : >"$WORK/status.txt"
    while :; do
        ledger_status | status_field lagSeconds >>"$WORK/status.txt" 2>/dev/null || true
        sleep 0.5
    done
}

# pace_row LABEL FIRST_LEAF END_LEAF SECONDS: leaves/s and each leaf's
# anchoring delay (first covering checkpoint's recording − its event's recorded).
pace_row() {
    local label=$1 first=$2 end=$3 seconds=$4 worst_status
    worst_status=$(sort -n "$WORK/status.txt" | tail -n 1)
    bench_psql -F ' | ' -c "
SELECT '| $label', to_char(($end - $first) / $seconds::numeric, 'FM999,999'),
       count(*), to_char(max(lag), 'FM990.00'), to_char(percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), 'FM990.00'),
       to_char(avg(lag), 'FM990.00'), '${worst_status:-?}',
       (SELECT count(*) FROM merkle_checkpoints WHERE tree_size > $first AND tree_size <= $end) || ' |'
FROM (
    SELECT extract(epoch FROM c.anchored_at)
           - ('x' || encode(substring(l.leaf_data FROM octet_length(l.leaf_data) - 39 FOR 8), 'hex'))::bit(64)::bigint / 1e6 AS lag
    FROM merkle_leaves l
    CROSS JOIN LATERAL (SELECT anchored_at FROM merkle_checkpoints c WHERE c.tree_size > l.leaf_index ORDER BY c.tree_size LIMIT 1) c
    WHERE l.leaf_index >= $first AND l.leaf_index < $end
) s"
}

# 1. Anchoring pace.
start_with_chain
bench_psql <<'SQL' >/dev/null
-- n pending leaves of format 1 (kind 2, "AuditEvent", a random id, version
-- "1", a random content hash, recorded now, a random salt).
CREATE FUNCTION bench_leaves(n int) RETURNS void LANGUAGE sql AS $$
INSERT INTO merkle_pending (leaf_data)
SELECT '\x0102'::bytea
       || int2send(10::int2) || convert_to('AuditEvent', 'UTF8')
       || int2send(36::int2) || convert_to(gen_random_uuid()::text, 'UTF8')
       || int2send(1::int2) || convert_to('1', 'UTF8')
       || sha256(convert_to(gen_random_uuid()::text, 'UTF8'))
       || int8send((extract(epoch FROM clock_timestamp()) * 1000000)::int8)
       || sha256(convert_to(gen_random_uuid()::text, 'UTF8'))
FROM generate_series(1, n)
$$;
SQL
{
    echo "| load | leaves/s | leaves | max s | p99 s | mean s | worst lagSeconds (\$ledger-status) | checkpoints |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
} >"$TABLE"
wait_anchored
PER_TX=50
for rate in $PACE_RATES; do
    first=$(tree_size)
    sample_status & SAMPLER=$!
    "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -M prepared -c 4 -j 2 \
        -R $(( rate / PER_TX )) -T "$PACE_SECONDS" \
        -f <(echo "SELECT bench_leaves($PER_TX);") fhirledger \
        >"$WORK/pgbench.txt" 2>&1
    wait_anchored
    kill "$SAMPLER"; wait "$SAMPLER" 2>/dev/null || true
    end=$(tree_size)
    echo "pace $rate: $(grep -E '^(tps|number of transactions actually)' "$WORK/pgbench.txt" | tr '\n' ' ')" >&2
    pace_row "leaves at $rate/s (pgbench, ${PACE_SECONDS} s)" "$first" "$end" "$PACE_SECONDS" >>"$TABLE"
done
first=$(tree_size)
sample_status & SAMPLER=$!
DURATION_SAVED=$DURATION
DURATION=$PACE_SECONDS
wrk_row "read (audited)" 64 read.lua BENCH_IDS="$WORK/ids.txt" >"$WORK/reads.txt"
DURATION=$DURATION_SAVED
wait_anchored
kill "$SAMPLER"; wait "$SAMPLER" 2>/dev/null || true
end=$(tree_size)
pace_row "audited reads at c64 through the API (${PACE_SECONDS} s)" "$first" "$end" "$PACE_SECONDS" >>"$TABLE"

# 2. Gas per checkpoint, from every receipt.
bench_psql -c "SELECT '0x' || encode(tx_hash, 'hex') FROM merkle_checkpoints" >"$WORK/txs.txt"
python3 - "$RPC_URL" "$WORK/txs.txt" >>"$TABLE" <<'PY'
import json, sys, urllib.request
url, path = sys.argv[1], sys.argv[2]
gas = []
for tx in open(path).read().split():
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionReceipt", "params": [tx]}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    gas.append(int(json.load(urllib.request.urlopen(req))["result"]["gasUsed"], 16))
print()
print(f"Gas per checkpoint over {len(gas)} checkpoints: min {min(gas):,}, mean {sum(gas) / len(gas):,.0f}, max {max(gas):,}.")
PY

# 3. The log grown to LEAVES leaves on a second server, then proofs.
bench_stop_server
start_with_chain
# One real read's event is the template of every event the harness writes.
curl -sf -o /dev/null -H "Authorization: Bearer $BENCH_TOKEN" "$BASE/DocumentReference/$(head -n 1 "$WORK/ids.txt")"
bench_psql -f "$BENCH_DIR/events.sql" >/dev/null

echo "growing the log to $LEAVES leaves" >&2
start=$(date +%s.%N)
while :; do
    have=$(( $(tree_size) + $(bench_psql -c "SELECT count(*) FROM merkle_pending") ))
    [ "$have" -lt "$LEAVES" ] || break
    n=$(( LEAVES - have < BATCH ? LEAVES - have : BATCH ))
    # Over the past year, in time order, as a year of the trail would be.
    bench_psql -c "SET synchronous_commit = off" \
        -c "SELECT bench_events($n, 10000, now() - interval '365 days' + make_interval(secs => 31536000.0 * $have / $LEAVES), make_interval(secs => 31536000.0 / $LEAVES))" >/dev/null
    echo "  $(( have + n )) leaves written" >&2
done
wait_anchored 3600
load_s=$(python3 -c "import time; print(round(time.time() - $start))")
bench_psql -c "VACUUM ANALYZE" >/dev/null
size=$(tree_size)
log_bytes=$(bench_psql -c "SELECT pg_total_relation_size('merkle_leaves') + pg_total_relation_size('merkle_nodes') + pg_total_relation_size('merkle_tiles')")
bench_psql -c "SELECT id FROM audit_events TABLESAMPLE SYSTEM (2) WHERE patient_id LIKE 'synthetic-%' LIMIT 100000" \
    | shuf >"$WORK/events.txt"
{
    echo
    echo "Log grown to $(printf "%'d" "$size") leaves in ${load_s} s (events and leaves written in SQL, sequenced and anchored by the server); leaves, nodes and tiles take $(python3 -c "print(f'{$log_bytes/2**30:.2f}')") GiB, $((log_bytes / size)) bytes per leaf."
    echo
    echo "| request (100,000 random events of the log) | concurrency | requests/s | p50 ms | p99 ms | errors | server RSS MiB (peak) |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
} >>"$TABLE"
for c in $LEVELS; do
    wrk_row "AuditEvent/{id}/\$proof" "$c" proof.lua BENCH_IDS="$WORK/events.txt" BENCH_PATH_SUFFIX='/$proof' >>"$TABLE"
    wrk_row "AuditEvent/{id} (read)" "$c" proof.lua BENCH_IDS="$WORK/events.txt" BENCH_PATH_SUFFIX= >>"$TABLE"
done

# 4. audit verify of the whole log, on a snapshot of it (the server keeps running).
/usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$RELEASE/fhirledger" audit verify \
    --database-url "$DATABASE_URL" --rpc-url "$RPC_URL" --contract "$CONTRACT" >"$WORK/verify.txt" 2>"$WORK/verify.err" \
    || { cat "$WORK/verify.txt" "$WORK/verify.err" >&2; exit 1; }
{
    echo
    echo "\`fhirledger audit verify\` of the whole log:"
    echo
    echo '```'
    cat "$WORK/verify.txt"
    echo '```'
    read -r seconds kib <"$WORK/time.txt"
    python3 -c "print(f'Wall time {$seconds:.0f} s, peak RSS {$kib / 1024:.0f} MiB.')"
} >>"$TABLE"
echo >&2
cat "$TABLE"
