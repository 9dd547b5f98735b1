package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/workers"
)

func TestRelayPublishesEveryEventOnceInOrder(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	e.startRelay(nil, nil)
	e.appendEvents(streams(3), 5)

	got := e.waitPublished(15, 10*time.Second)
	e.assertExactlyOnceInOrder(got)
	for _, ev := range got {
		if ev.Type == "test.noted" {
			if ev.Sealed == nil || strings.Contains(string(ev.Payload), "Lovelace") {
				t.Fatalf("PHI left the store unsealed: payload %s", ev.Payload)
			}
		}
	}
}

func TestRelayCrashBetweenPublishAndCheckpoint(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	// A duplicate window shorter than the outage: exactly-once must not
	// rest on JetStream's deduplication alone.
	e.cfg.DuplicateWindow = time.Second
	crashed := make(chan struct{})
	var stop func()
	stop = e.startRelay(nil, func(r *workers.Relay) {
		r.SetAfterPublish(func(events []chartstream.Event) {
			// Die after JetStream acknowledged the test tenant's events,
			// before the checkpoint. (The relay also publishes the events
			// other packages' tests write meanwhile.)
			if !slices.ContainsFunc(events, func(ev chartstream.Event) bool { return ev.Tenant == e.tenant }) {
				return
			}
			select {
			case <-crashed:
			default:
				close(crashed)
				go stop()
				time.Sleep(200 * time.Millisecond) // let the cancellation land
			}
		})
	})
	e.appendEvents(streams(2), 3)
	select {
	case <-crashed:
	case <-time.After(10 * time.Second):
		t.Fatal("the relay never published")
	}
	stop()
	before := e.published()
	if len(before) == 0 {
		t.Fatal("nothing was published before the crash")
	}
	time.Sleep(1500 * time.Millisecond) // past the duplicate window

	e.startRelay(nil, nil)
	e.appendEvents(streams(1), 2)
	got := e.waitPublished(8, 10*time.Second)
	e.assertExactlyOnceInOrder(got)
}

func TestRelaySurvivesNATSOutage(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	e.startRelay(nil, nil)
	ids := streams(4)

	var appended atomic.Int64
	done := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for i := 0; i < 60; i++ {
			ev := chartstream.NewEvent{Type: "test.happened", Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
			if _, err := e.writer.Append(ctx, e.tenant, chartstream.StreamRef{Type: "patient", ID: ids[i%len(ids)]}, chartstream.AnyVersion, ev); err != nil {
				done <- err
				return
			}
			appended.Add(1)
			time.Sleep(50 * time.Millisecond)
		}
		done <- nil
	}()
	time.Sleep(700 * time.Millisecond)
	e.nats.Stop()
	time.Sleep(2 * time.Second) // appends keep committing meanwhile
	e.nats.Start()
	if err := <-done; err != nil {
		t.Fatalf("an append failed while NATS was down: %v", err)
	}
	got := e.waitPublished(60, 15*time.Second)
	e.assertExactlyOnceInOrder(got)
}

func TestOnlyOneRelayPublishesAndAStandbyTakesOver(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	var countA, countB atomic.Int64
	count := func(c *atomic.Int64) workers.PublishedFn {
		return func(p workers.PublishedParams) {
			if p.Event.Tenant == e.tenant {
				c.Add(1)
			}
		}
	}
	stopA := e.startRelay(count(&countA), nil)
	// A is active once it publishes; only then does B start, as a standby.
	// (A relay counts an event when it handles JetStream's acknowledgement,
	// a moment after the message is in the stream.)
	e.appendEvents(streams(1), 1)
	waitUntil(t, 10*time.Second, "relay A becomes active and publishes", func() bool { return countA.Load() == 1 })
	e.startRelay(count(&countB), nil)

	e.appendEvents(streams(2), 4)
	e.waitPublished(9, 10*time.Second)
	waitUntil(t, 5*time.Second, "relay A publishes the 8 new events", func() bool { return countA.Load() == 9 })
	if countB.Load() != 0 {
		t.Fatalf("relay A published %d and relay B %d, want 9 and 0", countA.Load(), countB.Load())
	}

	stopA()
	killed := time.Now()
	e.appendEvents(streams(1), 3)
	got := e.waitPublished(12, 10*time.Second)
	if took := time.Since(killed); took > 5*time.Second {
		t.Errorf("the standby took %s to take over, want under 5s", took)
	}
	waitUntil(t, 5*time.Second, "the standby publishes the 3 new events", func() bool { return countB.Load() == 3 })
	if countA.Load() != 9 {
		t.Errorf("the stopped relay published %d events in all, want 9", countA.Load())
	}
	e.assertExactlyOnceInOrder(got)
}
