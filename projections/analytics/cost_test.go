package analytics_test

import (
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/projections/analytics"
)

// A month's census costs the same for a tenant with a month of history and
// one with two years of it: the blocks the read touches (PostgreSQL's
// buffer counts, not a timing) may not grow with the days before the
// range. Reading every census day and every encounter the tenant ever had,
// as the read once did, touched 18 times as many (15,751 blocks against
// 880).
func TestCensusCostDoesNotGrowWithHistory(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	inTenant := func(tenant chartstream.TenantID, fn func(pgx.Tx) error) {
		t.Helper()
		if err := postgres.InTenantTx(ctx, testkit.MustAppPool(t), tenant, fn); err != nil {
			t.Fatal(err)
		}
	}
	// seed gives a tenant 20 wards, each with 20 admissions a day and 2
	// encounters that last two days, from `from` to June 2025's end.
	seed := func(from string) chartstream.TenantID {
		tenant := testkit.MustTenant(t)
		inTenant(tenant, func(tx pgx.Tx) error {
			for _, q := range []string{
				`SELECT chartstream_analytics_partitions(m::date) FROM generate_series($2::date, date '2025-06-01', interval '1 month') m WHERE $1::uuid IS NOT NULL`,
				`INSERT INTO analytics_census_daily (tenant_id, day, location, admissions, discharges, transfers_in, transfers_out)
				SELECT $1, d::date, 'Ward ' || l, 20, 19, 2, 2 FROM generate_series($2::date, date '2025-06-30', interval '1 day') d, generate_series(1, 20) l`,
				`INSERT INTO analytics_encounters (tenant_id, day, encounter_id, class, admitted_location, location, started_at, ended_at)
				SELECT $1, d::date, gen_random_uuid(), 'inpatient', 'Ward ' || l, 'Ward ' || l, d + interval '10 hours', d + interval '58 hours'
				FROM generate_series($2::date, date '2025-06-28', interval '1 day') d, generate_series(1, 20) l, generate_series(1, 2) k`,
			} {
				if _, err := tx.Exec(ctx, q, tenant, from); err != nil {
					return err
				}
			}
			return nil
		})
		return tenant
	}
	// blocks reads June 2025's census of the tenant and returns the blocks
	// its execution touched.
	blocks := func(tenant chartstream.TenantID) int {
		t.Helper()
		var plan []struct {
			Plan struct {
				Hit  int `json:"Shared Hit Blocks"`
				Read int `json:"Shared Read Blocks"`
			} `json:"Plan"`
		}
		inTenant(tenant, func(tx pgx.Tx) error {
			var raw []byte
			if err := tx.QueryRow(ctx, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) `+analytics.CensusSQL,
				tenant, "2025-06-01", "2025-06-30", "", 11).Scan(&raw); err != nil {
				return err
			}
			return json.Unmarshal(raw, &plan)
		})
		return plan[0].Plan.Hit + plan[0].Plan.Read
	}
	short, long := seed("2025-06-01"), seed("2023-07-01")
	month, twoYears := blocks(short), blocks(long)
	t.Logf("June 2025's census: %d blocks with a month of history, %d with two years", month, twoYears)
	if twoYears > 2*month {
		t.Errorf("June 2025's census touched %d blocks with two years of history, %d with a month: its cost grows with history", twoYears, month)
	}
}

// A location's totals are its days' sums, whatever writes the days: rows
// inserted, added to (the projector's upsert), changed and deleted, many
// in one statement or one at a time. A day does not move to another
// location.
func TestCensusTotalsFollowTheDays(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	tenant := testkit.MustTenant(t)
	// As the owner, who may also delete (the projector only adds).
	err := postgres.InTenantTx(ctx, testkit.MustAdminPool(t), tenant, func(tx pgx.Tx) error {
		for _, q := range []string{
			`SELECT chartstream_analytics_partitions(m) FROM unnest(ARRAY[date '2025-02-01', date '2025-03-01']) m WHERE $1::uuid IS NOT NULL`,
			`INSERT INTO analytics_census_daily (tenant_id, day, location, admissions, discharges, transfers_in, transfers_out)
			SELECT $1, d::date, 'Ward ' || l, 5, 3, 1, 2 FROM generate_series(date '2025-03-01', date '2025-03-10', interval '1 day') d, generate_series(1, 3) l`,
			`INSERT INTO analytics_census_daily AS c (tenant_id, day, location, admissions, discharges, transfers_in, transfers_out)
			VALUES ($1, '2025-03-05', 'Ward 1', 2, 0, 0, 0), ($1, '2025-02-28', 'Ward 2', 1, 0, 0, 0)
			ON CONFLICT (tenant_id, day, location) DO UPDATE SET admissions = c.admissions + excluded.admissions`,
			`UPDATE analytics_census_daily SET discharges = discharges + 4 WHERE tenant_id = $1 AND location = 'Ward 3' AND day >= '2025-03-08'`,
			`DELETE FROM analytics_census_daily WHERE tenant_id = $1 AND location = 'Ward 2' AND day = '2025-03-10'`,
		} {
			if _, err := tx.Exec(ctx, q, tenant); err != nil {
				return err
			}
		}
		var differ int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM analytics_census_totals t FULL JOIN (
				SELECT location, min(day) AS first_day, sum(admissions + transfers_in) AS arrivals,
					sum(admissions + transfers_in - discharges - transfers_out) AS net
				FROM analytics_census_daily WHERE tenant_id = $1 GROUP BY location) d USING (location)
			WHERE t.tenant_id = $1 AND (t.first_day, t.arrivals, t.net) IS DISTINCT FROM (d.first_day, d.arrivals, d.net)
				OR t.tenant_id IS NULL`, tenant).Scan(&differ); err != nil {
			return err
		}
		if differ != 0 {
			t.Errorf("%d locations' totals differ from the sums of their days", differ)
		}
		moved, err := tx.Begin(ctx) // a savepoint: the refusal aborts it alone
		if err != nil {
			return err
		}
		if _, err := moved.Exec(ctx, `UPDATE analytics_census_daily SET location = 'Ward 9' WHERE tenant_id = $1 AND location = 'Ward 1' AND day = '2025-03-01'`, tenant); err == nil {
			t.Error("a day moved to another location")
		}
		return moved.Rollback(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
}
