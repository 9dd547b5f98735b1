package eventstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/eventstore/eventstoretest"
	"github.com/chartstream/chartstream/internal/postgres"
	"github.com/chartstream/chartstream/internal/testkit"
)

// proxiedStore is a store whose connections go through a proxy that can
// lose the database's answers.
func proxiedStore(t *testing.T, cfg eventstore.Config) (*eventstore.Store, *testkit.PGProxy) {
	t.Helper()
	proxy, pool := testkit.MustProxiedPool(t, "DATABASE_URL")
	return mustStoreWith(t, pool, cfg, eventstoretest.Specs()), proxy
}

// The connection dies after the server committed a group and before its
// answer arrived. The append must not report a failure for what was
// recorded (the client would retry into a conflict or a duplicate): the
// store learns the outcome from the database and returns the real result.
func TestAppendWhoseCommitAnswerIsLostSucceeds(t *testing.T) {
	t.Parallel()
	s, proxy := proxiedStore(t, eventstore.Config{})
	ctx, tenant, st := testkit.Context(t), testkit.MustTenant(t), eventstoretest.Stream()
	if _, err := s.Append(ctx, tenant, st, chartstream.NoStream, eventstoretest.NewEvent("test.happened", map[string]any{})); err != nil {
		t.Fatal(err)
	}
	proxy.CutAfterCommit()
	ev, id := eventstoretest.NewEvent("test.happened", map[string]any{}), uuid.New()
	ev.ID = id
	res, err := s.Append(ctx, tenant, st, 1, ev)
	if err != nil {
		t.Fatalf("an append that committed reported %v", err)
	}
	events, err := s.ReadStream(ctx, tenant, st, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[1].ID != id || res.Version != 2 || res.Positions[0] != events[1].Position {
		t.Fatalf("after the lost answer: %d events, result %+v", len(events), res)
	}
}

// While the database stays away after the commit was sent, the outcome is
// unknown and says so; once it is back, the same events (same ids) are
// found recorded, never recorded twice.
func TestAppendOutcomeUnknownWhileTheDatabaseStaysAway(t *testing.T) {
	t.Parallel()
	s, proxy := proxiedStore(t, eventstore.Config{ResolveTimeout: 500 * time.Millisecond})
	ctx, tenant, st := testkit.Context(t), testkit.MustTenant(t), eventstoretest.Stream()
	ev, id := eventstoretest.NewEvent("test.happened", map[string]any{}), uuid.New()
	ev.ID = id
	// Away as soon as the answer is lost, for longer than the store tries
	// to learn the outcome.
	proxy.CutAfterCommitAndRefuse()
	_, err := s.Append(ctx, tenant, st, chartstream.NoStream, ev)
	eventstoretest.WantCode(t, err, chartstream.ECOMMITUNKNOWN)
	proxy.Refuse(false)
	// The client retries the same events once the database is back: the
	// store finds them recorded (or the insert conflicts with them).
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = s.Append(ctx, tenant, st, chartstream.NoStream, ev)
		if chartstream.ErrorCode(err) != chartstream.ECOMMITUNKNOWN && !postgres.Unavailable(err) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil && chartstream.ErrorCode(err) != chartstream.ECONFLICT {
		t.Fatalf("the retry: %v", err)
	}
	found, err := s.Recorded(context.Background(), tenant, []uuid.UUID{id})
	if err != nil || len(found) != 1 || found[0].Version != 1 {
		t.Fatalf("the event is recorded %d times (%v), want once", len(found), err)
	}
}
