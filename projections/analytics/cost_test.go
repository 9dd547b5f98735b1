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
				`WITH days AS (
					INSERT INTO analytics_census_daily (tenant_id, day, location, admissions, discharges, transfers_in, transfers_out)
					SELECT $1, d::date, 'Ward ' || l, 20, 19, 2, 2 FROM generate_series($2::date, date '2025-06-30', interval '1 day') d, generate_series(1, 20) l
					RETURNING day, location, admissions, discharges, transfers_in, transfers_out)
				INSERT INTO analytics_census_totals (tenant_id, location, first_day, arrivals, net)
				SELECT $1, location, min(day), sum(admissions + transfers_in), sum(admissions + transfers_in - discharges - transfers_out) FROM days GROUP BY location`,
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
