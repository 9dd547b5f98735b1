package eventstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/eventstore/eventstoretest"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
)

// The tests here hold one append in flight, blocked on a row another
// transaction inserted and has not committed, so that the appends made
// meanwhile queue and then go out as groups.

// groupStore returns a store with a single flusher, on a pool of its own
// whose application name lets blockedOnLock find its connections.
func groupStore(t *testing.T) (*eventstore.Store, string) {
	t.Helper()
	app := "chartstream-group-" + uuid.NewString()[:8]
	pool, err := postgres.Connect(testkit.Context(t), postgres.Config{URL: testkit.Env(t, "DATABASE_URL"), ApplicationName: app, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return mustStoreWith(t, pool, eventstore.Config{AppendConcurrency: 1}, eventstoretest.Specs()), app
}

// blockStream inserts version 1 of st in a transaction it leaves open, so
// that an append to st waits on the row; release rolls it back.
func blockStream(t *testing.T, tenant chartstream.TenantID, st chartstream.StreamRef) (release func()) {
	t.Helper()
	ctx := testkit.Context(t)
	tx, err := testkit.MustAppPool(t).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT set_config('app.tenant_id', $1, true)`, tenant.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := insertRaw(t, ctx, tx, tenant, st, 1); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }) }
	t.Cleanup(release)
	return release
}

// waitFor polls cond until it holds or the test's deadline nears.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// blockedOnLock reports whether a connection of the application waits on
// a lock.
func blockedOnLock(t *testing.T, app string) bool {
	var n int
	err := testkit.MustAppPool(t).QueryRow(testkit.Context(t),
		`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, app).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

type appendCall struct {
	tenant   chartstream.TenantID
	stream   chartstream.StreamRef
	expected int64
	event    chartstream.NewEvent
	want     string // "" for success, an error code, or race: one rival wins
	res      chartstream.AppendResult
	err      error
}

const race = "race"

func TestGroupAppendKeepsOutcomesApart(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	s, app := groupStore(t)
	// a's group claims values, so it is a statement per append; b's and
	// c's are single multi-row INSERTs, and c's fails on one append.
	a, b, c, unknown := testkit.MustTenant(t), testkit.MustTenant(t), testkit.MustTenant(t), chartstream.TenantID(uuid.New())
	existingB, existingC := stream(), stream()
	for tenant, st := range map[chartstream.TenantID]chartstream.StreamRef{b: existingB, c: existingC} {
		if _, err := s.Append(ctx, tenant, st, chartstream.NoStream, newEvent("test.happened", map[string]any{})); err != nil {
			t.Fatal(err)
		}
	}
	contested := stream()
	release := blockStream(t, a, contested)
	first := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, a, contested, chartstream.NoStream, newEvent("test.happened", map[string]any{"first": true}))
		first <- err
	}()
	waitFor(t, "the first append to wait on the uncommitted row", func() bool { return blockedOnLock(t, app) })

	// Queued behind it.
	var calls []*appendCall
	add := func(tenant chartstream.TenantID, st chartstream.StreamRef, expected int64, want string, claims ...string) {
		e := newEvent("test.happened", map[string]any{"call": len(calls)})
		e.ID = uuid.New()
		for _, v := range claims {
			e.Claims = append(e.Claims, chartstream.UniqueClaim{Scope: "patient.mrn", Value: v})
		}
		calls = append(calls, &appendCall{tenant: tenant, stream: st, expected: expected, event: e, want: want})
	}
	for range 4 {
		add(a, contested, chartstream.NoStream, chartstream.ECONFLICT) // the first append creates it
		add(a, stream(), chartstream.NoStream, race, "MRN-GROUP")
		add(a, stream(), chartstream.NoStream, "")
		add(b, stream(), chartstream.NoStream, "")
		add(c, stream(), chartstream.NoStream, "")
	}
	add(b, existingB, 1, "")
	add(c, existingC, chartstream.NoStream, chartstream.ECONFLICT)
	add(unknown, stream(), chartstream.NoStream, chartstream.ENOTFOUND)
	add(unknown, stream(), chartstream.NoStream, chartstream.ENOTFOUND)

	var wg sync.WaitGroup
	for _, call := range calls {
		wg.Go(func() { call.res, call.err = s.Append(ctx, call.tenant, call.stream, call.expected, call.event) })
	}
	waitFor(t, "every append to queue", func() bool { return s.QueuedAppends() == len(calls) })
	release()
	if err := <-first; err != nil {
		t.Fatalf("the first append: %v", err)
	}
	wg.Wait()

	raceWon := 0
	for i, call := range calls {
		stored := storedEvent(t, s, call.tenant, call.stream, call.event.ID)
		if call.want == race && call.err == nil {
			raceWon++
		}
		switch {
		case call.want == "" || (call.want == race && call.err == nil):
			if call.err != nil {
				t.Errorf("call %d: %v, want success", i, call.err)
			} else if stored == nil || call.res.Version != stored.Version || len(call.res.Positions) != 1 || call.res.Positions[0] != stored.Position {
				t.Errorf("call %d: append result %+v, stream holds %+v", i, call.res, stored)
			}
		default:
			want := call.want
			if want == race {
				want = chartstream.ECONFLICT
			}
			if chartstream.ErrorCode(call.err) != want {
				t.Errorf("call %d: %v, want %s", i, call.err, want)
			}
			if stored != nil {
				t.Errorf("call %d failed but its event was written", i)
			}
		}
	}
	if raceWon != 1 {
		t.Errorf("%d rival claims of one value succeeded, want 1", raceWon)
	}
	// Grouped: each tenant's queued appends committed in one transaction,
	// after the first append's (a) or the existing stream's (b, c).
	for _, tenant := range []chartstream.TenantID{a, b, c} {
		wantTransactions(t, tenant, 2)
	}
	for tenant, events := range map[chartstream.TenantID]int64{a: 1 + 1 + 4, b: 1 + 4 + 1, c: 1 + 4} {
		if report, err := s.Verify(ctx, tenant, eventstore.VerifyParams{}); err != nil || len(report.Broken) != 0 || report.Events != events {
			t.Errorf("verify: %+v, %v; want %d intact events", report, err, events)
		}
	}
}

// storedEvent returns the event with the id from the stream, or nil.
func storedEvent(t *testing.T, s *eventstore.Store, tenant chartstream.TenantID, st chartstream.StreamRef, id uuid.UUID) *chartstream.Event {
	t.Helper()
	events, err := s.ReadStream(testkit.Context(t), tenant, st, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range events {
		if events[i].ID == id {
			return &events[i]
		}
	}
	return nil
}

func TestAppendCancelledWhileQueued(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	s, app := groupStore(t)
	tenant := testkit.MustTenant(t)
	blocked := stream()
	release := blockStream(t, tenant, blocked)
	first := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, tenant, blocked, chartstream.NoStream, newEvent("test.happened", map[string]any{}))
		first <- err
	}()
	waitFor(t, "the first append to wait on the uncommitted row", func() bool { return blockedOnLock(t, app) })

	queued, cancel := context.WithCancel(ctx)
	st := stream()
	done := make(chan error, 1)
	go func() {
		_, err := s.Append(queued, tenant, st, chartstream.NoStream, newEvent("test.happened", map[string]any{}))
		done <- err
	}()
	waitFor(t, "the second append to queue", func() bool { return s.QueuedAppends() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("an append cancelled in the queue: %v, want context.Canceled", err)
	}
	if n := s.QueuedAppends(); n != 0 {
		t.Errorf("%d appends still queued after the cancel", n)
	}
	release()
	if err := <-first; err != nil {
		t.Fatalf("the first append: %v", err)
	}
	wantEvents(t, s, tenant, st, 0)
	if _, err := s.Append(ctx, tenant, st, chartstream.NoStream, newEvent("test.happened", map[string]any{})); err != nil {
		t.Fatalf("appending after a cancelled append: %v", err)
	}
}

// wantEvents reads a stream and fails the test unless it holds n events.
func wantEvents(t *testing.T, s *eventstore.Store, tenant chartstream.TenantID, st chartstream.StreamRef, n int) []chartstream.Event {
	t.Helper()
	events, err := s.ReadStream(testkit.Context(t), tenant, st, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != n {
		t.Errorf("stream %s holds %d events, want %d", st.ID, len(events), n)
	}
	return events
}

// wantTransactions fails the test unless the tenant's events were written
// by n transactions.
func wantTransactions(t *testing.T, tenant chartstream.TenantID, n int) {
	t.Helper()
	var got int
	err := postgres.InTenantTx(testkit.Context(t), testkit.MustAppPool(t), tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(testkit.Context(t), `SELECT count(DISTINCT txid) FROM events WHERE tenant_id = $1`, tenant).Scan(&got)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Errorf("tenant's events written by %d transactions, want %d", got, n)
	}
}
