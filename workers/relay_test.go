package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/workers"
)

func TestRelayPublishesEveryEventOnceInOrder(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	e.startRelay(nil, nil)
	e.appendEvents(streams(3), 5)

	got := e.waitPublished(15, 30*time.Second)
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
	got := e.waitPublished(8, 30*time.Second)
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

// NATS restarting while batches are in flight loses, reorders and
// duplicates nothing: each message is stored only right after its
// predecessor, and the relay resumes after what the stream holds.
func TestRelayKeepsOrderThroughNATSRestartsMidBatch(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	e.startRelay(nil, nil)
	ids := streams(8)
	const writers, each = 8, 150
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				ev := chartstream.NewEvent{Type: "test.happened", Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
				if _, err := e.writer.Append(context.Background(), e.tenant, chartstream.StreamRef{Type: "patient", ID: ids[w]}, chartstream.AnyVersion, ev); err != nil {
					errs <- err
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	for range 3 {
		time.Sleep(300 * time.Millisecond)
		e.nats.Stop()
		time.Sleep(100 * time.Millisecond)
		e.nats.Start()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("an append failed: %v", err)
	}
	got := e.waitPublished(writers*each, 30*time.Second)
	e.assertExactlyOnceInOrder(got)
}

// lossyJetStream is the real JetStream client but for one message of the
// tenant's that it loses, as a publish answered "no responders" while a
// stream's leader moves, or lost on the wire, is lost; the messages after
// it still reach the server.
type lossyJetStream struct {
	jetstream.JetStream
	tenant string
	lose   int // the tenant's how-manieth message to lose
	seen   atomic.Int64
}

func (j *lossyJetStream) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if m.Header.Get(workers.HeaderTenant) == j.tenant && j.seen.Add(1) == int64(j.lose) {
		return lostPublish{m}, nil
	}
	return j.JetStream.PublishMsgAsync(m, opts...)
}

// lostPublish is a publish that failed.
type lostPublish struct{ m *nats.Msg }

func (l lostPublish) Ok() <-chan *jetstream.PubAck { return nil }
func (l lostPublish) Err() <-chan error {
	c := make(chan error, 1)
	c <- nats.ErrNoResponders
	return c
}
func (l lostPublish) Msg() *nats.Msg { return l.m }

// A message that failed is published again before anything after it, even
// when the messages after it reached the stream: each message expects its
// predecessor's sequence, so those after a lost one are refused too, and
// the relay resumes after the stream's tail.
func TestRelayRepublishesALostMessageBeforeTheOnesAfterIt(t *testing.T) {
	t.Parallel()
	e := newRelayEnv(t)
	js, err := jetstream.New(e.nats.MustConnect(t))
	if err != nil {
		t.Fatal(err)
	}
	e.startRelayOn(&lossyJetStream{JetStream: js, tenant: e.tenant.String(), lose: 5}, nil, nil)
	// One append of many events: they go out in one batch.
	id := uuid.New()
	var batch []chartstream.NewEvent
	for i := range 20 {
		batch = append(batch, chartstream.NewEvent{Type: "test.happened", Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
	}
	if _, err := e.writer.Append(testkit.Context(t), e.tenant, chartstream.StreamRef{Type: "patient", ID: id}, chartstream.NoStream, batch...); err != nil {
		t.Fatal(err)
	}
	got := e.waitPublished(20, 30*time.Second)
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
	e.waitPublished(9, 30*time.Second)
	waitUntil(t, 5*time.Second, "relay A publishes the 8 new events", func() bool { return countA.Load() == 9 })
	if countB.Load() != 0 {
		t.Fatalf("relay A published %d and relay B %d, want 9 and 0", countA.Load(), countB.Load())
	}

	stopA()
	killed := time.Now()
	e.appendEvents(streams(1), 3)
	// The lease is a session lock, released at once: the standby takes
	// over within its LeaseRetry (200 ms) unloaded; the bound allows for a
	// loaded machine.
	got := e.waitPublished(12, 30*time.Second)
	took := time.Since(killed)
	t.Logf("the standby took over and published in %s", took.Round(time.Millisecond))
	if took > 15*time.Second {
		t.Errorf("the standby took %s to take over, want under 15s", took)
	}
	waitUntil(t, 10*time.Second, "the standby publishes the 3 new events", func() bool { return countB.Load() == 3 })
	if countA.Load() != 9 {
		t.Errorf("the stopped relay published %d events in all, want 9", countA.Load())
	}
	e.assertExactlyOnceInOrder(got)
}
