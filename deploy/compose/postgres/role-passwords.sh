#!/bin/bash
# After the migrations: the superuser sets the passwords of the roles they
# created (chartstream_app, chartstream_relay, chartstream_analytics), as
# deploy/local/stack.sh does. Runs on every `up`; idempotent.
set -euo pipefail

export PGPASSWORD
PGPASSWORD=$(cat /run/secrets/pg_superuser_password)
for role in app relay analytics; do
	psql -v ON_ERROR_STOP=1 -qAt -h postgres -U postgres -d chartstream \
		-v pw="$(cat "/run/secrets/pg_${role}_password")" <<SQL
ALTER ROLE chartstream_${role} PASSWORD :'pw';
SQL
done
echo "db-roles: passwords set for chartstream_app, chartstream_relay, chartstream_analytics"
