#!/bin/sh
# The image's entrypoint: runs `fhirledger "$@"` (CMD is `serve`), so
# `docker run IMAGE chain status` behaves as if the entrypoint were the binary.
#
# The one thing it adds: FHIRLEDGER_DATABASE_URL_FILE, a convention of this
# image (not a server setting), names a file holding the database URL -- a
# Compose or Docker secret under /run/secrets -- so the password is never
# written into compose.yaml or `docker inspect`'s environment. The server
# itself only reads FHIRLEDGER_DATABASE_URL.
set -eu

if [ -n "${FHIRLEDGER_DATABASE_URL_FILE:-}" ]; then
    if [ -n "${FHIRLEDGER_DATABASE_URL:-}" ]; then
        echo "docker-entrypoint: set FHIRLEDGER_DATABASE_URL or FHIRLEDGER_DATABASE_URL_FILE, not both" >&2
        exit 64
    fi
    # $(...) drops the trailing newline a generated file ends with.
    FHIRLEDGER_DATABASE_URL="$(cat -- "$FHIRLEDGER_DATABASE_URL_FILE")"
    export FHIRLEDGER_DATABASE_URL
    unset FHIRLEDGER_DATABASE_URL_FILE
fi

# exec: fhirledger becomes PID 1 and receives SIGTERM itself (graceful stop).
exec fhirledger "$@"
