-- Analytics tables: aggregates for population health, quality reporting and
-- research, written on the primary by the analytics projector
-- (workers.AnalyticsProjector, projections/analytics) and read from the hot
-- standby by the analytics API as chartstream_analytics.
--
-- They hold no PHI: counts, sums and extremes per tenant, day and code or
-- location, and encounters by id with their location and times. Days are
-- UTC days. Every table is partitioned by month (declarative range
-- partitioning on its day) and led by tenant_id in every key; RLS is
-- enabled and forced on each parent and on each partition, so reading a
-- partition directly is as isolated as reading through its parent (the app
-- roles have no grant on partitions anyway).
--
-- Updates add to counts and sums, so applying an event twice would count it
-- twice: the projector applies each event once, advancing the tenant's row
-- in analytics_checkpoints in the same transaction.

-- Daily flows per location; the census at the end of a day is the sum of
-- the net flows up to it (admissions + transfers_in - discharges -
-- transfers_out).
CREATE TABLE analytics_census_daily (
	tenant_id     uuid NOT NULL,
	day           date NOT NULL,
	location      text NOT NULL,
	admissions    bigint NOT NULL DEFAULT 0,
	discharges    bigint NOT NULL DEFAULT 0,
	transfers_in  bigint NOT NULL DEFAULT 0,
	transfers_out bigint NOT NULL DEFAULT 0,
	CONSTRAINT analytics_census_daily_pkey PRIMARY KEY (tenant_id, day, location)
) PARTITION BY RANGE (day);

-- Every encounter with its length of stay, partitioned by the day it
-- started; location is the current one. The projector finds an encounter by
-- id when it is transferred or discharged.
CREATE TABLE analytics_encounters (
	tenant_id          uuid NOT NULL,
	day                date NOT NULL,
	encounter_id       uuid NOT NULL,
	class              text NOT NULL,
	admitted_location  text NOT NULL,
	location           text NOT NULL,
	started_at         timestamptz NOT NULL,
	ended_at           timestamptz,
	length_of_stay     interval GENERATED ALWAYS AS (ended_at - started_at) STORED,
	CONSTRAINT analytics_encounters_pkey PRIMARY KEY (tenant_id, day, encounter_id)
) PARTITION BY RANGE (day);
CREATE INDEX analytics_encounters_id ON analytics_encounters (tenant_id, encounter_id);

-- Observations per LOINC code, unit and day of effective time: their
-- number, and for numeric ones their number, exact sum, minimum and maximum
-- (the mean is value_sum / numeric_count). Coded results count in
-- observations only; unit is '' for them.
CREATE TABLE analytics_observations_daily (
	tenant_id     uuid NOT NULL,
	day           date NOT NULL,
	code          text NOT NULL,
	unit          text NOT NULL,
	observations  bigint NOT NULL,
	numeric_count bigint NOT NULL,
	value_sum     numeric,
	value_min     numeric,
	value_max     numeric,
	CONSTRAINT analytics_observations_daily_pkey PRIMARY KEY (tenant_id, day, code, unit)
) PARTITION BY RANGE (day);

-- Medication orders per RxNorm code and day prescribed.
CREATE TABLE analytics_medication_orders_daily (
	tenant_id  uuid NOT NULL,
	day        date NOT NULL,
	code       text NOT NULL,
	orders     bigint NOT NULL,
	CONSTRAINT analytics_medication_orders_daily_pkey PRIMARY KEY (tenant_id, day, code)
) PARTITION BY RANGE (day);

-- Where the analytics projector is in each tenant's events (the gap-free
-- cursor of the last event applied), advanced in the transaction that
-- applies the events. Its own table, not projection_checkpoints: the read
-- models' rebuild resets those per copy, and a reset here would count every
-- event again.
CREATE TABLE analytics_checkpoints (
	tenant_id  uuid NOT NULL,
	txid       bigint NOT NULL,
	position   bigint NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT analytics_checkpoints_pkey PRIMARY KEY (tenant_id)
);

-- Events the analytics projector could not apply and set aside, by id
-- only; the aggregates then lack them.
CREATE TABLE analytics_dead_letters (
	tenant_id  uuid NOT NULL,
	event_id   uuid NOT NULL,
	event_type text NOT NULL,
	position   bigint NOT NULL,
	reason     text NOT NULL,
	dead_at    timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT analytics_dead_letters_pkey PRIMARY KEY (tenant_id, event_id)
);

DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['analytics_census_daily', 'analytics_encounters', 'analytics_observations_daily',
		'analytics_medication_orders_daily', 'analytics_checkpoints', 'analytics_dead_letters']
	LOOP
		PERFORM chartstream_enable_tenant_rls(format('public.%I', t)::regclass);
		EXECUTE format('GRANT SELECT, INSERT, UPDATE ON public.%I TO chartstream_app', t);
	END LOOP;
	FOREACH t IN ARRAY ARRAY['analytics_census_daily', 'analytics_encounters', 'analytics_observations_daily',
		'analytics_medication_orders_daily', 'analytics_checkpoints']
	LOOP
		EXECUTE format('GRANT SELECT ON public.%I TO chartstream_analytics', t);
	END LOOP;
END
$$;

-- chartstream_analytics_partitions creates, for every analytics table, the
-- partition of the month holding day, unless it exists; the projector calls
-- it (in a transaction of its own) before it writes into a month it has not
-- seen. It runs as the owner, who owns the partitions; the app role may
-- only call it. The partition is created apart and then attached, which
-- locks the parent only SHARE UPDATE EXCLUSIVE: readers, on the primary and
-- on the standby, go on. Months outside 1900 to next year are refused
-- (SQLSTATE 22008), so that a wild date sets its event aside instead of
-- creating partitions without end.
CREATE FUNCTION chartstream_analytics_partitions(day date) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	first date := date_trunc('month', day)::date;
	t text;
	part text;
BEGIN
	IF first < date '1900-01-01' OR first > date_trunc('year', now())::date + interval '2 years' THEN
		RAISE EXCEPTION 'analytics: no partition for a month so far from today' USING ERRCODE = 'datetime_field_overflow';
	END IF;
	PERFORM pg_advisory_xact_lock(hashtext('chartstream.analytics-partitions'));
	FOREACH t IN ARRAY ARRAY['analytics_census_daily', 'analytics_encounters', 'analytics_observations_daily',
		'analytics_medication_orders_daily']
	LOOP
		part := format('%s_y%sm%s', t, to_char(first, 'YYYY'), to_char(first, 'MM'));
		CONTINUE WHEN to_regclass(format('public.%I', part)) IS NOT NULL;
		EXECUTE format('CREATE TABLE public.%I (LIKE public.%I INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS)', part, t);
		PERFORM public.chartstream_enable_tenant_rls(format('public.%I', part)::regclass);
		EXECUTE format('ALTER TABLE public.%I ATTACH PARTITION public.%I FOR VALUES FROM (%L) TO (%L)',
			t, part, first, (first + interval '1 month')::date);
	END LOOP;
END
$$;
REVOKE ALL ON FUNCTION chartstream_analytics_partitions(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chartstream_analytics_partitions(date) TO chartstream_app;

---- create above / drop below ----

DROP FUNCTION chartstream_analytics_partitions(date);
DROP TABLE analytics_dead_letters;
DROP TABLE analytics_checkpoints;
DROP TABLE analytics_medication_orders_daily;
DROP TABLE analytics_observations_daily;
DROP TABLE analytics_encounters;
DROP TABLE analytics_census_daily;
