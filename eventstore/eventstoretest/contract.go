// Package eventstoretest is the event store's contract suite: the behaviour
// every Store must show whatever its configuration, seen only through its
// exported API. Checks that need the database itself (triggers, roles,
// tamper evidence, rows at rest, held transactions) live beside the store's
// own tests in package eventstore.
//
// Every test creates its own tenants (testkit.MustTenant) and never
// truncates, so the suite runs against a shared database.
package eventstoretest

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/testkit"
)

// NewStoreFn returns a Store of the implementation under test with the
// given configuration, event specs and upcasters. Every store it returns
// must use the same database and the same key provider, so one store can
// open another's PHI, and must connect as a tenant-bound role (one that
// sees one tenant per transaction, such as chartstream_app).
type NewStoreFn func(t *testing.T, cfg eventstore.Config, specs []chartstream.EventSpec, upcasters ...eventstore.Upcaster) *eventstore.Store

// Specs returns the event types the suite appends: a plain event, one with
// PHI sealed under the stream's key, one with PHI sealed under the patient
// its payload names, and one whose schema the upcasting test moves on.
func Specs() []chartstream.EventSpec {
	return []chartstream.EventSpec{
		{Type: "test.happened", SchemaVersion: 1},
		{Type: "test.noted", SchemaVersion: 1, PHI: []string{"name", "note"}},
		{Type: "test.referred", SchemaVersion: 1, PHI: []string{"note"}, Subject: "patient_id"},
		{Type: "test.versioned", SchemaVersion: 1},
	}
}

// Run runs the contract suite against the stores newStore returns.
func Run(t *testing.T, newStore NewStoreFn) {
	// Subscribe runs before, and not alongside, the parallel tests: it
	// proves that a notification wakes the subscriber, so its poll interval
	// is long, and a parallel test's transaction holding the read horizon
	// back without writing an event (creating a tenant or a data key) would
	// leave it waiting for the next notification.
	t.Run("Subscribe", func(t *testing.T) { testSubscribe(t, newStore) })
	tests := []struct {
		name string
		fn   func(*testing.T, NewStoreFn)
	}{
		{"AppendReadStream", testAppendReadStream},
		{"ExpectedVersion", testExpectedVersion},
		{"AtomicBatch", testAtomicBatch},
		{"ConcurrentAppend", testConcurrentAppend},
		{"WriteAcrossStreams", testWriteAcrossStreams},
		{"ShreddingReachesEveryCache", testShreddingReachesEveryCache},
		{"WriteConditions", testWriteConditions},
		{"AnyVersionConcurrency", testAnyVersionConcurrency},
		{"BadInput", testBadInput},
		{"UniqueClaims", testUniqueClaims},
		{"CrossTenant", testCrossTenant},
		{"ReadAllPages", testReadAllPages},
		{"PHISealed", testPHISealed},
		{"ShredSubject", testShredSubject},
		{"Upcasting", testUpcasting},
		{"NewRegistryRefuses", testNewRegistryRefuses},
		{"Snapshots", testSnapshots},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore)
		})
	}
}

// begin returns what most tests start from: a context, a store with the
// default configuration, a fresh tenant and a fresh stream.
func begin(t *testing.T, newStore NewStoreFn) (context.Context, *eventstore.Store, chartstream.TenantID, chartstream.StreamRef) {
	t.Helper()
	return testkit.Context(t), newStore(t, eventstore.Config{}, Specs()), testkit.MustTenant(t), Stream()
}

// NewEvent returns an event of type typ with payload marshalled to JSON and
// metadata naming a test actor and a fresh correlation id.
func NewEvent(typ string, payload any) chartstream.NewEvent {
	b, err := json.Marshal(payload)
	if err != nil {
		panic(err)
	}
	return chartstream.NewEvent{Type: typ, Payload: b, Metadata: chartstream.Metadata{Actor: "test", CorrelationID: uuid.NewString()}}
}

// Stream returns a fresh patient stream.
func Stream() chartstream.StreamRef { return chartstream.StreamRef{Type: "patient", ID: uuid.New()} }

// WantCode fails the test unless err carries the chartstream error code.
func WantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := chartstream.ErrorCode(err); got != code {
		tb.Fatalf("error %v has code %q, want %q", err, got, code)
	}
}

// Payload decodes an event's payload into a map.
func Payload(tb testing.TB, e chartstream.Event) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Payload, &m); err != nil {
		tb.Fatalf("event %s payload %s: %v", e.ID, e.Payload, err)
	}
	return m
}

// ReadAllTenant pages through the tenant's events from the beginning with
// page size limit until it has read want of them, polling while the read
// horizon is held back by other transactions, and fails the test if that
// takes longer than 20 seconds or more than want arrive.
func ReadAllTenant(tb testing.TB, ctx context.Context, s *eventstore.Store, tenant chartstream.TenantID, want, limit int) []chartstream.Event {
	tb.Helper()
	var all []chartstream.Event
	var cursor eventstore.Cursor
	deadline := time.Now().Add(20 * time.Second)
	for len(all) < want {
		page, next, err := s.ReadAll(ctx, eventstore.Filter{Tenant: tenant}, cursor, limit)
		if err != nil {
			tb.Fatal(err)
		}
		if len(page) > limit {
			tb.Fatalf("ReadAll returned %d events for limit %d", len(page), limit)
		}
		all, cursor = append(all, page...), next
		if len(page) == 0 {
			if time.Now().After(deadline) {
				tb.Fatalf("ReadAll returned %d of %d events before the deadline", len(all), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if len(all) != want {
		tb.Fatalf("ReadAll returned %d events, want %d", len(all), want)
	}
	return all
}

// ReadCommitted returns every event the tenant has committed, once the
// read horizon has passed all of them: tests that read right after their
// own appends would otherwise see none while a parallel test holds an
// older transaction open. It fails the test after 20 seconds.
func ReadCommitted(tb testing.TB, ctx context.Context, s *eventstore.Store, tenant chartstream.TenantID) []chartstream.Event {
	tb.Helper()
	filter := eventstore.Filter{Tenant: tenant}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		lag, err := s.Horizon(ctx, filter)
		if err != nil {
			tb.Fatal(err)
		}
		if lag.Events == 0 {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d committed events still behind the read horizon after 20 s", lag.Events)
		}
	}
	var all []chartstream.Event
	for cursor := (eventstore.Cursor{}); ; {
		page, next, err := s.ReadAll(ctx, filter, cursor, 1000)
		if err != nil {
			tb.Fatal(err)
		}
		if len(page) == 0 {
			return all
		}
		all, cursor = append(all, page...), next
	}
}

// wantStream fails the test unless the stream holds exactly the events
// with these ids, in order. With no ids it checks that nothing was written.
func wantStream(tb testing.TB, ctx context.Context, s *eventstore.Store, tenant chartstream.TenantID, stream chartstream.StreamRef, ids ...uuid.UUID) []chartstream.Event {
	tb.Helper()
	events, err := s.ReadStream(ctx, tenant, stream, 1)
	if err != nil {
		tb.Fatal(err)
	}
	got := make([]uuid.UUID, len(events))
	for i, e := range events {
		got[i] = e.ID
		if e.Version != int64(i+1) || e.Tenant != tenant || e.Stream != stream {
			tb.Fatalf("event %d of the stream is %+v", i, e)
		}
	}
	if !slices.Equal(got, ids) {
		tb.Fatalf("stream holds events %v, want %v", got, ids)
	}
	return events
}

// withID gives an event a fixed id, so the test can look for it.
func withID(e chartstream.NewEvent) (chartstream.NewEvent, uuid.UUID) {
	e.ID = uuid.New()
	return e, e.ID
}

// wantVerified fails the test unless the tenant's chains verify and hold
// this many events.
func wantVerified(tb testing.TB, ctx context.Context, s *eventstore.Store, tenant chartstream.TenantID, events int64) {
	tb.Helper()
	report, err := s.Verify(ctx, tenant, eventstore.VerifyParams{})
	if err != nil {
		tb.Fatal(err)
	}
	if len(report.Broken) != 0 || report.Events != events {
		tb.Fatalf("verify: %+v (broken %+v), want %d intact events", report, report.Broken, events)
	}
}
