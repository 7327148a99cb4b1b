#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2317 # functions called through retry
# A manual smoke check of the cluster deploy/ha/start.sh runs in DIR
# (argument, else $FHIRLEDGER_HA_DIR, else /tmp/fhirledger-ha): not a test of
# the project's suite.
#
#   deploy/ha/failover-check.sh [DIR]
#
# 1. waits for a leader with a streaming synchronous standby;
# 2. inserts numbered rows through HAProxy, one psql (one connection, one
#    autocommitted INSERT) per row, as the application's role, into the
#    database fhirledger_ha_check, and records each id whose INSERT came back
#    (with the times it began and was acknowledged);
# 3. after FHIRLEDGER_HA_CHECK_WARMUP (5) seconds, kill -9s the leader's
#    postmaster (its pid from the leader's postmaster.pid);
# 4. measures the time from the kill until an INSERT through HAProxy is
#    acknowledged again (at most FHIRLEDGER_HA_CHECK_TIMEOUT, 60 s), writes on
#    for FHIRLEDGER_HA_CHECK_AFTER (5) seconds more, then stops writing;
# 5. waits (at most FHIRLEDGER_HA_CHECK_REJOIN_TIMEOUT, 120 s) until the
#    killed node is back as the synchronous standby of the new leader;
# 6. compares the acknowledged ids with the table: every one must be there.
#
# Prints the figures, also kept in DIR/checks/<run>/result (KEY=value). Exits
# 0 when no acknowledged write was lost, the writes came back through HAProxy
# and the killed node rejoined as synchronous standby; 1 otherwise.
set -euo pipefail
export LC_ALL=C # EPOCHREALTIME with a decimal point

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

ha_one_dir_argument "$0" "$@"

HA_DIR="$(ha_resolve_dir "${1:-}")"
DIR="$HA_DIR"
[ -r "$DIR/env" ] || ha_die "no $DIR/env: start the cluster first ($here/start.sh $DIR)"
envv() { ha_env_get "$DIR/env" "$1" || ha_die "$DIR/env has no $1"; }
HA_PG_BIN_DIR="$(envv PG_BIN_DIR)"
HAPROXY_PORT="$(envv HAPROXY_PORT)"
REST1="$(envv NODE1_REST)"
REST2="$(envv NODE2_REST)"
PW_SUPERUSER="$(cat "$(envv SUPERUSER_PASSWORD_FILE)")"
PW_APP="$(cat "$DIR/secrets/fhirledger-password")"
export PGCONNECT_TIMEOUT=2

WARMUP="${FHIRLEDGER_HA_CHECK_WARMUP:-5}"
FAILOVER_TIMEOUT="${FHIRLEDGER_HA_CHECK_TIMEOUT:-60}"
AFTER="${FHIRLEDGER_HA_CHECK_AFTER:-5}"
REJOIN_TIMEOUT="${FHIRLEDGER_HA_CHECK_REJOIN_TIMEOUT:-120}"
# One INSERT may wait this long (connect, commit, synchronous standby); a
# write cut off by it counts as not acknowledged.
WRITE_TIMEOUT="${FHIRLEDGER_HA_CHECK_WRITE_TIMEOUT:-5}"

# psql through HAProxy: as USER with PASSWORD, then psql's arguments.
hpsql() {
    local user="$1" password="$2"
    shift 2
    PGPASSWORD="$password" "$HA_PG_BIN_DIR/psql" -X -q -At -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$HAPROXY_PORT" -U "$user" "$@"
}
# retry SECONDS COMMAND…: until it succeeds, every half second.
retry() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

# --- 1. a healthy cluster -------------------------------------------------------
ha_log "waiting (at most 60s) for a leader with a streaming synchronous standby"
pair="$(ha_wait_sync 60 "$REST1" "$REST2")" \
    || ha_die "the cluster has no leader with a streaming synchronous standby; see: patronictl -c $DIR/node1/patroni.yml list"
leader="${pair%% *}"
standby="${pair##* }"
ha_log "leader $leader, synchronous standby $standby"

setup_db() {
    hpsql postgres "$PW_SUPERUSER" -d postgres <<'SQL'
SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = 'fhirledger_ha_check') AS create_db \gset
\if :create_db
CREATE DATABASE fhirledger_ha_check OWNER fhirledger;
\endif
SQL
    hpsql fhirledger "$PW_APP" -d fhirledger_ha_check \
        -c 'SET client_min_messages = warning' -c 'CREATE TABLE IF NOT EXISTS failover_check (run text, id integer, at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (run, id))'
}
retry 20 setup_db || ha_die "cannot create the check's database through HAProxy (127.0.0.1:$HAPROXY_PORT)"

run="$(date -u +%Y%m%dT%H%M%SZ)-$$"
work="$DIR/checks/$run"
mkdir -p "$work"
: >"$work/acked"
: >"$work/failed"

# --- 2. the writer ------------------------------------------------------------
writer() {
    local id=0 out t0
    export PGPASSWORD="$PW_APP"
    while [ ! -e "$work/stop" ]; do
        id=$((id + 1))
        t0="$EPOCHREALTIME"
        if out="$(timeout -s KILL "$WRITE_TIMEOUT" "$HA_PG_BIN_DIR/psql" -X -q -At -v ON_ERROR_STOP=1 \
            -h 127.0.0.1 -p "$HAPROXY_PORT" -U fhirledger -d fhirledger_ha_check \
            -c "INSERT INTO failover_check (run, id) VALUES ('$run', $id) RETURNING id" 2>>"$work/errors")" \
            && [ "$out" = "$id" ]; then
            echo "$id $t0 $EPOCHREALTIME" >>"$work/acked"
        else
            echo "$id $t0 $EPOCHREALTIME" >>"$work/failed"
            sleep 0.1
        fi
    done
}
writer &
writer_pid=$!
stop_writer() {
    touch "$work/stop"
    wait "$writer_pid" 2>/dev/null || true
}
watch_pid=
trap 'touch "$work/stop"; [ -z "$watch_pid" ] || kill "$watch_pid" 2>/dev/null || true' EXIT

sleep "$WARMUP"
acked_warmup="$(wc -l <"$work/acked")"
[ "$acked_warmup" -gt 0 ] || {
    stop_writer
    tail -n 5 "$work/errors" >&2 || true
    ha_die "no write was acknowledged in ${WARMUP}s through HAProxy"
}

# --- 3. kill -9 the leader's postmaster --------------------------------------
data="$DIR/$leader/data"
pm="$(ha_postmaster_pid "$data")" || { stop_writer; ha_die "no postmaster.pid in $data"; }
ha_is_ours "$pm" "$DIR" || { stop_writer; ha_die "pid $pm of $data/postmaster.pid is not this cluster's postmaster"; }
t_kill="$EPOCHREALTIME"
kill -KILL "$pm"
ha_log "kill -9 $pm (postmaster of $leader) after $acked_warmup acknowledged writes"

# Meanwhile, in the background: when the killed node is back as the
# synchronous standby of the other (Patroni's /cluster, and
# pg_stat_replication on the new leader).
rejoin_watch() {
    local deadline=$((SECONDS + REJOIN_TIMEOUT)) p port
    port="$(ha_env_get "$DIR/settings" "${standby^^}_PG_PORT")"
    while [ "$SECONDS" -lt "$deadline" ]; do
        if p="$(ha_sync_pair "$REST1" "$REST2")" && [ "$p" = "$standby $leader" ] \
            && [ "$(ha_sync_standbys_on "$port" "$(envv SUPERUSER_PASSWORD_FILE)")" = 1 ]; then
            echo "$EPOCHREALTIME" >"$work/rejoined"
            return 0
        fi
        sleep 0.2
    done
}
rejoin_watch &
watch_pid=$!

# --- 4. until writes are acknowledged again -----------------------------------
first_after=
deadline=$((SECONDS + FAILOVER_TIMEOUT))
while [ "$SECONDS" -lt "$deadline" ]; do
    # The first write begun after the kill that was acknowledged (one begun
    # before may still have been acknowledged by the old leader).
    first_after="$(awk -v t="$t_kill" '$2 > t { print $3; exit }' "$work/acked")"
    [ -z "$first_after" ] || break
    sleep 0.1
done
if [ -n "$first_after" ]; then
    ha_log "writes acknowledged again; writing ${AFTER}s more"
    sleep "$AFTER"
else
    ha_log "no write acknowledged within ${FAILOVER_TIMEOUT}s of the kill"
fi
stop_writer

# --- 5. the killed node back as synchronous standby ---------------------------
ha_log "waiting (at most ${REJOIN_TIMEOUT}s from the kill) for $leader to rejoin as synchronous standby"
wait "$watch_pid" || true
watch_pid=
rejoined="$(cat "$work/rejoined" 2>/dev/null)" || rejoined=
new_pair="$(ha_sync_pair "$REST1" "$REST2")" || new_pair="none none"

# --- 6. every acknowledged id in the table -------------------------------------
present_ids() {
    hpsql fhirledger "$PW_APP" -d fhirledger_ha_check \
        -c "SELECT id FROM failover_check WHERE run = '$run'" >"$work/present.tmp" \
        && mv "$work/present.tmp" "$work/present"
}
retry 30 present_ids || ha_die "cannot read the table back through HAProxy"
awk '{ print $1 }' "$work/acked" | sort >"$work/acked.ids"
sort "$work/present" -o "$work/present"
acked="$(wc -l <"$work/acked.ids")"
attempts_failed="$(wc -l <"$work/failed")"
lost="$(comm -23 "$work/acked.ids" "$work/present" | wc -l)"
unacked_present="$(comm -13 "$work/acked.ids" "$work/present" | wc -l)"
comm -23 "$work/acked.ids" "$work/present" >"$work/lost.ids"

# The same rows on the standby (the killed node, now following): it is
# synchronous, so they are flushed there; wait briefly for them to be applied.
on_standby=unknown
if [ -n "$rejoined" ]; then
    sport="$(ha_env_get "$DIR/settings" "${leader^^}_PG_PORT")"
    standby_count() {
        on_standby="$(PGPASSWORD="$PW_SUPERUSER" "$HA_PG_BIN_DIR/psql" -X -q -At -h 127.0.0.1 -p "$sport" -U postgres \
            -d fhirledger_ha_check -c "SELECT count(*) FROM failover_check WHERE run = '$run'" 2>/dev/null)" \
            && [ "$on_standby" -ge "$(wc -l <"$work/present")" ]
    }
    retry 10 standby_count || true
fi

fmt() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
last_before="$(awk -v t="$t_kill" '$3 <= t { v = $3 } END { print v }' "$work/acked")"
{
    echo "RUN=$run"
    echo "KILLED_LEADER=$leader"
    echo "KILLED_POSTMASTER_PID=$pm"
    echo "NEW_LEADER=${new_pair%% *}"
    echo "NEW_SYNC_STANDBY=${new_pair##* }"
    if [ -n "$first_after" ]; then
        echo "FAILOVER_SECONDS=$(fmt "$first_after" "$t_kill")"
        echo "WRITE_GAP_SECONDS=$(fmt "$first_after" "$last_before")"
    else
        echo "FAILOVER_SECONDS=timeout"
        echo "WRITE_GAP_SECONDS=timeout"
    fi
    if [ -n "$rejoined" ]; then
        echo "REJOINED_AS_SYNC_STANDBY_SECONDS=$(fmt "$rejoined" "$t_kill")"
    else
        echo "REJOINED_AS_SYNC_STANDBY_SECONDS=timeout"
    fi
    echo "WRITES_ACKNOWLEDGED=$acked"
    echo "WRITES_NOT_ACKNOWLEDGED=$attempts_failed"
    echo "COMMITTED_NOT_ACKNOWLEDGED=$unacked_present"
    echo "WRITES_LOST=$lost"
    echo "ROWS_ON_STANDBY=$on_standby"
} >"$work/result"
cat "$work/result"

ok=1
[ "$lost" -eq 0 ] || { ok=0; ha_log "LOST acknowledged writes: $(tr '\n' ' ' <"$work/lost.ids")"; }
[ -n "$first_after" ] || { ok=0; ha_log "writes did not come back through HAProxy within ${FAILOVER_TIMEOUT}s"; }
[ -n "$rejoined" ] || { ok=0; ha_log "$leader did not rejoin as synchronous standby of $standby within ${REJOIN_TIMEOUT}s (now: $new_pair)"; }
if [ "$ok" = 1 ]; then
    ha_log "passed: $acked writes acknowledged, none lost; failover $(ha_env_get "$work/result" FAILOVER_SECONDS)s"
    exit 0
fi
ha_log "FAILED (details in $work: acked, failed, errors, present)"
exit 1
