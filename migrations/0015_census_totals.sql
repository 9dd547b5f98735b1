-- The census read summed every day a location ever had: the census the
-- range starts from, and the arrivals that decide whether the location's
-- name may be shown, came from all of the tenant's census days, so its
-- cost grew with the tenant's history. analytics_census_totals keeps, per
-- location, what those sums were: the first day, all arrivals (admissions
-- and transfers in) and the net flow. The analytics projector adds to it
-- in the statement that adds to analytics_census_daily, so the two never
-- disagree; a read now sums only the days from the range's start on.
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

CREATE INDEX analytics_encounters_ended ON analytics_encounters (tenant_id, ended_at);

---- create above / drop below ----

DROP INDEX analytics_encounters_ended;
DROP TABLE analytics_census_totals;
