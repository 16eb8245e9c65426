#!/bin/sh
# Creates the Temporal server's two databases (persistence and visibility) on its PostgreSQL and
# brings their schemas to the version this server build embeds, with Temporal's own SQL tool.
# Idempotent: on databases already set up it changes nothing, and after a server upgrade it
# applies only the new versions. Run by scripts/temporal-cluster.ts and by the one-shot
# temporal-schema service of docker-compose.temporal.yml, with the variables that
# deploy/temporal/config.yaml reads.
set -eu

tool="${TEMPORAL_SQL_TOOL:-temporal-sql-tool}"
export SQL_PLUGIN=postgres12
export SQL_HOST="${TEMPORAL_DB_HOST:-127.0.0.1}"
export SQL_PORT="${TEMPORAL_DB_PORT:-5432}"
export SQL_USER="${TEMPORAL_DB_USER:-postgres}"
export SQL_PASSWORD="${TEMPORAL_DB_PASSWORD:-}"

setup() {
  database="$1"
  schema="$2"
  "$tool" --db "$database" create-database
  # Version 0.0 only creates the schema_version table; update-schema then applies every versioned
  # step of the embedded schema that the database lacks.
  "$tool" --db "$database" setup-schema -v 0.0
  "$tool" --db "$database" update-schema --schema-name "postgresql/v12/$schema"
}

setup "${TEMPORAL_DB_NAME:-temporal}" temporal
setup "${TEMPORAL_VISIBILITY_DB_NAME:-temporal_visibility}" visibility
