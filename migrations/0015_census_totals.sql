-- The census read summed every day a location ever had: the census the
-- range starts from, and the arrivals that decide whether the location's
-- name may be shown, came from all of the tenant's census days, so its
-- cost grew with the tenant's history. analytics_census_totals keeps, per
-- location, what those sums were: the first day, all arrivals (admissions
-- and transfers in) and the net flow. A trigger on analytics_census_daily
-- adds each change of a day to it, whoever writes the day (a projector of
-- the version before this one too, during a rolling upgrade), so the two
-- never disagree; a read now sums only the days from the range's start on.
-- Lengths of stay are found by when encounters ended, which no index
-- served: every encounter the tenant ever had was read.
CREATE TABLE analytics_census_totals (
	tenant_id uuid NOT NULL,
	location  text NOT NULL,
	first_day date NOT NULL,
	arrivals  bigint NOT NULL,
	net       bigint NOT NULL,
	CONSTRAINT analytics_census_totals_pkey PRIMARY KEY (tenant_id, location)
);
SELECT chartstream_enable_tenant_rls('analytics_census_totals');
GRANT SELECT, INSERT, UPDATE ON analytics_census_totals TO chartstream_app;
GRANT SELECT ON analytics_census_totals TO chartstream_analytics;

-- The totals of the days recorded so far. The owner is subject to the
-- forced policies too, so it reads every tenant's days with RLS not forced
-- on the two tables for the length of this migration's transaction.
ALTER TABLE analytics_census_daily NO FORCE ROW LEVEL SECURITY;
ALTER TABLE analytics_census_totals NO FORCE ROW LEVEL SECURITY;
INSERT INTO analytics_census_totals (tenant_id, location, first_day, arrivals, net)
SELECT tenant_id, location, min(day), sum(admissions + transfers_in), sum(admissions + transfers_in - discharges - transfers_out)
FROM analytics_census_daily GROUP BY tenant_id, location;
ALTER TABLE analytics_census_daily FORCE ROW LEVEL SECURITY;
ALTER TABLE analytics_census_totals FORCE ROW LEVEL SECURITY;

-- The ALTER TABLE above holds analytics_census_daily exclusively until this
-- migration commits, so no day is written between the totals and the
-- triggers that keep them. They run once per statement, over the rows it
-- changed (transition tables): one update of a location's totals per
-- statement, however many of its days the statement wrote.
CREATE FUNCTION chartstream_census_totals() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	-- Each branch reads only the transition tables its trigger has: a
	-- row's arrivals and net flow are added as it is now and subtracted
	-- as it was.
	IF TG_OP = 'INSERT' THEN
		INSERT INTO public.analytics_census_totals AS t (tenant_id, location, first_day, arrivals, net)
		SELECT tenant_id, location, min(day), sum(admissions + transfers_in), sum(admissions + transfers_in - discharges - transfers_out)
		FROM changed_new GROUP BY tenant_id, location
		ON CONFLICT (tenant_id, location) DO UPDATE SET first_day = least(t.first_day, excluded.first_day),
			arrivals = t.arrivals + excluded.arrivals, net = t.net + excluded.net;
	ELSIF TG_OP = 'UPDATE' THEN
		IF EXISTS (SELECT 1 FROM changed_old o LEFT JOIN changed_new n USING (tenant_id, day, location) WHERE n.tenant_id IS NULL) THEN
			RAISE EXCEPTION 'analytics_census_daily: a day keeps its tenant, day and location' USING ERRCODE = 'feature_not_supported';
		END IF;
		INSERT INTO public.analytics_census_totals AS t (tenant_id, location, first_day, arrivals, net)
		SELECT n.tenant_id, n.location, min(n.day),
			sum((n.admissions + n.transfers_in) - (o.admissions + o.transfers_in)),
			sum((n.admissions + n.transfers_in - n.discharges - n.transfers_out) - (o.admissions + o.transfers_in - o.discharges - o.transfers_out))
		FROM changed_new n JOIN changed_old o USING (tenant_id, day, location) GROUP BY n.tenant_id, n.location
		ON CONFLICT (tenant_id, location) DO UPDATE SET first_day = least(t.first_day, excluded.first_day),
			arrivals = t.arrivals + excluded.arrivals, net = t.net + excluded.net;
	ELSE
		UPDATE public.analytics_census_totals t SET arrivals = t.arrivals - o.arrivals, net = t.net - o.net
		FROM (SELECT tenant_id, location, sum(admissions + transfers_in) AS arrivals,
				sum(admissions + transfers_in - discharges - transfers_out) AS net
			FROM changed_old GROUP BY tenant_id, location) AS o
		WHERE t.tenant_id = o.tenant_id AND t.location = o.location;
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER analytics_census_daily_inserted AFTER INSERT ON analytics_census_daily
	REFERENCING NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION chartstream_census_totals();
CREATE TRIGGER analytics_census_daily_updated AFTER UPDATE ON analytics_census_daily
	REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION chartstream_census_totals();
CREATE TRIGGER analytics_census_daily_deleted AFTER DELETE ON analytics_census_daily
	REFERENCING OLD TABLE AS changed_old FOR EACH STATEMENT EXECUTE FUNCTION chartstream_census_totals();
CREATE INDEX analytics_encounters_ended ON analytics_encounters (tenant_id, ended_at);

---- create above / drop below ----

DROP INDEX analytics_encounters_ended;
DROP TRIGGER analytics_census_daily_inserted ON analytics_census_daily;
DROP TRIGGER analytics_census_daily_updated ON analytics_census_daily;
DROP TRIGGER analytics_census_daily_deleted ON analytics_census_daily;
DROP FUNCTION chartstream_census_totals();
DROP TABLE analytics_census_totals;
