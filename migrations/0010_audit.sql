-- Auditors: signed checkpoints over each tenant's history, the PHI access
-- log, and an index to find a patient's streams.

-- chartstream_append_only refuses UPDATE, DELETE and TRUNCATE, like the
-- events' own trigger, for the audit tables below. Changing their rows
-- takes disabling it, which only the owner can; what the rows prove does
-- not rest on it (checkpoints are signed, access entries chained).
CREATE FUNCTION chartstream_append_only() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RAISE EXCEPTION '%: rows are append-only (% refused)', TG_TABLE_NAME, TG_OP
		USING ERRCODE = 'insufficient_privilege';
END
$$;

-- A signed checkpoint: the running hash over all of a tenant's events in
-- commit order (txid, position) up to and including last_txid/last_position,
-- their count, and an Ed25519 signature over all of it (audit.Checkpoint)
-- by a key the database never sees. Written every few seconds per tenant
-- with new events by the anchor worker (the relay role), and published on
-- the JetStream stream CLINICAL_ANCHORS. seq numbers a tenant's
-- checkpoints 1, 2, 3, ... so a deleted row shows as a gap; the newest is
-- also in CLINICAL_ANCHORS, out of the database owner's reach.
CREATE TABLE audit_checkpoints (
	tenant_id     uuid NOT NULL,
	seq           bigint NOT NULL CONSTRAINT audit_checkpoints_seq_positive CHECK (seq > 0),
	events        bigint NOT NULL,
	last_txid     bigint NOT NULL,
	last_position bigint NOT NULL,
	chain_hash    bytea NOT NULL,
	signed_at     timestamptz NOT NULL,
	-- "<key id>:<base64 Ed25519 signature>" (internal/signing).
	signature     text NOT NULL,
	CONSTRAINT audit_checkpoints_pkey PRIMARY KEY (tenant_id, seq)
);
SELECT chartstream_enable_tenant_rls('audit_checkpoints');
-- The anchor worker reads every tenant's events, so it runs as the relay
-- role, which may add checkpoints for any tenant and change none.
CREATE POLICY relay_anchors ON audit_checkpoints TO chartstream_relay USING (true) WITH CHECK (true);
GRANT SELECT ON audit_checkpoints TO chartstream_app;
GRANT SELECT, INSERT ON audit_checkpoints TO chartstream_relay;
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
	FOR EACH ROW EXECUTE FUNCTION chartstream_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
	FOR EACH STATEMENT EXECUTE FUNCTION chartstream_append_only();

-- The PHI access log (HIPAA 164.312(b)): one row per read that returned
-- PHI. Ids and codes only, no PHI. Each tenant's entries form a hash chain
-- (seq 1, 2, 3, ..., each hash covering its predecessor's), built here so
-- that several API processes append to one chain.
CREATE TABLE phi_access_log (
	tenant_id    uuid NOT NULL,
	seq          bigint NOT NULL,
	accessed_at  timestamptz NOT NULL,
	actor        text NOT NULL,
	roles        text[] NOT NULL,
	-- The patients whose PHI the response held; all_patients for reads
	-- of the whole tenant (an export without a patient).
	patients     uuid[] NOT NULL,
	all_patients boolean NOT NULL,
	route        text NOT NULL,
	-- An HL7 PurposeOfUse code (X-Purpose-Of-Use, default TREAT).
	purpose      text NOT NULL CONSTRAINT phi_access_log_purpose CHECK (purpose ~ '^[A-Z]{2,20}$'),
	request_id   text NOT NULL,
	prev_hash    bytea,
	hash         bytea NOT NULL,
	CONSTRAINT phi_access_log_pkey PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX phi_access_log_patients ON phi_access_log USING gin (tenant_id, patients);
CREATE INDEX phi_access_log_actor ON phi_access_log (tenant_id, actor, seq);
CREATE INDEX phi_access_log_accessed ON phi_access_log (tenant_id, accessed_at);
SELECT chartstream_enable_tenant_rls('phi_access_log');
GRANT SELECT, INSERT ON phi_access_log TO chartstream_app;

CREATE FUNCTION chartstream_access_hash(prev bytea, e public.phi_access_log) RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT sha256(
		coalesce(prev, ''::bytea)
		|| public.chartstream_hash_field(uuid_send(e.tenant_id))
		|| public.chartstream_hash_field(int8send(e.seq))
		|| public.chartstream_hash_field(int8send((extract(epoch FROM e.accessed_at) * 1000000)::bigint))
		|| public.chartstream_hash_field(convert_to(e.actor, 'UTF8'))
		|| public.chartstream_hash_field(convert_to(array_to_string(e.roles, ','), 'UTF8'))
		|| public.chartstream_hash_field(convert_to(array_to_string(e.patients, ','), 'UTF8'))
		|| public.chartstream_hash_field(boolsend(e.all_patients))
		|| public.chartstream_hash_field(convert_to(e.route, 'UTF8'))
		|| public.chartstream_hash_field(convert_to(e.purpose, 'UTF8'))
		|| public.chartstream_hash_field(convert_to(e.request_id, 'UTF8'))
	)
$$;

-- Entries of one tenant chain in the order they are inserted: concurrent
-- writers (API processes) take turns on a transaction-scoped lock per
-- tenant. Rows earlier in the same INSERT are visible here.
CREATE FUNCTION chartstream_access_chain() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	prev record;
BEGIN
	PERFORM pg_advisory_xact_lock(hashtextextended('chartstream.access_log.' || NEW.tenant_id::text, 0));
	SELECT l.seq, l.hash INTO prev FROM public.phi_access_log l
	WHERE l.tenant_id = NEW.tenant_id ORDER BY l.seq DESC LIMIT 1;
	NEW.seq := coalesce(prev.seq, 0) + 1;
	NEW.prev_hash := prev.hash;
	NEW.hash := public.chartstream_access_hash(NEW.prev_hash, NEW);
	RETURN NEW;
END
$$;
CREATE TRIGGER phi_access_log_chain BEFORE INSERT ON phi_access_log
	FOR EACH ROW EXECUTE FUNCTION chartstream_access_chain();
CREATE TRIGGER phi_access_log_append_only BEFORE UPDATE OR DELETE ON phi_access_log
	FOR EACH ROW EXECUTE FUNCTION chartstream_append_only();
CREATE TRIGGER phi_access_log_no_truncate BEFORE TRUNCATE ON phi_access_log
	FOR EACH STATEMENT EXECUTE FUNCTION chartstream_append_only();

-- A patient's streams: its own, and the encounters and medication orders
-- whose first event names it (patient_id is an id, not PHI, and stays in
-- the clear payload). Only first events are indexed.
CREATE INDEX events_patient_streams ON events (tenant_id, (payload ->> 'patient_id')) WHERE version = 1;

---- create above / drop below ----

DROP INDEX events_patient_streams;
DROP FUNCTION chartstream_access_hash(bytea, public.phi_access_log);
DROP TABLE phi_access_log;
DROP FUNCTION chartstream_access_chain();
DROP TABLE audit_checkpoints;
DROP FUNCTION chartstream_append_only();
