# shellcheck shell=bash
# Shared by start.sh, stop.sh and failover-check.sh: the run directory, the
# account the cluster runs as, the recorded pids, the cluster's state from
# Patroni's REST API. Sourced, never run.

HA_DEFAULT_DIR=/tmp/fhirledger-ha
# Written into every run directory start.sh creates; stop.sh --remove deletes
# only a directory that has it.
# shellcheck disable=SC2034 # used by the scripts that source this file
HA_MARKER=.fhirledger-ha

ha_log() { echo "ha: $*" >&2; }
ha_die() {
    echo "ha: error: $*" >&2
    exit 1
}

# ha_one_dir_argument SCRIPT ARGS…: prints SCRIPT's header comment and exits
# for -h/--help; refuses more than one argument (the run directory).
ha_one_dir_argument() {
    local script="$1"
    shift
    case "${1:-}" in
        -h | --help)
            sed -n '2,/^set -euo/p' "$script" | sed '$d; /^# shellcheck/d; s/^# \{0,1\}//'
            exit 0
            ;;
    esac
    [ $# -le 1 ] || ha_die "usage: $script [DIR]"
}

# Patroni's interpreter is Debian's python3; the one first on PATH may be
# another (pyenv). Only the standard library is used.
ha_python() {
    if [ -x /usr/bin/python3 ]; then /usr/bin/python3 "$@"; else python3 "$@"; fi
}

# The run directory as an absolute path. Restricted to plain characters: it
# is written unquoted into YAML, postgresql.conf and haproxy.cfg.
ha_resolve_dir() {
    local dir="${1:-${FHIRLEDGER_HA_DIR:-$HA_DEFAULT_DIR}}"
    case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
    # Normalise . and .. and duplicate slashes without requiring it to exist.
    dir="$(ha_python -c 'import os,sys; print(os.path.normpath(sys.argv[1]))' "$dir")"
    [[ "$dir" =~ ^/[A-Za-z0-9._/-]+$ ]] \
        || ha_die "run directory '$dir': only letters, digits, '.', '_', '-' and '/' are allowed"
    [ "$dir" != / ] || ha_die "the run directory cannot be /"
    printf '%s\n' "$dir"
}

# As root, every process of the cluster runs as the postgres account
# (PostgreSQL refuses root); otherwise as the calling user.
ha_svc_user() {
    if [ "$(id -u)" -eq 0 ]; then echo "${FHIRLEDGER_HA_OS_USER:-postgres}"; else id -un; fi
}

ha_as_svc() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$(ha_svc_user)" -- "$@"
    else
        "$@"
    fi
}

# Reads KEY from a KEY=value file without sourcing it (the file may be
# writable by the service account; root must not run what it says).
ha_env_get() {
    local file="$1" key="$2" k v
    [ -r "$file" ] || return 1
    while IFS='=' read -r k v; do
        if [ "$k" = "$key" ]; then
            printf '%s\n' "$v"
            return 0
        fi
    done <"$file"
    return 1
}

# True when PID is alive and its command line names the run directory: a
# pid file is never trusted on its own (the pid may have been reused).
ha_is_ours() {
    local pid="$1" dir="$2"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$dir/"
}

ha_pid_of() {
    local file="$1" pid
    [ -r "$file" ] || return 1
    read -r pid <"$file" || true
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    echo "$pid"
}

# The postmaster of a node from its data directory's postmaster.pid.
ha_postmaster_pid() {
    local data="$1" pid
    pid="$(head -n 1 "$data/postmaster.pid" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    echo "$pid"
}

# The members as "name role state host port" lines (Patroni's /cluster),
# asked of the first REST API that answers.
ha_members() {
    local url json
    for url in "$@"; do
        json="$(curl -fsS --max-time 2 "$url/cluster" 2>/dev/null)" || continue
        printf '%s' "$json" | ha_python -c '
import json, sys
for m in json.load(sys.stdin).get("members", []):
    print(m.get("name"), m.get("role"), m.get("state"), m.get("host"), m.get("port"))
' && return 0
    done
    return 1
}

# Prints "LEADER STANDBY" when one member leads and runs, and the other is a
# synchronous standby that streams from it (Patroni's view). Fails otherwise.
ha_sync_pair() {
    ha_members "$@" | awk '
        $2 == "leader" && $3 == "running" { leader = $1; n++ }
        $2 == "sync_standby" && ($3 == "running" || $3 == "streaming") { standby = $1 }
        END { if (n == 1 && standby != "") { print leader, standby } else { exit 1 } }'
}

# PostgreSQL's own view on the leader: the number of standbys that stream
# and are synchronous (pg_stat_replication.sync_state = sync).
ha_sync_standbys_on() {
    local port="$1" password_file="$2"
    PGPASSWORD="$(cat "$password_file")" PGCONNECT_TIMEOUT=3 \
        "$HA_PG_BIN_DIR/psql" -X -qAt -h 127.0.0.1 -p "$port" -U postgres -d postgres \
        -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = 'sync'" 2>/dev/null
}

# Waits until the cluster has a leader and a streaming synchronous standby,
# in Patroni's view and in PostgreSQL's, for at most TIMEOUT seconds. Prints
# "LEADER STANDBY". Needs HA_DIR and HA_PG_BIN_DIR.
ha_wait_sync() {
    local timeout="$1" deadline pair leader port
    shift
    deadline=$((SECONDS + timeout))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if pair="$(ha_sync_pair "$@")"; then
            leader="${pair%% *}"
            port="$(ha_env_get "$HA_DIR/settings" "${leader^^}_PG_PORT")" || port=
            if [ -n "$port" ] && [ "$(ha_sync_standbys_on "$port" "$HA_DIR/secrets/postgres-password")" = 1 ]; then
                echo "$pair"
                return 0
            fi
        fi
        sleep 0.5
    done
    return 1
}

# The last lines of every log of the run directory, for error reports.
ha_log_tails() {
    local dir="$1" f
    for f in "$dir"/etcd/etcd.log "$dir"/node1/patroni.log "$dir"/node1/pglog/*.log \
        "$dir"/node2/patroni.log "$dir"/node2/pglog/*.log "$dir"/haproxy/haproxy.log; do
        [ -r "$f" ] || continue
        echo "----- last lines of $f" >&2
        tail -n "${HA_TAIL_LINES:-25}" "$f" >&2
    done
}
