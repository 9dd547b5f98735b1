#!/bin/bash
# Entry point of the hot standby: on first start, copy the primary with
# pg_basebackup (streaming its WAL, through the replica_1 slot, writing
# standby.signal and primary_conninfo), then run PostgreSQL as a standby.
set -euo pipefail

PGDATA=${PGDATA:-/var/lib/postgresql/data}
PGPASSWORD=$(cat /run/secrets/pg_replicator_password)
export PGDATA PGPASSWORD

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	mkdir -p "$PGDATA"
	chown postgres:postgres "$PGDATA"
	chmod 700 "$PGDATA"
	until pg_isready -q -h postgres -U replicator; do sleep 1; done
	gosu postgres pg_basebackup --host=postgres --username=replicator --pgdata="$PGDATA" \
		--wal-method=stream --slot=replica_1 --write-recovery-conf --checkpoint=fast
fi
# The walreceiver's libpq also reads PGPASSWORD from this environment.
exec gosu postgres postgres -c hot_standby=on
