#!/bin/sh
# Container entrypoint: bring the schema up to date, then run the command (default: serve on :8000).
# Migrations are idempotent and serialised by PostgreSQL, so every start (and every replica) runs them.
set -eu

if [ -z "${HAUNTFM_DATABASE_URL:-}" ]; then
    echo "haunt-fm: HAUNTFM_DATABASE_URL is not set; the container needs the haunt-fm-db service" \
         "(see deploy/docker-compose.yml) or another PostgreSQL with pgvector." >&2
    exit 64
fi

haunt-fm db upgrade

if [ "$#" -eq 0 ]; then
    set -- haunt-fm serve --host 0.0.0.0 --port 8000
fi
exec "$@"
