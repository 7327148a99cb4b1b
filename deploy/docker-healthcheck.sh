#!/bin/bash
# fhirledger-healthcheck [PATH]: exits 0 when the server in this container
# answers GET PATH (default /health/live) with 200, else 1. The Dockerfile's
# HEALTHCHECK uses /health/live; compose.yaml uses /health/ready.
#
# bash's /dev/tcp instead of curl: curl would add libcurl and its libraries
# to the runtime image for one request, and bash is already in
# debian:bookworm-slim. The probes answer small JSON bodies on plain HTTP,
# so reading the status line is all a check needs.
set -u

path="${1:-/health/live}"
# The address the server listens on, as it reads it (image default 0.0.0.0:8080).
bind="${FHIRLEDGER_BIND:-127.0.0.1:8080}"
port="${bind##*:}"
host="${bind%:*}"
host="${host#[}"
host="${host%]}"
case "$host" in
    0.0.0.0 | "") host=127.0.0.1 ;; # listening everywhere: ask over loopback
    ::) host=::1 ;;
esac

# The whole check is bounded by the orchestrator's timeout too; -t 4 covers
# /health/ready's own wait of up to 2 s for a database connection.
{ exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || {
    echo "fhirledger-healthcheck: nothing listens on $host:$port" >&2
    exit 1
}
printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: fhirledger-healthcheck\r\nConnection: close\r\n\r\n' "$path" >&3
IFS=' ' read -r -t 4 _version status _reason <&3 || {
    echo "fhirledger-healthcheck: no answer to GET $path within 4 s" >&2
    exit 1
}
status="${status%$'\r'}"
if [ "$status" != 200 ]; then
    echo "fhirledger-healthcheck: GET $path answered $status" >&2
    exit 1
fi
