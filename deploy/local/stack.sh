#!/usr/bin/env bash
# Local chartstream stack on loopback: PostgreSQL, Redis and NATS (JetStream),
# all state under .local/. Idempotent: "up" installs what is missing, starts
# what is not running, and reuses what is.
#
#   deploy/local/stack.sh up      install, start, migrate, write .local/env
#   deploy/local/stack.sh down    stop the services (data kept)
#   deploy/local/stack.sh clean   stop and remove .local/
#   deploy/local/stack.sh tools   only build the pinned tools (nats-server, helm)
#
# Fault injection (chartstream chaos) on a running stack:
#   deploy/local/stack.sh restart-postgres   fast restart; returns once it accepts connections
#   deploy/local/stack.sh stop-redis         stop Redis (data kept)
#   deploy/local/stack.sh start-redis        start Redis again
#   deploy/local/stack.sh stop-replica       stop the PostgreSQL hot standby (data kept)
#   deploy/local/stack.sh start-replica      start it again (re-cloned when broken)
#
# The primary has a streaming hot standby (pg_basebackup, a physical
# replication slot) on CS_PG_REPLICA_PORT; the analytics API reads from it.
# CS_PG_REPLICA=off skips it (the chaos stack does: nothing there reads it).
#
# The state directory (default .local/) can be overridden with CS_LOCAL_DIR:
# make chaos runs an isolated stack under .local/chaos.
#
# Ports (loopback only) can be overridden: CS_PG_PORT, CS_PG_REPLICA_PORT,
# CS_REDIS_PORT, CS_NATS_PORT, CS_HTTP_PORT.
#
# CS_TLS=1 turns on transport security everywhere: a dev CA and a server
# certificate for loopback (chartstream dev init-tls, in .local/secrets/tls),
# PostgreSQL refusing connections without TLS (URLs with sslmode=verify-full),
# Redis listening TLS-only (rediss://), NATS with TLS and a password
# (tls://), and the API on HTTPS. A running stack keeps its mode: make down
# before switching.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LOCAL=${CS_LOCAL_DIR:-$ROOT/.local}
PG_PORT=${CS_PG_PORT:-15432}
REPLICA_PORT=${CS_PG_REPLICA_PORT:-15433}
REPLICA=${CS_PG_REPLICA:-on}
REDIS_PORT=${CS_REDIS_PORT:-16379}
NATS_PORT=${CS_NATS_PORT:-14222}
HTTP_PORT=${CS_HTTP_PORT:-18080}
TLS=${CS_TLS:-0}
TLS_DIR=$LOCAL/secrets/tls
DB=chartstream
REPLICATOR=chartstream_replicator
SLOT=chartstream_replica

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'stack: %s\n' "$*" >&2; exit 1; }

# Transport security (CS_TLS=1) and the KMS emulator.
# shellcheck source=deploy/local/security.sh
. "$ROOT/deploy/local/security.sh"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi

# PostgreSQL refuses to run as root: as root we run it as the postgres OS
# user (created if absent); as anyone else, as that user.
if [ "$(id -u)" -eq 0 ]; then PG_OS_USER=postgres; else PG_OS_USER=$(id -un); fi
as_pg() {
	if [ "$(id -un)" = "$PG_OS_USER" ]; then "$@"; else runuser -u "$PG_OS_USER" -- "$@"; fi
}

pg_bindir() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
		local v=${d#/usr/lib/postgresql/}; v=${v%%/*}
		if [ "${v%%.*}" -ge 15 ] && [ -x "$d/postgres" ]; then echo "$d"; return 0; fi
	done
	return 1
}

apt_install() {
	log "installing $* (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq >/dev/null
	$SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

install_missing() {
	local pkgs=()
	if ! pg_bindir >/dev/null; then
		# Keep Debian from creating and starting its own cluster on 5432.
		if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
			$SUDO mkdir -p /etc/postgresql-common
			echo 'create_main_cluster = false' | $SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null
		fi
		if apt-cache show postgresql-15 >/dev/null 2>&1; then pkgs+=(postgresql-15); else pkgs+=(postgresql); fi
	fi
	command -v redis-server >/dev/null || pkgs+=(redis-server)
	command -v psql >/dev/null || pkgs+=(postgresql-client)
	if [ ${#pkgs[@]} -gt 0 ]; then apt_install "${pkgs[@]}"; fi
	pg_bindir >/dev/null || die "no PostgreSQL 15+ server binaries after install"
	if [ "$PG_OS_USER" = postgres ] && ! id postgres >/dev/null 2>&1; then
		log "creating the postgres OS user"
		useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
	fi
	install_nats
	install_helm
	install_local_kms
}

# nats-server is built from its Go module at the version go.mod pins, so the
# external server and the embedded one are the same code.
install_nats() {
	local want have
	want=$(cd "$ROOT" && go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2)
	if [ -x "$LOCAL/bin/nats-server" ]; then
		have=$("$LOCAL/bin/nats-server" --version 2>/dev/null | awk '{print $2}')
		[ "v${have#v}" = "$want" ] && return 0
	fi
	log "building nats-server $want into $LOCAL/bin"
	mkdir -p "$LOCAL/bin"
	(cd "$ROOT" && GOBIN="$LOCAL/bin" GOFLAGS=-mod=mod go install "github.com/nats-io/nats-server/v2@$want")
}

# helm is built from its Go module at a pinned version (make deploy-check
# and the deploy package's tests run helm lint and helm template); the
# build takes minutes once, then is reused. It lives in the checkout's
# .local/bin whatever CS_LOCAL_DIR says, so the chaos stack shares it.
HELM_MODULE=helm.sh/helm/v4
HELM_VERSION=v4.3.1
HELM_BIN=$ROOT/.local/bin/helm
install_helm() {
	if [ -x "$HELM_BIN" ] &&
		go version -m "$HELM_BIN" 2>/dev/null | grep -q "mod[[:space:]]*$HELM_MODULE[[:space:]]*$HELM_VERSION"; then
		return 0
	fi
	log "building helm $HELM_VERSION into $(dirname "$HELM_BIN") (once)"
	mkdir -p "$(dirname "$HELM_BIN")"
	(cd "$ROOT" && GOBIN="$(dirname "$HELM_BIN")" GOFLAGS=-mod=mod go install "$HELM_MODULE/cmd/helm@$HELM_VERSION")
}

secret() {
	local f="$LOCAL/secrets/$1"
	if [ ! -s "$f" ]; then
		mkdir -p "$LOCAL/secrets"; chmod 700 "$LOCAL/secrets"
		(umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$f")
	fi
	cat "$f"
}

# The PostgreSQL data directory must be reachable by the postgres OS user.
# When the checkout sits below a directory it cannot enter (e.g. /root), the
# data lives in /var/tmp and .local/pg links to it.
# Callers get the resolved path: the postgres user may not be able to follow
# the link through the checkout's parents.
pg_dir() {
	if [ ! -e "$LOCAL/pg" ]; then
		mkdir -p "$LOCAL"
		if as_pg test -x "$LOCAL" 2>/dev/null; then
			mkdir -p "$LOCAL/pg"
		else
			local ext="/var/tmp/chartstream-$(echo "$LOCAL" | md5sum | cut -c1-12)"
			mkdir -p "$ext"
			ln -s "$ext" "$LOCAL/pg"
		fi
		chown "$PG_OS_USER" "$(readlink -f "$LOCAL/pg")"
	fi
	readlink -f "$LOCAL/pg"
}

start_postgres() {
	local bin dir
	bin=$(pg_bindir); dir=$(pg_dir)
	if [ ! -s "$dir/data/PG_VERSION" ]; then
		log "initialising PostgreSQL in $dir/data"
		as_pg mkdir -p "$dir/data" "$dir/run"
		as_pg chmod 700 "$dir/data" "$dir/run"
		# Local socket: trust (the socket directory is private to the
		# postgres user). TCP: passwords (scram) for every role.
		as_pg "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C.UTF-8 \
			--auth-local=trust --auth-host=scram-sha-256 >/dev/null
	fi
	cat >"$dir/chartstream.conf.tmp" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$dir/run'
max_connections = 300
shared_buffers = 256MB
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
# Streaming replication to the hot standby. A standby that falls more than
# max_slot_wal_keep_size behind loses its slot (wal_status 'lost') instead
# of filling the disk; "up" then clones it again.
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
max_slot_wal_keep_size = 1GB
CONF
	pg_tls "$dir" >>"$dir/chartstream.conf.tmp"
	chown "$PG_OS_USER" "$dir/chartstream.conf.tmp"; mv "$dir/chartstream.conf.tmp" "$dir/data/chartstream.conf"
	# The standby streams as its own role, from loopback only (pg_hba).
	pg_hba "$dir" "$dir/data"
	grep -q "include_if_exists = 'chartstream.conf'" "$dir/data/postgresql.conf" ||
		echo "include_if_exists = 'chartstream.conf'" | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
	if as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		log "PostgreSQL already running on 127.0.0.1:$PG_PORT"
		as_pg "$bin/pg_ctl" -D "$dir/data" reload >/dev/null # the TLS and hba settings above
	else
		log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
		as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null ||
			{ tail -20 "$dir/postgres.log" >&2; die "PostgreSQL did not start"; }
	fi
}

psql_super() {
	local dir; dir=$(pg_dir)
	as_pg "$(pg_bindir)/psql" -h "$dir/run" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"
}

bootstrap_database() {
	local owner_pw; owner_pw=$(secret owner)
	# The owner runs migrations and owns every table; CREATEROLE lets the
	# first migration create the app, analytics and relay roles.
	psql_super -d postgres <<SQL
SELECT 'CREATE ROLE chartstream_owner LOGIN CREATEROLE' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chartstream_owner')\gexec
ALTER ROLE chartstream_owner PASSWORD '$owner_pw';
SELECT 'CREATE DATABASE $DB OWNER chartstream_owner' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB')\gexec
SQL
}

set_role_passwords() {
	local role
	for role in chartstream_app chartstream_analytics chartstream_relay; do
		if [ -n "$(psql_super -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$role'")" ]; then
			psql_super -d postgres -c "ALTER ROLE $role PASSWORD '$(secret "${role#chartstream_}")'"
		fi
	done
}

start_redis() {
	mkdir -p "$LOCAL/redis"
	if [ -s "$LOCAL/redis/redis.pid" ] && kill -0 "$(cat "$LOCAL/redis/redis.pid")" 2>/dev/null; then
		log "Redis already running on 127.0.0.1:$REDIS_PORT"; wait_redis_loaded; return
	fi
	local listen
	mapfile -t listen < <(redis_listen_args)
	log "starting Redis on 127.0.0.1:$REDIS_PORT$([ "$TLS" = 1 ] && echo ' (TLS)')"
	redis-server --bind 127.0.0.1 "${listen[@]}" --requirepass "$(secret redis)" \
		--daemonize yes --dir "$LOCAL/redis" --pidfile "$LOCAL/redis/redis.pid" \
		--logfile "$LOCAL/redis/redis.log" --appendonly yes --save "" >/dev/null
	wait_port "$REDIS_PORT" Redis
	wait_redis_loaded
}

# wait_redis_loaded waits until Redis answers PING: with its port open it
# still answers LOADING while it reads its append-only file back, and a
# chartstream started then exits (seen with a chaos stack's data from many
# runs).
wait_redis_loaded() {
	local i tls=()
	[ "$TLS" = 1 ] && tls=(--tls --cacert "$TLS_DIR/ca.pem")
	for i in $(seq 1 600); do
		if [ "$(REDISCLI_AUTH="$(secret redis)" redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "${tls[@]}" ping 2>/dev/null)" = PONG ]; then return 0; fi
		sleep 0.1
	done
	die "Redis on 127.0.0.1:$REDIS_PORT did not finish loading its data within 60s"
}

# stop_redis stops Redis and waits until it has exited: with appendonly it
# writes its data first, so idempotency keys survive.
stop_redis() {
	stop_pidfile "$LOCAL/redis/redis.pid" Redis
}

# stop_pidfile stops the process of a pid file ($1, named $2 in messages)
# and waits until it has exited.
stop_pidfile() {
	local pid i
	[ -s "$1" ] || { log "$2 not running"; return 0; }
	pid=$(cat "$1")
	kill "$pid" 2>/dev/null || true
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && die "$2 (pid $pid) did not stop"
	rm -f "$1"
	log "$2 stopped"
}

# restart_postgres restarts PostgreSQL in fast mode (open sessions are
# terminated) and returns once it accepts connections again.
restart_postgres() {
	local bin dir i
	bin=$(pg_bindir); dir=$(pg_dir)
	[ -s "$dir/data/PG_VERSION" ] || die "no PostgreSQL data in $dir/data (run up first)"
	log "restarting PostgreSQL on 127.0.0.1:$PG_PORT (fast)"
	as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -m fast -w -t 60 restart >/dev/null ||
		{ tail -20 "$dir/postgres.log" >&2; die "PostgreSQL did not restart"; }
	for i in $(seq 1 600); do
		if "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then return 0; fi
		sleep 0.1
	done
	die "PostgreSQL does not accept connections on 127.0.0.1:$PG_PORT"
}

# NATS runs with decentralized (operator JWT) authentication: every client
# presents a user's .creds (the platform's in .local/secrets/nats, or a
# subscriber's from chartstream subscriber create). A server started
# before with another auth config is restarted with this one.
init_nats_auth() {
	"$LOCAL/bin/chartstream" dev init-nats --dir "$LOCAL/secrets/nats" \
		--conf "$LOCAL/nats/nats-auth.conf" --resolver-dir "$LOCAL/nats/jwt" >/dev/null
}

# The hot standby: a pg_basebackup of the primary in $(pg_dir)/replica,
# streaming through the physical slot $SLOT as $REPLICATOR, run as the same
# OS user as the primary on its own port. Its data directory holds a copy
# of the primary's configuration; chartstream.conf there is the standby's.
replica_dir() { echo "$(pg_dir)/replica"; }

psql_replica() {
	local dir; dir=$(pg_dir)
	as_pg "$(pg_bindir)/psql" -h "$dir/run-replica" -p "$REPLICA_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt "$@"
}

# replica_running [DIR]: the standby in DIR (default replica_dir) runs.
replica_running() {
	local rdir=${1:-$(replica_dir)}
	[ -s "$rdir/PG_VERSION" ] && as_pg "$(pg_bindir)/pg_ctl" -D "$rdir" status >/dev/null 2>&1
}

# replica_streaming waits up to $1 seconds for the standby to be in
# recovery with its WAL receiver streaming from the primary.
replica_streaming() {
	local i
	for i in $(seq 1 $(($1 * 5))); do
		if [ "$(psql_replica -c "SELECT pg_is_in_recovery() AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')" 2>/dev/null)" = t ]; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# replica_slot_ok: the primary still holds the standby's slot and the WAL it
# needs (a standby that fell too far behind finds its slot 'lost').
replica_slot_ok() {
	local status
	status=$(psql_super -d postgres -c "SELECT wal_status FROM pg_replication_slots WHERE slot_name = '$SLOT'")
	[ -n "$status" ] && [ "$status" != lost ]
}

write_replica_conf() {
	local dir rdir; dir=$(pg_dir); rdir=$(replica_dir)
	as_pg mkdir -p "$dir/run-replica"; as_pg chmod 700 "$dir/run-replica"
	# max_connections and the other sizes must be at least the primary's.
	cat >"$dir/replica.conf.tmp" <<CONF
listen_addresses = '127.0.0.1'
port = $REPLICA_PORT
unix_socket_directories = '$dir/run-replica'
max_connections = 300
shared_buffers = 128MB
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
hot_standby = on
# Long analytics reads are not cancelled for vacuum on the primary.
hot_standby_feedback = on
CONF
	pg_tls "$dir" >>"$dir/replica.conf.tmp"
	chown "$PG_OS_USER" "$dir/replica.conf.tmp"; mv "$dir/replica.conf.tmp" "$rdir/chartstream.conf"
	pg_hba "$dir" "$rdir"
}

# clone_replica makes a fresh standby: a new slot and a base backup that
# streams the WAL it needs and writes standby.signal and primary_conninfo.
clone_replica() {
	local bin rdir pw; bin=$(pg_bindir); rdir=$(replica_dir); pw=$(secret replicator)
	log "cloning the primary into a hot standby ($rdir)"
	psql_super -d postgres <<SQL
SELECT 'CREATE ROLE $REPLICATOR LOGIN REPLICATION' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$REPLICATOR')\gexec
ALTER ROLE $REPLICATOR PASSWORD '$pw';
SELECT pg_drop_replication_slot('$SLOT') FROM pg_replication_slots WHERE slot_name = '$SLOT';
SQL
	as_pg rm -rf "$rdir"
	as_pg env PGPASSWORD="$pw" "$bin/pg_basebackup" -h 127.0.0.1 -p "$PG_PORT" -U "$REPLICATOR" -D "$rdir" \
		-X stream -C -S "$SLOT" -R -c fast >/dev/null || die "pg_basebackup failed"
}

# start_replica starts the standby, cloning it first when it has no data,
# when its data do not start or stream (a broken directory, a primary that
# moved), or when it fell behind past its slot. Idempotent.
start_replica() {
	[ "$REPLICA" = off ] && return 0
	local bin rdir attempt; bin=$(pg_bindir); rdir=$(replica_dir)
	for attempt in 1 2; do
		if replica_running && replica_slot_ok && replica_streaming 10; then
			[ "$attempt" = 1 ] && log "PostgreSQL replica already running on 127.0.0.1:$REPLICA_PORT"
			return 0
		fi
		if [ "$attempt" = 1 ] && [ -e "$rdir/standby.signal" ] && replica_slot_ok && ! replica_running; then
			write_replica_conf
			log "starting the PostgreSQL replica on 127.0.0.1:$REPLICA_PORT"
			if as_pg "$bin/pg_ctl" -D "$rdir" -l "$(pg_dir)/replica.log" -w -t 60 start >/dev/null 2>&1 && replica_streaming 20; then
				return 0
			fi
		fi
		[ "$attempt" = 2 ] && break
		log "the replica is missing, broken or behind its slot: cloning it again"
		stop_replica
		clone_replica
		write_replica_conf
		as_pg "$bin/pg_ctl" -D "$rdir" -l "$(pg_dir)/replica.log" -w -t 60 start >/dev/null ||
			{ tail -20 "$(pg_dir)/replica.log" >&2; die "the PostgreSQL replica did not start"; }
	done
	replica_streaming 30 || { tail -20 "$(pg_dir)/replica.log" >&2; die "the PostgreSQL replica does not stream from the primary"; }
}

stop_replica() {
	local rdir; rdir=$(readlink -f "$LOCAL/pg" 2>/dev/null || echo "$LOCAL/pg")/replica
	if replica_running "$rdir"; then
		as_pg "$(pg_bindir)/pg_ctl" -D "$rdir" -m fast -w stop >/dev/null 2>&1 || true
		log "PostgreSQL replica stopped"
	fi
}

start_nats() {
	local want
	mkdir -p "$LOCAL/nats"
	want=$(md5sum <"$LOCAL/nats/nats-auth.conf" | cut -c1-32)
	if [ -s "$LOCAL/nats/nats.pid" ] && kill -0 "$(cat "$LOCAL/nats/nats.pid")" 2>/dev/null; then
		if [ "$(cat "$LOCAL/nats/auth.md5" 2>/dev/null)" = "$want" ]; then
			log "NATS already running on 127.0.0.1:$NATS_PORT"; return
		fi
		log "restarting NATS: its authentication config changed"
		stop_nats
	fi
	local conf
	mapfile -t conf < <(nats_conf_args)
	log "starting NATS (JetStream, operator JWT auth$([ "$TLS" = 1 ] && echo ', TLS')) on 127.0.0.1:$NATS_PORT"
	setsid "$LOCAL/bin/nats-server" "${conf[@]}" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$LOCAL/nats/jetstream" \
		-P "$LOCAL/nats/nats.pid" -l "$LOCAL/nats/nats.log" </dev/null >/dev/null 2>&1 &
	wait_port "$NATS_PORT" NATS
	echo "$want" >"$LOCAL/nats/auth.md5"
}

stop_nats() {
	stop_pidfile "$LOCAL/nats/nats.pid" NATS
}

wait_port() {
	local i
	for i in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	die "$2 did not open 127.0.0.1:$1"
}

write_env() {
	local pgq="sslmode=disable" nats="nats://127.0.0.1:$NATS_PORT" redis=redis
	if [ "$TLS" = 1 ]; then
		pgq="sslmode=verify-full&sslrootcert=$TLS_DIR/ca.pem"
		nats="tls://127.0.0.1:$NATS_PORT"
		redis=rediss
	fi
	local url="127.0.0.1:$PG_PORT/$DB?$pgq"
	(umask 077; cat >"$LOCAL/env.tmp" <<ENV
# chartstream local stack; source this file: . .local/env
export DATABASE_URL='postgres://chartstream_app:$(secret app)@$url'
export DATABASE_ADMIN_URL='postgres://chartstream_owner:$(secret owner)@$url'
export DATABASE_RELAY_URL='postgres://chartstream_relay:$(secret relay)@$url'
export DATABASE_ANALYTICS_URL='postgres://chartstream_analytics:$(secret analytics)@$url'
$(if [ "$REPLICA" != off ]; then echo "export DATABASE_REPLICA_URL='postgres://chartstream_analytics:$(secret analytics)@127.0.0.1:$REPLICA_PORT/$DB?$pgq'"; fi)
export NATS_URL='$nats'
export REDIS_URL='$redis://:$(secret redis)@127.0.0.1:$REDIS_PORT/0'
export HTTP_ADDR='127.0.0.1:$HTTP_PORT'
export PHI_KEY_FILE='$LOCAL/secrets/phi-master.key'
export JWT_DEV_KEY_FILE='$LOCAL/secrets/jwt-dev.pem'
export MESSAGE_SIGNING_KEY_FILE='$LOCAL/secrets/message-signing.pem'
export CHECKPOINT_SIGNING_KEY_FILE='$LOCAL/secrets/checkpoint-signing.pem'
export CHECKPOINT_VERIFY_KEY_FILES='$LOCAL/secrets/checkpoint-signing.pem.pub'
export NATS_CREDS_FILE='$LOCAL/secrets/nats/platform.creds'
export NATS_ACCOUNT_SIGNING_KEY_FILE='$LOCAL/secrets/nats/account-signing.nk'
export NATS_SYSTEM_CREDS_FILE='$LOCAL/secrets/nats/system.creds'
export NATS_OPERATOR_SIGNING_KEY_FILE='$LOCAL/secrets/nats/operator-signing.nk'
# Tools, not settings: the deploy package's tests run this helm, the KMS
# key provider's tests this KMS emulator.
export HELM_BIN='$HELM_BIN'
export LOCAL_KMS_BIN='$LOCAL/bin/local-kms'
ENV
	tls_env >>"$LOCAL/env.tmp"
	mv "$LOCAL/env.tmp" "$LOCAL/env")
}



up() {
	command -v go >/dev/null || die "Go is required (https://go.dev/dl)"
	mkdir -p "$LOCAL"
	transport_mode
	install_missing
	log "building chartstream"
	(cd "$ROOT" && go build -o "$LOCAL/bin/chartstream" ./cmd/chartstream)
	if [ "$TLS" = 1 ]; then "$LOCAL/bin/chartstream" dev init-tls --dir "$TLS_DIR" >&2; fi
	start_postgres
	bootstrap_database
	start_redis
	write_env
	# shellcheck disable=SC1091
	. "$LOCAL/env"
	"$LOCAL/bin/chartstream" migrate
	set_role_passwords
	start_replica
	"$LOCAL/bin/chartstream" dev init-keys
	init_nats_auth
	start_nats
	log "stack up; environment in $LOCAL/env"
}

down() {
	local dir f bin
	dir=$(readlink -f "$LOCAL/pg" 2>/dev/null || echo "$LOCAL/pg")
	stop_nats
	stop_redis
	if bin=$(pg_bindir); then stop_replica; fi
	if [ -s "$dir/data/PG_VERSION" ] && bin=$(pg_bindir); then
		as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	for f in "$LOCAL/nats/nats.pid" "$LOCAL/redis/redis.pid" "$LOCAL/transport"; do rm -f "$f"; done
	log "stack down"
}

clean() {
	down
	if [ -L "$LOCAL/pg" ]; then rm -rf "$(readlink -f "$LOCAL/pg")"; fi
	rm -rf "$LOCAL"
	log "removed $LOCAL"
}

case "${1:-}" in
up) up ;;
down) down ;;
clean) clean ;;
tools) mkdir -p "$LOCAL"; install_nats; install_helm ;;
restart-postgres) restart_postgres ;;
stop-redis) stop_redis ;;
start-redis) start_redis ;;
stop-replica) stop_replica ;;
start-replica) start_replica ;;
*) die "usage: $0 up|down|clean|tools|restart-postgres|stop-redis|start-redis|stop-replica|start-replica" ;;
esac
