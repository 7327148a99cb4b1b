#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Stops what deploy/ha/start.sh started in DIR (argument, else
# $FHIRLEDGER_HA_DIR, else /tmp/fhirledger-ha): HAProxy, then the standby's
# Patroni and the leader's (each stops its PostgreSQL; the standby first, so
# stopping the leader does not fail over to it), then etcd. Processes already
# gone are skipped; a process is only signalled when its command line names
# DIR. With --remove, DIR is deleted once nothing of it runs.
#
#   deploy/ha/stop.sh [--remove] [DIR]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

remove=0
dir_arg=
for arg in "$@"; do
    case "$arg" in
        --remove) remove=1 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; /^# shellcheck/d; s/^# \{0,1\}//'
            exit 0
            ;;
        -*) ha_die "unknown option $arg (usage: $0 [--remove] [DIR])" ;;
        *)
            [ -z "$dir_arg" ] || ha_die "usage: $0 [--remove] [DIR]"
            dir_arg="$arg"
            ;;
    esac
done
DIR="$(ha_resolve_dir "$dir_arg")"
if [ ! -e "$DIR/$HA_MARKER" ]; then
    if [ ! -e "$DIR" ]; then
        ha_log "nothing to stop: $DIR does not exist"
        exit 0
    fi
    ha_die "$DIR was not made by start.sh (no $HA_MARKER): not touching it"
fi

# stop_pid PID NAME SECONDS [SIGNAL]: SIGNAL (TERM), up to SECONDS for the
# process to go, then SIGKILL. Only for a live process that names DIR.
stop_pid() {
    local pid="$1" name="$2" limit="$3" sig="${4:-TERM}" i
    ha_is_ours "$pid" "$DIR" || return 0
    ha_log "stopping $name (pid $pid)"
    kill "-$sig" "$pid" 2>/dev/null || return 0
    for ((i = 0; i < limit * 10; i++)); do
        ha_is_ours "$pid" "$DIR" || return 0
        sleep 0.1
    done
    ha_log "$name (pid $pid) still runs after ${limit}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        ha_is_ours "$pid" "$DIR" || return 0
        sleep 0.1
    done
    ha_log "$name (pid $pid) survived SIGKILL"
    return 1
}

failed=0
pid_in() { ha_pid_of "$1" 2>/dev/null || echo none; }

stop_pid "$(pid_in "$DIR/haproxy/haproxy.pid")" HAProxy 10 || failed=1

# The standby first: the leader then stops without a standby to hand over to.
order=(node2 node1)
urls=()
for key in NODE1_REST_PORT NODE2_REST_PORT; do
    if port="$(ha_env_get "$DIR/settings" "$key" 2>/dev/null)"; then urls+=("http://127.0.0.1:$port"); fi
done
if [ ${#urls[@]} -gt 0 ] && members="$(ha_members "${urls[@]}" 2>/dev/null)"; then
    leader="$(awk '$2 == "leader" { print $1 }' <<<"$members")"
    [ "$leader" != node2 ] || order=(node1 node2)
fi
for node in "${order[@]}"; do
    # Patroni stops PostgreSQL (fast shutdown) before it exits.
    stop_pid "$(pid_in "$DIR/$node/patroni.pid")" "Patroni $node" 60 || failed=1
done
for node in node1 node2; do
    # A PostgreSQL left behind (its Patroni was killed): fast shutdown
    # (SIGINT), then SIGKILL.
    if pid="$(ha_postmaster_pid "$DIR/$node/data" 2>/dev/null)"; then
        stop_pid "$pid" "PostgreSQL $node" 30 INT || failed=1
    fi
done
stop_pid "$(pid_in "$DIR/etcd/etcd.pid")" etcd 15 || failed=1

# Anything else still naming DIR among the programs start.sh runs (a
# pg_basebackup or pg_rewind of a Patroni that was killed, say).
for proc in /proc/[0-9]*; do
    pid="${proc#/proc/}"
    if [ "$pid" = $$ ] || [ "$pid" = "$PPID" ]; then continue; fi
    cmd="$({ tr '\0' ' ' <"$proc/cmdline"; } 2>/dev/null)" || continue
    case "$cmd" in *"$DIR/"*) ;; *) continue ;; esac
    prog="${cmd%% *}"
    case "${prog##*/}" in
        postgres | postmaster | python3* | etcd | haproxy | pg_basebackup | pg_rewind | pg_ctl | initdb | runuser | setsid)
            stop_pid "$pid" "leftover ${prog##*/}" 10 || failed=1
            ;;
    esac
done

if [ "$failed" = 1 ]; then
    ha_die "some processes of $DIR could not be stopped; $DIR is kept"
fi
ha_log "nothing of $DIR runs any more"
if [ "$remove" = 1 ]; then
    rm -rf -- "$DIR"
    ha_log "removed $DIR"
fi
