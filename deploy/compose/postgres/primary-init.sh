#!/bin/bash
# First start of the primary (docker-entrypoint-initdb.d, as the postgres
# OS user on the local socket): the owner role and the database, as
# deploy/local/stack.sh makes them, and the replication role and slot the
# replica streams from. The app roles come with the migrations; the
# db-roles one-shot sets their passwords afterwards.
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
	-v owner_pw="$(cat /run/secrets/pg_owner_password)" \
	-v repl_pw="$(cat /run/secrets/pg_replicator_password)" <<'SQL'
-- The owner runs migrations and owns every table; CREATEROLE lets the
-- first migration create the app, analytics and relay roles.
CREATE ROLE chartstream_owner LOGIN CREATEROLE PASSWORD :'owner_pw';
CREATE DATABASE chartstream OWNER chartstream_owner;
CREATE ROLE replicator LOGIN REPLICATION PASSWORD :'repl_pw';
SELECT pg_create_physical_replication_slot('replica_1');
SQL

# Streaming replication over the compose network, with a password.
echo "host replication replicator all scram-sha-256" >>"$PGDATA/pg_hba.conf"
