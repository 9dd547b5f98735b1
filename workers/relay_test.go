package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/internal/phi"
	"github.com/chartstream/chartstream/internal/testkit"
	"github.com/chartstream/chartstream/workers"
)

var testSpecs = []chartstream.EventSpec{
	{Type: "test.happened", SchemaVersion: 1},
	{Type: "test.noted", SchemaVersion: 1, PHI: []string{"name"}},
}

func mustStore(t *testing.T, envVar string) *eventstore.Store {
	t.Helper()
	return mustStoreWith(t, envVar, testSpecs)
}

// mustStoreWith returns a store for the given event types with a key of
// its own.
func mustStoreWith(t *testing.T, envVar string, specs []chartstream.EventSpec) *eventstore.Store {
	t.Helper()
	reg, err := eventstore.NewRegistry(specs)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "phi.key")
	if _, err := phi.CreateLocalKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	keys, err := phi.OpenLocalKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s, err := eventstore.New(testkit.MustPool(t, envVar), reg, keys, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// relayEnv is one test's relay setup: its own JetStream stream, subject
// prefix and checkpoint, starting at the event store's current head so it
// publishes only what commits during the test (every tenant's, including
// other tests': assertions look at their own tenant).
type relayEnv struct {
	t      *testing.T
	nats   *testkit.NATSServer
	js     jetstream.JetStream
	cfg    workers.RelayConfig
	reader *eventstore.Store
	writer *eventstore.Store
	tenant chartstream.TenantID
}

func newRelayEnv(t *testing.T) *relayEnv {
	t.Helper()
	id := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	e := &relayEnv{
		t:    t,
		nats: testkit.MustNATSServer(t),
		cfg: workers.RelayConfig{
			Name: "test-" + id, Stream: "TEST_" + strings.ToUpper(id), SubjectPrefix: "t" + id,
			LeaseRetry: 200 * time.Millisecond, PollInterval: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
		},
		reader: mustStore(t, "DATABASE_RELAY_URL"),
		writer: mustStore(t, "DATABASE_URL"),
		tenant: testkit.MustTenant(t),
	}
	var err error
	if e.js, err = jetstream.New(e.nats.MustConnect(t)); err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Context(t)
	head, err := e.reader.Head(ctx, eventstore.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := workers.SaveCheckpoint(ctx, testkit.MustPool(t, "DATABASE_RELAY_URL"), e.cfg.Name, head); err != nil {
		t.Fatal(err)
	}
	return e
}

// startRelay runs a relay until the returned stop is called (or the test
// ends); stop waits for Run to return.
func (e *relayEnv) startRelay(published workers.PublishedFn, hook func(*workers.Relay)) (stop func()) {
	e.t.Helper()
	js, err := jetstream.New(e.nats.MustConnect(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	r, err := workers.NewRelay(workers.RelayDeps{
		Events: e.reader, DB: testkit.MustPool(e.t, "DATABASE_RELAY_URL"), JetStream: js,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Published: published,
	}, e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if hook != nil {
		hook(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	e.t.Cleanup(stop)
	return stop
}

// appendEvents appends n events to each of the given streams, alternating
// PHI and non-PHI events, and returns their ids in order per stream.
func (e *relayEnv) appendEvents(streams []uuid.UUID, n int) {
	e.t.Helper()
	ctx := testkit.Context(e.t)
	for i := 0; i < n; i++ {
		for _, id := range streams {
			ev := chartstream.NewEvent{Type: "test.happened", Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
			if i%2 == 1 {
				ev = chartstream.NewEvent{Type: "test.noted", Payload: json.RawMessage(fmt.Sprintf(`{"i":%d,"name":"Ada Lovelace"}`, i))}
			}
			if _, err := e.writer.Append(ctx, e.tenant, chartstream.StreamRef{Type: "patient", ID: id}, chartstream.AnyVersion, ev); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

// published returns the test tenant's events in the stream, in stream order.
func (e *relayEnv) published() []chartstream.Event {
	e.t.Helper()
	ctx := testkit.Context(e.t)
	stream, err := e.js.Stream(ctx, e.cfg.Stream)
	if err != nil {
		return nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{workers.TenantSubjects(e.cfg.SubjectPrefix, e.tenant)},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []chartstream.Event
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			e.t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			ev, err := workers.DecodeMessage(m.Data())
			if err != nil {
				e.t.Fatal(err)
			}
			if got := m.Headers().Get(nats.MsgIdHdr); got != ev.ID.String() {
				e.t.Errorf("Nats-Msg-Id %q, want the event id %s", got, ev.ID)
			}
			if got := m.Headers().Get(workers.HeaderTenant); got != e.tenant.String() {
				e.t.Errorf("tenant header %q, want %s", got, e.tenant)
			}
			out = append(out, ev)
		}
		if n == 0 {
			return out
		}
	}
}

// waitPublished polls until want of the tenant's events are in the stream
// (or more, which assertExactlyOnce then reports).
func (e *relayEnv) waitPublished(want int, within time.Duration) []chartstream.Event {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := e.published()
		if len(got) >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// assertExactlyOnceInOrder checks that the published events are exactly
// the tenant's events in the store, once each, and that every stream's
// versions arrive 1, 2, 3, … with no gap.
func (e *relayEnv) assertExactlyOnceInOrder(published []chartstream.Event) {
	e.t.Helper()
	stored, _, err := e.writer.ReadAll(testkit.Context(e.t), eventstore.Filter{Tenant: e.tenant}, eventstore.Cursor{}, 100000)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(published) != len(stored) {
		e.t.Errorf("published %d events, the store holds %d", len(published), len(stored))
	}
	seen := make(map[uuid.UUID]bool)
	next := make(map[uuid.UUID]int64)
	for _, ev := range published {
		if seen[ev.ID] {
			e.t.Errorf("event %s published twice", ev.ID)
		}
		seen[ev.ID] = true
		if want := next[ev.Stream.ID] + 1; ev.Version != want {
			e.t.Errorf("stream %s: version %d arrived where %d was due", ev.Stream.ID, ev.Version, want)
		}
		next[ev.Stream.ID] = ev.Version
	}
	for _, ev := range stored {
		if !seen[ev.ID] {
			e.t.Errorf("event %s (stream %s version %d) was never published", ev.ID, ev.Stream.ID, ev.Version)
		}
	}
}

// waitFor polls cond until it holds, failing the test after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func streams(n int) []uuid.UUID {
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.New()
	}
	return ids
}

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
		r.SetAfterPublish(func() {
			// Die after JetStream acknowledged, before the checkpoint.
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
	time.Sleep(300 * time.Millisecond) // A takes the lease first
	e.startRelay(count(&countB), nil)

	e.appendEvents(streams(2), 4)
	e.waitPublished(8, 10*time.Second)
	// A relay counts an event when it handles JetStream's acknowledgement,
	// a moment after the message is in the stream.
	waitFor(t, 5*time.Second, "relay A publishes the 8 events", func() bool { return countA.Load() == 8 })
	if countB.Load() != 0 {
		t.Fatalf("relay A published %d and relay B %d, want 8 and 0", countA.Load(), countB.Load())
	}

	stopA()
	killed := time.Now()
	e.appendEvents(streams(1), 3)
	got := e.waitPublished(11, 10*time.Second)
	if took := time.Since(killed); took > 5*time.Second {
		t.Errorf("the standby took %s to take over, want under 5s", took)
	}
	waitFor(t, 5*time.Second, "the standby publishes the 3 new events", func() bool { return countB.Load() == 3 })
	if countA.Load() != 8 {
		t.Errorf("the stopped relay published %d events in all, want 8", countA.Load())
	}
	e.assertExactlyOnceInOrder(got)
}
