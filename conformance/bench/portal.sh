#!/usr/bin/env bash
# Portal benchmark (not a test), issue 14 item 6: the patient's dashboard and
# access-log pages at p99 <= 50 ms, concurrency 16, for a patient with
# BENCH_DOCUMENTS documents (default 1,000) and BENCH_EVENTS access-log entries
# (default 100,000). On a release build with `fhirledger dev`'s chain:
#  1. the demo patient's documents created through the API (backend token),
#     dated over five years so that the dashboard's `-date` sort has work to do;
#  2. the demo doctor reads one of them through the portal: that real event
#     (a doctor, through the portal, "hospital staff") is the template of the
#     log's other entries, copied in SQL with fresh ids and times over the past
#     year, each with its pending leaf (portal_events.sql), then sequenced and
#     anchored by the server, so the pages show real "Verified on chain" marks;
#  3. the patient signs in as a browser does; each page is checked once (200,
#     the expected rows) and then driven by wrk with the session cookie alone
#     (portal.lua; a non-200 or a page without its expected text is an error):
#     the dashboard, the access log's first page, and its tenth page (through
#     the "Older entries" cursors) at 1 and 16 clients; beside each row, the
#     CPU a request cost the server, PostgreSQL and the rest of the machine.
# Every page view is itself audited, so the log grows during the run, as it
# would in use. Writes bench-results/portal.md.
#
#   conformance/bench/portal.sh
#   BENCH_DURATION=5 BENCH_EVENTS=10000 conformance/bench/portal.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
# Away from the dev server's 18500 and the other harnesses' 18080.
BENCH_PORT=${BENCH_PORT:-18090}
. conformance/bench/lib.sh
ensure_chain_deps

DOCUMENTS=${BENCH_DOCUMENTS:-1000}
EVENTS=${BENCH_EVENTS:-100000}
LEVELS=${BENCH_CONCURRENCY:-"1 16"}
ORIGIN=http://127.0.0.1:$PORT
TABLE=$RESULTS/portal.md

# sign_in EMAIL JAR: signs in to the portal as a browser does (sign-in, the
# authorization server's login form, the code flow back to /portal/callback)
# and prints the session cookie's value.
sign_in() {
    local email=$1 jar=$2 authorize continued request back status
    rm -f "$jar"
    authorize=$(curl -s -c "$jar" -b "$jar" -o /dev/null -w "%{redirect_url}" "$ORIGIN/portal/sign-in?next=/portal")
    continued=$(curl -s -c "$jar" -b "$jar" -o /dev/null -w "%{redirect_url}" "$authorize")
    request=${continued##*request=}
    curl -s -c "$jar" -b "$jar" -o /dev/null \
        --data-urlencode "request=$request" --data-urlencode "email=$email" \
        --data-urlencode "password=fhirledger-demo" "$ORIGIN/auth/login"
    back=$(curl -s -c "$jar" -b "$jar" -o /dev/null -w "%{redirect_url}" "$ORIGIN/auth/continue?request=$request")
    status=$(curl -s -c "$jar" -b "$jar" -o /dev/null -w "%{http_code}" "$back")
    [ "$status" = 303 ] || { echo "sign-in of $email ended with $status at $back" >&2; return 1; }
    # The cookie is HttpOnly: curl's jar writes its line as "#HttpOnly_<domain> ...".
    awk '$6 == "fhirledger_portal" {print $7}' "$jar"
}

# page PATH: the page as the signed-in patient sees it (status on the last line).
page() { curl -s -H "Cookie: fhirledger_portal=$PATIENT_COOKIE" -w "\n%{http_code}" "$ORIGIN$1"; }

# check_page PATH TEXT ROWS_PATTERN ROWS: fails unless PATH answers 200 with
# TEXT in it and exactly ROWS matches of ROWS_PATTERN (what the page lists).
check_page() {
    local path=$1 text=$2 pattern=$3 rows=$4 body status n
    body=$(page "$path")
    status=${body##*$'\n'}
    n=$(grep -o -- "$pattern" <<<"$body" | wc -l)
    if [ "$status" != 200 ] || ! grep -qF -- "$text" <<<"$body" || [ "$n" != "$rows" ]; then
        echo "$path: status $status, '$text' $(grep -cF -- "$text" <<<"$body") times, $n rows of '$pattern' (want $rows)" >&2
        head -c 2000 <<<"$body" >&2
        return 1
    fi
    echo "$path: 200, $n rows, $(grep -o "Verified on chain" <<<"$body" | wc -l) verified on chain" >&2
}

# As ledger.sh's: every leaf written so far sequenced and the head anchored
# (asked of the database: any page view would add leaves of its own).
wait_anchored() {
    local deadline=$(( $(date +%s) + ${1:-600} )) target
    while [ "$(bench_psql -c "SELECT count(*) FROM merkle_pending")" != 0 ]; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "leaves still pending" >&2; return 1; }
        sleep 0.2
    done
    target=$(bench_psql -c "SELECT tree_size FROM merkle_head")
    while [ "$(bench_psql -c "SELECT coalesce(max(tree_size), 0) >= $target FROM merkle_checkpoints")" != t ]; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "size $target not anchored in time" >&2; return 1; }
        sleep 0.2
    done
}

bench_start_server
grep -q -- "--contract 0x" "$WORK/server.out" || { echo "the dev server started no chain:" >&2; cat "$WORK/server.out" >&2; exit 1; }
# The demo patient, as the account the portal signs in with names it.
PATIENT=$(bench_psql -c "SELECT fhir_user FROM auth_users WHERE email = 'patient@hospital.example'")
PATIENT=${PATIENT#Patient/}
[ -n "$PATIENT" ] || { echo "no demo patient account" >&2; exit 1; }

# 1. The patient's documents, through the API: the bench document, made theirs
# (subject, author and custodian of the demo data), each with its own
# identifier, kind and date.
echo "creating $DOCUMENTS documents of Patient/$PATIENT" >&2
python3 - "$BASE" "$DOCUMENTS" "$BENCH_DIR/document.json" "$PATIENT" >"$WORK/documents.txt" <<'PY'
import concurrent.futures, copy, datetime, json, os, sys, urllib.request
base, count, path, patient = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
template = json.load(open(path))
kinds = [("18842-5", "Discharge summary"), ("11506-3", "Progress note"),
         ("11502-2", "Laboratory report"), ("18748-4", "Diagnostic imaging study")]
start = datetime.datetime(2021, 12, 1, tzinfo=datetime.timezone.utc)

def create(i):
    d = copy.deepcopy(template)
    d["subject"] = {"reference": f"Patient/{patient}", "display": "Pat Example"}
    d["context"]["sourcePatientInfo"] = {"reference": f"Patient/{patient}"}
    d["author"] = [{"reference": "Practitioner/demo-doctor", "display": "Dr Doc Example"},
                   {"reference": "Organization/demo-hospital"}]
    d["custodian"] = {"reference": "Organization/demo-hospital", "display": "Demo Hospital"}
    d["identifier"][0]["value"] = f"urn:uuid:00000000-0000-4000-8000-{i:012d}"
    d["masterIdentifier"]["value"] = f"urn:oid:1.3.6.1.4.1.21367.2005.3.7.{i}"
    code, display = kinds[i % len(kinds)]
    d["type"]["coding"][0].update(code=code, display=display)
    d["content"][0]["attachment"]["title"] = display
    # Five years, about every other day, not in creation order.
    when = start + datetime.timedelta(minutes=(i * 7919) % (5 * 365 * 1440))
    d["date"] = when.isoformat(timespec="seconds").replace("+00:00", "Z")
    req = urllib.request.Request(f"{base}/DocumentReference", data=json.dumps(d).encode(), method="POST",
        headers={"Content-Type": "application/fhir+json", "Prefer": "return=minimal",
                 "Authorization": f"Bearer {os.environ['BENCH_TOKEN']}"})
    with urllib.request.urlopen(req) as resp:
        return resp.headers["Location"].split("/DocumentReference/")[1].split("/")[0]

with concurrent.futures.ThreadPoolExecutor(8) as pool:
    for id_ in pool.map(create, range(count)):
        print(id_)
PY

# 2. The access log. Its template: the demo doctor reading one of the
# documents in the portal.
DOCTOR_COOKIE=$(sign_in doctor@hospital.example "$WORK/doctor.jar")
status=$(curl -s -o /dev/null -w "%{http_code}" -H "Cookie: fhirledger_portal=$DOCTOR_COOKIE" \
    "$ORIGIN/portal/documents/$(head -n 1 "$WORK/documents.txt")")
[ "$status" = 200 ] || { echo "the doctor's read of a document answered $status" >&2; exit 1; }
TEMPLATE=$(bench_psql -c "SELECT id FROM audit_events WHERE patient_id = '$PATIENT'
    AND content LIKE '%\"code\":\"read\"%' AND content LIKE '%Practitioner/demo-doctor%' ORDER BY seq DESC LIMIT 1")
[ -n "$TEMPLATE" ] || { echo "no read event of the doctor to copy" >&2; exit 1; }
bench_psql -v template="$TEMPLATE" -f "$BENCH_DIR/portal_events.sql" >/dev/null
have=$(bench_psql -c "SELECT count(*) FROM audit_events WHERE patient_id = '$PATIENT'")
echo "growing the log of Patient/$PATIENT from $have to $EVENTS entries" >&2
start=$(date +%s.%N)
if [ "$have" -lt "$EVENTS" ]; then
    # Over the past year up to now, in time order, as a year of use would be.
    bench_psql -c "SET synchronous_commit = off" \
        -c "SELECT bench_portal_events($((EVENTS - have)), now() - interval '365 days', interval '365 days' / $((EVENTS - have)))" >/dev/null
fi
wait_anchored
load_s=$(python3 -c "import time; print(round(time.time() - $start))")
bench_psql -c "DROP FUNCTION bench_portal_events" -c "DROP TABLE bench_portal_template" >/dev/null
# Autovacuum would have done it in a year of use; without it the planner sees
# the trail as it was before the copies.
bench_psql -c "VACUUM ANALYZE audit_events" -c "VACUUM ANALYZE merkle_leaves" >/dev/null

# 3. The patient's pages.
PATIENT_COOKIE=$(sign_in patient@hospital.example "$WORK/patient.jar")
wait_anchored
documents=$(bench_psql -c "SELECT count(*) FROM resources WHERE resource_type = 'DocumentReference' AND NOT deleted")
entries=$(bench_psql -c "SELECT count(*) FROM audit_events WHERE patient_id = '$PATIENT'")
check_page /portal "Your whole access log" 'href="/portal/documents/' 10
check_page /portal/documents "Older documents" 'href="/portal/documents/' 25
check_page /portal/access-log "Older entries" '<tr' 26
# The tenth page: nine "Older entries" cursors on. Its entries stay the same
# through the run (a cursor is a position in the log, and new entries come
# before it), so the row measures an old page, not the head of the log.
next=/portal/access-log
for _ in $(seq 1 9); do
    next=$(page "$next" | grep -o 'href="/portal/access-log?cursor=[^"]*"' | head -n 1 | cut -d'"' -f2)
    [ -n "$next" ] || { echo "the access log has fewer than 10 pages" >&2; exit 1; }
done
TENTH=$next
check_page "$TENTH" "Verified on chain" '<tr' 26

# Thousands separated whatever the locale.
thousands() { python3 -c "print(f'{$1:,}')"; }
{
    echo "Patient/$PATIENT with $(thousands "$documents") documents and $(thousands "$entries") access-log entries (the log grown to $(thousands "$EVENTS") in ${load_s} s, then sequenced and anchored by the server before the runs); ${DURATION} s a row, every response checked for its page's content."
    echo
    echo "| page | concurrency | requests/s | p50 ms | p99 ms | errors | server RSS MiB (peak) |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
} >"$TABLE"
# At concurrency 16 these pages are bound by CPU, which the server, PostgreSQL
# and wrk share: where each request's CPU goes says what to make cheaper.
# cpu_ticks: ticks (1/100 s) used so far by the server, by this cluster's
# PostgreSQL (the postmaster and its children; another cluster on the host,
# such as a dev server's, is not counted) and by the whole machine (busy
# time in /proc/stat: wrk, and anything else running, is the difference).
cpu_ticks() {
    local pm
    pm=$(head -n 1 "$WORK/data/pgdata/postmaster.pid")
    {
        awk '{print "server", $14 + $15}' "/proc/$SERVER/stat"
        for p in $pm $(pgrep -P "$pm"); do awk '{print "pg", $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done
        awk '$1 == "cpu" {print "all", $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
    } | awk '{t[$1] += $2} END {print t["server"] + 0, t["pg"] + 0, t["all"] + 0}'
}
CPU_TABLE=$WORK/cpu.md
row() {
    local label=$1 c=$2 path=$3 expect=$4 before after requests
    before=$(cpu_ticks)
    wrk_row "$label" "$c" portal.lua BENCH_TOKEN= BENCH_COOKIE="$PATIENT_COOKIE" BENCH_PATH="$path" BENCH_EXPECT="$expect"
    after=$(cpu_ticks)
    requests=$(tail -n 1 "$RESULTS/raw.txt" | sed 's/.*"requests":\([0-9]*\).*/\1/')
    python3 - "$label" "$c" "$requests" $before $after >>"$CPU_TABLE" <<'PY'
import sys
label, c, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
b = list(map(int, sys.argv[4:7])); a = list(map(int, sys.argv[7:10]))
server, pg, busy = ((a[i] - b[i]) * 10 / max(n, 1) for i in range(3))
print(f"| {label} | {c} | {server:.2f} | {pg:.2f} | {busy - server - pg:.2f} |")
PY
}
{
    echo "| page | concurrency | server CPU ms/request | PostgreSQL CPU ms/request | rest of the machine (wrk, others) ms/request |"
    echo "|---|---:|---:|---:|---:|"
} >"$CPU_TABLE"
for c in $LEVELS; do
    row "dashboard (\`/portal\`)" "$c" /portal "Your whole access log" >>"$TABLE"
done
for c in $LEVELS; do
    row "access log, first page (\`/portal/access-log\`)" "$c" /portal/access-log "Older entries" >>"$TABLE"
done
row "access log, tenth page (\`?cursor=…\`)" 16 "$TENTH" "Verified on chain" >>"$TABLE"
# Not in the target: the page the dashboard's "All your documents" opens.
row "all documents, first page (\`/portal/documents\`)" 16 /portal/documents "Older documents" >>"$TABLE"
entries=$(bench_psql -c "SELECT count(*) FROM audit_events WHERE patient_id = '$PATIENT'")
{
    echo
    echo "The patient's log held $(thousands "$entries") entries after the runs (each page view adds its own)."
    echo
    cat "$CPU_TABLE"
} >>"$TABLE"
echo >&2
cat "$TABLE"
