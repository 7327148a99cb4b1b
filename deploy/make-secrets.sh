#!/usr/bin/env bash
# Generates the secrets deploy/compose.yaml reads from deploy/secrets/:
#   postgres-password  the password of the PostgreSQL role `fhirledger`
#   database-url       postgres://fhirledger:<password>@postgres:5432/fhirledger,
#                      read by the replicas' entrypoint into FHIRLEDGER_DATABASE_URL
# An existing password is kept: PostgreSQL set it when its volume was first
# initialised, and a new one would lock the replicas out. To start over, remove
# deploy/secrets/* together with the volume (`docker compose down -v`).
set -euo pipefail

dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/secrets"
mkdir -p "$dir"
# Only you may list the folder. The files themselves must be readable by the
# containers' users (postgres, UID 999; fhirledger, UID 10001): Compose
# bind-mounts file secrets with their host owner and mode.
chmod 0700 "$dir"
umask 022

if [ ! -s "$dir/postgres-password" ]; then
    # Hex: nothing that would need escaping in a URL.
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$dir/postgres-password"
    echo "make-secrets: new PostgreSQL password in $dir/postgres-password"
fi
password="$(cat "$dir/postgres-password")"
printf 'postgres://fhirledger:%s@postgres:5432/fhirledger\n' "$password" >"$dir/database-url.tmp"
mv "$dir/database-url.tmp" "$dir/database-url"
chmod 0644 "$dir/postgres-password" "$dir/database-url"
echo "make-secrets: $dir/database-url written"
