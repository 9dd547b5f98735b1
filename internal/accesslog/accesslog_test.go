package accesslog_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/accesslog"
	"github.com/chartstream/chartstream/internal/logging"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
)

func newLog(t *testing.T, pool *pgxpool.Pool, cfg accesslog.Config) *accesslog.Log {
	t.Helper()
	l, err := accesslog.New(pool, logging.New(t.Output(), slog.LevelWarn), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.Close(ctx)
	})
	return l
}

func entry(tenant chartstream.TenantID, patient uuid.UUID, request string) accesslog.Entry {
	return accesslog.Entry{Tenant: tenant, AccessedAt: time.Now().UTC().Truncate(time.Microsecond), Actor: "dr-a", Roles: []string{"clinician"},
		Patients: []uuid.UUID{patient}, Route: "GET /v1/patients/:id", Purpose: accesslog.DefaultPurpose, RequestID: request}
}

// waitWritten polls until the log holds nothing.
func waitWritten(t *testing.T, l *accesslog.Log, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for l.Pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d entries still pending after %s", l.Pending(), within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// chainHolds reports whether the tenant's entries are numbered 1..n, each
// naming its predecessor's hash, as the database recomputes it.
func chainHolds(t *testing.T, tenant chartstream.TenantID) (n int, ok bool) {
	t.Helper()
	ctx := testkit.Context(t)
	err := postgres.InTenantTx(ctx, testkit.MustAppPool(t), tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*), coalesce(bool_and(seq = rn AND prev_hash IS NOT DISTINCT FROM prev
				AND hash = chartstream_access_hash(prev_hash, l)), true)
			FROM (SELECT l, l.seq, l.prev_hash, l.hash, row_number() OVER (ORDER BY l.seq) AS rn, lag(l.hash) OVER (ORDER BY l.seq) AS prev
				FROM phi_access_log l) AS c`).Scan(&n, &ok)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, ok
}

// Entries are written in the background, each tenant's numbered and
// chained, and read back by patient, actor and time.
func TestEntriesAreWrittenChainedAndListed(t *testing.T) {
	t.Parallel()
	l := newLog(t, testkit.MustAppPool(t), accesslog.Config{})
	a, b := testkit.MustTenant(t), testkit.MustTenant(t)
	p1, p2 := uuid.New(), uuid.New()
	l.Record(entry(a, p1, "r1"))
	l.Record(entry(b, p1, "r2"))
	e := entry(a, p2, "r3")
	e.Actor, e.Purpose = "auditor-c", "HOPERAT"
	l.Record(e)
	all := entry(a, uuid.Nil, "r4")
	all.Patients, all.AllPatients = nil, true
	l.Record(all)
	waitWritten(t, l, 5*time.Second)
	if n, ok := chainHolds(t, a); n != 3 || !ok {
		t.Fatalf("tenant A: %d entries, chain holds %t; want 3 chained", n, ok)
	}
	ctx := testkit.Context(t)
	page, err := accesslog.List(ctx, testkit.MustAppPool(t), a, accesslog.ListParams{Patient: p1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 || page.Items[0].RequestID != "r1" || page.Items[1].RequestID != "r4" || page.Items[0].Seq != 1 {
		t.Errorf("patient p1 in A: %+v, want r1 and the whole-tenant read r4", page.Items)
	}
	page, err = accesslog.List(ctx, testkit.MustAppPool(t), a, accesslog.ListParams{Actor: "auditor-c", Since: time.Now().Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].Purpose != "HOPERAT" || page.Items[0].Patients[0] != p2 {
		t.Errorf("auditor-c in A: %+v", page.Items)
	}
	page, err = accesslog.List(ctx, testkit.MustAppPool(t), a, accesslog.ListParams{Limit: 2})
	if err != nil || len(page.Items) != 2 || page.Next != 2 {
		t.Fatalf("first page of 2: %+v, %v", page, err)
	}
	if page, err = accesslog.List(ctx, testkit.MustAppPool(t), a, accesslog.ListParams{After: page.Next}); err != nil || len(page.Items) != 1 || page.Next != 0 {
		t.Errorf("second page: %+v, %v", page, err)
	}
}

// While the database is unreachable the log says it is unhealthy (the API
// then refuses PHI reads) and keeps what it holds; once it is back, it
// writes every entry and is healthy again.
func TestFailsClosedAndLosesNothing(t *testing.T) {
	t.Parallel()
	proxy, pool := testkit.MustProxiedPool(t, "DATABASE_URL")
	l := newLog(t, pool, accesslog.Config{FlushInterval: 20 * time.Millisecond, StallAfter: 500 * time.Millisecond})
	tenant, patient := testkit.MustTenant(t), uuid.New()
	l.Record(entry(tenant, patient, "before"))
	waitWritten(t, l, 5*time.Second)
	if err := l.Healthy(); err != nil {
		t.Fatalf("healthy log: %v", err)
	}
	proxy.Refuse(true)
	l.Record(entry(tenant, patient, "during"))
	deadline := time.Now().Add(5 * time.Second)
	for l.Healthy() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the log stayed healthy with its database gone")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if chartstream.ErrorCode(l.Healthy()) != chartstream.EUNAVAILABLE {
		t.Errorf("unhealthy as %v, want EUNAVAILABLE", l.Healthy())
	}
	proxy.Refuse(false)
	waitWritten(t, l, 10*time.Second)
	if err := l.Healthy(); err != nil {
		t.Errorf("after recovery: %v", err)
	}
	if n, ok := chainHolds(t, tenant); n != 2 || !ok {
		t.Errorf("%d entries (chain holds %t), want both", n, ok)
	}
}

// A write retried after its COMMIT reached the database but its answer
// was lost (the log's flush then keeps the entries and writes them again)
// adds nothing: the read is logged once, and the chain has no gap.
func TestARetriedWriteLogsTheReadOnce(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	pool := testkit.MustAppPool(t)
	tenant, patient := testkit.MustTenant(t), uuid.New()
	first, retried := entry(tenant, patient, "r1"), entry(tenant, patient, "r2")
	retried.ID = uuid.New()
	for _, e := range []accesslog.Entry{first, retried, retried} {
		if err := accesslog.Write(ctx, pool, e); err != nil {
			t.Fatal(err)
		}
	}
	if n, ok := chainHolds(t, tenant); n != 2 || !ok {
		t.Errorf("%d entries (chain holds %t) for two reads, one of them written twice; want 2", n, ok)
	}
}

// Close writes what is held.
func TestCloseFlushes(t *testing.T) {
	t.Parallel()
	l, err := accesslog.New(testkit.MustAppPool(t), logging.New(t.Output(), slog.LevelWarn), accesslog.Config{FlushInterval: time.Hour, StallAfter: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tenant := testkit.MustTenant(t)
	for i := range 50 {
		l.Record(entry(tenant, uuid.New(), "r"+string(rune('a'+i%26))))
	}
	if err := l.Close(testkit.Context(t)); err != nil {
		t.Fatal(err)
	}
	if n, ok := chainHolds(t, tenant); n != 50 || !ok {
		t.Errorf("%d entries after Close (chain holds %t), want 50", n, ok)
	}
	if l.Healthy() == nil {
		t.Error("a closed log says it is healthy")
	}
}

func TestPurposeOfUseCodes(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]bool{"TREAT": true, "ETREAT": true, "HOPERAT": true, "BTG": true, "POPHLTH": true,
		"treat": false, "": false, "TREAT HOPERAT": false, "PurposeOfUse": false, "FOO": false, " TREAT": false} {
		if got := accesslog.ValidPurpose(code); got != want {
			t.Errorf("ValidPurpose(%q) = %t, want %t", code, got, want)
		}
	}
}
