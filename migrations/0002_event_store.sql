-- The event store: an append-only, hash-chained sequence of tenant-tagged
-- clinical events, the single source of truth.

-- The relay publishes every tenant's events, so it has its own role whose
-- only cross-tenant right is SELECT on events (granted below and in its
-- own policy); it cannot write events and has no BYPASSRLS.
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'chartstream_relay') THEN
		CREATE ROLE chartstream_relay LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION;
	END IF;
	EXECUTE format('GRANT CONNECT ON DATABASE %I TO chartstream_relay', current_database());
END
$$;
GRANT USAGE ON SCHEMA public TO chartstream_relay;

-- A long transaction holds back the gap-free read horizon (see ReadAll), so
-- the writer role may neither sit idle in one nor run unbounded statements.
ALTER ROLE chartstream_app SET idle_in_transaction_session_timeout = '10s';
ALTER ROLE chartstream_app SET statement_timeout = '30s';

CREATE TABLE events (
	-- Global position: unique across tenants, assigned at insert time. It is
	-- NOT commit order; readers order by (txid, position), see ReadAll.
	position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	-- No foreign key to tenants: every insert would take FOR KEY SHARE on
	-- the same tenant row, and concurrent writers of one tenant would
	-- contend on MultiXacts. Tenants are never deleted, and the API admits
	-- only existing, active tenants.
	tenant_id      uuid NOT NULL,
	stream_type    text NOT NULL CONSTRAINT events_stream_type_format CHECK (stream_type ~ '^[a-z][a-z0-9_]{0,62}$'),
	stream_id      uuid NOT NULL,
	version        bigint NOT NULL CONSTRAINT events_version_positive CHECK (version > 0),
	event_id       uuid NOT NULL CONSTRAINT events_event_id_key UNIQUE,
	event_type     text NOT NULL CONSTRAINT events_event_type_format CHECK (event_type ~ '^[a-z][a-z0-9_.]{0,126}$'),
	schema_version integer NOT NULL CONSTRAINT events_schema_version_positive CHECK (schema_version > 0),
	-- payload holds the non-PHI fields; PHI fields are sealed into phi
	-- (AES-256-GCM under the data subject's key, see data_keys).
	payload        jsonb NOT NULL,
	phi            bytea,
	subject_id     uuid,
	metadata       jsonb NOT NULL,
	recorded_at    timestamptz NOT NULL DEFAULT now(),
	-- The writing transaction, for the gap-free read.
	txid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
	prev_hash      bytea,
	hash           bytea NOT NULL,
	CONSTRAINT events_stream_version UNIQUE (tenant_id, stream_id, version),
	CONSTRAINT events_phi_subject CHECK ((phi IS NULL) = (subject_id IS NULL))
);
CREATE INDEX events_commit_order ON events (txid, position);
CREATE INDEX events_tenant_commit_order ON events (tenant_id, txid, position);
SELECT chartstream_enable_tenant_rls('events');
CREATE POLICY relay_reads_all ON events FOR SELECT TO chartstream_relay USING (true);
GRANT SELECT, INSERT ON events TO chartstream_app;
GRANT SELECT ON events TO chartstream_relay;

-- chartstream_event_hash is the tamper-evidence formula. The Go verifier
-- (eventstore/verify.go) computes the same bytes; change both or neither.
-- Each field is length-prefixed so no two events share an encoding; the
-- payload and metadata are hashed in PostgreSQL's canonical jsonb text form,
-- the PHI as the ciphertext stored.
CREATE FUNCTION chartstream_hash_field(b bytea) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT int4send(octet_length(b)) || b $$;

CREATE FUNCTION chartstream_event_hash(
	prev bytea, tenant uuid, stream_type text, stream_id uuid, version bigint, event_id uuid,
	event_type text, schema_version integer, payload jsonb, phi bytea, subject uuid,
	metadata jsonb, recorded_at timestamptz
) RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$
	SELECT sha256(
		coalesce(prev, ''::bytea)
		|| chartstream_hash_field(uuid_send(tenant))
		|| chartstream_hash_field(convert_to(stream_type, 'UTF8'))
		|| chartstream_hash_field(uuid_send(stream_id))
		|| chartstream_hash_field(int8send(version))
		|| chartstream_hash_field(uuid_send(event_id))
		|| chartstream_hash_field(convert_to(event_type, 'UTF8'))
		|| chartstream_hash_field(int4send(schema_version))
		|| chartstream_hash_field(convert_to(payload::text, 'UTF8'))
		|| chartstream_hash_field(coalesce(phi, ''::bytea))
		|| chartstream_hash_field(coalesce(uuid_send(subject), ''::bytea))
		|| chartstream_hash_field(convert_to(metadata::text, 'UTF8'))
		|| chartstream_hash_field(int8send((extract(epoch FROM recorded_at) * 1000000)::bigint))
	)
$$;

-- Chaining happens in the database, so no writer can break it: each new
-- event links to its stream's previous event, which must exist and be of
-- the same stream type. Rows earlier in the same INSERT are visible here.
CREATE FUNCTION chartstream_events_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	prev record;
BEGIN
	IF NEW.version > 1 THEN
		SELECT e.hash, e.stream_type INTO prev FROM events e
		WHERE e.tenant_id = NEW.tenant_id AND e.stream_id = NEW.stream_id AND e.version = NEW.version - 1;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'event store: version % of a stream without version %', NEW.version, NEW.version - 1
				USING ERRCODE = 'check_violation', CONSTRAINT = 'events_version_contiguous';
		END IF;
		IF prev.stream_type <> NEW.stream_type THEN
			RAISE EXCEPTION 'event store: stream type mismatch'
				USING ERRCODE = 'check_violation', CONSTRAINT = 'events_stream_type_stable';
		END IF;
		NEW.prev_hash := prev.hash;
	ELSE
		NEW.prev_hash := NULL;
	END IF;
	NEW.hash := chartstream_event_hash(NEW.prev_hash, NEW.tenant_id, NEW.stream_type, NEW.stream_id,
		NEW.version, NEW.event_id, NEW.event_type, NEW.schema_version, NEW.payload, NEW.phi,
		NEW.subject_id, NEW.metadata, NEW.recorded_at);
	RETURN NEW;
END
$$;
CREATE TRIGGER events_chain BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION chartstream_events_chain();

-- Events are immutable for every role, the owner included. Changing one
-- takes disabling this trigger, which only the owner can, and which the
-- hash chain then exposes (chartstream verify).
CREATE FUNCTION chartstream_events_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'event store: events are append-only (% refused)', TG_OP
		USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
	FOR EACH ROW EXECUTE FUNCTION chartstream_events_immutable();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
	FOR EACH STATEMENT EXECUTE FUNCTION chartstream_events_immutable();

-- Unique values within a tenant (a patient's MRN), reserved in the same
-- transaction as the event that claims them. Only a hash of the value is
-- stored.
CREATE TABLE unique_claims (
	tenant_id  uuid NOT NULL REFERENCES tenants (id),
	scope      text NOT NULL,
	value_hash bytea NOT NULL,
	stream_id  uuid NOT NULL,
	claimed_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT unique_claims_pkey PRIMARY KEY (tenant_id, scope, value_hash)
);
SELECT chartstream_enable_tenant_rls('unique_claims');
GRANT SELECT, INSERT ON unique_claims TO chartstream_app;

-- Per-patient data keys, wrapped by the tenant's key-encryption key.
-- Crypto-shredding sets wrapped to NULL: the events stay, their hashes
-- still verify, and their PHI can no longer be read.
CREATE TABLE data_keys (
	tenant_id    uuid NOT NULL REFERENCES tenants (id),
	subject_id   uuid NOT NULL,
	wrapped      bytea,
	created_at   timestamptz NOT NULL DEFAULT now(),
	destroyed_at timestamptz,
	PRIMARY KEY (tenant_id, subject_id),
	CONSTRAINT data_keys_destroyed CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL))
);
SELECT chartstream_enable_tenant_rls('data_keys');
GRANT SELECT, INSERT ON data_keys TO chartstream_app;
GRANT UPDATE (wrapped, destroyed_at) ON data_keys TO chartstream_app;

-- Aggregate snapshots, sealed like PHI under the stream's data key.
CREATE TABLE snapshots (
	tenant_id      uuid NOT NULL REFERENCES tenants (id),
	stream_id      uuid NOT NULL,
	version        bigint NOT NULL,
	schema_version integer NOT NULL,
	state          bytea NOT NULL,
	taken_at       timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, stream_id)
);
SELECT chartstream_enable_tenant_rls('snapshots');
GRANT SELECT, INSERT, UPDATE ON snapshots TO chartstream_app;

---- create above / drop below ----

DROP TABLE snapshots;
DROP TABLE data_keys;
DROP TABLE unique_claims;
DROP TABLE events;
DROP FUNCTION chartstream_events_immutable();
DROP FUNCTION chartstream_events_chain();
DROP FUNCTION chartstream_event_hash(bytea, uuid, text, uuid, bigint, uuid, text, integer, jsonb, bytea, uuid, jsonb, timestamptz);
DROP FUNCTION chartstream_hash_field(bytea);
