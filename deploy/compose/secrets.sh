#!/usr/bin/env bash
# Makes the compose stack's secrets once: random passwords and the files
# derived from them (database and Redis URLs, Redis ACL, NATS auth), in
# deploy/compose/secrets/ (or $SECRETS_DIR). Never overwrites a file, so a
# second run changes nothing. Never commit that directory (.gitignore).
#
# The directory is 0700 (for people on this machine); the files are 0644
# because containers run as other users (postgres, redis, nats, and
# chartstream's uid 65532) and read them through bind mounts. The PHI and
# signing keys are not here: the keys one-shot makes them in a volume.
set -euo pipefail

DIR=${SECRETS_DIR:-$(cd "$(dirname "$0")" && pwd)/secrets}
mkdir -p "$DIR"
chmod 700 "$DIR"

# put NAME CONTENT writes the file unless it exists.
put() {
	[ -s "$DIR/$1" ] && return 0
	printf '%s\n' "$2" >"$DIR/$1.tmp"
	chmod 644 "$DIR/$1.tmp"
	mv "$DIR/$1.tmp" "$DIR/$1"
}
# password NAME makes a random hex password (URL- and SQL-safe) and prints it.
password() {
	put "$1" "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	cat "$DIR/$1"
}

for name in pg_superuser_password pg_owner_password pg_replicator_password \
	pg_app_password pg_relay_password pg_analytics_password redis_password nats_password grafana_admin_password; do
	password "$name" >/dev/null
done

db="postgres:5432/chartstream?sslmode=disable"
put database_url "postgres://chartstream_app:$(cat "$DIR/pg_app_password")@$db"
put database_admin_url "postgres://chartstream_owner:$(cat "$DIR/pg_owner_password")@$db"
put database_relay_url "postgres://chartstream_relay:$(cat "$DIR/pg_relay_password")@$db"
# The analytics API reads the hot standby, as chartstream_analytics.
put database_replica_url "postgres://chartstream_analytics:$(cat "$DIR/pg_analytics_password")@postgres-replica:5432/chartstream?sslmode=disable"
put redis_url "redis://:$(cat "$DIR/redis_password")@redis:6379/0"
put redis_users.acl "user default on >$(cat "$DIR/redis_password") ~* &* +@all"
put nats_auth.conf "authorization { user: chartstream, password: \"$(cat "$DIR/nats_password")\" }"
echo "compose secrets in $DIR"
