-- Nothing the app roles do may redirect what the event store's own
-- functions read. The chain trigger looked events up through the caller's
-- search_path, and pg_temp is searched first: a TEMP table named events
-- would have been read instead of the real one. So the app roles may no
-- longer create temporary tables, and every trigger and hash function names
-- what it reads by schema and runs with a fixed search_path.

DO $$
BEGIN
	EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
	EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM chartstream_app, chartstream_analytics, chartstream_relay', current_database());
END
$$;

ALTER FUNCTION chartstream_hash_field(bytea) SET search_path = pg_catalog, pg_temp;

CREATE OR REPLACE FUNCTION chartstream_event_hash(
	prev bytea, tenant uuid, stream_type text, stream_id uuid, version bigint, event_id uuid,
	event_type text, schema_version integer, payload jsonb, phi bytea, subject uuid,
	metadata jsonb, recorded_at timestamptz
) RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT sha256(
		coalesce(prev, ''::bytea)
		|| public.chartstream_hash_field(uuid_send(tenant))
		|| public.chartstream_hash_field(convert_to(stream_type, 'UTF8'))
		|| public.chartstream_hash_field(uuid_send(stream_id))
		|| public.chartstream_hash_field(int8send(version))
		|| public.chartstream_hash_field(uuid_send(event_id))
		|| public.chartstream_hash_field(convert_to(event_type, 'UTF8'))
		|| public.chartstream_hash_field(int4send(schema_version))
		|| public.chartstream_hash_field(convert_to(payload::text, 'UTF8'))
		|| public.chartstream_hash_field(coalesce(phi, ''::bytea))
		|| public.chartstream_hash_field(coalesce(uuid_send(subject), ''::bytea))
		|| public.chartstream_hash_field(convert_to(metadata::text, 'UTF8'))
		|| public.chartstream_hash_field(int8send((extract(epoch FROM recorded_at) * 1000000)::bigint))
	)
$$;

CREATE OR REPLACE FUNCTION chartstream_events_chain() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	prev record;
BEGIN
	IF NEW.version > 1 THEN
		SELECT e.hash, e.stream_type INTO prev FROM public.events e
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
	NEW.hash := public.chartstream_event_hash(NEW.prev_hash, NEW.tenant_id, NEW.stream_type, NEW.stream_id,
		NEW.version, NEW.event_id, NEW.event_type, NEW.schema_version, NEW.payload, NEW.phi,
		NEW.subject_id, NEW.metadata, NEW.recorded_at);
	RETURN NEW;
END
$$;

ALTER FUNCTION chartstream_events_immutable() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION chartstream_enable_tenant_rls(regclass) SET search_path = pg_catalog, pg_temp;

---- create above / drop below ----

ALTER FUNCTION chartstream_enable_tenant_rls(regclass) RESET search_path;
ALTER FUNCTION chartstream_events_immutable() RESET search_path;
ALTER FUNCTION chartstream_events_chain() RESET search_path;
ALTER FUNCTION chartstream_event_hash(bytea, uuid, text, uuid, bigint, uuid, text, integer, jsonb, bytea, uuid, jsonb, timestamptz) RESET search_path;
ALTER FUNCTION chartstream_hash_field(bytea) RESET search_path;
DO $$
BEGIN
	EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO PUBLIC', current_database());
END
$$;
