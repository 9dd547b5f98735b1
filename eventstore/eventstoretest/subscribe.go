package eventstoretest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
)

func testSubscribe(t *testing.T, newStore NewStoreFn) {
	ctx, s, tenant, st := begin(t, newStore)
	appendOne := func(version int64) uuid.UUID {
		t.Helper()
		e, id := withID(NewEvent("test.happened", map[string]any{"n": version + 1}))
		if _, err := s.Append(ctx, tenant, st, version, e); err != nil {
			t.Fatal(err)
		}
		return id
	}
	want := []uuid.UUID{appendOne(0)} // before subscribing: delivered too

	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []chartstream.Event, 16)
	done := make(chan error, 1)
	// The poll interval is far beyond the deadline below: only the commit
	// notification can wake the subscriber in time.
	opts := eventstore.SubscribeOptions{BatchSize: 2, PollInterval: time.Minute}
	go func() {
		done <- s.Subscribe(subCtx, eventstore.Filter{Tenant: tenant}, eventstore.Cursor{}, opts,
			func(_ context.Context, events []chartstream.Event, _ eventstore.Cursor) error {
				batches <- events
				return nil
			})
	}()
	var got []uuid.UUID
	receive := func(n int) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for len(got) < n {
			select {
			case events := <-batches:
				if len(events) > opts.BatchSize {
					t.Errorf("a batch of %d events, over the batch size %d", len(events), opts.BatchSize)
				}
				for _, e := range events {
					got = append(got, e.ID)
				}
			case err := <-done:
				t.Fatalf("Subscribe returned early: %v", err)
			case <-deadline:
				t.Fatalf("received %d of %d events before the deadline", len(got), n)
			}
		}
	}
	receive(1)
	for v := int64(1); v <= 4; v++ {
		want = append(want, appendOne(v))
		receive(len(want)) // each append wakes the subscriber on its own
	}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Fatalf("received %v, want %v", got, want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Subscribe after cancel returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Subscribe did not return after its context was cancelled")
	}

	// An error from fn stops the subscription and is returned as is.
	stop := errors.New("stop")
	err := s.Subscribe(ctx, eventstore.Filter{Tenant: tenant}, eventstore.Cursor{}, opts,
		func(context.Context, []chartstream.Event, eventstore.Cursor) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("Subscribe with a failing fn returned %v", err)
	}
}
