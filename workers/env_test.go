package workers_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chartstream/chartstream"
	"github.com/chartstream/chartstream/eventstore"
	"github.com/chartstream/chartstream/eventstore/eventstoretest"
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
	return testkit.MustEventStore(t, testkit.MustPool(t, envVar), specs, testkit.MustPHIKeys(t))
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
	n := testkit.MustNATSServer(t)
	js, err := jetstream.New(n.MustConnect(t))
	if err != nil {
		t.Fatal(err)
	}
	e := newRelayEnvOn(t, js)
	e.nats = n
	return e
}

// newRelayEnvOn is a relay setup on the JetStream js reaches (a cluster);
// its relays are started with startRelayOn.
func newRelayEnvOn(t *testing.T, js jetstream.JetStream) *relayEnv {
	t.Helper()
	id := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	e := &relayEnv{
		t:  t,
		js: js,
		cfg: workers.RelayConfig{
			Name: "test-" + id, Stream: "TEST_" + strings.ToUpper(id), SubjectPrefix: "t" + id,
			LeaseRetry: 200 * time.Millisecond, PollInterval: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
			// JetStream reserves MaxBytes on disk; the 10 GiB default would
			// not fit on a small CI disk.
			MaxBytes: 64 << 20,
		},
		reader: mustStore(t, "DATABASE_RELAY_URL"),
		writer: mustStore(t, "DATABASE_URL"),
		tenant: testkit.MustTenant(t),
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
	return e.startRelayOn(js, published, hook)
}

// startRelayOn is startRelay publishing through js.
func (e *relayEnv) startRelayOn(js jetstream.JetStream, published workers.PublishedFn, hook func(*workers.Relay)) (stop func()) {
	e.t.Helper()
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
	var out []chartstream.Event
	for _, m := range fetchAll(e.t, e.js, e.cfg.Stream, workers.TenantSubjects(e.cfg.SubjectPrefix, e.tenant)) {
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
	return out
}

// fetchAll returns the stream's messages on subjects, in stream order;
// none when the stream does not exist yet.
func fetchAll(t *testing.T, js jetstream.JetStream, name, subjects string) []jetstream.Msg {
	t.Helper()
	ctx := testkit.Context(t)
	// A cluster that has just lost or regained a node may still be
	// electing: a request then fails ("no responders") and is tried again,
	// and a new consumer resumes after the last message fetched.
	deadline := time.Now().Add(30 * time.Second)
	retry := func(err error) bool {
		if err == nil || time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
		return true
	}
	stream, err := js.Stream(ctx, name)
	for !errors.Is(err, jetstream.ErrStreamNotFound) && retry(err) {
		stream, err = js.Stream(ctx, name)
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	// How many there are, then fetch them all: a consumer just created
	// may answer a no-wait fetch with nothing.
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subjects))
	for retry(err) {
		info, err = stream.Info(ctx, jetstream.WithSubjectFilter(subjects))
	}
	if err != nil {
		t.Fatal(err)
	}
	var want uint64
	for _, n := range info.State.Subjects {
		want += n
	}
	if want == 0 {
		return nil
	}
	var out []jetstream.Msg
	var cons jetstream.Consumer
	for uint64(len(out)) < want {
		if cons == nil {
			cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subjects}}
			if len(out) > 0 {
				meta, err := out[len(out)-1].Metadata()
				if err != nil {
					t.Fatal(err)
				}
				cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, meta.Sequence.Stream+1
			}
			if cons, err = stream.OrderedConsumer(ctx, cfg); err != nil {
				t.Fatal(err)
			}
		}
		batch, err := cons.Fetch(int(min(want-uint64(len(out)), 500)), jetstream.FetchMaxWait(5*time.Second))
		n := 0
		if err == nil {
			for m := range batch.Messages() {
				n++
				out = append(out, m)
			}
			err = batch.Error()
		}
		if n == 0 {
			if !retry(cmp.Or(err, errors.New("no message"))) {
				t.Fatalf("fetched %d of %d messages: %v", len(out), want, err)
			}
			cons = nil
		}
	}
	return out
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
	stored := eventstoretest.ReadCommitted(e.t, testkit.Context(e.t), e.writer, e.tenant)
	if len(published) != len(stored) {
		e.t.Errorf("published %d events, the store holds %d", len(published), len(stored))
	}
	seen := make(map[uuid.UUID]bool)
	next := make(map[uuid.UUID]int64)
	var last eventstore.Cursor
	for i, ev := range published {
		if c := eventstore.CursorOf(ev); i > 0 && !c.After(last) {
			e.t.Errorf("event %s published after %v, but it is earlier in the store (%v)", ev.ID, last, c)
		} else {
			last = c
		}
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

func streams(n int) []uuid.UUID {
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.New()
	}
	return ids
}

// waitUntil polls cond until it holds, failing the test after within.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
