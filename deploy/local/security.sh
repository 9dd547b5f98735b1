# Sourced by deploy/local/stack.sh: the local stack's transport security
# (CS_TLS=1: the dev CA's certificate on PostgreSQL, Redis, NATS and the
# API) and local-kms, the KMS emulator the key provider's tests start.
# Uses stack.sh's LOCAL, TLS, TLS_DIR, ports, secret, as_pg and log.

# pg_tls prints the ssl settings for chartstream.conf. With CS_TLS=1 the
# server certificate is copied where the postgres user owns it (PostgreSQL
# refuses a key others can read).
pg_tls() {
	local dir=$1
	if [ "$TLS" != 1 ]; then echo "ssl = off"; return; fi
	as_pg mkdir -p "$dir/tls"
	install -m 600 -o "$PG_OS_USER" "$TLS_DIR/server.pem" "$dir/tls/server.pem"
	install -m 600 -o "$PG_OS_USER" "$TLS_DIR/server.key" "$dir/tls/server.key"
	cat <<CONF
ssl = on
ssl_cert_file = '$dir/tls/server.pem'
ssl_key_file = '$dir/tls/server.key'
ssl_min_protocol_version = 'TLSv1.2'
CONF
}

# pg_hba writes the client authentication rules into data directory $2 (the
# primary's or the standby's): the private socket trusted, TCP with
# passwords, the standby's replication as its own role, and with CS_TLS=1
# all of TCP only over TLS (hostssl: a connection without TLS matches no
# line and is refused).
pg_hba() {
	local dir=$1 data=$2 host=host
	if [ "$TLS" = 1 ]; then host=hostssl; fi
	cat >"$dir/pg_hba.conf.tmp" <<HBA
# Written by deploy/local/stack.sh on every start (CS_TLS=$TLS).
local all all trust
$host all all 127.0.0.1/32 scram-sha-256
$host all all ::1/128 scram-sha-256
$host replication $REPLICATOR 127.0.0.1/32 scram-sha-256
HBA
	chown "$PG_OS_USER" "$dir/pg_hba.conf.tmp"; mv "$dir/pg_hba.conf.tmp" "$data/pg_hba.conf"
}

# redis_listen_args prints Redis's listening arguments, one a line. With
# CS_TLS=1 it listens TLS-only: the plain port is closed, and clients are
# not asked for certificates (they authenticate with the password).
redis_listen_args() {
	if [ "$TLS" != 1 ]; then printf '%s\n' --port "$REDIS_PORT"; return; fi
	printf '%s\n' --port 0 --tls-port "$REDIS_PORT" --tls-cert-file "$TLS_DIR/server.pem" --tls-key-file "$TLS_DIR/server.key" \
		--tls-ca-cert-file "$TLS_DIR/ca.pem" --tls-auth-clients no --tls-protocols "TLSv1.2 TLSv1.3"
}

# nats_conf_args prints nats-server's config arguments, one a line: the
# operator JWT authentication `chartstream dev init-nats` wrote, and with
# CS_TLS=1 a config that includes it and adds TLS.
nats_conf_args() {
	if [ "$TLS" != 1 ]; then
		printf '%s\n' -c "$LOCAL/nats/nats-auth.conf"
		return
	fi
	(umask 077; cat >"$LOCAL/nats/nats.conf" <<CONF
include "nats-auth.conf"
tls {
  cert_file: "$TLS_DIR/server.pem"
  key_file: "$TLS_DIR/server.key"
  min_version: "1.2"
}
CONF
	)
	printf '%s\n' -c "$LOCAL/nats/nats.conf"
}

# tls_env prints .local/env's TLS settings with CS_TLS=1.
tls_env() {
	if [ "$TLS" != 1 ]; then return; fi
	cat <<ENV
# CS_TLS=1: every connection is TLS, verified against the dev CA.
export CS_TLS_CA_FILE='$TLS_DIR/ca.pem'
export TLS_CERT_FILE='$TLS_DIR/server.pem'
export TLS_KEY_FILE='$TLS_DIR/server.key'
export NATS_TLS_CA_FILE='$TLS_DIR/ca.pem'
export REDIS_TLS_CA_FILE='$TLS_DIR/ca.pem'
ENV
}

# transport_mode refuses to mix modes: services already running keep the
# CS_TLS they were started with.
transport_mode() {
	local want=plain
	if [ "$TLS" = 1 ]; then want=tls; fi
	# A stack started before modes were recorded is plain.
	if [ ! -s "$LOCAL/transport" ] && [ -s "$LOCAL/redis/redis.pid" ] && kill -0 "$(cat "$LOCAL/redis/redis.pid")" 2>/dev/null; then
		echo plain >"$LOCAL/transport"
	fi
	if [ -s "$LOCAL/transport" ] && [ "$(cat "$LOCAL/transport")" != "$want" ]; then
		die "the stack in $LOCAL runs with transport $(cat "$LOCAL/transport"), not $want: make down first (CS_TLS=${TLS})"
	fi
	echo "$want" >"$LOCAL/transport"
}

# local-kms, the AWS KMS emulator the KMS key provider's tests start, is
# built from its Go module at this pinned version (it is not a dependency
# of chartstream's module: its own go.mod pins its dependencies).
LOCAL_KMS_MODULE=github.com/nsmithuk/local-kms
LOCAL_KMS_VERSION=v0.0.0-20260228092603-2a5e92d09ab6

install_local_kms() {
	local stamp="$LOCAL/bin/local-kms.version"
	if [ -x "$LOCAL/bin/local-kms" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$LOCAL_KMS_VERSION" ]; then return 0; fi
	log "building local-kms $LOCAL_KMS_VERSION into $LOCAL/bin"
	mkdir -p "$LOCAL/bin"
	(cd "$ROOT" && GOBIN="$LOCAL/bin" GOFLAGS=-mod=mod go install "$LOCAL_KMS_MODULE@$LOCAL_KMS_VERSION")
	echo "$LOCAL_KMS_VERSION" >"$stamp"
}
