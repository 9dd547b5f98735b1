-- Read models: the query side, projected from the event store by the
-- projectors in projections/. They hold PHI in the clear, because it must be
-- searchable, so they follow the tenant pattern like every other tenant
-- table; a crypto-shredded field arrives null and is stored as NULL.
--
-- Projectors write unqualified table names. A rebuild replays into the twins
-- in schema rebuild under SET LOCAL search_path = rebuild, public, so the
-- same SQL lands there; everything else it uses (chartstream_fold, the
-- pg_trgm operators) lives in public and still resolves.
--
-- No foreign keys: each projector advances on its own checkpoint, so an
-- order may be projected before its patient's chart, and a twin must be
-- fillable alone.

-- pg_trgm, btree_gin and unaccent are trusted extensions (PostgreSQL 13+):
-- the owner creates them because it has CREATE on the database.
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
CREATE EXTENSION IF NOT EXISTS btree_gin SCHEMA public;
CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public;

-- chartstream_fold normalises a name for search: lower case, accents
-- removed. unaccent() is only STABLE (its dictionary could change), so this
-- IMMUTABLE wrapper names the dictionary explicitly; the SQL-standard body
-- binds every name at creation, so no search_path can redirect it.
CREATE FUNCTION chartstream_fold(s text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN lower(public.unaccent('public.unaccent'::regdictionary, s));

-- One row per patient: demographics and the search keys. version is the
-- patient stream version last applied; every patient event advances it.
CREATE TABLE patient_charts (
	tenant_id   uuid NOT NULL,
	patient_id  uuid NOT NULL,
	mrn         text,
	family_name text,
	given_names text[],
	birth_date  date,
	sex         text,
	phone       text,
	email       text,
	-- deceased survives the shredding of deceased_at.
	deceased    boolean NOT NULL DEFAULT false,
	deceased_at timestamptz,
	-- chartstream_fold(given names || ' ' || family), for prefix and fuzzy
	-- search; '' when the name is unknown or erased.
	search_name text NOT NULL DEFAULT '',
	-- chartstream_fold(family || ' ' || given names), the listing order.
	sort_name   text NOT NULL DEFAULT '',
	version     bigint NOT NULL,
	updated_at  timestamptz NOT NULL,
	CONSTRAINT patient_charts_pkey PRIMARY KEY (tenant_id, patient_id)
);
CREATE INDEX patient_charts_mrn ON patient_charts (tenant_id, mrn);
CREATE INDEX patient_charts_birth_date ON patient_charts (tenant_id, birth_date);
CREATE INDEX patient_charts_sort ON patient_charts (tenant_id, sort_name, patient_id);
-- btree_gin lets the tenant narrow the trigram scan inside the index.
CREATE INDEX patient_charts_search_name ON patient_charts USING gin (tenant_id, search_name gin_trgm_ops);

CREATE TABLE chart_allergies (
	tenant_id         uuid NOT NULL,
	allergy_id        uuid NOT NULL,
	patient_id        uuid NOT NULL,
	substance_code    text NOT NULL,
	substance_display text,
	substance_system  text NOT NULL,
	criticality       text NOT NULL,
	reaction          text,
	status            text NOT NULL CONSTRAINT chart_allergies_status CHECK (status IN ('active', 'refuted')),
	recorded_at       timestamptz NOT NULL,
	version           bigint NOT NULL,
	CONSTRAINT chart_allergies_pkey PRIMARY KEY (tenant_id, allergy_id)
);
CREATE INDEX chart_allergies_patient ON chart_allergies (tenant_id, patient_id);

CREATE TABLE chart_conditions (
	tenant_id    uuid NOT NULL,
	condition_id uuid NOT NULL,
	patient_id   uuid NOT NULL,
	code         text NOT NULL,
	system       text NOT NULL,
	display      text,
	onset        date,
	status       text NOT NULL CONSTRAINT chart_conditions_status CHECK (status IN ('active', 'resolved')),
	recorded_at  timestamptz NOT NULL,
	resolved_at  timestamptz,
	version      bigint NOT NULL,
	CONSTRAINT chart_conditions_pkey PRIMARY KEY (tenant_id, condition_id)
);
CREATE INDEX chart_conditions_patient ON chart_conditions (tenant_id, patient_id);

-- The latest vital sign per patient and LOINC code: the observation with the
-- latest effective_at (ties broken by observation id), whatever the order in
-- which observations arrive.
CREATE TABLE chart_vitals (
	tenant_id      uuid NOT NULL,
	patient_id     uuid NOT NULL,
	code           text NOT NULL,
	system         text NOT NULL,
	observation_id uuid NOT NULL,
	value          numeric,
	unit           text,
	value_code     text,
	effective_at   timestamptz NOT NULL,
	CONSTRAINT chart_vitals_pkey PRIMARY KEY (tenant_id, patient_id, code)
);

-- Every observation: a time series per patient and code. Observations never
-- change once recorded.
CREATE TABLE observations (
	tenant_id      uuid NOT NULL,
	observation_id uuid NOT NULL,
	patient_id     uuid NOT NULL,
	code           text NOT NULL,
	system         text NOT NULL,
	value          numeric,
	unit           text,
	value_code     text,
	effective_at   timestamptz NOT NULL,
	encounter_id   uuid,
	recorded_at    timestamptz NOT NULL,
	CONSTRAINT observations_pkey PRIMARY KEY (tenant_id, observation_id)
);
CREATE INDEX observations_series ON observations (tenant_id, patient_id, code, effective_at);
CREATE INDEX observations_patient ON observations (tenant_id, patient_id, effective_at);

-- Encounters; the census is the in-progress ones per location.
CREATE TABLE encounters (
	tenant_id    uuid NOT NULL,
	encounter_id uuid NOT NULL,
	patient_id   uuid NOT NULL,
	class        text NOT NULL,
	location     text NOT NULL,
	status       text NOT NULL CONSTRAINT encounters_status CHECK (status IN ('in-progress', 'finished')),
	started_at   timestamptz NOT NULL,
	ended_at     timestamptz,
	version      bigint NOT NULL,
	CONSTRAINT encounters_pkey PRIMARY KEY (tenant_id, encounter_id)
);
CREATE INDEX encounters_census ON encounters (tenant_id, location, started_at, encounter_id) WHERE status = 'in-progress';
CREATE INDEX encounters_patient ON encounters (tenant_id, patient_id, started_at);
CREATE INDEX encounters_started ON encounters (tenant_id, started_at, encounter_id);

CREATE TABLE medication_orders (
	tenant_id           uuid NOT NULL,
	order_id            uuid NOT NULL,
	patient_id          uuid NOT NULL,
	code                text NOT NULL,
	display             text,
	system              text NOT NULL,
	dose                text NOT NULL,
	route               text NOT NULL,
	frequency           text NOT NULL,
	prescriber          text NOT NULL,
	status              text NOT NULL CONSTRAINT medication_orders_status CHECK (status IN ('active', 'stopped')),
	override_reason     text,
	discontinued_reason text,
	prescribed_at       timestamptz NOT NULL,
	discontinued_at     timestamptz,
	version             bigint NOT NULL,
	CONSTRAINT medication_orders_pkey PRIMARY KEY (tenant_id, order_id)
);
CREATE INDEX medication_orders_patient ON medication_orders (tenant_id, patient_id, status);

-- Where each projector is in a tenant's events: the gap-free cursor (see
-- eventstore.Cursor) of the last event applied, advanced in the same
-- transaction as the read model.
CREATE TABLE projection_checkpoints (
	tenant_id  uuid NOT NULL,
	projection text NOT NULL,
	txid       bigint NOT NULL,
	position   bigint NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT projection_checkpoints_pkey PRIMARY KEY (tenant_id, projection)
);

-- The twins a rebuild replays into: same columns, constraints and indexes
-- (LIKE ... INCLUDING ALL), same RLS, same grants. No TRUNCATE for the app
-- role, here or in public: TRUNCATE ignores RLS and would empty every
-- tenant's rows; a rebuild DELETEs its own tenant's.
CREATE SCHEMA rebuild;
GRANT USAGE ON SCHEMA rebuild TO chartstream_app;

DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['patient_charts', 'chart_allergies', 'chart_conditions', 'chart_vitals',
		'observations', 'encounters', 'medication_orders', 'projection_checkpoints']
	LOOP
		PERFORM chartstream_enable_tenant_rls(format('public.%I', t)::regclass);
		EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON public.%I TO chartstream_app', t);
		EXECUTE format('CREATE TABLE rebuild.%I (LIKE public.%I INCLUDING ALL)', t, t);
		PERFORM chartstream_enable_tenant_rls(format('rebuild.%I', t)::regclass);
		EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON rebuild.%I TO chartstream_app', t);
	END LOOP;
END
$$;

---- create above / drop below ----

DROP SCHEMA rebuild CASCADE;
DROP TABLE projection_checkpoints;
DROP TABLE medication_orders;
DROP TABLE encounters;
DROP TABLE observations;
DROP TABLE chart_vitals;
DROP TABLE chart_conditions;
DROP TABLE chart_allergies;
DROP TABLE patient_charts;
DROP FUNCTION chartstream_fold(text);
-- The extensions stay: other objects may use them, and when the bring-up
-- created them as superuser the owner could not drop them.
