package analytics_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/commands/encounter"
	"github.com/chartstream/chartstream/commands/medicationorder"
	"github.com/chartstream/chartstream/commands/patient"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/projections/analytics"
)

// event builds a recorded event of tenant on stream id.
func event(t *testing.T, tenant chartstream.TenantID, stream uuid.UUID, typ string, at time.Time, payload any) chartstream.Event {
	t.Helper()
	raw, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	return chartstream.Event{Tenant: tenant, Stream: chartstream.StreamRef{ID: stream}, ID: uuid.New(), Type: typ, SchemaVersion: 1,
		Version: 1, Payload: raw, RecordedAt: at}
}

// apply applies events to the analytics tables on the primary.
func apply(t *testing.T, tenant chartstream.TenantID, events ...chartstream.Event) {
	t.Helper()
	testkit.MustApplyAnalytics(t, tenant, events)
}

// observations are n pulse readings of tenant on day, valued 60, 61, ...
func observations(t *testing.T, tenant chartstream.TenantID, day time.Time, code string, n int) []chartstream.Event {
	var out []chartstream.Event
	for i := range n {
		v := 60.0 + float64(i)
		out = append(out, event(t, tenant, uuid.New(), patient.TypeObservationRecorded, day, patient.ObservationRecorded{
			ObservationID: uuid.New(), Code: code, System: patient.LOINC, Value: &v, Unit: "/min", EffectiveAt: day.Add(time.Hour)}))
	}
	return out
}

func reader(t *testing.T, env string, minCell int) *analytics.Reader {
	t.Helper()
	r, err := analytics.NewReader(testkit.MustPool(t, env), testkit.MustAppPool(t), analytics.ReaderConfig{MinCell: minCell})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if chartstream.ErrorCode(err) != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
}

func TestReplicaIsAHotStandby(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	pool := testkit.MustReplicaPool(t)
	var standby bool
	if err := pool.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&standby); err != nil || !standby {
		t.Fatalf("pg_is_in_recovery() on DATABASE_REPLICA_URL is %v (%v), want true", standby, err)
	}
	var user string
	if err := pool.QueryRow(ctx, `SELECT current_user`).Scan(&user); err != nil || user != "chartstream_analytics" {
		t.Errorf("DATABASE_REPLICA_URL connects as %q (%v), want chartstream_analytics", user, err)
	}
	_, err := pool.Exec(ctx, `CREATE TABLE no_writes_here (x int)`)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		t.Errorf("a write on the replica: %v, want read_only_sql_transaction (25006)", err)
	}
}

// The standby is a physical copy: every analytics table and partition has
// RLS enabled and forced there too, with the tenant policy, and as
// chartstream_analytics a tenant reads its own rows only, no tenant reads
// nothing, and a partition cannot be read directly.
func TestRLSIsForcedOnTheReplica(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	a, b := testkit.MustTenant(t), testkit.MustTenant(t)
	day := time.Date(2026, 2, 3, 0, 0, 0, 0, time.UTC)
	apply(t, a, observations(t, a, day, "8867-4", 2)...)
	apply(t, b, observations(t, b, day, "8867-4", 3)...)
	testkit.WaitReplica(t)
	pool := testkit.MustReplicaPool(t)

	rows, err := pool.Query(ctx, `SELECT c.relname, c.relkind::text, c.relrowsecurity, c.relforcerowsecurity,
			EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'tenant_isolation')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relname LIKE 'analytics%' AND c.relkind IN ('r', 'p')`)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for rows.Next() {
		var name, kind string
		var enabled, forced, policy bool
		if err := rows.Scan(&name, &kind, &enabled, &forced, &policy); err != nil {
			t.Fatal(err)
		}
		kinds[kind]++
		if !enabled || !forced || !policy {
			t.Errorf("on the replica, %s: rls enabled=%v forced=%v policy=%v, want all true", name, enabled, forced, policy)
		}
	}
	if rows.Err() != nil || kinds["p"] != 4 || kinds["r"] < 6 {
		t.Fatalf("found %v analytics tables on the replica (%v); want the 4 partitioned ones, their partitions and 2 plain", kinds, rows.Err())
	}

	count := func(tenant chartstream.TenantID, where string) int64 {
		var n int64
		err := postgres.InTenantTx(ctx, pool, tenant, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT coalesce(sum(observations), 0)::bigint FROM analytics_observations_daily `+where).Scan(&n)
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := count(a, ""); got != 2 {
		t.Errorf("tenant A reads %d of the observations, want its own 2", got)
	}
	if got := count(a, "WHERE tenant_id = '"+b.String()+"'"); got != 0 {
		t.Errorf("tenant A reads %d of tenant B's observations", got)
	}
	var none int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM analytics_observations_daily`).Scan(&none); err != nil || none != 0 {
		t.Errorf("with no tenant set the replica shows %d rows (%v), want none", none, err)
	}
	_, err = pool.Exec(ctx, `SELECT 1 FROM analytics_observations_daily_y2026m02`)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != postgres.InsufficientPrivilege {
		t.Errorf("reading a partition directly: %v, want insufficient privilege", err)
	}
}

// The Reader reads the standby with its lag, suppresses small cells, and
// gives exact means, minima and maxima.
func TestReaderSuppressesSmallCells(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	tenant := testkit.MustTenant(t)
	day := time.Date(2026, 2, 5, 0, 0, 0, 0, time.UTC)
	apply(t, tenant, append(observations(t, tenant, day, "8867-4", 12), observations(t, tenant, day, "8310-5", 3)...)...)
	testkit.WaitReplica(t)
	rg := analytics.Range{From: day, To: day}

	a, lag, err := reader(t, "DATABASE_REPLICA_URL", 11).Observations(ctx, tenant, rg, "")
	if err != nil || !lag.Known {
		t.Fatalf("read: %v (lag known %v)", err, lag.Known)
	}
	if len(a.Rows) != 2 || a.MinCell != 11 {
		t.Fatalf("%d rows at min cell %d, want 2 at 11: %+v", len(a.Rows), a.MinCell, a.Rows)
	}
	big, small := a.Rows[1], a.Rows[0] // 8310-5 sorts first
	if big.Observations == nil || *big.Observations != 12 || big.Mean == nil || *big.Mean != 65.5 || *big.Min != 60 || *big.Max != 71 || len(big.Suppressed) != 0 {
		t.Errorf("12 readings: %+v, want 12 with mean 65.5, min 60, max 71, nothing suppressed", big)
	}
	if small.Observations != nil || small.Mean != nil || small.Min != nil || small.Max != nil || len(small.Suppressed) != 5 {
		t.Errorf("3 readings: %+v, want every cell null and named in suppressed", small)
	}
	a, _, err = reader(t, "DATABASE_REPLICA_URL", 1).Observations(ctx, tenant, rg, "8310-5")
	if err != nil || len(a.Rows) != 1 || a.Rows[0].Observations == nil || *a.Rows[0].Observations != 3 || len(a.Rows[0].Suppressed) != 0 {
		t.Errorf("min cell 1, code 8310-5: %+v (%v), want the 3 readings unsuppressed", a.Rows, err)
	}
}

// Census flows give the end-of-day census per location across days,
// transfers included, and the mean length of stay of the day's discharges.
func TestCensusCountsPatientsPresentAtTheEndOfEachDay(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	tenant := testkit.MustTenant(t)
	d1 := time.Date(2026, 3, 30, 8, 0, 0, 0, time.UTC)
	d2, d3 := d1.AddDate(0, 0, 1), d1.AddDate(0, 0, 2)
	encs := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	var events []chartstream.Event
	for _, id := range encs {
		events = append(events, event(t, tenant, id, encounter.TypeStarted, d1, encounter.EncounterStarted{PatientID: uuid.New(), Class: "inpatient", Location: "A"}))
	}
	events = append(events,
		event(t, tenant, encs[0], encounter.TypePatientTransferred, d2, encounter.PatientTransferred{Location: "B"}),
		event(t, tenant, encs[1], encounter.TypeDischarged, d2.Add(6*time.Hour), encounter.EncounterDischarged{}),
		event(t, tenant, uuid.New(), medicationorder.TypePrescribed, d3, medicationorder.MedicationPrescribed{Medication: patient.Coding{Code: "197361", System: patient.RxNorm}}))
	apply(t, tenant, events...)
	testkit.WaitReplica(t)
	a, _, err := reader(t, "DATABASE_REPLICA_URL", 1).Census(ctx, tenant, analytics.Range{From: analytics.Day(d1), To: analytics.Day(d3)}, "")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		day, loc         string
		census, adm, dis int64
		los              float64
	}
	want := []row{{"2026-03-30", "A", 3, 3, 0, 0}, {"2026-03-31", "A", 1, 0, 1, 30}, {"2026-03-31", "B", 1, 0, 0, 0}, {"2026-04-01", "A", 1, 0, 0, 0}, {"2026-04-01", "B", 1, 0, 0, 0}}
	if len(a.Rows) != len(want) {
		t.Fatalf("census rows %+v, want %+v", a.Rows, want)
	}
	for i, w := range want {
		g := a.Rows[i]
		los := 0.0
		if g.MeanLengthOfStayHours != nil {
			los = *g.MeanLengthOfStayHours
		}
		if g.Day != w.day || g.Location != w.loc || *g.Census != w.census || *g.Admissions != w.adm || *g.Discharges != w.dis || los != w.los {
			t.Errorf("row %d: %s %s census %d adm %d dis %d los %v, want %+v", i, g.Day, g.Location, *g.Census, *g.Admissions, *g.Discharges, los, w)
		}
	}
	m, _, err := reader(t, "DATABASE_REPLICA_URL", 1).Medications(ctx, tenant, analytics.Range{From: analytics.Day(d3), To: analytics.Day(d3)})
	if err != nil || len(m.Rows) != 1 || *m.Rows[0].Orders != 1 || m.Rows[0].Code != "197361" {
		t.Errorf("medications %+v (%v), want one order of 197361", m.Rows, err)
	}
}

// Pointed at the primary, the Reader refuses to answer: analytics never
// fall back to the primary, not even when misconfigured.
func TestReaderNeverReadsThePrimary(t *testing.T) {
	t.Parallel()
	_, lag, err := reader(t, "DATABASE_ANALYTICS_URL", 11).Medications(testkit.Context(t), testkit.MustTenant(t), analytics.Range{From: time.Now(), To: time.Now()})
	wantCode(t, err, chartstream.EUNAVAILABLE)
	if lag.Known {
		t.Errorf("a lag of %v from the primary", lag.Value)
	}
}

// A standby that is gone is EUNAVAILABLE, and answers again once back.
func TestReaderAnswersUnavailableWhileTheReplicaIsGone(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	proxy, url := testkit.MustPGProxy(t, "DATABASE_REPLICA_URL")
	pool, err := postgres.Connect(ctx, postgres.Config{URL: url, Lazy: true, ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	r, err := analytics.NewReader(pool, testkit.MustAppPool(t), analytics.ReaderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tenant, rg := testkit.MustTenant(t), analytics.Range{From: time.Now(), To: time.Now()}
	read := func() (analytics.Lag, error) {
		_, lag, err := r.Medications(ctx, tenant, rg)
		return lag, err
	}
	if lag, err := read(); err != nil || !lag.Known {
		t.Fatalf("through the proxy: %v (lag known %v)", err, lag.Known)
	}
	proxy.Refuse(true)
	lag, err := read()
	wantCode(t, err, chartstream.EUNAVAILABLE)
	if lag.Known || chartstream.ErrorMessage(err) != "the analytics replica is unavailable; retry later" {
		t.Errorf("replica gone: lag known %v, message %q", lag.Known, chartstream.ErrorMessage(err))
	}
	proxy.Refuse(false)
	deadline := time.Now().Add(5 * time.Second)
	for _, err := read(); err != nil; _, err = read() {
		if time.Now().After(deadline) {
			t.Fatalf("replica back, still: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
